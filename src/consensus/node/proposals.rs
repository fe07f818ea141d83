//! Proposals: a txn from this server goes into the log here (leader) or to the leader
//! (`PeerMsg::Forward`), in arrival order; while no leader is known it is held, up to
//! `RaftOptions::hold_timeout`. Whoever waits for an outcome is answered when the entry is
//! applied, recognised by the entry's context (`context`): this node, this run of the
//! process, the proposal's number. An answer this node can no longer know (the term changed
//! under it) is dropped: the server answers ConnectionLoss, as ZooKeeper does.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use raft::StateRole;
use tokio::sync::oneshot;

use super::Node;
use crate::consensus::peer::{Forward, PeerMsg, Transport};
use crate::consensus::{BeforeApply, Proposal, StateMachine};
use crate::tree::{Applied, Txn};

/// The entry context of a proposal someone waits on: u64 BE node | u64 BE process run |
/// u64 BE proposal number.
const CONTEXT_LEN: usize = 24;

fn context(origin: u64, incarnation: u64, seq: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(CONTEXT_LEN);
    ctx.extend_from_slice(&origin.to_be_bytes());
    ctx.extend_from_slice(&incarnation.to_be_bytes());
    ctx.extend_from_slice(&seq.to_be_bytes());
    ctx
}

/// Why the leader refuses a txn that member `from` forwarded, if it does. A forward carries
/// no authority of its own: a member may open sessions, record the identities of the
/// connections it holds (`SessionAuth` naming itself) and submit writes for them (`Owned`
/// naming itself, applied against those recorded identities). A write carrying its own
/// identities (kinds written before `Owned`), expiry and the leader's housekeeping (reap,
/// membership) come only from the leader itself; a former leader's held ones are dropped
/// and the new leader decides again.
fn forward_refusal(from: u64, txn: &Txn) -> Option<String> {
    match txn {
        Txn::CreateSession { .. } => None,
        Txn::SessionAuth { server, .. } | Txn::Owned { server, .. } if *server == from => None,
        Txn::SessionAuth { server, .. } | Txn::Owned { server, .. } => {
            Some(format!("a txn in the name of server {server}"))
        }
        other => Some(format!(
            "a txn only the leader proposes ({})",
            match other {
                Txn::CloseSession { .. } => "closeSession",
                Txn::Client { .. } => "write with its own identities",
                Txn::Reconfig { .. } => "reconfig with its own identities",
                Txn::Reap { .. } => "reap",
                _ => "setConfig",
            }
        )),
    }
}

/// A proposal of this run whose entry is not applied yet.
struct Pending {
    done: oneshot::Sender<Applied>,
    /// Handed to the state machine with the entry, right before it is applied.
    before: Option<BeforeApply>,
    /// Sent to another node (the leader) rather than proposed here.
    forwarded: bool,
    since: Instant,
}

pub(super) struct Proposals {
    /// Proposals of this run waiting for their entry to be applied, by number.
    pending: HashMap<u64, Pending>,
    /// Proposals neither in the log nor sent to a leader yet (no leader known, or the
    /// leader's queue is full), oldest first, with when they arrived.
    held: VecDeque<(Instant, Proposal)>,
    next_seq: u64,
    /// This run of the process (random): an entry proposed before a restart is never
    /// mistaken for one of this run.
    incarnation: u64,
    /// Log index of the last reconfig this node appended as leader (ReconfigInProgress
    /// while it is not applied; see `status::leader_view`).
    pub(super) last_reconfig_index: u64,
}

impl Proposals {
    pub(super) fn new(incarnation: u64) -> Proposals {
        Proposals {
            pending: HashMap::new(),
            held: VecDeque::new(),
            next_seq: 1,
            incarnation,
            last_reconfig_index: 0,
        }
    }
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// An entry context for this node's own request number `seq` (proposals and read
    /// barriers use separate numbers).
    pub(super) fn own_context(&self, seq: u64) -> Vec<u8> {
        context(self.opts.id, self.props.incarnation, seq)
    }

