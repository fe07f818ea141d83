//! Start-up recovery, on the node's thread before `spawn_raft` returns: storage is opened
//! (torn tail cut), a new group is set up if the store is empty (from zoo.cfg's members, or
//! from an imported ZooKeeper state: `Seed`), the newest snapshot that verifies and that the
//! log can roll forward is restored, and every entry known committed is applied, so the
//! server never serves a partially replayed tree. `recover_offline` does the same for a
//! stopped server's files without joining anything (`keeperd export-zk`).

use raft::prelude::{ConfState, EntryType, SnapshotMetadata};
use raft::{RawNode, Storage};
use rand::Rng;
use tokio::sync::{mpsc, watch};

use super::failover::Liveness;
use super::membership::Membership;
use super::proposals::Proposals;
use super::reads::Reads;
use super::ready::ReadyState;
use super::snapshots::Snapshots;
use super::{Clock, Node, RaftOptions, RaftStatus};
use crate::consensus::logger::raft_logger;
use crate::consensus::peer::{Touches, Transport};
use crate::consensus::storage::{self, SledStorage, SnapshotStore};
use crate::consensus::ConsensusError;
use crate::consensus::{zxid, Decoded, SnapshotDecoder, StateMachine};
use crate::tree::Txn;

/// Rebuilds the state machine from this server's own files without joining any group (the
/// server is stopped: the store's lock says so): the newest snapshot that verifies and that
/// the log can roll forward, then every entry up to the commit index the store recorded.
/// Returns the (index, term) of the last entry applied. For `keeperd export-zk`.
pub fn recover_offline<S: StateMachine>(
    sm: &mut S,
    data_dir: &std::path::Path,
    log_dir: Option<&std::path::Path>,
) -> Result<(u64, u64), ConsensusError> {
    let (store, _) = SledStorage::open(log_dir.unwrap_or(data_dir), data_dir, false, &[])?;
    if store.is_empty() && store.snapshots().list()?.is_empty() {
        return Err(ConsensusError::Unrecoverable(format!(
            "{} holds no keeperd state",
            store.path().display()
        )));
    }
    let (log_start, _) = store.log_start();
    let mut at = (0, 0);
    for f in store.snapshots().list()? {
        let snap = match store.snapshots().read(&f) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!("snapshot {} is unusable ({why})", f.path.display());
                continue;
            }
        };
        let meta = snap.get_metadata();
        if meta.index < log_start {
            break;
        }
        sm.restore(&snap.data)?;
        at = (meta.index, meta.term);
        break;
    }
    if at.0 < log_start {
        return Err(ConsensusError::Unrecoverable(format!(
            "raft log {} starts after index {log_start} but no usable snapshot covers it",
            store.path().display()
        )));
    }
    let commit = store.hard_state().commit.min(store.last_index_cached());
    let mut next = at.0 + 1;
    while next <= commit {
        let high = (next + 4096).min(commit + 1);
        for e in store.read_entries(next, high)? {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                let txn = Txn::decode(&e.data).map_err(|err| ConsensusError::BadEntry {
                    what: "log entry",
                    index: e.index,
                    term: e.term,
                    why: format!("is not a txn: {err}"),
                })?;
                sm.apply(zxid(e.term, e.index), &txn);
            }
            at = (e.index, e.term);
        }
        next = high;
    }
    Ok(at)
}

/// Every entry of keeperd's raft log (server stopped), oldest first, with whether it is
/// committed: `keeperd dump-log`. Returns the log's (first index, last index, commit).
pub fn read_log_offline(
    data_dir: &std::path::Path,
    log_dir: Option<&std::path::Path>,
    visit: &mut dyn FnMut(&raft::eraftpb::Entry, bool),
) -> Result<(u64, u64, u64), ConsensusError> {
    let (store, _) = SledStorage::open(log_dir.unwrap_or(data_dir), data_dir, false, &[])?;
    let (log_start, _) = store.log_start();
    let last = store.last_index_cached();
    let commit = store.hard_state().commit;
    let mut next = log_start + 1;
    while next <= last {
        let high = (next + 4096).min(last + 1);
        for e in store.read_entries(next, high)? {
            visit(&e, e.index <= commit);
        }
        next = high;
    }
    Ok((log_start, last, commit))
}

/// A snapshot for recovery to restore: decoded ahead, or its bytes.
enum Restore {
    Decoded(Decoded),
    Bytes(bytes::Bytes),
}

