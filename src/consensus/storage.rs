//! Durable Raft storage: the log, hard state and conf state in sled; snapshots in files.
//!
//! ```text
//! <dataLogDir or dataDir>/keeperd/raftlog/       sled db (files: conf, db, blobs/, snap.*)
//!     tree "entries": key = index (u64 big-endian)
//!                     value = crc32 (u32 BE) | term (u64 BE) | eraftpb.Entry (protobuf)
//!                     crc32 covers key | term | entry, so a torn, rotten or misplaced value
//!                     is detected
//!     tree "meta":    "hard_state" -> crc32 | eraftpb.HardState
//!                     "conf_state" -> crc32 | eraftpb.ConfState
//!                     "log_start"  -> crc32 | index (u64 BE) | term (u64 BE)
//!                     (crc32 covers key name | payload)
//! <dataDir>/keeperd/snapshots/snapshot.<zxid in hex>   one file per snapshot, written whole:
//!     "KPRSNAP1" | u32 BE meta_len | eraftpb.SnapshotMetadata | u64 BE data_len | data
//!     | crc32 (u32 BE) of everything before it
//! ```
//!
//! `log_start` is the (index, term) of the entry just before the first one kept: the log was
//! compacted up to it (0, 0 for a log that never was). Entry keys are contiguous from
//! `log_start.index + 1` to `last_index`.
//!
//! Invariants:
//! - A Ready's entries, any overwritten tail and its hard state go in one sled transaction
//!   (atomic), then one `flush()` and, with force_sync, one `fdatasync` of sled's `db` file
//!   (plus any new blob file): sled 0.34's flush alone ends in `sync_file_range`, which does
//!   not force the device cache or the file size to disk. See docs/durability.md.
//! - A snapshot file is complete and fsynced (file and directory) before the log is compacted
//!   past its predecessor; compaction (log_start + removals) is one transaction.
//! - Nothing read from disk is trusted before its checksum matched.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::proto::Error;

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
pub fn has_state(log_dir: &Path, data_dir: &Path) -> Result<bool, Error> {
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
fn move_old_layout(log_dir: &Path, data_dir: &Path) -> Result<(), Error> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        fault(format!(
            "moving keeperd's {what} {} out of version-2: {e}",
            p.display()
        ))
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
const SNAP_MAGIC: &[u8; 8] = b"KPRSNAP1";
const SNAP_TMP_SUFFIX: &str = ".tmp";

const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_LOG_START: &[u8] = b"log_start";

/// sled keeps a page cache per db; the log is read back once for apply, so a modest cache is
/// enough (sled's default is 1 GiB).
const LOG_CACHE_BYTES: u64 = 64 << 20;

fn fault(msg: impl Display) -> Error {
    Error::Other(msg.to_string())
}

fn raft_err(msg: impl Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(msg.to_string().into()))
}

fn crc(parts: &[&[u8]]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_be_bytes()
}

/// `crc32(key | payload) | payload`.
fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + payload.len());
    v.extend_from_slice(&crc(&[key, payload]));
    v.extend_from_slice(payload);
    v
}

/// The payload of a sealed value, if its checksum matches.
fn unseal<'a>(key: &[u8], value: &'a [u8]) -> Option<&'a [u8]> {
    if value.len() < 4 {
        return None;
    }
    let (sum, payload) = value.split_at(4);
    (crc(&[key, payload]) == sum).then_some(payload)
}

fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

fn entry_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn key_index(key: &[u8]) -> Option<u64> {
    if key.len() != 8 {
        return None;
    }
    be_u64(key)
}

fn seal_entry(e: &Entry) -> Result<Vec<u8>, Error> {
    let pb = e
        .write_to_bytes()
        .map_err(|err| fault(format!("encoding log entry {}: {err}", e.index)))?;
    let mut payload = Vec::with_capacity(8 + pb.len());
    payload.extend_from_slice(&e.term.to_be_bytes());
    payload.extend_from_slice(&pb);
    Ok(seal(&entry_key(e.index), &payload))
}

