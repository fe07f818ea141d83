//! The server's `StateMachine`: applies committed txns to the tree in log order, routes the
//! watch events they trigger to the connections holding the watching sessions, keeps
//! session liveness in step with created/closed sessions, installs snapshots, and hands
//! the consensus layer the membership /zookeeper/config holds (writing the dynamic config
//! file when reconfigEnabled=true).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Membership;
use crate::consensus::storage::SnapshotStore;
use crate::consensus::{
    BeforeApply, ConsensusError, Decoded, GroupMembers, SnapshotDecoder, SnapshotJob, StateMachine,
};
use crate::proto::EventType;
use crate::tree::{Applied, DataTree, Piece, SnapshotCut, TreeOptions, Txn};

use super::connection::HeldReads;
use super::{dynamic, Out, Shared, State};

/// Nodes a snapshot writes per hold of the state's read lock (about a millisecond's work).
const SNAPSHOT_CHUNK: usize = 1024;

/// Applies committed txns to the tree and routes the watch events they trigger.
pub(super) struct Applier {
    shared: Arc<Shared>,
    /// /zookeeper/config may have changed since the node last asked (`take_membership`).
    config_dirty: bool,
    /// The membership version the dynamic config file holds (reconfigEnabled=true).
    written_version: u64,
    /// The last snapshot this process wrote. The next snapshot is merged from it when
    /// changes were tracked from its cut.
    last_snapshot: Arc<std::sync::Mutex<Option<LastSnapshot>>>,
}

/// The last snapshot this process wrote (`Applier::snapshot_job`).
#[derive(Debug, Clone)]
struct LastSnapshot {
    /// Its cut (`SnapshotCut::id`): the tree's changes are tracked from there.
    id: u64,
    path: PathBuf,
    /// Deltas written since the last whole snapshot file, this one included (0: whole).
    deltas: u32,
    /// The size of the last whole snapshot file, and the bytes the deltas over it stored.
    whole_bytes: u64,
    delta_bytes: u64,
}

/// The most deltas written in a row: then a snapshot is written whole again, so that
/// reading one back resolves at most this many files over a whole one.
const MAX_DELTAS: u32 = 4;

impl LastSnapshot {
    /// Whether the next snapshot, merged from this one, is written as a delta over it: not
    /// once `MAX_DELTAS` were written in a row, nor once the deltas hold as many bytes as
    /// the whole file they stand on (each costs as much to keep as a whole file would).
    fn next_is_delta(&self) -> bool {
        self.deltas < MAX_DELTAS && self.delta_bytes < self.whole_bytes
    }
}

impl Applier {
    pub(super) fn new(shared: Arc<Shared>) -> Applier {
        let written_version = shared.config().config_version;
        Applier {
            shared,
            config_dirty: true,
            written_version,
            last_snapshot: Default::default(),
        }
    }

    /// The state becomes `tree` (a snapshot restored or installed).
    fn install_tree(&mut self, tree: DataTree) {
        let mut state = self.shared.state_mut();
        state.tree = tree;
        // The tree jumped: watches cannot tell what changed. Connected clients are closed,
        // reconnect, and re-send their watches with their last zxid (setWatches), which
        // fires exactly what they missed — what ZooKeeper does when a follower resyncs.
        let conns = self.shared.conns();
        for h in conns.all.values() {
            let _ = h.out.send(Out::Close);
        }
        drop(conns);
        self.shared.track_sessions(&state.tree);
        self.config_dirty = true;
    }
}

