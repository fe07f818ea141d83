//! `StorageError`: what can fail in the raft log and the snapshot files, as a type.
//!
//! Every message is the text keeperd logged before the errors were typed (operators read
//! them, and look for them, in logs). The underlying sled, I/O or protobuf error is part of
//! that one line; it stays typed in its variant but is not also returned by `source()`, so a
//! reporter walking the chain does not print it twice.
//!
//! Conversions: into `raft::Error` for the `raft::Storage` impl (`Compacted`, `Unavailable`
//! and `SnapshotTemporarilyUnavailable` become raft-rs's own variants, which it acts on;
//! the rest `raft::StorageError::Other`), and into `crate::proto::Error` (`Other` with the
//! message, as before) for the driver.

use std::fmt;
use std::path::{Path, PathBuf};

use protobuf::ProtobufError;
use sled::transaction::TransactionError;

/// An error of the raft log (sled) or of the snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file-system call on `path` failed; `op` says which (and phrases the message).
    #[error("{}: {err}", .op.describe(.path))]
    Io {
        op: IoOp,
        path: PathBuf,
        err: std::io::Error,
    },
    /// sled could not open the log db at `path` (or one of its trees). A lock held by
    /// another process gets a hint.
    #[error("cannot open raft log {}: {err}{}", .path.display(), lock_hint(.err))]
    OpenLog { path: PathBuf, err: sled::Error },
    /// A sled read or write of the open log failed.
    #[error("{op}: {err}")]
    Sled { op: LogOp, err: sled::Error },
    /// sled failed under a `raft::Storage` read (the message is sled's alone).
    #[error("{0}")]
    LogRead(sled::Error),
    /// A transaction over both trees failed: a Ready's entries with its hard state
    /// (`what` = "writing raft log"), or a compaction ("compacting raft log").
    #[error("{what} {}: {err:?}", .path.display())]
    Transaction {
        what: &'static str,
        path: PathBuf,
        err: TransactionError<()>,
    },

    /// Encoding a log entry failed.
    #[error("encoding log entry {index}: {err}")]
    EncodeEntry { index: u64, err: ProtobufError },
    /// An entry too large for the length prefix of its record (4 GiB).
    #[error("log entry {index} of {len} bytes is too large")]
    EntryTooLarge { index: u64, len: usize },
    /// Encoding a snapshot's metadata failed.
    #[error("encoding snapshot metadata: {err}")]
    EncodeSnapshotMeta { err: ProtobufError },
    /// Encoding a hard state or conf state failed.
    #[error("protobuf encode: {err}")]
    Encode { err: ProtobufError },

    /// A metadata value (`hard_state`, `conf_state`, `log_start`) failed its checksum.
    #[error("{key} in {} is corrupt (checksum mismatch); refusing to start", .path.display())]
    CorruptMeta { key: &'static str, path: PathBuf },
    /// A metadata value passed its checksum but does not decode (`what`: "hard state",
    /// "conf state").
    #[error("{what} in {}: {err}", .path.display())]
    DecodeMeta {
        what: &'static str,
        path: PathBuf,
        err: ProtobufError,
    },
    /// The stored log start is shorter than (index, term).
    #[error("log start in {} is too short", .path.display())]
    ShortLogStart { path: PathBuf },
    /// Entries without any metadata.
    #[error("raft log {} has entries but no hard state; refusing to start", .path.display())]
    EntriesWithoutHardState { path: PathBuf },
    /// Some of the three metadata values, not all.
    #[error("raft log {} is missing part of its metadata; refusing to start", .path.display())]
    PartialMeta { path: PathBuf },
    /// A stored entry failed its check when read for raft-rs.
    #[error("entry {index}: {defect}")]
    BadEntry { index: u64, defect: EntryDefect },
    /// A key of the batches tree that is not an 8-byte index.
    #[error("raft log key is not an index")]
    KeyNotIndex,
    /// The stored entries skip `index`.
    #[error("raft log has a gap at {index}")]
    LogGap { index: u64 },
    /// An entry inside `[first, last]` is not stored.
    #[error("raft log entry {index} is missing")]
    MissingEntry { index: u64 },
    /// Fewer entries than `[low, high)` are stored.
    #[error("raft log is missing entries in [{low}, {high})")]
    MissingEntries { low: u64, high: u64 },
    /// A snapshot file that does not verify. The message is the defect alone: the callers'
    /// log lines name the file.
    #[error("{defect}")]
    BadSnapshot {
        path: PathBuf,
        defect: SnapshotDefect,
    },

    /// A delta snapshot written against its rules (`SnapshotWriter::delta_over`, `copy`):
    /// the caller's mistake, refused before anything wrong is written.
    #[error("writing snapshot {}: {why}", .path.display())]
    DeltaWrite { path: PathBuf, why: String },

    /// Asked for entries or a term at or below the compacted index (raft-rs:
    /// `StorageError::Compacted`, same text).
    #[error("log compacted")]
    Compacted,
    /// Asked for entries or a term past the last index (raft-rs: `Unavailable`).
    #[error("log unavailable")]
    Unavailable,
    /// No snapshot recent enough that includes the receiver (raft-rs:
    /// `SnapshotTemporarilyUnavailable`: it asks again later).
    #[error("snapshot is temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// `persist` of entries starting at or below the compacted index.
    #[error("appending entry {index} at or below the compacted index {compacted}")]
    AppendCompacted { index: u64, compacted: u64 },
    /// `persist` of entries that do not follow the last stored one.
    #[error("appending entry {index} leaves a gap after {last}")]
    AppendGap { index: u64, last: u64 },
    /// `compact` past the last stored entry.
    #[error("compacting to {index} beyond the last log index {last}")]
    CompactBeyondLog { index: u64, last: u64 },
    /// `compact` could not read the term of the new log start (from `raft::Storage::term`).
    #[error("compacting to {index}: {err}")]
    CompactTerm { index: u64, err: raft::Error },
    /// `read_entries` (for apply) failed (from `raft::Storage::entries`).
    #[error("reading entries [{low}, {high}): {err}")]
    ReadEntries {
        low: u64,
        high: u64,
        err: raft::Error,
    },
}