/// The term stored in front of an entry, once the checksum matched.
fn entry_term(index: u64, value: &[u8]) -> Result<u64, String> {
    let payload = unseal(&entry_key(index), value).ok_or("checksum mismatch")?;
    be_u64(payload).ok_or_else(|| "value too short".to_string())
}

fn decode_entry(index: u64, value: &[u8]) -> Result<Entry, String> {
    let payload = unseal(&entry_key(index), value).ok_or("checksum mismatch")?;
    let term = be_u64(payload).ok_or("value too short")?;
    let e = Entry::parse_from_bytes(&payload[8..]).map_err(|e| format!("protobuf: {e}"))?;
    if e.index != index || e.term != term {
        return Err(format!(
            "entry says index {} term {}, stored under index {index} term {term}",
            e.index, e.term
        ));
    }
    Ok(e)
}

/// What opening the log found, for the recovery log lines and the tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Nothing was stored: a fresh group was initialised with the given voters.
    pub fresh: bool,
    /// The log was cut at this index because the entry there failed its check.
    pub truncated_at: Option<u64>,
    /// How many entries the cut removed (1 = a torn tail).
    pub dropped: u64,
}

/// fdatasyncs the files sled wrote: its single `db` file, plus blob files (sled 0.34 stores
/// any item over ~128 KiB in `blobs/<lsn>` and never syncs those itself).
struct FileSyncer {
    db_file: File,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<OsString>,
}

impl FileSyncer {
    fn open(db_dir: &Path) -> Result<FileSyncer, Error> {
        let db_path = db_dir.join("db");
        let db_file = File::open(&db_path)
            .map_err(|e| fault(format!("opening {} for fdatasync: {e}", db_path.display())))?;
        // sled may just have created the files and directories: make their entries durable.
        sync_dir(db_dir)?;
        if let Some(parent) = db_dir.parent() {
            sync_dir(parent)?;
        }
        let mut s = FileSyncer {
            db_file,
            blobs_dir: db_dir.join("blobs"),
            synced_blobs: HashSet::new(),
        };
        s.sync()?;
        Ok(s)
    }