impl Applier {
    /// `apply` with the state's write lock already held.
    fn apply_locked(
        &mut self,
        shared: &Shared,
        state: &mut State,
        zxid: i64,
        txn: &Txn,
    ) -> Applied {
        let applied = state.tree.apply(zxid, txn);
        let conns = shared.conns();
        for trigger in &applied.triggers {
            let acl = match trigger.event {
                EventType::NodeDeleted => applied.deleted_acl(&trigger.path),
                _ => state.tree.acl_of(&trigger.path),
            }
            .unwrap_or_default();
            for (session_id, event) in state.watches.trigger(trigger) {
                shared.deliver(&conns, session_id, &event, &acl);
            }
        }
        if matches!(txn.inner(), Txn::SetConfig { .. } | Txn::Reconfig { .. }) {
            self.config_dirty = true;
        }
        // Expiry, or a client's close that its session's server submitted (a refused one
        // changed nothing).
        let closed = match txn.inner() {
            Txn::CloseSession { session_id } if applied.result.is_ok() => Some(*session_id),
            _ => None,
        };
        if let Some(session_id) = &closed {
            // Expired (possibly by a leader elsewhere): a client still connected here is
            // disconnected, and finds its session expired when it reconnects.
            if let Some(h) = conns
                .by_session
                .get(session_id)
                .and_then(|id| conns.all.get(id))
            {
                if !h.closing.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = h.out.send(Out::Close);
                }
            }
        }
        drop(conns);
        if let Txn::CreateSession {
            session_id,
            timeout_ms,
        } = txn
        {
            shared.liveness().track(
                *session_id,
                Duration::from_millis((*timeout_ms).max(0) as u64),
                Instant::now(),
            );
        }
        if let Some(session_id) = closed {
            state.watches.remove_session(session_id);
            shared.liveness().forget(session_id);
        }
        applied
    }
}

impl StateMachine for Applier {
    fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied {
        let shared = self.shared.clone();
        let mut state = shared.state_mut();
        self.apply_locked(&shared, &mut state, zxid, txn)
    }

    /// One hold of the state's write lock for the whole run: applying waits for a reader
    /// (a snapshot walk's chunk, a read) at most once per run.
    /// A txn's `before` is the reads its session sent after its previous write
    /// (`HeldReads`): they are executed here, right before it, unless their connection
    /// executed them already.
    fn apply_all(&mut self, txns: &[(i64, Txn)], before: Vec<Option<BeforeApply>>) -> Vec<Applied> {
        let shared = self.shared.clone();
        let mut state = shared.state_mut();
        let mut before = before.into_iter();
        txns.iter()
            .map(|(zxid, txn)| {
                if let Some(reads) = before.next().flatten() {
                    if let Ok(reads) = reads.downcast::<HeldReads>() {
                        reads.execute(&state);
                    }
                }
                self.apply_locked(&shared, &mut state, *zxid, txn)
            })
            .collect()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.shared.state().tree.snapshot_bytes()
    }