impl StorageError {
    pub(super) fn io(op: IoOp, path: impl Into<PathBuf>, err: std::io::Error) -> StorageError {
        StorageError::Io {
            op,
            path: path.into(),
            err,
        }
    }
}

fn lock_hint(err: &sled::Error) -> &'static str {
    if err.to_string().contains("could not acquire lock") {
        " (is another keeperd using this directory?)"
    } else {
        ""
    }
}

/// What a failed file-system call was doing. With the path, it phrases the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOp {
    /// `create_dir_all` of the named directory ("snapshot directory", ...).
    CreateDir(&'static str),
    /// Opening the named directory for listing.
    ReadDir(&'static str),
    /// Reading the next entry of a directory listing.
    List,
    /// Opening a file.
    Open,
    /// Opening sled's `db` file to fdatasync it later.
    OpenForSync,
    /// Reading a file's metadata.
    Stat,
    /// fdatasync of a file.
    SyncFile,
    /// fdatasync of sled's `db` file (the message names the log, not the path).
    SyncLogDb,
    /// fsync of a directory.
    SyncDir,
    /// Removing a file.
    Remove,
    /// Writing (or fdatasyncing) a snapshot's `.tmp` file.
    WriteSnapshot,
    /// Writing to a raft log segment file.
    WriteLog,
    /// Reading a raft log segment file.
    ReadLog,
    /// Truncating a raft log segment file.
    Truncate,
    /// Renaming the file to `to`.
    Rename { to: PathBuf },
    /// Moving the named keeperd file ("raft log", "snapshot") out of `version-2`.
    MoveOutOfVersion2(&'static str),
}

impl IoOp {
    fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            IoOp::CreateDir(what) => format!("cannot create {what} {p}"),
            IoOp::ReadDir(what) => format!("cannot read {what} {p}"),
            IoOp::List => format!("listing {p}"),
            IoOp::Open => format!("opening {p}"),
            IoOp::OpenForSync => format!("opening {p} for fdatasync"),
            IoOp::Stat => format!("stat of {p}"),
            IoOp::SyncFile => format!("fdatasync of {p}"),
            IoOp::SyncLogDb => "fdatasync of the raft log db".to_string(),
            IoOp::SyncDir => format!("fsync of directory {p}"),
            IoOp::Remove => format!("removing {p}"),
            IoOp::WriteSnapshot => format!("writing snapshot {p}"),
            IoOp::WriteLog => format!("writing raft log segment {p}"),
            IoOp::ReadLog => format!("reading raft log segment {p}"),
            IoOp::Truncate => format!("truncating raft log segment {p}"),
            IoOp::Rename { to } => format!("renaming {p} to {}", to.display()),
            IoOp::MoveOutOfVersion2(what) => {
                format!("moving keeperd's {what} {p} out of version-2")
            }
        }
    }
}

/// Which sled access of the log failed (the paths are the log's sled directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogOp {
    /// Reading a metadata value at open.
    ReadMeta { key: &'static str, path: PathBuf },
    /// The scan of every entry at open.
    Scan(PathBuf),
    /// Converting the per-entry layout into batches at open.
    Convert(PathBuf),
    /// Cutting the log at a bad entry at open.
    Truncate(PathBuf),
    /// Removing entries a compaction left behind, at open.
    Clean(PathBuf),
    /// Writing all three metadata values (start-up, snapshot install).
    WriteMeta(PathBuf),
    /// sled's flush.
    Flush(PathBuf),
    /// Reading entries to replace or remove them.
    Read,
    /// Writing the hard state alone (a newer commit index).
    WriteHardState,
    /// Writing the conf state alone.
    WriteConfState,
    /// Writing the log start alone (a compaction).
    WriteLogStart,
    /// Removing every entry for a snapshot install.
    Reset,
    /// Appending entries (a Ready that changed no term or vote).
    Append,
}

