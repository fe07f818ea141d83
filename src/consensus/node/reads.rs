//! Read barriers (`RaftHandle::read_barrier`, for `sync`): Raft ReadIndex. A barrier asks
//! raft-rs for the leader's commit index, then waits until this node has applied that far.
//! raft-rs drops the request silently while no leader is known or the leader has not
//! committed in its term yet, so unanswered barriers are asked again (on a leader change and
//! every half election timeout) and given up after `RaftOptions::hold_timeout`.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Node;
use crate::consensus::peer::Transport;
use crate::consensus::StateMachine;

/// A read barrier waiting for its ReadState, then for `applied` to reach its index.
struct ReadWait {
    done: oneshot::Sender<()>,
    since: Instant,
    /// When the ReadIndex request was last (re)issued.
    tried: Instant,
    index: Option<u64>,
}

pub(super) struct Reads {
    /// By the barrier's own number (its ReadIndex context).
    waits: HashMap<u64, ReadWait>,
    next: u64,
}

impl Default for Reads {
    fn default() -> Reads {
        Reads {
            waits: HashMap::new(),
            next: 1,
        }
    }
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    pub(super) fn read_barrier(&mut self, done: oneshot::Sender<()>) {
        let seq = self.reads.next;
        self.reads.next += 1;
        let now = self.clock.now();
        self.reads.waits.insert(
            seq,
            ReadWait {
                done,
                since: now,
                tried: now,
                index: None,
            },
        );
        self.raw.read_index(self.own_context(seq));
    }

    /// raft-rs's answer to a ReadIndex request: the index a barrier must wait for.
    pub(super) fn read_state(&mut self, ctx: &[u8], index: u64) {
        if let Some(seq) = self.own_seq(ctx) {
            if let Some(r) = self.reads.waits.get_mut(&seq) {
                r.index = Some(index);
            }
        }
    }

    fn reissue_reads(&mut self, seqs: Vec<u64>, now: Instant) {
        for seq in seqs {
            if let Some(r) = self.reads.waits.get_mut(&seq) {
                r.tried = now;
            }
            self.raw.read_index(self.own_context(seq));
        }
    }

    /// Asks again for every barrier raft-rs has not answered (a leader appeared, or it
    /// committed in its term).
    pub(super) fn reissue_unanswered_reads(&mut self) {
        let due: Vec<u64> = self
            .reads
            .waits
            .iter()
            .filter(|(_, r)| r.index.is_none())
            .map(|(seq, _)| *seq)
            .collect();
        let now = self.clock.now();
        self.reissue_reads(due, now);
    }

    /// Answers the read barriers whose index is applied.
    pub(super) fn resolve_reads(&mut self) {
        let applied = self.applied;
        let done: Vec<u64> = self
            .reads
            .waits
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in done {
            if let Some(r) = self.reads.waits.remove(&seq) {
                let _ = r.done.send(());
            }
        }
    }

    /// Per tick: give up on barriers older than the hold timeout; ask again for those
    /// unanswered for half an election timeout.
    pub(super) fn expire_reads(&mut self, now: Instant) {
        let hold = self.opts.hold_timeout();
        let before = self.reads.waits.len();
        self.reads
            .waits
            .retain(|_, r| now.duration_since(r.since) <= hold);
        if self.reads.waits.len() < before {
            tracing::warn!(
                "{} read barrier(s) unanswered after {hold:?}: dropped",
                before - self.reads.waits.len()
            );
        }
        let retry = self.opts.election_timeout() / 2;
        let due: Vec<u64> = self
            .reads
            .waits
            .iter()
            .filter(|(_, r)| r.index.is_none() && now.duration_since(r.tried) > retry)
            .map(|(seq, _)| *seq)
            .collect();
        self.reissue_reads(due, now);
    }
}
