//! Handling raft-rs's Ready in its documented order, and applying committed entries.
//!
//! Each Ready: send messages; install a received snapshot; apply committed entries; persist
//! entries + hard state (one pwrite to the log's newest segment, one fdatasync: group
//! commit); send
//! persisted messages (votes, append responses: the ones that acknowledge); advance, then
//! handle the LightReady (commit index, messages, committed entries). Afterwards
//! (`after_ready`) whatever the new state unlocks: held proposals go out, answers that can no
//! longer be known are dropped, read barriers are re-issued or answered.

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType};
use tokio::sync::oneshot;

use super::{sorted, Node};
use crate::consensus::peer::Transport;
use crate::consensus::ConsensusError;
use crate::consensus::{zxid, BeforeApply, StateMachine};
use crate::tree::{Applied, Txn};

/// Txns of consecutive entries waiting to be applied together, with who waits for each
/// (this run's own proposals) and the work its proposer handed in to be done right before it
/// is applied.
#[derive(Default)]
struct Run {
    txns: Vec<(i64, Txn)>,
    done: Vec<Option<oneshot::Sender<Applied>>>,
    before: Vec<Option<BeforeApply>>,
}

/// What the last Ready round saw, so that the next one can tell what changed.
#[derive(Default)]
pub(super) struct ReadyState {
    /// Term, leader and "leader has committed in its term" as of the last round: changes
    /// drop pending answers or re-issue read barriers.
    last_term: u64,
    last_leader: u64,
    committed_in_term: bool,
    was_leader: bool,
    /// Leading, and an entry of this term is applied (`RaftStatus::leader_ready`).
    pub(super) applied_in_term: bool,
    /// Readies that had to be made durable (entries or a term/vote change).
    pub(super) sync_readies: u64,
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// Handles every pending Ready, in raft-rs's documented order, and what follows from
    /// the new state (held proposals, read barriers), until nothing is pending.
    pub(super) fn on_ready(&mut self) -> Result<(), ConsensusError> {
        loop {
            self.handle_readies()?;
            self.after_ready();
            if !self.raw.has_ready() {
                return Ok(());
            }
        }
    }