    /// The number in an entry's context, if this run of this node made it.
    pub(super) fn own_seq(&self, ctx: &[u8]) -> Option<u64> {
        if ctx.len() != CONTEXT_LEN {
            return None;
        }
        let word = |i: usize| {
            ctx.get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        (word(0)? == self.opts.id && word(1)? == self.props.incarnation).then_some(word(2)?)
    }

    /// New proposals queue behind any held ones (per-session order), then go out.
    pub(super) fn propose(&mut self, batch: &mut Vec<Proposal>) {
        let now = self.clock.now();
        self.props.held.extend(batch.drain(..).map(|p| (now, p)));
        self.flush_held();
    }

    /// Proposes held proposals here (leader) or forwards them to the leader, in order, as
    /// far as possible.
    pub(super) fn flush_held(&mut self) {
        loop {
            let leader = self.raw.raft.leader_id;
            if leader == 0 {
                return;
            }
            let Some((_, front)) = self.props.held.front() else {
                return;
            };
            if leader == self.opts.id {
                if self.raw.raft.state != StateRole::Leader {
                    return;
                }
                if let Some((_, p)) = self.props.held.pop_front() {
                    self.propose_local(p);
                }
                continue;
            }
            let seq = match front.done.is_some() {
                true => self.props.next_seq,
                false => 0,
            };
            let fwd = Forward {
                origin: self.opts.id,
                incarnation: self.props.incarnation,
                seq,
                txn: front.txn.to_bytes(),
            };
            if !self.transport.send_peer(leader, PeerMsg::Forward(fwd)) {
                // No route or the leader's queue is full: keep it (and everything behind it)
                // until the next round or the hold timeout.
                return;
            }
            if let Some((_, p)) = self.props.held.pop_front() {
                if let Some(done) = p.done {
                    self.await_outcome(done, p.before, true);
                }
            }
        }
    }

    /// Takes the next proposal number for an outcome someone waits for.
    fn await_outcome(
        &mut self,
        done: oneshot::Sender<Applied>,
        before: Option<BeforeApply>,
        forwarded: bool,
    ) -> u64 {
        let seq = self.props.next_seq;
        self.props.next_seq += 1;
        let since = self.clock.now();
        self.props.pending.insert(
            seq,
            Pending {
                done,
                before,
                forwarded,
                since,
            },
        );
        seq
    }

    fn propose_local(&mut self, p: Proposal) {
        let mut txn = p.txn;
        let reconfig = self.stamp(&mut txn);
        let data = txn.to_bytes();
        let (ctx, seq) = match p.done {
            Some(done) => {
                let seq = self.await_outcome(done, p.before, false);
                (self.own_context(seq), Some(seq))
            }
            None => (vec![], None),
        };
        if let Err(e) = self.raw.propose(ctx, data) {
            tracing::warn!("raft refused a proposal: {e}");
            if let Some(seq) = seq {
                self.props.pending.remove(&seq);
            }
        } else if reconfig {
            self.props.last_reconfig_index = self.raw.raft.raft_log.last_index();
        }
    }

    /// A proposal a follower forwarded: proposed with the origin's context, so the origin
    /// answers it when it applies the entry. Only a txn that decodes is proposed: an entry
    /// that does not decode would stop every replica at apply. And only what a member may
    /// ask for its own clients (`forward_refusal`).
    pub(super) fn propose_forwarded(&mut self, from: u64, mut f: Forward) {
        if !self.is_leader() {
            tracing::debug!("not the leader: dropping a proposal forwarded by {from}");
            return;
        }
        let mut reconfig = false;
        match Txn::decode(&f.txn) {
            Err(e) => {
                tracing::warn!("peer {from} forwarded an invalid txn ({e}); dropped");
                return;
            }
            Ok(mut txn) => {
                if let Some(why) = forward_refusal(from, &txn) {
                    tracing::warn!("peer {from} forwarded {why}; refused");
                    return;
                }
                if self.stamp(&mut txn) {
                    f.txn = txn.to_bytes();
                    reconfig = true;
                }
            }
        }
        let ctx = match f.seq {
            0 => vec![],
            seq => context(f.origin, f.incarnation, seq),
        };
        if let Err(e) = self.raw.propose(ctx, f.txn) {
            tracing::warn!("raft refused a proposal forwarded by {from}: {e}");
        } else if reconfig {
            self.props.last_reconfig_index = self.raw.raft.raft_log.last_index();
        }
    }

    /// Whoever of this run waits for the entry with context `ctx`, and the work handed in to
    /// be done right before it is applied: taken out of the pending proposals as the entry
    /// is about to be applied (the answer follows the apply).
    pub(super) fn take_waiter(
        &mut self,
        ctx: &[u8],
    ) -> Option<(oneshot::Sender<Applied>, Option<BeforeApply>)> {
        let seq = self.own_seq(ctx)?;
        let p = self.props.pending.remove(&seq)?;
        Some((p.done, p.before))
    }

    /// The term changed (or this node stopped leading): pending proposals get no answer.
    pub(super) fn drop_pending(&mut self, from_term: u64, to_term: u64) {
        if self.props.pending.is_empty() {
            return;
        }
        tracing::warn!(
            "term {from_term} -> {to_term} (leader {}): {} proposal(s) get no answer",
            self.raw.raft.leader_id,
            self.props.pending.len()
        );
        self.props.pending.clear();
    }

    /// Per tick: give up on proposals held too long without a leader, and on forwarded
    /// ones the leader never answered.
    pub(super) fn expire_proposals(&mut self, now: Instant) {
        let hold = self.opts.hold_timeout();
        let mut dropped = 0;
        while self
            .props
            .held
            .front()
            .is_some_and(|(since, _)| now.duration_since(*since) > hold)
        {
            self.props.held.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                "no leader for {hold:?}: dropped {dropped} proposal(s) (leader {})",
                self.raw.raft.leader_id
            );
        }
        let forward_timeout = self.opts.forward_timeout();
        let before = self.props.pending.len();
        self.props
            .pending
            .retain(|_, p| !(p.forwarded && now.duration_since(p.since) > forward_timeout));
        if self.props.pending.len() < before {
            tracing::warn!(
                "{} forwarded proposal(s) unanswered after {forward_timeout:?}: dropped",
                before - self.props.pending.len()
            );
        }
    }
}
