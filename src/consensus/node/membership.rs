//! Membership follows the configuration (`RaftOptions::follow_config`, docs/operations.md):
//! - a server with an empty log probes zoo.cfg's servers (`PeerMsg::Probe`) and bootstraps a
//!   new group only when every voter has an empty log and the same server list, or, when
//!   servers imported ZooKeeper's data, lets the one with the newest start the group from its
//!   seed; otherwise it waits to be added and learns the group from the leader's snapshot;
//! - the leader moves the group towards the configuration (zoo.cfg's, then the replicated
//!   /zookeeper/config once there is one) one step at a time, as `plan` decides, and takes a
//!   snapshot for servers that join with an empty log.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use raft::prelude::{ConfChange, ConfChangeType, ConfState};

use super::plan::{self, Change, Group, Peer, Step};
use super::{sorted, Node};
use crate::consensus::peer::{PeerMsg, Probe, Transport};
use crate::consensus::storage::SledStorage;
use crate::consensus::ConsensusError;
use crate::consensus::{GroupMembers, StateMachine};

#[derive(Default)]
pub(super) struct Membership {
    /// Empty log, no membership: probing peers until this node either bootstraps a fresh
    /// group or is added to an existing one by its leader's snapshot.
    pub(super) waiting: bool,
    /// Peers that said their log is empty, with the members they would bootstrap with and
    /// the zxid of the ZooKeeper data each would start from (0: none).
    fresh_peers: HashMap<u64, (Vec<u64>, Vec<u64>, i64)>,
    /// Peers that said they belong to a group with a log.
    member_peers: HashSet<u64>,
    /// Peers that probed us (empty log) recently: a leader sends them a snapshot.
    probing_peers: HashMap<u64, Instant>,
    /// Index of the last conf change applied (a joining server needs a snapshot at least
    /// this new to learn the membership).
    pub(super) last_conf_index: u64,
    /// Appends from index 1 ignored while waiting (logged once).
    pub(super) dropped_appends: u64,
    /// The last membership step logged (not repeated every tick).
    note: String,
    /// The membership the replicated state asks for (None: zoo.cfg's, `opts`).
    pub(super) configured: Option<GroupMembers>,
    /// This server is not in `configured` (logged once per change).
    pub(super) removed: bool,
}

impl Membership {
    /// `waiting`: the log is empty and membership follows the configuration.
    pub(super) fn new(waiting: bool) -> Membership {
        Membership {
            waiting,
            ..Default::default()
        }
    }
}

