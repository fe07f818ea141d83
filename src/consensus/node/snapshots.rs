//! Snapshots: taken every ~snapCount applied entries (randomised in (snapCount/2, snapCount]
//! as ZooKeeper does) and written on their own thread. As in ZooKeeper, a snapshot that
//! falls due while the previous one is still being written is skipped and the count starts
//! again: under a write load faster than snapshots, they do not run back to back. The log
//! is compacted to the oldest of the newest `snapRetainCount` snapshots once one is
//! written, and older files purged when autopurge is on. A snapshot received from the
//! leader replaces the state machine.

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
    /// Snapshots skipped because the previous one was still being written.
    pub(super) skipped: u64,
    /// When the last snapshot (not a forced one) was started by this process.
    pub(super) last_started: Option<std::time::Instant>,
}

/// What to do about a snapshot after an event.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Due {
    No,
    Take,
    /// Due, but the previous one is still being written: skip it, count again.
    Skip,
}

impl Snapshots {
    /// Whether a snapshot is due now. `busy`: one is being written. A forced snapshot waits
    /// for the running one to finish; a counted one is skipped (ZooKeeper's "Too busy to
    /// snap, skipping"), which resets the count.
    pub(super) fn due(&mut self, busy: bool, applied: u64) -> Due {
        let counted = self.since_snapshot > self.threshold;
        if applied == 0 || (!counted && !self.force) {
            return Due::No;
        }
        if busy {
            if counted && !self.force {
                return Due::Skip;
            }
            return Due::No;
        }
        if applied <= self.last.0 && !self.force {
            return Due::No;
        }
        Due::Take
    }

    /// Starts the count to the next snapshot.
    fn restart_count(&mut self, snap_count: u64) {
        self.since_snapshot = 0;
        self.threshold = next_threshold(snap_count);
    }
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
            skipped: 0,
            last_started: None,
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
    /// thread, and the log compacted when that is done (`snapshot_written`). `busy`: a
    /// snapshot is still being written (see `Snapshots::due`).
    pub(super) fn maybe_snapshot(&mut self, busy: bool) -> Result<Option<SnapJob>, ConsensusError> {
        match self.snaps.due(busy, self.applied) {
            Due::No => return Ok(None),
            Due::Skip => {
                self.snaps.skipped += 1;
                self.snaps.restart_count(self.opts.snap_count);
                tracing::warn!(
                    "too busy to snapshot: the previous snapshot is still being written; \
                     skipping this one (applied index {})",
                    self.applied
                );
                return Ok(None);
            }
            Due::Take => {}
        }
        // Spread the writing over half the time since the last snapshot started, so it
        // ends well before the next one is due: a forced one (a server waits to join) and a
        // process's first one go at full speed.
        let now = self.clock.now();
        let spread = match (self.snaps.force, self.snaps.last_started) {
            (false, Some(last)) => {
                Some((self.snaps.last.1, now.saturating_duration_since(last) / 2))
            }
            _ => None,
        };
        if !self.snaps.force {
            self.snaps.last_started = Some(now);
        }
        self.snaps.force = false;
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
                    .map(|mut w| {
                        if let Some((len, over)) = spread {
                            w.spread_over(len, over);
                        }
                        w
                    })
                    .map_err(ConsensusError::from);
                let written = written.and_then(|mut w| {
                    let head = (job.write)(&mut w)?;
                    Ok(w.finish(&head)?)
                });
                let _ = tx.send((index, written));
            })
            .map_err(|e| ConsensusError::io("spawning the snapshot writer", e))?;
        self.snaps.restart_count(self.opts.snap_count);
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
    /// fall back to any of them) and, when `purge`, deletes older snapshot files but those
    /// the newest `retain` are deltas over.
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
            // The newest `retain` and every file one of them is a delta over.
            let keep = snaps.keep_closure(&files, retain)?;
            for (f, _) in files.iter().zip(&keep).filter(|(_, &keep)| !keep) {
                snaps.remove(f)?;
                remaining -= 1;
                tracing::info!("purged snapshot {}", f.path.display());
            }
            if remaining < files.len() {
                storage::sync_dir(snaps.dir())?;
            }
        }
        self.snaps.files = remaining as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Due, Snapshots};

    fn counted_past(snap_count: u64) -> Snapshots {
        let mut s = Snapshots::new(snap_count, (0, 0), 0);
        s.since_snapshot = snap_count + 1;
        s
    }

    #[test]
    fn a_snapshot_due_while_one_is_written_is_skipped_and_counted_again() {
        let mut s = Snapshots::new(10, (0, 0), 0);
        s.since_snapshot = 5;
        assert_eq!(s.due(false, 5), Due::No, "at most snapCount/2 is never due");
        let mut s = counted_past(10);
        assert_eq!(s.due(false, 11), Due::Take);
        assert_eq!(s.due(true, 11), Due::Skip);
        s.restart_count(10);
        assert_eq!(s.due(false, 11), Due::No, "the count starts again");
        assert!((5..10).contains(&s.threshold));
    }

    #[test]
    fn a_forced_snapshot_waits_for_the_one_being_written() {
        let mut s = Snapshots::new(1000, (0, 0), 0);
        s.force = true;
        assert_eq!(s.due(true, 7), Due::No);
        assert_eq!(s.due(false, 7), Due::Take);
        let mut s = counted_past(10);
        s.force = true;
        assert_eq!(s.due(true, 20), Due::No, "forced: never skipped");
        assert_eq!(s.due(false, 20), Due::Take);
    }

    #[test]
    fn nothing_is_due_before_anything_new_is_applied() {
        let mut s = counted_past(10);
        assert_eq!(s.due(false, 0), Due::No);
        s.last = (11, 100);
        assert_eq!(s.due(false, 11), Due::No, "the newest snapshot is at 11");
        s.force = true;
        assert_eq!(s.due(false, 11), Due::Take, "forced: taken again");
    }
}
