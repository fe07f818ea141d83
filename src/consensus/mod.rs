//! The propose -> commit -> apply seam.
//!
//! Servers never mutate the tree directly: they hand a `Txn` to a `Proposer`, the consensus
//! layer orders it into the log, and once an entry is committed it is given, in log order, to
//! the one `StateMachine` of this process together with its zxid. The proposer's reply channel
//! receives what apply produced.
//!
//! `zxid = (term + (index >> 32)) << 32 | (index & 0xffffffff)` (`zxid`): replicas agree on it
//! without coordination, and it increases along the log even past 2^32 entries.
//!
//! This file holds the seam; the Raft driver stands behind the `Proposer` handle (a
//! standalone server is a one-voter group, so there is one write path):
//! - `node`: `spawn_raft` — one task owns the raft-rs `RawNode`, handles each Ready in the
//!   documented order (group commit: one pwrite + one fdatasync per Ready), applies committed
//!   entries with their zxid, snapshots every ~snapCount entries, compacts and purges.
//! - `storage`: the raft `Storage` (log entries in segment files; hard state, conf state and
//!   log start in sled) and the snapshot files, with checksums on everything read back.
//! - `logger`: raft-rs's slog output forwarded to tracing.
//! - `transport`: `PeerNetwork`, the TCP peer network over the quorum port (Raft messages,
//!   proposals forwarded to the leader, session touches). Replication: docs/replication.md.
//!
//! On-disk layout, fsync policy and recovery rules: docs/durability.md.

use tokio::sync::{mpsc, oneshot};

#[cfg(test)]
mod cluster_tests;
mod error;
mod logger;
pub mod node;
pub mod peer;
pub mod peer_auth;
#[cfg(test)]
mod raft_tests;
pub mod storage;
pub mod transport;
mod validate;

pub use error::ConsensusError;
pub use node::{
    read_log_offline, recover_offline, spawn_raft, spawn_raft_with, RaftHandle, RaftOptions,
    RaftRole, RaftStatus, Seed,
};
pub use peer::{Forward, NoPeers, PeerMsg, PeerReport, Probe, Touches, Transport};
pub use transport::{PeerInbound, PeerNetwork};

use crate::tree::{Applied, Txn};

/// The second half of `StateMachine::snapshot_job`: it streams the snapshot's bytes into the
/// file being written, all but the first `head_len`, which it returns at the end (a head
/// that depends on the whole, such as a length or checksum), or says why not.
pub struct SnapshotJob {
    pub head_len: usize,
    pub write: SnapshotWrite,
}

/// A state `StateMachine::decoder` made from a snapshot, for `StateMachine::install`.
pub type Decoded = Box<dyn std::any::Any + Send>;

/// `StateMachine::decoder`: given a snapshot's data and `release`, which it may tell (as it
/// goes) an offset of the data before which it will read nothing again, so that memory
/// holding those bytes can be given back while the state is built.
pub type SnapshotDecoder =
    Box<dyn FnOnce(&[u8], &dyn Fn(usize)) -> Result<Decoded, crate::proto::Error> + Send>;

/// `SnapshotJob::write`.
pub type SnapshotWrite =
    Box<dyn FnOnce(&mut storage::SnapshotWriter) -> Result<Vec<u8>, ConsensusError> + Send>;

/// Work a proposer hands in beside a proposal, for the state machine to do on this server
/// right before that entry is applied here (and never, if this run of the process does not
/// apply it): `StateMachine::apply_all` receives it with the txn. Opaque to the consensus
/// layer; the server uses it for reads that must see the state just before a later write of
/// their session (`server::connection::held`).
pub type BeforeApply = Box<dyn std::any::Any + Send>;

