//! The propose -> commit -> apply seam.
//!
//! Servers never mutate the tree directly: they hand a `Txn` to a `Proposer`, the consensus
//! layer orders it into the log, and once an entry is committed it is given, in log order, to
//! the one `StateMachine` of this process together with its zxid. The proposer's reply channel
//! receives what apply produced.
//!
//! `zxid = term << 32 | (index & 0xffffffff)`: replicas agree on it without coordination.
//!
//! This file holds the seam and the standalone committer (a single task that commits each
//! proposal as soon as it is received, with no durability). The durable path is the Raft
//! driver behind the same `Proposer` handle:
//! - `node`: `spawn_raft` — one task owns the raft-rs `RawNode`, handles each Ready in the
//!   documented order (group commit: one flush + one fdatasync per Ready), applies committed
//!   entries with their zxid, snapshots every ~snapCount entries, compacts and purges.
//! - `storage`: the raft `Storage` over sled (log, hard state, conf state) and the snapshot
//!   files, with checksums on everything read back.
//! - `logger`: raft-rs's slog output forwarded to tracing.
//! - `transport`: `PeerNetwork`, the TCP peer network over the quorum port (Raft messages,
//!   proposals forwarded to the leader, session touches). Replication: docs/replication.md.
//!
//! On-disk layout, fsync policy and recovery rules: docs/durability.md.

use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
mod cluster_tests;
mod logger;
pub mod node;
#[cfg(test)]
mod raft_tests;
pub mod storage;
pub mod transport;

pub use node::{
    spawn_raft, spawn_raft_with, NoPeers, RaftHandle, RaftOptions, RaftRole, RaftStatus, Transport,
};
pub use transport::{Forward, PeerInbound, PeerMsg, PeerNetwork, PeerReport, Probe, Touches};

use crate::tree::{Applied, Txn};

/// Applies committed entries. Called from exactly one task, in log order.
pub trait StateMachine: Send + 'static {
    fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied;

    /// The whole state as of the last applied entry, for a snapshot. Deterministic: equal
    /// states give equal bytes.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the whole state with a snapshot taken by `snapshot` (start-up recovery, or a
    /// follower far behind the leader's compacted log).
    fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error>;
}

/// A txn waiting to be ordered, and where to send its outcome (if anyone is waiting).
pub struct Proposal {
    pub txn: Txn,
    pub done: Option<oneshot::Sender<Applied>>,
}

/// The error a proposer sees when the log no longer accepts entries (shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAccepting;

/// A cheap, cloneable handle through which servers propose txns.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Proposal>,
}

impl Proposer {
    /// Queues `txn`; the returned receiver yields its `Applied` once committed and applied.
    pub fn propose(&self, txn: Txn) -> Result<oneshot::Receiver<Applied>, NotAccepting> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Proposal {
                txn,
                done: Some(done),
            })
            .map_err(|_| NotAccepting)?;
        Ok(rx)
    }

    /// Queues `txn` without waiting for its outcome (housekeeping such as expiry).
    pub fn propose_detached(&self, txn: Txn) -> Result<(), NotAccepting> {
        self.tx
            .send(Proposal { txn, done: None })
            .map_err(|_| NotAccepting)
    }
}

/// Builds a zxid from a term (epoch) and a log index.
pub fn zxid(term: u64, index: u64) -> i64 {
    ((term << 32) | (index & 0xffff_ffff)) as i64
}

/// Starts the standalone committer. `term` and `last_index` say where the log stands
/// (1 and 0 for an empty one). The task ends when every `Proposer` clone is dropped.
pub fn spawn_standalone<S: StateMachine>(
    mut sm: S,
    term: u64,
    last_index: u64,
) -> (Proposer, tokio::task::JoinHandle<S>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Proposal>();
    let handle = tokio::spawn(async move {
        let mut index = last_index;
        let mut batch = Vec::with_capacity(256);
        while rx.recv_many(&mut batch, 256).await > 0 {
            for p in batch.drain(..) {
                index += 1;
                let applied = sm.apply(zxid(term, index), &p.txn);
                if let Some(done) = p.done {
                    let _ = done.send(applied);
                }
            }
        }
        sm
    });
    (Proposer { tx }, handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::response::Response;

    struct Counter(Vec<i64>);

    impl StateMachine for Counter {
        fn apply(&mut self, zxid: i64, _txn: &Txn) -> Applied {
            self.0.push(zxid);
            Applied {
                zxid,
                result: Ok(Response::Empty),
                triggers: vec![],
            }
        }

        fn snapshot(&self) -> Vec<u8> {
            self.0.iter().flat_map(|z| z.to_be_bytes()).collect()
        }

        fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error> {
            self.0 = data
                .chunks_exact(8)
                .map(|c| i64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Ok(())
        }
    }

    #[tokio::test]
    async fn standalone_commits_in_order_with_term_in_high_bits() {
        let (p, h) = spawn_standalone(Counter(vec![]), 3, 7);
        let mut rxs = vec![];
        for i in 0..5 {
            rxs.push(p.propose(Txn::CloseSession { session_id: i }).unwrap());
        }
        let mut got = vec![];
        for rx in rxs {
            got.push(rx.await.unwrap().zxid);
        }
        drop(p);
        let sm = h.await.unwrap();
        let want: Vec<i64> = (8..13).map(|i| (3i64 << 32) | i).collect();
        assert_eq!(got, want);
        assert_eq!(sm.0, want);
    }
}