    /// One fdatasync of `db` (the common case: a directory listing of an empty `blobs/`
    /// finds nothing more). Returns how many files were synced.
    fn sync(&mut self) -> Result<u32, Error> {
        self.db_file
            .sync_data()
            .map_err(|e| fault(format!("fdatasync of the raft log db: {e}")))?;
        let mut n = 1;
        let listing = match fs::read_dir(&self.blobs_dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(n),
            Err(e) => return Err(fault(format!("listing {}: {e}", self.blobs_dir.display()))),
        };
        let mut present = HashSet::new();
        let mut new_blob = false;
        for ent in listing {
            let ent =
                ent.map_err(|e| fault(format!("listing {}: {e}", self.blobs_dir.display())))?;
            let name = ent.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(ent.path()) {
                    Ok(f) => {
                        f.sync_data().map_err(|e| {
                            fault(format!("fdatasync of {}: {e}", ent.path().display()))
                        })?;
                        n += 1;
                        new_blob = true;
                    }
                    // sled's blob GC removed it meanwhile.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(fault(format!("opening {}: {e}", ent.path().display()))),
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
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fault(format!("fsync of directory {}: {e}", dir.display())))
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
fn ensure_dir(dir: &Path, what: &str) -> Result<(), Error> {
    fs::create_dir_all(dir)
        .map_err(|e| fault(format!("cannot create {what} {}: {e}", dir.display())))?;
    fs::read_dir(dir)
        .map(|_| ())
        .map_err(|e| fault(format!("cannot read {what} {}: {e}", dir.display())))
}

/// One snapshot file on disk, as listed (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// From the file name: `zxid(term, index)` of the last entry the snapshot includes.
    pub zxid: u64,
    /// File size in bytes.
    pub size: u64,
}

impl SnapshotFile {
    /// The log index in the name (the low 32 bits of the zxid).
    pub fn index_hint(&self) -> u64 {
        self.zxid & 0xffff_ffff
    }
}

/// The snapshot directory: `dataDir/keeperd/snapshots/snapshot.<zxid hex>` files.
///
/// Files, not sled values: a 100+ MB snapshot is written and read sequentially in one go, is
/// fsynced on its own, and removing an old one frees its space at once.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Opens (creating if needed) the snapshot directory; removes half-written `*.tmp` files
    /// left by a crash during a snapshot.
    pub fn open(dir: &Path) -> Result<SnapshotStore, Error> {
        ensure_dir(dir, "snapshot directory")?;
        let listing = fs::read_dir(dir).map_err(|e| {
            fault(format!(
                "cannot read snapshot directory {}: {e}",
                dir.display()
            ))
        })?;
        for ent in listing {
            let ent = ent.map_err(|e| fault(format!("listing {}: {e}", dir.display())))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SNAP_PREFIX) && name.ends_with(SNAP_TMP_SUFFIX) {
                tracing::warn!(
                    "removing {} (a snapshot interrupted by a crash)",
                    ent.path().display()
                );
                fs::remove_file(ent.path())
                    .map_err(|e| fault(format!("removing {}: {e}", ent.path().display())))?;
            }
        }
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Snapshot files, newest (highest zxid) first.
    pub fn list(&self) -> Result<Vec<SnapshotFile>, Error> {
        let listing = fs::read_dir(&self.dir).map_err(|e| {
            fault(format!(
                "cannot read snapshot directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let mut out = vec![];
        for ent in listing {
            let ent = ent.map_err(|e| fault(format!("listing {}: {e}", self.dir.display())))?;
            let name = ent.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(SNAP_PREFIX)) else {
                continue;
            };
            let Ok(zxid) = u64::from_str_radix(hex, 16) else {
                continue;
            };
            let size = ent
                .metadata()
                .map_err(|e| fault(format!("stat of {}: {e}", ent.path().display())))?
                .len();
            out.push(SnapshotFile {
                path: ent.path(),
                zxid,
                size,
            });
        }
        out.sort_by_key(|f| std::cmp::Reverse(f.zxid));
        Ok(out)
    }

    /// Writes a snapshot durably: a `.tmp` file, fdatasync, rename, fsync of the directory.
    pub fn write(&self, meta: &SnapshotMetadata, data: &[u8]) -> Result<SnapshotFile, Error> {
        let zxid = super::zxid(meta.term, meta.index) as u64;
        let path = self.dir.join(format!("{SNAP_PREFIX}{zxid:x}"));
        let tmp = self
            .dir
            .join(format!("{SNAP_PREFIX}{zxid:x}{SNAP_TMP_SUFFIX}"));
        let meta_pb = meta
            .write_to_bytes()
            .map_err(|e| fault(format!("encoding snapshot metadata: {e}")))?;
        let io = |e: std::io::Error| fault(format!("writing snapshot {}: {e}", tmp.display()));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let mut h = crc32fast::Hasher::new();
        let meta_len = (meta_pb.len() as u32).to_be_bytes();
        let data_len = (data.len() as u64).to_be_bytes();
        for part in [&SNAP_MAGIC[..], &meta_len, &meta_pb, &data_len, data] {
            h.update(part);
            w.write_all(part).map_err(io)?;
        }
        w.write_all(&h.finalize().to_be_bytes()).map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_data().map_err(io)?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| {
            fault(format!(
                "renaming {} to {}: {e}",
                tmp.display(),
                path.display()
            ))
        })?;
        sync_dir(&self.dir)?;
        let size = (SNAP_MAGIC.len() + 4 + meta_pb.len() + 8 + data.len() + 4) as u64;
        Ok(SnapshotFile { path, zxid, size })
    }

    /// Reads and verifies a snapshot. `Err` says why it is unusable.
    pub fn read(&self, file: &SnapshotFile) -> Result<Snapshot, String> {
        let buf = fs::read(&file.path).map_err(|e| format!("read failed: {e}"))?;
        let body_len = buf
            .len()
            .checked_sub(4)
            .ok_or("shorter than its checksum")?;
        let (body, sum) = buf.split_at(body_len);
        if crc(&[body]) != sum {
            return Err("checksum mismatch".into());
        }
        let rest = body.strip_prefix(&SNAP_MAGIC[..]).ok_or("bad magic")?;
        let meta_len = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or("truncated header")? as usize;
        let meta_pb = rest.get(4..4 + meta_len).ok_or("truncated metadata")?;
        let meta = SnapshotMetadata::parse_from_bytes(meta_pb)
            .map_err(|e| format!("metadata protobuf: {e}"))?;
        let data_at = SNAP_MAGIC.len() + 4 + meta_len + 8;
        let data_len = be_u64(rest.get(4 + meta_len..).ok_or("truncated header")?)
            .ok_or("truncated header")?;
        if data_at > body.len() || (body.len() - data_at) as u64 != data_len {
            return Err("data length does not match the file size".into());
        }
        if super::zxid(meta.term, meta.index) as u64 != file.zxid {
            return Err(format!(
                "metadata (term {}, index {}) does not match the file name",
                meta.term, meta.index
            ));
        }
        let data = bytes::Bytes::from(buf).slice(data_at..body_len);
        let mut snap = Snapshot::default();
        snap.set_metadata(meta);
        snap.data = data;
        Ok(snap)
    }

    /// The metadata at the head of a snapshot file, without reading (or verifying) the data:
    /// enough to know which log index it covers.
    pub fn read_header(&self, file: &SnapshotFile) -> Result<SnapshotMetadata, String> {
        use std::io::Read;
        let mut f = File::open(&file.path).map_err(|e| format!("open failed: {e}"))?;
        let mut head = [0u8; 12];
        f.read_exact(&mut head)
            .map_err(|e| format!("reading header: {e}"))?;
        if &head[..8] != SNAP_MAGIC {
            return Err("bad magic".into());
        }
        let meta_len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as u64;
        if meta_len > file.size {
            return Err("metadata length exceeds the file".into());
        }
        let mut meta_pb = vec![0u8; meta_len as usize];
        f.read_exact(&mut meta_pb)
            .map_err(|e| format!("reading metadata: {e}"))?;
        SnapshotMetadata::parse_from_bytes(&meta_pb).map_err(|e| format!("metadata protobuf: {e}"))
    }

    pub fn remove(&self, file: &SnapshotFile) -> Result<(), Error> {
        fs::remove_file(&file.path)
            .map_err(|e| fault(format!("removing {}: {e}", file.path.display())))
    }
}

/// Raft `Storage` over sled, plus the write side the driver uses (persist, compact, ...).
pub struct SledStorage {
    /// The sled db directory (log dir/keeperd/raftlog), for messages.
    path: PathBuf,
    db: sled::Db,
    entries: sled::Tree,
    meta: sled::Tree,
    syncer: FileSyncer,
    force_sync: bool,
    /// Cached copies of what is on disk; every write goes to both.
    hard_state: HardState,
    conf_state: ConfState,
    log_start: (u64, u64),
    last_index: u64,
    last_term: u64,
    /// Sum of the stored entry values (what `mntr` reports as the log size).
    log_bytes: u64,
    /// fdatasync calls made by `persist` (each may cover several files).
    syncs: u64,
    snaps: SnapshotStore,
}

impl SledStorage {
    /// Opens the log at `log_dir/keeperd/raftlog` and the snapshots at
    /// `snap_dir/keeperd/snapshots` (moving them there from the old layout under
    /// `version-2`), checking every stored entry's checksum. A corrupt entry cuts the
    /// log there (logged); an empty store is initialised with `voters`. An unreadable or
    /// inconsistent store is an `Err` naming the path.
    pub fn open(
        log_dir: &Path,
        snap_dir: &Path,
        force_sync: bool,
        voters: &[u64],
    ) -> Result<(SledStorage, OpenReport), Error> {
        ensure_dir(log_dir, "data log directory")?;
        ensure_dir(snap_dir, "data directory")?;
        move_old_layout(log_dir, snap_dir)?;
        let snaps = SnapshotStore::open(&snapshot_dir(snap_dir))?;
        let path = log_db_dir(log_dir);
        ensure_dir(&path, "raft log directory")?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(LOG_CACHE_BYTES)
            .open()
            .map_err(|e| {
                let hint = if e.to_string().contains("could not acquire lock") {
                    " (is another keeperd using this directory?)"
                } else {
                    ""
                };
                fault(format!(
                    "cannot open raft log {}: {e}{hint}",
                    path.display()
                ))
            })?;
        let open_tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| fault(format!("cannot open raft log {}: {e}", path.display())))
        };
        let entries = open_tree("entries")?;
        let meta = open_tree("meta")?;
        let syncer = FileSyncer::open(&path)?;
        let mut s = SledStorage {
            path,
            db,
            entries,
            meta,
            syncer,
            force_sync,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            log_start: (0, 0),
            last_index: 0,
            last_term: 0,
            log_bytes: 0,
            syncs: 0,
            snaps,
        };
        let report = s.load(voters)?;
        Ok((s, report))
    }

    fn read_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let name = String::from_utf8_lossy(key);
        let Some(v) = self
            .meta
            .get(key)
            .map_err(|e| fault(format!("reading {name} from {}: {e}", self.path.display())))?
        else {
            return Ok(None);
        };
        let payload = unseal(key, &v).ok_or_else(|| {
            fault(format!(
                "{name} in {} is corrupt (checksum mismatch); refusing to start",
                self.path.display()
            ))
        })?;
        Ok(Some(payload.to_vec()))
    }

