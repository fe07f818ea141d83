//! Making writes durable: `FileSyncer` (fdatasync of the files sled wrote), `sync_dir`
//! (fsync of a directory), `ensure_dir`, and `wait_unlocked` (sled's lock let go).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::error::{IoOp, StorageError};

/// fdatasyncs the files sled wrote: its single `db` file, plus blob files (sled 0.34 stores
/// any item over ~128 KiB in `blobs/<lsn>` and never syncs those itself).
pub(super) struct FileSyncer {
    db_file: File,
    /// `db_file`'s path, for errors.
    db_path: PathBuf,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl FileSyncer {
    pub(super) fn open(db_dir: &Path) -> Result<FileSyncer, StorageError> {
        let db_path = db_dir.join("db");
        let db_file =
            File::open(&db_path).map_err(|e| StorageError::io(IoOp::OpenForSync, &db_path, e))?;
        // sled may just have created the files and directories: make their entries durable.
        sync_dir(db_dir)?;
        if let Some(parent) = db_dir.parent() {
            sync_dir(parent)?;
        }
        let mut s = FileSyncer {
            db_file,
            db_path,
            blobs_dir: db_dir.join("blobs"),
            synced_blobs: HashSet::new(),
        };
        s.sync()?;
        Ok(s)
    }

    /// One fdatasync of `db` (the common case: a directory listing of an empty `blobs/`
    /// finds nothing more). Returns how many files were synced.
    pub(super) fn sync(&mut self) -> Result<u32, StorageError> {
        let started = std::time::Instant::now();
        let synced = self.sync_files();
        crate::summary::FSYNC_TIME.record(started.elapsed().as_millis() as u64);
        synced
    }

    fn sync_files(&mut self) -> Result<u32, StorageError> {
        self.db_file
            .sync_data()
            .map_err(|e| StorageError::io(IoOp::SyncLogDb, &self.db_path, e))?;
        let mut n = 1;
        let listing = match fs::read_dir(&self.blobs_dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(n),
            Err(e) => return Err(StorageError::io(IoOp::List, &self.blobs_dir, e)),
        };
        let mut present = HashSet::new();
        let mut new_blob = false;
        for ent in listing {
            let ent = ent.map_err(|e| StorageError::io(IoOp::List, &self.blobs_dir, e))?;
            let name = ent.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(ent.path()) {
                    Ok(f) => {
                        f.sync_data()
                            .map_err(|e| StorageError::io(IoOp::SyncFile, ent.path(), e))?;
                        n += 1;
                        new_blob = true;
                    }
                    // sled's blob GC removed it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io(IoOp::Open, ent.path(), e)),
                }
            }
            present.insert(name);
        }
        if new_blob {
            sync_dir(&self.blobs_dir)?;
        }
        self.synced_blobs = present;
        Ok(n)
    }
}

/// fsync of a directory, so that a created/renamed/removed entry in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(IoOp::SyncDir, dir, e))
}

/// Waits (up to `limit`) until nobody holds sled's lock on the db in `db_dir`. Dropping a
/// `sled::Db` returns before sled's background threads let go of the file (and its flock),
/// so a quick reopen in the same process could fail to lock it.
pub fn wait_unlocked(db_dir: &Path, limit: std::time::Duration) -> bool {
    use std::os::unix::io::AsRawFd;
    let deadline = std::time::Instant::now() + limit;
    loop {
        let Ok(f) = File::open(db_dir.join("db")) else {
            return true;
        };
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let got = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if got {
            // SAFETY: as above.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Creates `dir` (and parents) if missing and checks it can be listed. The error names it.
pub(super) fn ensure_dir(dir: &Path, what: &'static str) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(|e| StorageError::io(IoOp::CreateDir(what), dir, e))?;
    fs::read_dir(dir)
        .map(|_| ())
        .map_err(|e| StorageError::io(IoOp::ReadDir(what), dir, e))
}
