//! `keeperd cleanup -n N` (zkCleanup.sh, ZooKeeper's PurgeTxnLog): keeps the N newest
//! snapshots and removes older ones, for keeperd's own snapshot files and for ZooKeeper's
//! files left in the dataDir (kept after a takeover for the way back).
//!
//! ```text
//! ZooKeeper's files: keep the N newest snapshot.<zxid>; keep every log.<zxid> that may hold
//!                    a txn after the oldest kept snapshot (the newest log starting at or
//!                    before its zxid, and all later logs); remove the rest
//! keeperd's files:   keep the N newest snapshots in dataDir/keeperd/snapshots and the files
//!                    they are deltas over; the raft log is compacted by the server itself
//! ```
//!
//! N must be at least 3, as ZooKeeper requires. Safe while the server runs: only files older
//! than the N newest snapshots are touched.

use std::path::PathBuf;

use crate::config::Config;

/// What `cleanup` removed (or would remove with `dry_run`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub removed: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// Removes snapshots (and ZooKeeper logs) older than the `keep` newest snapshots.
pub fn cleanup(config: &Config, keep: usize, dry_run: bool) -> Result<Cleaned, String> {
    if keep < 3 {
        return Err(format!(
            "-n {keep}: keep at least 3 snapshots (as zkCleanup.sh)"
        ));
    }
    let mut out = Cleaned::default();
    let remove = |path: &PathBuf, out: &mut Cleaned| -> Result<(), String> {
        if !dry_run {
            std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        }
        out.removed.push(path.clone());
        Ok(())
    };

    // ZooKeeper's files.
    let zk = crate::zkfiles::dir::list(&config.data_dir, config.effective_data_log_dir())
        .map_err(|e| e.to_string())?;
    if zk.snapshots.len() > keep {
        let oldest_kept = zk.snapshots[keep - 1].0;
        for (_, path) in &zk.snapshots[keep..] {
            remove(path, &mut out)?;
        }
        out.kept
            .extend(zk.snapshots[..keep].iter().map(|(_, p)| p.clone()));
        // The newest log that starts at or before the oldest kept snapshot may hold the
        // txns right after it: keep it and everything later.
        let first_needed = zk
            .logs
            .iter()
            .rposition(|(z, _)| *z <= oldest_kept)
            .unwrap_or(0);
        for (i, (_, path)) in zk.logs.iter().enumerate() {
            if i < first_needed {
                remove(path, &mut out)?;
            } else {
                out.kept.push(path.clone());
            }
        }
    } else {
        out.kept.extend(zk.snapshots.iter().map(|(_, p)| p.clone()));
        out.kept.extend(zk.logs.iter().map(|(_, p)| p.clone()));
    }

    // keeperd's snapshots.
    let dir = crate::consensus::storage::snapshot_dir(&config.data_dir);
    if dir.is_dir() {
        // `existing`, not `open`: `open` removes `.tmp` files, and a running server may be
        // writing one.
        let store = crate::consensus::storage::SnapshotStore::existing(&dir);
        let files = store.list().map_err(|e| e.to_string())?;
        // The newest `keep` and the files they are deltas over.
        let kept = store
            .keep_closure(&files, keep)
            .map_err(|e| e.to_string())?;
        for (f, kept) in files.iter().zip(kept) {
            if kept {
                out.kept.push(f.path.clone());
            } else {
                remove(&f.path, &mut out)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &std::path::Path, name: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    #[test]
    fn keeps_the_newest_snapshots_and_the_logs_they_need() {
        let tmp = tempfile::tempdir().unwrap();
        let v2 = tmp.path().join("version-2");
        for name in [
            "snapshot.0",
            "snapshot.10",
            "snapshot.20",
            "snapshot.30",
            "snapshot.40",
            "log.1",
            "log.11",
            "log.25",
            "log.35",
            "log.41",
        ] {
            touch(&v2, name);
        }
        let config = Config {
            data_dir: tmp.path().to_path_buf(),
            ..Config::default()
        };
        assert!(cleanup(&config, 2, false)
            .unwrap_err()
            .contains("at least 3"));
        let dry = cleanup(&config, 3, true).unwrap();
        assert_eq!(dry.removed.len(), 3);
        assert!(v2.join("snapshot.0").exists(), "a dry run removes nothing");
        let done = cleanup(&config, 3, false).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&v2)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        // Oldest kept snapshot: 0x20; log.11 may hold txns after it (0x11..0x24).
        assert_eq!(
            left,
            [
                "log.11",
                "log.25",
                "log.35",
                "log.41",
                "snapshot.20",
                "snapshot.30",
                "snapshot.40"
            ]
        );
        assert_eq!(done.removed.len(), 2 + 1);
        // Again: nothing more to do.
        assert!(cleanup(&config, 3, false).unwrap().removed.is_empty());
    }
}
