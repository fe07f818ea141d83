//! Where keeperd keeps its state: `keeperd/raftlog` under the log dir, `keeperd/snapshots`
//! under the data dir; the move out of the old `version-2` layout; `has_state`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::error::{IoOp, StorageError};
use super::fsync::{ensure_dir, sync_dir, wait_unlocked};
use super::log::SledStorage;
use super::snapshots::SNAP_MAGIC;

/// keeperd's own directory in dataDir and dataLogDir. ZooKeeper reads (and autopurges) only
/// `version-2`, so an operator can go back to ZooKeeper on the same dataDir, and keeperd never
/// mistakes ZooKeeper's files for its own.
pub const STATE_DIR: &str = "keeperd";
/// The sled db of the log, inside the log dir's `keeperd`.
pub const LOG_DB_DIR: &str = "raftlog";
/// The snapshot files, inside the data dir's `keeperd`.
pub const SNAP_DIR: &str = "snapshots";
/// Snapshot files are `snapshot.<zxid hex>`, as ZooKeeper names them (in their own directory).
pub const SNAP_PREFIX: &str = "snapshot.";
/// Where keeperd kept both before they moved to `keeperd/`: ZooKeeper's own directory.
const OLD_VERSION_DIR: &str = "version-2";

/// The sled db directory of a log dir (dataLogDir, or dataDir without one).
pub fn log_db_dir(log_dir: &Path) -> PathBuf {
    log_dir.join(STATE_DIR).join(LOG_DB_DIR)
}

/// The snapshot directory of a data dir.
pub fn snapshot_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_DIR).join(SNAP_DIR)
}

/// True when keeperd has state of its own under these directories: a raft log with a
/// membership or entries (in the current or the old layout). ZooKeeper's files there are then
/// left alone. A store that exists but is empty (a server that waited to be added and was
/// stopped first) is no state: its next start may still import. Opens the store and closes
/// it again (waiting for sled to let go of its lock).
pub fn has_state(log_dir: &Path, data_dir: &Path) -> Result<bool, StorageError> {
    if !log_db_dir(log_dir).is_dir() && !log_dir.join(OLD_VERSION_DIR).join(LOG_DB_DIR).is_dir() {
        return Ok(false);
    }
    let (store, _) = SledStorage::open(log_dir, data_dir, false, &[])?;
    let empty = store.is_empty();
    drop(store);
    wait_unlocked(&log_db_dir(log_dir), std::time::Duration::from_secs(10));
    Ok(!empty)
}

/// Moves the files of a keeperd that kept them in `version-2` (ZooKeeper's directory) to
/// `keeperd/`: the sled db by one rename, and each snapshot file whose magic is keeperd's
/// (ZooKeeper's `snapshot.*` files beside them stay where they are). Idempotent: a crash
/// half-way leaves files in one place or the other, and the next start moves the rest.
pub(super) fn move_old_layout(log_dir: &Path, data_dir: &Path) -> Result<(), StorageError> {
    let io = |what: &'static str, p: &Path, e: std::io::Error| {
        StorageError::io(IoOp::MoveOutOfVersion2(what), p, e)
    };
    let old_db = log_dir.join(OLD_VERSION_DIR).join(LOG_DB_DIR);
    let new_db = log_db_dir(log_dir);
    if old_db.is_dir() && !new_db.exists() {
        ensure_dir(&log_dir.join(STATE_DIR), "keeperd state directory")?;
        fs::rename(&old_db, &new_db).map_err(|e| io("raft log", &old_db, e))?;
        sync_dir(&log_dir.join(STATE_DIR))?;
        sync_dir(&log_dir.join(OLD_VERSION_DIR))?;
        tracing::info!(
            "moved the raft log {} to {} (keeperd's files no longer share ZooKeeper's version-2)",
            old_db.display(),
            new_db.display()
        );
    }
    let old_snaps = data_dir.join(OLD_VERSION_DIR);
    let Ok(listing) = fs::read_dir(&old_snaps) else {
        return Ok(());
    };
    let new_snaps = snapshot_dir(data_dir);
    let mut moved = 0;
    for ent in listing {
        let ent = ent.map_err(|e| io("snapshots", &old_snaps, e))?;
        let name = ent.file_name();
        if !name.to_string_lossy().starts_with(SNAP_PREFIX) {
            continue;
        }
        let mut magic = [0u8; 8];
        let ours = File::open(ent.path())
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == SNAP_MAGIC;
        if !ours {
            continue;
        }
        ensure_dir(&new_snaps, "snapshot directory")?;
        fs::rename(ent.path(), new_snaps.join(&name))
            .map_err(|e| io("snapshot", &ent.path(), e))?;
        moved += 1;
    }
    if moved > 0 {
        sync_dir(&new_snaps)?;
        sync_dir(&old_snaps)?;
        tracing::info!(
            "moved {moved} keeperd snapshot file(s) from {} to {}",
            old_snaps.display(),
            new_snaps.display()
        );
    }
    Ok(())
}