/// The newest snapshot file in `dir` (path, metadata, state), if it reads, verifies and
/// decodes; recovery reads any other, or this one again to say what is wrong with it. The
/// file is mapped, not read, and the decoder releases what it has read as it goes, so the
/// file does not add to the peak memory of a restart (`MappedSnapshot`).
fn decode_newest(
    dir: &std::path::Path,
    decode: SnapshotDecoder,
) -> Option<(std::path::PathBuf, SnapshotMetadata, Decoded)> {
    let store = SnapshotStore::existing(dir);
    let newest = store.list().ok()?.into_iter().next()?;
    let started = std::time::Instant::now();
    let snap = store.map(&newest).ok()?;
    let mapped = started.elapsed();
    let decoded = decode(snap.data(), &|at| snap.release(at)).ok()?;
    tracing::info!(
        "read snapshot {} in {} ms ({} ms to map and verify it)",
        newest.path.display(),
        started.elapsed().as_millis(),
        mapped.as_millis()
    );
    Some((newest.path, snap.metadata().clone(), decoded))
}

/// Bytes of committed entries one Ready hands over to apply (`max_committed_size_per_ready`).
const MAX_COMMITTED_PER_READY: u64 = 4 << 20;

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// Handles Readies until `index` is applied; `must`: stopping short of it (nothing more
    /// to handle) is an error, else it ends there.
    fn apply_through(&mut self, index: u64, must: bool) -> Result<(), ConsensusError> {
        while self.applied < index {
            if !self.raw.has_ready() {
                if must {
                    return Err(ConsensusError::Unrecoverable(format!(
                        "raft recovery stalled at index {} of {index}",
                        self.applied
                    )));
                }
                break;
            }
            self.on_ready()?;
        }
        Ok(())
    }

    /// Opens storage, sets up or restores the state, replays the log (see the module doc).
    pub(super) fn recover(
        mut sm: S,
        mut opts: RaftOptions,
        transport: T,
        status: watch::Sender<RaftStatus>,
        touches: mpsc::Sender<Touches>,
    ) -> Result<Self, ConsensusError> {
        let log_root = opts
            .log_dir
            .clone()
            .unwrap_or_else(|| opts.data_dir.clone());
        // The newest snapshot is read and decoded on its own thread while the log opens
        // (which checks every entry); used below if it is the one recovery picks.
        let ahead = sm.decoder().and_then(|decode| {
            let dir = storage::snapshot_dir(&opts.data_dir);
            std::thread::Builder::new()
                .name("snapshot-decode".into())
                .spawn(move || decode_newest(&dir, decode))
                .ok()
        });
        let (mut store, _report) =
            SledStorage::open(&log_root, &opts.data_dir, opts.force_sync, &[])?;
        // No membership and no log: this node never was part of a group (or was wiped).
        let empty = store.is_empty();
        // Standalone: the imported state is the group's first state. Taken out of the
        // options either way: a store with state of its own ignores it, and it is large.
        let standalone_seed = match opts.follow_config {
            true => None,
            false => opts.seed.take(),
        };
        if let Some(seed) = standalone_seed.filter(|_| empty) {
            let zxid = seed.zxid;
            let snap = seed.into_snapshot(ConfState {
                voters: opts.voters.clone(),
                learners: opts.learners.clone(),
                ..Default::default()
            });
            let meta = snap.get_metadata();
            store.snapshots().write(meta, &snap.data)?;
            store.install_snapshot(meta)?;
            tracing::info!(
                "new group from the imported state (zxid {zxid:#x}): snapshot at index 1, \
                 term {}",
                meta.term
            );
        } else if empty && !opts.follow_config {
            tracing::info!(
                "raft log {} is empty: new group with voters {:?}, learners {:?}",
                store.path().display(),
                opts.voters,
                opts.learners
            );
            store.set_conf_state(ConfState {
                voters: opts.voters.clone(),
                learners: opts.learners.clone(),
                ..Default::default()
            })?;
        } else if empty {
            tracing::info!(
                "membership: raft log {} is empty: not bootstrapping from zoo.cfg; probing \
                 servers {:?} (a new ensemble starts only when every voter in zoo.cfg has an \
                 empty log and the same server list; otherwise this server waits to be added \
                 by the existing leader)",
                store.path().display(),
                opts.voters
            );
        }

        // The newest snapshot that verifies and that the log can roll forward.
        let files = store.snapshots().list()?;
        let (log_start, _) = store.log_start();
        let mut restored: Option<(SnapshotMetadata, u64)> = None;
        let mut unusable = vec![];
        let mut ahead = ahead.and_then(|t| t.join().ok()).flatten();
        for f in &files {
            let (meta, state) = match ahead.take().filter(|a| a.0 == f.path) {
                Some((_, meta, decoded)) => (meta, Restore::Decoded(decoded)),
                None => match store.snapshots().read(f) {
                    Ok(s) => (s.get_metadata().clone(), Restore::Bytes(s.data)),
                    Err(why) => {
                        tracing::warn!(
                            "snapshot {} is unusable ({why}); falling back to an older \
                             snapshot",
                            f.path.display()
                        );
                        unusable.push(f.path.display().to_string());
                        continue;
                    }
                },
            };
            if meta.index < log_start {
                tracing::warn!(
                    "snapshot {} (index {}) is older than the log start {log_start}: \
                     it and older ones cannot be rolled forward",
                    f.path.display(),
                    meta.index
                );
                break;
            }
            let last = store.last_index_cached();
            if meta.index <= last {
                match store.term(meta.index) {
                    Ok(t) if t == meta.term => {}
                    other => {
                        tracing::warn!(
                            "snapshot {} (index {} term {}) disagrees with the log (term \
                             {other:?}); falling back to an older snapshot",
                            f.path.display(),
                            meta.index,
                            meta.term
                        );
                        unusable.push(f.path.display().to_string());
                        continue;
                    }
                }
            }
            let installed = match state {
                Restore::Decoded(decoded) => sm.install(decoded),
                Restore::Bytes(data) => sm.restore(&data),
            };
            if let Err(e) = installed {
                tracing::warn!(
                    "snapshot {} does not restore ({e}); falling back to an older snapshot",
                    f.path.display()
                );
                unusable.push(f.path.display().to_string());
                continue;
            }
            if meta.index > last {
                tracing::warn!(
                    "raft log {} ends at {last}, before snapshot {} (index {}): restarting \
                     the log from the snapshot",
                    store.path().display(),
                    f.path.display(),
                    meta.index
                );
                store.install_snapshot(&meta)?;
            } else if meta.index > store.hard_state().commit {
                store.set_commit(meta.index)?;
            }
            tracing::info!(
                "restored snapshot {} (index {}, term {}, {} bytes)",
                f.path.display(),
                meta.index,
                meta.term,
                f.size
            );
            restored = Some((meta, f.size));
            break;
        }
        if restored.is_none() && store.log_start().0 > 0 {
            return Err(ConsensusError::Unrecoverable(format!(
                "raft log {} starts after index {} but no usable snapshot in {} covers it \
                 ({}); refusing to start with a partial state",
                store.path().display(),
                store.log_start().0,
                store.snapshots().dir().display(),
                if unusable.is_empty() {
                    "no snapshot files".to_string()
                } else {
                    format!("unusable: {}", unusable.join(", "))
                }
            )));
        }
        let restored_index = restored.as_ref().map_or(0, |(m, _)| m.index);
        let last_snapshot = restored
            .as_ref()
            .map_or((0, 0), |(m, size)| (m.index, *size));

        let single_voter = store.conf_state().voters == [opts.id];
        let known_committed = store.hard_state().commit.min(store.last_index_cached());

        let cfg = raft::Config {
            id: opts.id,
            election_tick: opts.election_ticks,
            heartbeat_tick: opts.heartbeat_ticks,
            applied: restored_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A Ready carries at most this much of the committed log to apply, so replaying
            // a long log at start-up (or catching up) reads and decodes it a slice at a
            // time, in memory that is reused, not all at once.
            max_committed_size_per_ready: MAX_COMMITTED_PER_READY,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| ConsensusError::raft("raft config", e))?;
        let raw = RawNode::new(&cfg, store, &raft_logger(opts.id))
            .map_err(|e| ConsensusError::raft("raft", e))?;
        let mut node = Node {
            raw,
            sm,
            transport,
            clock: Clock::default(),
            status,
            touches,
            applied: restored_index,
            ticks: 0,
            ready: ReadyState::default(),
            props: Proposals::new(rand::thread_rng().gen()),
            reads: Reads::default(),
            snaps: Snapshots::new(opts.snap_count, last_snapshot, files.len() as u64),
            live: Liveness::default(),
            members: Membership::new(empty && opts.follow_config),
            opts,
        };
        node.refresh_membership();
        // What must be applied before serving: what is known committed; as the only voter,
        // then the rest of the log and this term's first (empty) entry, which commits it.
        // The known part goes first: raft-rs's campaign reads every committed entry not
        // yet applied, all at once, to look for a configuration change among them.
        node.apply_through(known_committed, false)?;
        if single_voter {
            node.raw
                .campaign()
                .map_err(|e| ConsensusError::raft("raft campaign", e))?;
            node.apply_through(node.raw.raft.raft_log.last_index(), true)?;
        }
        tracing::info!(
            "raft node {} recovered: applied through index {} (snapshot {}, log {}..={}), \
             term {}, leader {}",
            node.opts.id,
            node.applied,
            restored_index,
            node.raw.store().log_start().0 + 1,
            node.raw.store().last_index_cached(),
            node.raw.raft.term,
            node.raw.raft.leader_id
        );
        node.publish();
        Ok(node)
    }
}