    fn load(&mut self, voters: &[u64]) -> Result<OpenReport, Error> {
        let path = self.path.display().to_string();
        let hs = self.read_meta(KEY_HARD_STATE)?;
        let cs = self.read_meta(KEY_CONF_STATE)?;
        let start = self.read_meta(KEY_LOG_START)?;
        let mut report = OpenReport::default();
        let (hs, cs, start) = match (hs, cs, start) {
            (None, None, None) => {
                if !self.entries.is_empty() {
                    return Err(fault(format!(
                        "raft log {path} has entries but no hard state; refusing to start"
                    )));
                }
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                self.write_meta_now(&HardState::default(), &cs, (0, 0))?;
                report.fresh = true;
                return Ok(report);
            }
            (Some(hs), Some(cs), Some(start)) => (hs, cs, start),
            _ => {
                return Err(fault(format!(
                    "raft log {path} is missing part of its metadata; refusing to start"
                )))
            }
        };
        self.hard_state = HardState::parse_from_bytes(&hs)
            .map_err(|e| fault(format!("hard state in {path}: {e}")))?;
        self.conf_state = ConfState::parse_from_bytes(&cs)
            .map_err(|e| fault(format!("conf state in {path}: {e}")))?;
        let (Some(si), Some(st)) = (be_u64(&start), start.get(8..).and_then(be_u64)) else {
            return Err(fault(format!("log start in {path} is too short")));
        };
        self.log_start = (si, st);
        self.last_index = si;
        self.last_term = st;

        // Check every entry; the first bad one and all after it go.
        let mut stale = sled::Batch::default();
        let mut cut: Option<(sled::IVec, u64, String)> = None;
        for kv in self.entries.iter() {
            let (k, v) = kv.map_err(|e| fault(format!("reading raft log {path}: {e}")))?;
            let expect = self.last_index + 1;
            let Some(idx) = key_index(&k) else {
                cut = Some((k, expect, "key is not an 8-byte index".into()));
                break;
            };
            if idx <= si {
                // Left by a compaction: already covered by log_start.
                stale.remove(k);
                continue;
            }
            if idx != expect {
                cut = Some((k, expect, format!("gap: next stored index is {idx}")));
                break;
            }
            match entry_term(idx, &v) {
                Ok(t) if t >= self.last_term => {
                    self.last_index = idx;
                    self.last_term = t;
                    self.log_bytes += v.len() as u64;
                }
                Ok(t) => {
                    cut = Some((
                        k,
                        idx,
                        format!("term {t} below previous {}", self.last_term),
                    ));
                    break;
                }
                Err(why) => {
                    cut = Some((k, idx, why));
                    break;
                }
            }
        }
        let mut dirty = false;
        if let Some((from, idx, why)) = cut {
            let mut batch = sled::Batch::default();
            let mut dropped = 0u64;
            for k in self.entries.range(from..).keys() {
                let k = k.map_err(|e| fault(format!("reading raft log {path}: {e}")))?;
                batch.remove(k);
                dropped += 1;
            }
            self.entries
                .apply_batch(batch)
                .map_err(|e| fault(format!("truncating raft log {path}: {e}")))?;
            if dropped <= 1 {
                tracing::warn!(
                    "raft log {path}: entry {idx} is corrupt or torn ({why}); \
                     truncating the log tail at index {idx}"
                );
            } else {
                tracing::error!(
                    "raft log {path}: entry {idx} is corrupt ({why}); truncating the log \
                     at index {idx}, dropping {dropped} stored entries from there on"
                );
            }
            report.truncated_at = Some(idx);
            report.dropped = dropped;
            dirty = true;
        }
        self.entries
            .apply_batch(stale)
            .map_err(|e| fault(format!("cleaning raft log {path}: {e}")))?;
        if self.hard_state.commit > self.last_index {
            tracing::error!(
                "raft log {path}: hard state says entries up to {} are committed but the log \
                 ends at {}: committed entries were lost (forceSync=no, or the disk lost \
                 acknowledged writes)",
                self.hard_state.commit,
                self.last_index
            );
            self.hard_state.commit = self.last_index;
            dirty = true;
        }
        if self.hard_state.commit < self.log_start.0 {
            self.hard_state.commit = self.log_start.0;
            dirty = true;
        }
        if dirty {
            let (hs, cs, start) = (
                self.hard_state.clone(),
                self.conf_state.clone(),
                self.log_start,
            );
            self.write_meta_now(&hs, &cs, start)?;
        }
        Ok(report)
    }

