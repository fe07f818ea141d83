//! Listing and loading a ZooKeeper dataDir (and dataLogDir, which may be the same).
//!
//! ```text
//! <dataDir>/version-2/snapshot.<hex zxid>[.gz|.snappy]   -- zxid: last txn applied when the
//!                                                           snapshot started (fuzzy)
//! <dataLogDir>/version-2/log.<hex zxid>                  -- zxid: its first txn
//! ```
//!
//! Everything else is ignored, including keeperd's own old-layout files that share the
//! directory: `version-2/raftlog/` and `snapshot.<hex>` files starting with "KPRSNAP1".
//!
//! `load` follows ZooKeeper's restore (`FileTxnSnapLog.restore`): the newest snapshot that
//! reads and whose checksums hold (older ones are tried when it does not, as ZooKeeper does);
//! then the txns after the snapshot's zxid, from the last log starting at or before
//! zxid + 1 and every later log. A snapshot is fuzzy (written while txns were applied), so
//! replayed txns may already be in it; ZooKeeper's replay is idempotent for them and so must
//! the caller's be. Unlike ZooKeeper, which stops quietly at the first unreadable record,
//! `load` errors on anything but a torn tail of the last log: a gap in the zxids, a corrupt
//! record followed by more data, a torn record in an earlier log. Files are only read.

use std::path::{Path, PathBuf};

use super::txnlog::{self, LogEnd};
use super::{snapshot, LogEntry, ZkSnapshot};
use crate::proto::Error;

/// The magic of keeperd's old-layout snapshots, which used the same file names.
const KEEPERD_SNAPSHOT_MAGIC: &[u8; 8] = b"KPRSNAP1";
const WHAT: &str = "ZooKeeper dataDir";

/// The ZooKeeper files of a dataDir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZkFiles {
    /// (zxid from the name, path), newest first.
    pub snapshots: Vec<(i64, PathBuf)>,
    /// (first zxid from the name, path), ascending.
    pub logs: Vec<(i64, PathBuf)>,
}

impl ZkFiles {
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.logs.is_empty()
    }
}

/// The restored state: a snapshot and the log entries to replay on top of it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub snapshot: ZkSnapshot,
    pub snapshot_file: PathBuf,
    /// From the snapshot's name: entries with a greater zxid follow.
    pub snapshot_zxid: i64,
    /// Newer snapshots that did not read, and why.
    pub skipped: Vec<(PathBuf, String)>,
    /// The logs `entries` came from, ascending.
    pub log_files: Vec<PathBuf>,
    /// Every logged txn after `snapshot_zxid`, in zxid order.
    pub entries: Vec<LogEntry>,
    /// The zxid of the last entry, or `snapshot_zxid` when there is none.
    pub last_zxid: i64,
    /// The last log's torn record, if it has one: file, byte offset and reason.
    pub torn_tail: Option<String>,
}

/// `<prefix>.<hex>` plus one of `suffixes` ("" for none) → the zxid.
pub(crate) fn zxid_of(name: &str, prefix: &str, suffixes: &[&str]) -> Option<i64> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('.')?;
    for s in suffixes {
        if let Some(hex) = rest.strip_suffix(s) {
            if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return u64::from_str_radix(hex, 16).ok().map(|z| z as i64);
            }
        }
    }
    None
}

fn entries_of(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let dir = dir.join("version-2");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err(&dir, e))?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if ent.file_type().map(|t| t.is_file()).unwrap_or(false) {
            out.push((name, ent.path()));
        }
    }
    Ok(out)
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Other(format!("{}: {e}", path.display()))
}

fn is_keeperd_snapshot(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| &magic == KEEPERD_SNAPSHOT_MAGIC)
        .unwrap_or(false)
}

