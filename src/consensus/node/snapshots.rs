//! Snapshots: taken every ~snapCount applied entries (randomised in (snapCount/2, snapCount]
//! as ZooKeeper does) and written on their own thread; the log is compacted to the oldest
//! of the newest `snapRetainCount` snapshots once one is written, and older files purged
//! when autopurge is on. A snapshot received from the leader replaces the state machine.

use raft::prelude::{Snapshot, SnapshotMetadata};
use raft::Storage;
use rand::Rng;
use tokio::sync::oneshot;

use super::{sorted, Node};
use crate::consensus::peer::Transport;
use crate::consensus::storage::{self, SnapshotFile};
use crate::consensus::ConsensusError;
use crate::consensus::StateMachine;

/// A snapshot being written: its index, then the file (or why it failed).
pub(super) type SnapJob = oneshot::Receiver<(u64, Result<SnapshotFile, ConsensusError>)>;

pub(super) struct Snapshots {
    /// Entries applied since the last snapshot, and the randomised count that triggers one.
    pub(super) since_snapshot: u64,
    threshold: u64,
    /// The newest snapshot written or restored: (index, file size).
    pub(super) last: (u64, u64),
    /// The snapshot start-up restored (0: none).
    pub(super) restored_index: u64,
    /// Snapshot files in the snapshot directory.
    pub(super) files: u64,
    /// Snapshots received from a leader and installed since start.
    pub(super) installed: u64,
    /// Take a snapshot at the next chance, whatever snapCount says (for a joining server:
    /// `membership::reconcile`).
    pub(super) force: bool,
    /// The applied index when a snapshot was last forced.
    pub(super) forced_at: u64,
}

impl Snapshots {
    pub(super) fn new(snap_count: u64, restored: (u64, u64), files: u64) -> Snapshots {
        Snapshots {
            since_snapshot: 0,
            threshold: next_threshold(snap_count),
            last: restored,
            restored_index: restored.0,
            files,
            installed: 0,
            force: false,
            forced_at: 0,
        }
    }
}

fn next_threshold(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::thread_rng().gen_range(0..half)
}

/// Resolves when the snapshot being written is done; never while none is.
pub(super) async fn wait_job(
    job: &mut Option<SnapJob>,
) -> (u64, Result<SnapshotFile, ConsensusError>) {
    match job {
        Some(rx) => rx.await.unwrap_or_else(|_| {
            (
                0,
                Err(ConsensusError::ThreadDied(
                    "the snapshot writer thread died",
                )),
            )
        }),
        None => std::future::pending().await,
    }
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// A snapshot received from the leader: made durable as a file, the log reset to it,
    /// the state machine replaced.
    pub(super) fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), ConsensusError> {
        let meta = snap.get_metadata().clone();
        let file = self.raw.store().snapshots().write(&meta, &snap.data)?;
        self.sm.restore(&snap.data)?;
        self.refresh_membership();
        self.raw.mut_store().install_snapshot(&meta)?;
        self.applied = meta.index;
        self.snaps.since_snapshot = 0;
        self.snaps.last = (meta.index, file.size);
        self.snaps.installed += 1;
        // A server that imported ZooKeeper's data but is not the one starting the group
        // drops its import now that it has the group's state.
        self.opts.seed = None;
        if self.members.waiting {
            self.members.waiting = false;
            self.ticks = 0;
            let cs = meta.get_conf_state();
            tracing::info!(
                "membership: joined the ensemble from the leader's snapshot: voters {:?}, \
                 learners {:?}",
                sorted(cs.voters.clone()),
                sorted(cs.learners.clone())
            );
        }
        tracing::info!(
            "installed the leader's snapshot at index {} (term {}, {} bytes)",
            meta.index,
            meta.term,
            file.size
        );
        Ok(())
    }

    /// Takes a snapshot when enough entries were applied; the file is written on its own
    /// thread, and the log compacted when that is done (`snapshot_written`).
    pub(super) fn maybe_snapshot(&mut self) -> Result<Option<SnapJob>, ConsensusError> {
        let forced = std::mem::take(&mut self.snaps.force);
        if (!forced && self.snaps.since_snapshot <= self.snaps.threshold)
            || self.applied == 0
            || (self.applied <= self.snaps.last.0 && !forced)
        {
            return Ok(None);
        }
        let index = self.applied;
        let term = self
            .raw
            .store()
            .term(index)
            .map_err(|e| ConsensusError::raft(format!("snapshot at {index}"), e))?;
        let meta = SnapshotMetadata {
            index,
            term,
            conf_state: Some(self.raw.store().conf_state().clone()).into(),
            ..Default::default()
        };
        let job = self.sm.snapshot_job();
        let store = self.raw.store().snapshots().clone();
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                let written = store
                    .create(&meta, job.head_len)
                    .map_err(ConsensusError::from);
                let written = written.and_then(|mut w| {
                    let head = (job.write)(&mut w)?;
                    Ok(w.finish(&head)?)
                });
                let _ = tx.send((index, written));
            })
            .map_err(|e| ConsensusError::io("spawning the snapshot writer", e))?;
        self.snaps.since_snapshot = 0;
        self.snaps.threshold = next_threshold(self.opts.snap_count);
        Ok(Some(rx))
    }

    pub(super) fn snapshot_written(
        &mut self,
        index: u64,
        r: Result<SnapshotFile, ConsensusError>,
    ) -> Result<(), ConsensusError> {
        match r {
            Ok(f) => {
                tracing::info!("wrote snapshot {} ({} bytes)", f.path.display(), f.size);
                self.snaps.last = (index, f.size);
                self.compact_and_purge(self.opts.purge_interval_hours > 0)
            }
            Err(e) => {
                // The log is untouched, so nothing is lost; the next snapshot retries.
                tracing::error!("snapshot failed: {e}");
                Ok(())
            }
        }
    }

    /// Compacts the log up to the oldest of the newest `retain` snapshots (so recovery can
    /// fall back to any of them) and, when `purge`, deletes older snapshot files.
    pub(super) fn compact_and_purge(&mut self, purge: bool) -> Result<(), ConsensusError> {
        let snaps = self.raw.store().snapshots().clone();
        let files = snaps.list()?;
        let retain = self.opts.retain();
        let kept = &files[..files.len().min(retain)];
        if let Some(oldest) = kept.last() {
            match snaps.read_header(oldest) {
                Ok(meta) => {
                    let to = meta.index.min(self.applied);
                    if to > self.raw.store().log_start().0 {
                        self.raw.mut_store().compact(to)?;
                        tracing::info!("compacted the raft log through index {to}");
                    }
                }
                Err(why) => tracing::warn!(
                    "snapshot {} is unreadable ({why}); not compacting past it",
                    oldest.path.display()
                ),
            }
        }
        let mut remaining = files.len();
        if purge {
            for f in files.iter().skip(retain) {
                snaps.remove(f)?;
                remaining -= 1;
                tracing::info!("purged snapshot {}", f.path.display());
            }
            if files.len() > retain {
                storage::sync_dir(snaps.dir())?;
            }
        }
        self.snaps.files = remaining as u64;
        Ok(())
    }
}