/// No log entries and never compacted.
fn store_is_empty_log(store: &SledStorage) -> bool {
    store.log_start().0 == 0 && store.last_index_cached() == 0
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// A membership probe from `from` (see `RaftOptions::follow_config`).
    pub(super) fn on_probe(&mut self, from: u64, p: Probe) {
        match p {
            Probe::Fresh {
                voters,
                learners,
                imported,
            } => {
                let now = self.clock.now();
                let m = &mut self.members;
                m.probing_peers.insert(from, now);
                m.fresh_peers
                    .insert(from, (sorted(voters), sorted(learners), imported));
                m.member_peers.remove(&from);
                if !m.waiting {
                    // What the prober needs to decide: a group with an empty log can still be
                    // joined by bootstrapping with the same members; one with a log cannot.
                    let answer = if store_is_empty_log(self.raw.store())
                        && self.raw.raft.raft_log.last_index() == 0
                    {
                        let cs = self.raw.raft.prs().conf().to_conf_state();
                        Probe::Fresh {
                            voters: sorted(cs.voters),
                            learners: sorted(cs.learners),
                            imported: 0,
                        }
                    } else {
                        Probe::Member
                    };
                    self.transport.send_peer(from, PeerMsg::Probe(answer));
                }
            }
            Probe::Member => {
                let m = &mut self.members;
                m.fresh_peers.remove(&from);
                if m.member_peers.insert(from) && m.waiting {
                    tracing::info!(
                        "membership: server {from} belongs to an ensemble that has a log: \
                         waiting to be added by its leader"
                    );
                }
            }
        }
    }

    /// While waiting: probe zoo.cfg's servers; bootstrap when every voter has an empty log
    /// and the same server list. If any of them imported ZooKeeper's data, only the one with
    /// the newest starts the group, from its import (see `Seed`).
    pub(super) fn waiting_tick(&mut self) -> Result<(), ConsensusError> {
        let want = (
            sorted(self.opts.voters.clone()),
            sorted(self.opts.learners.clone()),
        );
        let mine = self.opts.seed.as_ref().map_or(0, |s| s.zxid);
        if self.ticks % 2 == 1 {
            let probe = Probe::Fresh {
                voters: want.0.clone(),
                learners: want.1.clone(),
                imported: mine,
            };
            for id in self.transport.peer_ids() {
                self.transport.send_peer(id, PeerMsg::Probe(probe.clone()));
            }
        }
        let me = self.opts.id;
        let fresh = &self.members.fresh_peers;
        let all_fresh = want.0.iter().filter(|&&v| v != me).all(|v| {
            fresh
                .get(v)
                .is_some_and(|(vs, ls, _)| (vs, ls) == (&want.0, &want.1))
        });
        if !all_fresh {
            return Ok(());
        }
        // ZooKeeper's election rule: the highest zxid, then the highest id.
        let newest = want
            .0
            .iter()
            .map(|&v| match v == me {
                true => (mine, v),
                false => (fresh.get(&v).map_or(0, |p| p.2), v),
            })
            .max();
        if let Some((zxid, seed_id)) = newest.filter(|(z, _)| *z != 0) {
            if seed_id != me {
                let note = format!("seed {seed_id}");
                if self.members.note != note {
                    tracing::info!(
                        "membership: server {seed_id} has the newest ZooKeeper data (zxid \
                         {zxid:#x}; this server's: {mine:#x}): it starts the ensemble from \
                         it and this server waits to be added (its own import is dropped)"
                    );
                    self.members.note = note;
                }
                return Ok(());
            }
            return self.start_from_seed();
        }
        tracing::info!(
            "membership: every voter in zoo.cfg ({:?}) has an empty log and the same server \
             list: bootstrapping a new ensemble (voters {:?}, learners {:?})",
            want.0,
            want.0,
            want.1
        );
        for (ids, ty) in [
            (&want.0, ConfChangeType::AddNode),
            (&want.1, ConfChangeType::AddLearnerNode),
        ] {
            for &id in ids {
                let mut cc = ConfChange::default();
                cc.set_change_type(ty);
                cc.node_id = id;
                self.raw
                    .apply_conf_change(&cc)
                    .map_err(|e| ConsensusError::raft("bootstrapping membership", e))?;
            }
        }
        let cs = self.raw.raft.prs().conf().to_conf_state();
        self.raw.mut_store().set_conf_state(cs)?;
        self.members.waiting = false;
        self.ticks = 0;
        Ok(())
    }

    /// Starts a one-voter group from this server's seed (it has the newest imported state of
    /// all voters); `reconcile` then adds the others, who take its snapshot.
    fn start_from_seed(&mut self) -> Result<(), ConsensusError> {
        let Some(seed) = self.opts.seed.take() else {
            return Ok(());
        };
        let zxid = seed.zxid;
        let snap = seed.into_snapshot(ConfState {
            voters: vec![self.opts.id],
            ..Default::default()
        });
        let term = snap.get_metadata().term;
        tracing::info!(
            "membership: this server has the newest ZooKeeper data of all voters in zoo.cfg \
             (zxid {zxid:#x}): starting the ensemble from it (term {term}); the others join \
             from its snapshot"
        );
        // Terms never go down in the log: the group starts in the seed's term.
        self.raw.raft.become_follower(term, raft::INVALID_ID);
        if !self.raw.raft.restore(snap) {
            return Err(ConsensusError::Unrecoverable(
                "raft refused the imported state as its first snapshot".into(),
            ));
        }
        // install_snapshot (next Ready) must not report this as joining a leader.
        self.members.waiting = false;
        // The only voter campaigns on the next tick (`startup_campaign` at tick 2), once the
        // snapshot is persisted: raft-rs leads only over a persisted log.
        self.ticks = 1;
        Ok(())
    }

    /// Takes the replicated membership from the state machine if it changed: what
    /// `reconcile` moves towards, and peers the transport must be able to reach.
    pub(super) fn refresh_membership(&mut self) {
        let Some(m) = self.sm.take_membership() else {
            return;
        };
        if m.voters.is_empty() || self.members.configured.as_ref() == Some(&m) {
            return;
        }
        tracing::info!(
            "membership: the ensemble's configuration lists voters {:?}, observers {:?}",
            m.voters,
            m.learners
        );
        self.transport.set_peers(&m.peers);
        self.members.configured = Some(m);
    }

    /// The members `reconcile` moves the group towards: the replicated configuration once
    /// there is one, zoo.cfg's before.
    fn wanted(&self) -> (Vec<u64>, Vec<u64>) {
        match &self.members.configured {
            Some(m) => (sorted(m.voters.clone()), sorted(m.learners.clone())),
            None => (
                sorted(self.opts.voters.clone()),
                sorted(self.opts.learners.clone()),
            ),
        }
    }

    /// Leader only: carry out the next step of `plan` towards the configuration (see
    /// `RaftOptions::follow_config`); send joining servers a snapshot.
    pub(super) fn reconcile(&mut self) {
        if !self.opts.follow_config || !self.is_leader() {
            return;
        }
        self.snapshot_for_joiners();
        let group = self.group();
        let (want_v, want_l) = self.wanted();
        let (change, id, what) = match plan::plan(&group, &want_v, &want_l) {
            Step::Wait => return,
            Step::Idle { notes } => {
                let note = notes.join("; ");
                if note != self.members.note {
                    if !note.is_empty() {
                        tracing::info!("membership: {note}");
                    }
                    self.members.note = note;
                }
                return;
            }
            Step::TransferLeader { to } => {
                tracing::info!(
                    "membership: this server ({}) leaves the voters; transferring leadership \
                     to server {to}",
                    self.opts.id
                );
                self.raw.transfer_leader(to);
                return;
            }
            Step::Change { change, id, why } => (change, id, why),
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(match change {
            Change::Promote => ConfChangeType::AddNode,
            Change::AddLearner | Change::Demote => ConfChangeType::AddLearnerNode,
            Change::Remove => ConfChangeType::RemoveNode,
        });
        cc.node_id = id;
        tracing::info!(
            "membership: {what}; voters {:?}, learners {:?} -> proposing one conf change",
            sorted(group.voters),
            sorted(group.learners)
        );
        self.members.note = what;
        if let Err(e) = self.raw.propose_conf_change(vec![], cc) {
            tracing::warn!("membership: raft refused the conf change: {e}");
        }
    }

    /// The group as `plan` needs to see it.
    fn group(&self) -> Group {
        let raft = &self.raw.raft;
        let cs = raft.prs().conf().to_conf_state();
        let now = self.clock.now();
        let peers = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .filter(|&&id| id != self.opts.id)
            .map(|&id| {
                let matched = raft.prs().get(id).map_or(0, |p| p.matched);
                let caught_up = self.caught_up(id, now);
                (id, Peer { matched, caught_up })
            })
            .collect();
        Group {
            me: self.opts.id,
            busy: !raft.commit_to_current_term()
                || raft.has_pending_conf()
                || !cs.voters_outgoing.is_empty(),
            transferring: raft.lead_transferee.is_some(),
            last_index: raft.raft_log.last_index(),
            voters: cs.voters,
            learners: cs.learners,
            peers,
        }
    }

    /// A member with nothing matched that probes as empty needs a snapshot that holds its
    /// membership (a snapshot newer than the last conf change, and a compacted log so
    /// raft-rs sends it rather than entries from index 1).
    fn snapshot_for_joiners(&mut self) {
        let me = self.opts.id;
        let now = self.clock.now();
        let recent = self.opts.election_timeout() * 2;
        self.members
            .probing_peers
            .retain(|_, t| now.duration_since(*t) <= recent);
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let joining: Vec<u64> = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .copied()
            .filter(|&id| {
                id != me
                    && self.members.probing_peers.contains_key(&id)
                    && self
                        .raw
                        .raft
                        .prs()
                        .get(id)
                        .is_some_and(|pr| pr.matched == 0)
            })
            .collect();
        let need_at = self.members.last_conf_index.max(1);
        if !joining.is_empty()
            && self.snaps.forced_at < need_at
            && (self.raw.store().log_start().0 == 0 || self.snaps.last.0 < need_at)
        {
            tracing::info!(
                "membership: server(s) {joining:?} joined with an empty log: taking a snapshot \
                 to send them"
            );
            self.snaps.force = true;
            self.snaps.forced_at = self.applied.max(need_at);
        }
    }
}