impl fmt::Display for LogOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogOp::ReadMeta { key, path } => write!(f, "reading {key} from {}", path.display()),
            LogOp::Scan(p) => write!(f, "reading raft log {}", p.display()),
            LogOp::Convert(p) => write!(f, "converting raft log {} to batches", p.display()),
            LogOp::Truncate(p) => write!(f, "truncating raft log {}", p.display()),
            LogOp::Clean(p) => write!(f, "cleaning raft log {}", p.display()),
            LogOp::WriteMeta(p) => write!(f, "writing {}", p.display()),
            LogOp::Flush(p) => write!(f, "flushing raft log {}", p.display()),
            LogOp::Read => f.write_str("reading raft log"),
            LogOp::WriteHardState => f.write_str("writing hard state"),
            LogOp::WriteConfState => f.write_str("writing conf state"),
            LogOp::WriteLogStart => f.write_str("writing log start"),
            LogOp::Reset => f.write_str("resetting raft log"),
            LogOp::Append => f.write_str("writing raft log"),
        }
    }
}

/// Why a stored entry is not usable. The first four come from reading one entry; the rest
/// from the scan at open, which cuts the log at the first defect.
#[derive(Debug, thiserror::Error)]
pub enum EntryDefect {
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("value too short")]
    TooShort,
    #[error("protobuf: {0}")]
    Protobuf(ProtobufError),
    /// The entry inside disagrees with the key and term it is stored under.
    #[error(
        "entry says index {index} term {term}, stored under index {stored_index} term {stored_term}"
    )]
    Misplaced {
        index: u64,
        term: u64,
        stored_index: u64,
        stored_term: u64,
    },
    #[error("key is not an 8-byte index")]
    KeyNotIndex,
    #[error("gap: next stored index is {next}")]
    Gap { next: u64 },
    /// A batch of entries starting at `first`, inside the entries before it.
    #[error("batch starting at {first} overlaps the entries before it")]
    Overlap { first: u64 },
    #[error("term {term} below previous {previous}")]
    TermBelow { term: u64, previous: u64 },
}

/// Why a snapshot file is not usable.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotDefect {
    #[error("read failed: {0}")]
    ReadFailed(std::io::Error),
    #[error("shorter than its checksum")]
    ShorterThanChecksum,
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("bad magic")]
    BadMagic,
    #[error("truncated header")]
    TruncatedHeader,
    #[error("truncated metadata")]
    TruncatedMetadata,
    #[error("metadata protobuf: {0}")]
    MetadataProtobuf(ProtobufError),
    #[error("data length does not match the file size")]
    DataLength,
    /// The metadata's (term, index) is not the zxid in the file name.
    #[error("metadata (term {term}, index {index}) does not match the file name")]
    NameMismatch { term: u64, index: u64 },
    #[error("open failed: {0}")]
    OpenFailed(std::io::Error),
    #[error("reading header: {0}")]
    ReadingHeader(std::io::Error),
    #[error("metadata length exceeds the file")]
    MetadataTooLong,
    #[error("reading metadata: {0}")]
    ReadingMetadata(std::io::Error),
    /// A delta's base (`snapshot.<zxid hex>` beside it) is missing or unusable, `why`
    /// (nested down a chain of deltas): the delta is unusable with it.
    #[error("base snapshot.{zxid:x}: {why}")]
    Base { zxid: u64, why: Box<SnapshotDefect> },
    /// A base whose data is not as long as the data the delta was written over: another
    /// file than that one.
    #[error("its data is {actual} bytes, the delta over it was written over {expected}")]
    BaseLength { expected: u64, actual: u64 },
    /// A delta over a base that is not older than itself (a chain must end).
    #[error("a delta over snapshot.{zxid:x}, which is not older")]
    BaseNotOlder { zxid: u64 },
    #[error("truncated delta header")]
    DeltaHeader,
    /// The ops of a delta, or of a delta down its chain, do not make its data (the message
    /// names the file and what is wrong).
    #[error("delta: {0}")]
    DeltaData(std::io::Error),
}

impl From<StorageError> for raft::Error {
    fn from(e: StorageError) -> raft::Error {
        raft::Error::Store(match e {
            StorageError::Compacted => raft::StorageError::Compacted,
            StorageError::Unavailable => raft::StorageError::Unavailable,
            StorageError::SnapshotTemporarilyUnavailable => {
                raft::StorageError::SnapshotTemporarilyUnavailable
            }
            other => raft::StorageError::Other(Box::new(other)),
        })
    }
}

/// The driver's error: `Other` with the message, as storage errors always were there.
impl From<StorageError> for crate::proto::Error {
    fn from(e: StorageError) -> crate::proto::Error {
        crate::proto::Error::Other(e.to_string())
    }
}