/// Applies committed entries. Called from exactly one task, in log order.
pub trait StateMachine: Send + 'static {
    fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied;

    /// `apply` of consecutive txns in order, one result each: one call per run of a Ready's
    /// entries, so that a state machine can take its locks once per run rather than once
    /// per txn. `before` has one slot per txn: the work its proposer handed in on this
    /// server (`Proposer::propose_after`), to be done right before that txn is applied. The
    /// default applies them one by one and ignores `before`.
    fn apply_all(&mut self, txns: &[(i64, Txn)], before: Vec<Option<BeforeApply>>) -> Vec<Applied> {
        drop(before);
        txns.iter()
            .map(|(zxid, txn)| self.apply(*zxid, txn))
            .collect()
    }

    /// The whole state as of the last applied entry, for a snapshot. Deterministic: equal
    /// states give equal bytes.
    fn snapshot(&self) -> Vec<u8>;

    /// `snapshot` in two halves: this call, on the consensus thread, fixes the state to
    /// snapshot (as of the last applied entry) and should be quick; the function it returns
    /// runs on the snapshot writer thread, while entries go on being applied, and writes
    /// the same bytes `snapshot` would have given at this call (or says why it could not).
    /// The default does all of it here.
    fn snapshot_job(&self) -> SnapshotJob {
        let data = self.snapshot();
        SnapshotJob {
            head_len: 0,
            write: Box::new(move |w| {
                w.append(&data)?;
                Ok(Vec::new())
            }),
        }
    }

    /// Replaces the whole state with a snapshot taken by `snapshot` (start-up recovery, or a
    /// follower far behind the leader's compacted log).
    fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error>;

    /// `restore` in two halves, so that start-up can decode the newest snapshot on another
    /// thread while the log is opened and checked: the decoder turns a snapshot's bytes into
    /// a state, without touching this one, and `install` puts it in place (what `restore`
    /// of those bytes would have done). `None` (the default): start-up restores in one go.
    fn decoder(&self) -> Option<SnapshotDecoder> {
        None
    }

    /// Replaces the whole state with one the `decoder` made.
    fn install(&mut self, decoded: Decoded) -> Result<(), crate::proto::Error> {
        let _ = decoded;
        Err(crate::proto::Error::Other(
            "this state machine decodes no snapshots ahead".into(),
        ))
    }

    /// The group's membership as the replicated state now says (/zookeeper/config), if it
    /// changed since the last call (or was never asked). The leader moves the Raft group
    /// towards it one conf change at a time.
    fn take_membership(&mut self) -> Option<GroupMembers> {
        None
    }
}

/// A membership the Raft group should have: voters, learners, and every member's
/// `host:quorumPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMembers {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub peers: Vec<(u64, String)>,
}

/// A txn waiting to be ordered, and where to send its outcome (if anyone is waiting).
pub struct Proposal {
    pub txn: Txn,
    pub done: Option<oneshot::Sender<Applied>>,
    /// Done right before the entry is applied on this server (only with `done`).
    pub before: Option<BeforeApply>,
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
        self.propose_after(txn, None)
    }

    /// `propose`, with work for the state machine to do right before the entry is applied
    /// on this server (`BeforeApply`).
    pub fn propose_after(
        &self,
        txn: Txn,
        before: Option<BeforeApply>,
    ) -> Result<oneshot::Receiver<Applied>, NotAccepting> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Proposal {
                txn,
                done: Some(done),
                before,
            })
            .map_err(|_| NotAccepting)?;
        Ok(rx)
    }

    /// Queues `txn` without waiting for its outcome (housekeeping such as expiry).
    pub fn propose_detached(&self, txn: Txn) -> Result<(), NotAccepting> {
        self.tx
            .send(Proposal {
                txn,
                done: None,
                before: None,
            })
            .map_err(|_| NotAccepting)
    }
}

/// Builds a zxid from a term and a log index: `epoch << 32 | (index & 0xffffffff)`, where
/// the epoch is the term plus the index's high bits. Below 2^32 entries the epoch is the
/// term; when a term's counter would wrap, the epoch moves on instead, as ZooKeeper starts a
/// new epoch before its counter wraps. Zxids strictly increase in log order: terms never go
/// down along the log and indexes always go up, so the epoch never goes down, and within
/// one epoch the low bits are the index's.
pub fn zxid(term: u64, index: u64) -> i64 {
    let epoch = term + (index >> 32);
    ((epoch << 32) | (index & 0xffff_ffff)) as i64
}

#[cfg(test)]
mod zxid_tests {
    use super::zxid;

    #[test]
    fn zxids_increase_across_the_counter_wrap_and_term_changes() {
        let wrap = 1u64 << 32;
        // (term, index) in log order: terms change before, at and after the wrap.
        let log = [
            (3, 1),
            (3, wrap - 2),
            (4, wrap - 1),
            (4, wrap),
            (4, wrap + 1),
            (5, wrap + 2),
            (5, 2 * wrap - 1),
            (5, 2 * wrap),
            (9, 2 * wrap + 7),
        ];
        let zxids: Vec<i64> = log.iter().map(|&(t, i)| zxid(t, i)).collect();
        assert!(zxids.windows(2).all(|w| w[0] < w[1]), "{zxids:x?}");
        // Below the wrap the epoch is the term, as it always was.
        assert_eq!(zxid(3, 1), 0x3_0000_0001);
        assert_eq!(zxid(4, wrap - 1), 0x4_ffff_ffff);
        // At the wrap the epoch moves on and the counter starts again.
        assert_eq!(zxid(4, wrap), 0x5_0000_0000);
    }
}