    /// Writes all three metadata values and makes them durable (start-up only).
    fn write_meta_now(
        &mut self,
        hs: &HardState,
        cs: &ConfState,
        start: (u64, u64),
    ) -> Result<(), Error> {
        let mut b = sled::Batch::default();
        b.insert(KEY_HARD_STATE, seal(KEY_HARD_STATE, &pb(hs)?));
        b.insert(KEY_CONF_STATE, seal(KEY_CONF_STATE, &pb(cs)?));
        b.insert(KEY_LOG_START, seal(KEY_LOG_START, &start_bytes(start)));
        self.meta
            .apply_batch(b)
            .map_err(|e| fault(format!("writing {}: {e}", self.path.display())))?;
        self.hard_state = hs.clone();
        self.conf_state = cs.clone();
        self.log_start = start;
        if self.last_index < start.0 {
            self.last_index = start.0;
            self.last_term = start.1;
        }
        self.flush_and_sync(true)?;
        Ok(())
    }

    /// sled flush, then (force_sync, or `always`) fdatasync of the files holding the data.
    fn flush_and_sync(&mut self, always: bool) -> Result<bool, Error> {
        self.db
            .flush()
            .map_err(|e| fault(format!("flushing raft log {}: {e}", self.path.display())))?;
        if self.force_sync || always {
            self.syncer.sync()?;
            self.syncs += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Persists one Ready: `entries` (replacing any stored tail from their first index on)
    /// and the hard state, atomically; then, if `must_sync`, one flush and (force_sync) one
    /// fdatasync. Returns whether an fdatasync happened.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hs: Option<&HardState>,
        must_sync: bool,
    ) -> Result<bool, Error> {
        if entries.is_empty() && hs.is_none() {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        let mut removed_bytes = 0u64;
        let mut added_bytes = 0u64;
        if let Some(first) = entries.first() {
            if first.index <= self.log_start.0 {
                return Err(fault(format!(
                    "appending entry {} at or below the compacted index {}",
                    first.index, self.log_start.0
                )));
            }
            if first.index > self.last_index + 1 {
                return Err(fault(format!(
                    "appending entry {} leaves a gap after {}",
                    first.index, self.last_index
                )));
            }
            if first.index <= self.last_index {
                // A new leader overwrote our uncommitted tail.
                for kv in self.entries.range(entry_key(first.index)..) {
                    let (k, v) = kv.map_err(|e| fault(format!("reading raft log: {e}")))?;
                    removed_bytes += v.len() as u64;
                    batch.remove(k);
                }
            }
            for e in entries {
                let v = seal_entry(e)?;
                added_bytes += v.len() as u64;
                batch.insert(&entry_key(e.index), v);
            }
        }
        let hs_value = match hs {
            Some(hs) => Some(seal(KEY_HARD_STATE, &pb(hs)?)),
            None => None,
        };
        let res: Result<(), TransactionError<()>> =
            (&self.entries, &self.meta).transaction(|(et, mt)| {
                et.apply_batch(&batch)?;
                if let Some(v) = &hs_value {
                    mt.insert(KEY_HARD_STATE, v.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        res.map_err(|e| fault(format!("writing raft log {}: {e:?}", self.path.display())))?;
        if let Some(last) = entries.last() {
            self.last_index = last.index;
            self.last_term = last.term;
            self.log_bytes = self.log_bytes - removed_bytes.min(self.log_bytes) + added_bytes;
        }
        if let Some(hs) = hs {
            self.hard_state = hs.clone();
        }
        if must_sync {
            return self.flush_and_sync(false);
        }
        Ok(false)
    }

    /// Records a newer commit index (from a LightReady). Not flushed on its own: the commit
    /// index can be re-learnt, and the next Ready's flush carries it.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), Error> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        self.hard_state.commit = commit;
        let v = seal(KEY_HARD_STATE, &pb(&self.hard_state)?);
        self.meta
            .insert(KEY_HARD_STATE, v)
            .map_err(|e| fault(format!("writing hard state: {e}")))?;
        Ok(())
    }

    /// Records the configuration after an applied conf change.
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), Error> {
        let v = seal(KEY_CONF_STATE, &pb(&cs)?);
        self.meta
            .insert(KEY_CONF_STATE, v)
            .map_err(|e| fault(format!("writing conf state: {e}")))?;
        self.conf_state = cs;
        self.flush_and_sync(false)?;
        Ok(())
    }

    /// Drops the log up to and including `index` (which must be applied and covered by a
    /// durable snapshot). One transaction: the new log_start and the removals.
    pub fn compact(&mut self, index: u64) -> Result<(), Error> {
        if index <= self.log_start.0 {
            return Ok(());
        }
        if index > self.last_index {
            return Err(fault(format!(
                "compacting to {index} beyond the last log index {}",
                self.last_index
            )));
        }
        let term = self
            .term(index)
            .map_err(|e| fault(format!("compacting to {index}: {e}")))?;
        let mut batch = sled::Batch::default();
        let mut removed = 0u64;
        for kv in self.entries.range(..=entry_key(index)) {
            let (k, v) = kv.map_err(|e| fault(format!("reading raft log: {e}")))?;
            removed += v.len() as u64;
            batch.remove(k);
        }
        let start = seal(KEY_LOG_START, &start_bytes((index, term)));
        let res: Result<(), TransactionError<()>> =
            (&self.entries, &self.meta).transaction(|(et, mt)| {
                mt.insert(KEY_LOG_START, start.as_slice())?;
                et.apply_batch(&batch)?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        res.map_err(|e| {
            fault(format!(
                "compacting raft log {}: {e:?}",
                self.path.display()
            ))
        })?;
        self.log_start = (index, term);
        self.log_bytes -= removed.min(self.log_bytes);
        Ok(())
    }

    /// Resets the log to a snapshot that is already durable in the snapshot directory: a
    /// follower that received the leader's snapshot, or a log that was lost while its
    /// snapshot survived. Everything in the log is dropped.
    pub fn install_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        for k in self.entries.iter().keys() {
            batch.remove(k.map_err(|e| fault(format!("reading raft log: {e}")))?);
        }
        self.entries
            .apply_batch(batch)
            .map_err(|e| fault(format!("resetting raft log: {e}")))?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.last_index = meta.index;
        self.last_term = meta.term;
        self.log_bytes = 0;
        self.write_meta_now(&hs, meta.get_conf_state(), (meta.index, meta.term))
    }

    /// No membership and no log: nothing was ever committed here.
    pub fn is_empty(&self) -> bool {
        let cs = &self.conf_state;
        cs.voters.is_empty()
            && cs.learners.is_empty()
            && cs.voters_outgoing.is_empty()
            && self.log_start.0 == 0
            && self.last_index == 0
    }

    /// Reads committed entries `[low, high)` for apply (no size limit).
    pub fn read_entries(&self, low: u64, high: u64) -> Result<Vec<Entry>, Error> {
        self.entries(low, high, None, GetEntriesContext::empty(false))
            .map_err(|e| fault(format!("reading entries [{low}, {high}): {e}")))
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }
    /// (index, term) of the entry before the first stored one.
    pub fn log_start(&self) -> (u64, u64) {
        self.log_start
    }
    pub fn last_index_cached(&self) -> u64 {
        self.last_index
    }
    /// Bytes of stored entries (checksums and protobuf included).
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes
    }
    /// fdatasync rounds done by `persist` and friends since open.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snaps
    }
    /// The sled directory of the log.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn pb<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, Error> {
    m.write_to_bytes()
        .map_err(|e| fault(format!("protobuf encode: {e}")))
}

fn start_bytes((index, term): (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8..].copy_from_slice(&term.to_be_bytes());
    b
}

impl Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        if low <= self.log_start.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for kv in self.entries.range(entry_key(low)..entry_key(high)) {
            let (k, v) = kv.map_err(raft_err)?;
            let idx = key_index(&k).ok_or_else(|| raft_err("raft log key is not an index"))?;
            let expect = low + out.len() as u64;
            if idx != expect {
                return Err(raft_err(format!("raft log has a gap at {expect}")));
            }
            size += v.len() as u64;
            if let Some(max) = max_size {
                if !out.is_empty() && size > max {
                    return Ok(out);
                }
            }
            out.push(decode_entry(idx, &v).map_err(|why| raft_err(format!("entry {idx}: {why}")))?);
        }
        if out.len() as u64 != high - low {
            return Err(raft_err(format!(
                "raft log is missing entries in [{low}, {high})"
            )));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.log_start.0 {
            return Ok(self.log_start.1);
        }
        if idx < self.log_start.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index {
            return Ok(self.last_term);
        }
        let v = self
            .entries
            .get(entry_key(idx))
            .map_err(raft_err)?
            .ok_or_else(|| raft_err(format!("raft log entry {idx} is missing")))?;
        entry_term(idx, &v).map_err(|why| raft_err(format!("entry {idx}: {why}")))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log_start.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    /// The newest snapshot that verifies, for a follower behind the compacted log. It must
    /// list `to` as a member: a joining server learns its membership from it, and raft-rs
    /// drops a snapshot whose configuration does not contain the receiver (the leader
    /// forces a newer snapshot; see `Node::reconcile`).
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let files = self.snaps.list().map_err(raft_err)?;
        for f in &files {
            match self.snaps.read(f) {
                Ok(s) if s.get_metadata().index >= request_index => {
                    let cs = s.get_metadata().get_conf_state();
                    let member = cs
                        .voters
                        .iter()
                        .chain(&cs.learners)
                        .chain(&cs.voters_outgoing)
                        .chain(&cs.learners_next)
                        .any(|&id| id == to);
                    if member || to == 0 {
                        return Ok(s);
                    }
                    break;
                }
                Ok(_) => break,
                Err(why) => tracing::warn!("snapshot {} is unusable: {why}", f.path.display()),
            }
        }
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