/// Lists the ZooKeeper snapshots under `data_dir` and logs under `data_log_dir`. A missing
/// `version-2` is no files, not an error.
pub fn list(data_dir: &Path, data_log_dir: &Path) -> Result<ZkFiles, Error> {
    let mut files = ZkFiles::default();
    for (name, path) in entries_of(data_dir)? {
        if let Some(z) = zxid_of(&name, "snapshot", &["", ".gz", ".snappy"]) {
            if !is_keeperd_snapshot(&path) {
                files.snapshots.push((z, path));
            }
        }
    }
    for (name, path) in entries_of(data_log_dir)? {
        if let Some(z) = zxid_of(&name, "log", &[""]) {
            files.logs.push((z, path));
        }
    }
    files.snapshots.sort_by(|a, b| b.cmp(a));
    files.logs.sort();
    Ok(files)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads one snapshot file: decompresses by name, parses, checks.
pub fn read_snapshot(path: &Path) -> Result<ZkSnapshot, Error> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    let plain = snapshot::decompress(&name_of(path), &bytes)?;
    snapshot::read(&plain)
}

/// Loads a dataDir as ZooKeeper restores it; `None` when there are no ZooKeeper files.
/// `progress` hears about each file as it is read.
pub fn load(
    data_dir: &Path,
    data_log_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Loaded>, Error> {
    let files = list(data_dir, data_log_dir)?;
    if files.is_empty() {
        return Ok(None);
    }
    let mut skipped = Vec::new();
    let mut found = None;
    for (zxid, path) in &files.snapshots {
        progress(&format!("reading snapshot {}", path.display()));
        match read_snapshot(path) {
            Ok(s) => {
                found = Some((*zxid, path.clone(), s));
                break;
            }
            Err(e) => {
                progress(&format!("skipping snapshot {}: {e}", path.display()));
                skipped.push((path.clone(), e.to_string()));
            }
        }
    }
    let Some((snapshot_zxid, snapshot_file, snapshot)) = found else {
        let why = if skipped.is_empty() {
            "there are logs but no snapshot".to_string()
        } else {
            let reasons: Vec<String> = skipped
                .iter()
                .map(|(p, e)| format!("{}: {e}", name_of(p)))
                .collect();
            format!("no valid snapshot ({})", reasons.join("; "))
        };
        return Err(Error::malformed(WHAT, why));
    };

    // The last log that starts at or before the first txn wanted, and all after it.
    let first = files
        .logs
        .iter()
        .rposition(|(z, _)| *z <= snapshot_zxid.saturating_add(1))
        .unwrap_or(0);
    let logs = &files.logs[first..];
    let mut entries = Vec::new();
    let mut log_files = Vec::new();
    let mut torn_tail = None;
    let mut last = snapshot_zxid;
    let mut last_where = format!("snapshot {}", name_of(&snapshot_file));
    for (i, (_, path)) in logs.iter().enumerate() {
        progress(&format!("reading log {}", path.display()));
        let name = name_of(path);
        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
        let log = txnlog::read(&bytes).map_err(|e| Error::Other(format!("log {name}: {e}")))?;
        if let LogEnd::Torn { offset, reason } = &log.end {
            if i + 1 < logs.len() {
                return Err(Error::malformed(
                    WHAT,
                    format!(
                        "log {name} is torn at byte {offset} ({reason}) but is not the last log"
                    ),
                ));
            }
            torn_tail = Some(format!("{name}: record at byte {offset}: {reason}"));
        }
        log_files.push(path.clone());
        for e in log.entries {
            let z = e.header.zxid;
            if z <= snapshot_zxid {
                continue;
            }
            let contiguous = z == last.wrapping_add(1);
            let new_epoch = (z >> 32) > (last >> 32);
            if !contiguous && !new_epoch {
                return Err(Error::malformed(
                    WHAT,
                    format!(
                        "gap in the txns: {last_where} ends at zxid {last:#x}, \
                         log {name} goes on with {z:#x}"
                    ),
                ));
            }
            last = z;
            last_where = format!("log {name}");
            entries.push(e);
        }
    }
    Ok(Some(Loaded {
        snapshot,
        snapshot_file,
        snapshot_zxid,
        skipped,
        log_files,
        entries,
        last_zxid: last,
        torn_tail,
    }))
}