    fn handle_readies(&mut self) -> Result<(), ConsensusError> {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            // 1. Messages that may go out before persisting (a leader's appends).
            if !rd.messages().is_empty() {
                self.send(rd.take_messages());
            }
            // ReadIndex answers: the commit index each barrier must wait for.
            for rs in rd.take_read_states() {
                self.read_state(&rs.request_ctx, rs.index);
            }
            // 2. A snapshot from the leader.
            if !rd.snapshot().is_empty() {
                self.install_snapshot(rd.snapshot().clone())?;
            }
            // 3. Committed entries (all persisted already, raft-rs guarantees).
            self.apply(rd.take_committed_entries())?;
            // 4 + 5. Entries and hard state: a new term or vote durable in sled first, then
            // one pwrite of the entries to the newest log segment and one fdatasync.
            let must_sync = rd.must_sync();
            if must_sync {
                self.ready.sync_readies += 1;
            }
            self.raw
                .mut_store()
                .persist(rd.entries(), rd.hs(), must_sync)?;
            // 6. Messages that acknowledge what was just persisted (votes, append acks).
            if !rd.persisted_messages().is_empty() {
                self.send(rd.take_persisted_messages());
            }
            // 7. Advance; the LightReady carries what persisting unlocked.
            let mut light = self.raw.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            if !light.messages().is_empty() {
                self.send(light.take_messages());
            }
            self.apply(light.take_committed_entries())?;
            self.raw.advance_apply();
        }
        Ok(())
    }

    /// Raft's messages to the transport, heartbeats marked for members the leader does not
    /// hear (`mark_unheard`).
    fn send(&mut self, mut msgs: Vec<raft::prelude::Message>) {
        self.mark_unheard(&mut msgs);
        self.transport.send(msgs);
    }

    fn after_ready(&mut self) {
        let leader = self.is_leader();
        let term = self.raw.raft.term;
        let (was_leader, last_term) = (self.ready.was_leader, self.ready.last_term);
        let (last_leader, last_committed) = (self.ready.last_leader, self.ready.committed_in_term);
        if (was_leader && !leader) || term != last_term {
            // Entries may still commit under the new leader, but this node can no longer
            // tell (a forwarded one may have died with the old leader).
            self.drop_pending(last_term, term);
        }
        // raft-rs drops ReadIndex requests while no leader is known and on a leader that
        // has not committed in its term: ask again as soon as that changes.
        let leader_id = self.raw.raft.leader_id;
        let committed_in_term = leader && self.raw.raft.commit_to_current_term();
        if leader_id != last_leader {
            if leader_id == 0 {
                tracing::info!(term, "no leader known");
            } else {
                tracing::info!(leader = leader_id, term, me = leader, "leader elected");
            }
        }
        if (leader_id != last_leader || (committed_in_term && !last_committed)) && leader_id != 0 {
            self.reissue_unanswered_reads();
        }
        // Once true it stays so for the term (it was true only while leading); looked up
        // only until then.
        let applied_in_term = leader
            && ((self.ready.applied_in_term && term == last_term)
                || self
                    .raw
                    .raft
                    .raft_log
                    .term(self.applied)
                    .is_ok_and(|t| t == term));
        self.ready = ReadyState {
            last_term: term,
            last_leader: leader_id,
            committed_in_term,
            was_leader: leader,
            applied_in_term,
            sync_readies: self.ready.sync_readies,
        };
        self.flush_held();
        self.resolve_reads();
    }

    /// Gives committed entries to the state machine (normal entries) or to raft-rs (conf
    /// changes), in order, each once.
    pub(super) fn apply(&mut self, entries: Vec<Entry>) -> Result<(), ConsensusError> {
        // Txns go to the state machine in runs (`apply_all`: it takes its locks once per
        // run, so a snapshot walk holding the read lock is waited for once per run, not once
        // per entry). A run ends before a conf change and after a membership txn.
        let mut run = Run::default();
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            match e.get_entry_type() {
                // A new leader's empty entry: nothing to apply.
                EntryType::EntryNormal if e.data.is_empty() => {}
                EntryType::EntryNormal => {
                    // Every replica decodes the same bytes: a failure here is not this node's
                    // to skip (replicas would diverge), so the node stops.
                    let txn = Txn::decode(&e.data).map_err(|err| ConsensusError::BadEntry {
                        what: "log entry",
                        index: e.index,
                        term: e.term,
                        why: format!("is not a txn: {err}"),
                    })?;
                    let membership =
                        matches!(txn.inner(), Txn::SetConfig { .. } | Txn::Reconfig { .. });
                    let (done, before) = self.take_waiter(&e.context).unzip();
                    run.txns.push((zxid(e.term, e.index), txn));
                    run.done.push(done);
                    run.before.push(before.flatten());
                    if membership {
                        self.apply_run(&mut run);
                        self.refresh_membership();
                    }
                }
                EntryType::EntryConfChange => {
                    self.apply_run(&mut run);
                    let cc = ConfChange::parse_from_bytes(&e.data)
                        .map_err(|err| bad_conf_change(&e, err))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| bad_conf_change(&e, err))?;
                    let id = cc.node_id;
                    let what = match cc.get_change_type() {
                        ConfChangeType::AddNode => format!("promoted {id} to voter"),
                        ConfChangeType::AddLearnerNode if cs.learners.contains(&id) => {
                            format!("added {id} as learner")
                        }
                        ConfChangeType::AddLearnerNode => format!("learner change for {id}"),
                        ConfChangeType::RemoveNode => format!("removed {id}"),
                    };
                    self.conf_applied(e.index, &what, cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    self.apply_run(&mut run);
                    let cc = ConfChangeV2::parse_from_bytes(&e.data)
                        .map_err(|err| bad_conf_change(&e, err))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| bad_conf_change(&e, err))?;
                    self.conf_applied(e.index, "joint change", cs)?;
                }
            }
            self.applied = e.index;
            self.snaps.since_snapshot += 1;
        }
        self.apply_run(&mut run);
        Ok(())
    }

    /// Applies the txns gathered in `run` and answers the proposals waiting on them.
    fn apply_run(&mut self, run: &mut Run) {
        if run.txns.is_empty() {
            return;
        }
        let applied = self
            .sm
            .apply_all(&run.txns, std::mem::take(&mut run.before));
        run.txns.clear();
        for (done, a) in run.done.drain(..).zip(applied) {
            if let Some(done) = done {
                let _ = done.send(a);
            }
        }
    }

    /// Logs an applied conf change and stores the membership it produced.
    fn conf_applied(
        &mut self,
        index: u64,
        what: &str,
        cs: ConfState,
    ) -> Result<(), ConsensusError> {
        tracing::info!(
            "membership: {what} (conf change at index {index}); voters {:?}, learners {:?}",
            sorted(cs.voters.clone()),
            sorted(cs.learners.clone())
        );
        self.members.last_conf_index = index;
        Ok(self.raw.mut_store().set_conf_state(cs)?)
    }
}

/// A conf change entry that does not decode or that raft-rs refuses.
fn bad_conf_change(e: &Entry, why: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::BadEntry {
        what: "conf change",
        index: e.index,
        term: e.term,
        why: why.to_string(),
    }
}