    /// The tree is cut here (a short write lock) and written by the snapshot thread in
    /// chunks of up to `SNAPSHOT_CHUNK` nodes, each under the read lock. A chunk ends early
    /// when someone waits for the write lock (`Shared::wants_state_mut`), so applying
    /// entries waits a few nodes' time, not a chunk's (see `DataTree::begin_snapshot`).
    /// The bytes go to the file as they are written (`SnapshotCut::drain`, outside the
    /// lock), so the serialised tree is never held whole in memory.
    ///
    /// When the previous snapshot was written by this process from the cut the tree's
    /// changes are tracked from, this one is merged from it (`SnapshotCut::merge_previous`):
    /// its file is read front to back and every unchanged node copied from there. Copied
    /// by reference (`SnapshotCut::by_reference`, `SnapshotWriter::copy`), the file is a
    /// delta over the previous one that stores only the nodes changed since, up to
    /// `MAX_DELTAS` in a row (`LastSnapshot::next_is_delta`).
    fn snapshot_job(&self) -> SnapshotJob {
        let mut cut = self.shared.state_mut().tree.begin_snapshot();
        let previous = self
            .last_snapshot
            .lock()
            .expect("last snapshot")
            .clone()
            .filter(|last| Some(last.id) == cut.tracked_since());
        let last_snapshot = self.last_snapshot.clone();
        let shared = self.shared.clone();
        SnapshotJob {
            head_len: SnapshotCut::HEAD_LEN,
            write: Box::new(move |file| {
                let started = Instant::now();
                let serialising =
                    |why| ConsensusError::io("serialising a snapshot", std::io::Error::other(why));
                let mut delta_over = None;
                if let Some(last) = &previous {
                    let path = &last.path;
                    // A delta's base is read again by the next snapshot: kept in the page
                    // cache. A whole file ends the chain: its files are read for the last
                    // time, and dropped from the cache behind the reader.
                    let delta = last.next_is_delta();
                    let data = if delta {
                        SnapshotStore::stream_data_cached(path)
                    } else {
                        SnapshotStore::stream_data(path)
                    };
                    let merged = data
                        .map_err(|e| e.to_string())
                        .and_then(|data| cut.merge_previous(Box::new(data)));
                    match merged {
                        Err(why) => info!(
                            "snapshot: reading every node, not merging {} ({why})",
                            path.display()
                        ),
                        Ok(()) if delta => match file.delta_over(path) {
                            Ok(_) => {
                                cut.by_reference().map_err(serialising)?;
                                delta_over = Some(last);
                            }
                            Err(why) => info!(
                                "snapshot: written whole, not as a delta over {} ({why})",
                                path.display()
                            ),
                        },
                        Ok(()) => {}
                    }
                }
                let streamed = (|| loop {
                    cut.read_ahead().map_err(serialising)?;
                    let done = cut
                        .step_until(&shared.state().tree, SNAPSHOT_CHUNK, || {
                            shared.wants_state_mut()
                        })
                        .map_err(serialising)?;
                    cut.drain_pieces(|piece| match piece {
                        Piece::Bytes(b) => file.append(b),
                        Piece::Copy { off, len } => file.copy(off, len),
                    })?;
                    if done {
                        return Ok::<(), ConsensusError>(());
                    }
                })();
                shared.state_mut().tree.end_snapshot(&cut);
                streamed?;
                let (written, copied) = cut.progress();
                let id = cut.id();
                let (head, tail) = cut.finish_drained().map_err(serialising)?;
                file.append(&tail)?;
                let stored = file.stored_len();
                let next = match delta_over {
                    Some(base) => {
                        info!(
                            "snapshot: {written} nodes, {copied} copied by reference to {} \
                             (a delta: {stored} bytes stored), in {} ms",
                            base.path.display(),
                            started.elapsed().as_millis()
                        );
                        LastSnapshot {
                            id,
                            path: file.final_path().to_path_buf(),
                            deltas: base.deltas + 1,
                            whole_bytes: base.whole_bytes,
                            delta_bytes: base.delta_bytes + stored,
                        }
                    }
                    None => {
                        info!(
                            "snapshot: {written} nodes, {copied} copied from the previous one, \
                             in {} ms",
                            started.elapsed().as_millis()
                        );
                        LastSnapshot {
                            id,
                            path: file.final_path().to_path_buf(),
                            deltas: 0,
                            whole_bytes: stored,
                            delta_bytes: 0,
                        }
                    }
                };
                *last_snapshot.lock().expect("last snapshot") = Some(next);
                Ok(head.to_vec())
            }),
        }
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error> {
        let tree =
            DataTree::from_snapshot_bytes(data, TreeOptions::from_config(self.shared.config()))?;
        self.install_tree(tree);
        Ok(())
    }

    fn decoder(&self) -> Option<SnapshotDecoder> {
        let opts = TreeOptions::from_config(self.shared.config());
        Some(Box::new(move |data, release| {
            Ok(Box::new(DataTree::from_snapshot_releasing(data, opts, release)?) as Decoded)
        }))
    }

    fn install(&mut self, decoded: Decoded) -> Result<(), crate::proto::Error> {
        let tree = decoded
            .downcast::<DataTree>()
            .map_err(|_| crate::proto::Error::Other("a decoded snapshot is not a tree".into()))?;
        self.install_tree(*tree);
        Ok(())
    }

    fn take_membership(&mut self) -> Option<GroupMembers> {
        if !std::mem::take(&mut self.config_dirty) {
            return None;
        }
        let (text, _) = self.shared.state().tree.config();
        match Membership::parse(&text) {
            Ok(m) if !m.servers.is_empty() => {
                self.shared.mark_config_published();
                // reconfigEnabled: a restart must come back with the membership it last
                // knew, as ZooKeeper's dynamic file does.
                let config = self.shared.config();
                if config.reconfig_enabled
                    && m.version != self.written_version
                    && dynamic::write_dynamic_config(config, &m).is_some()
                {
                    self.written_version = m.version;
                }
                Some(GroupMembers {
                    voters: m.voters(),
                    learners: m.observers(),
                    peers: m.peer_addresses(),
                })
            }
            Ok(_) => None,
            Err(e) => {
                warn!("/zookeeper/config does not parse ({e}); membership unchanged");
                None
            }
        }
    }
}
