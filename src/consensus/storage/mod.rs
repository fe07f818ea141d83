//! Durable Raft storage: the log's entries in segment files, its hard state, conf state and
//! log start in sled; snapshots in files.
//!
//! ```text
//! <dataLogDir or dataDir>/keeperd/raftlog/       sled db (files: conf, db, blobs/, snap.*)
//!     tree "meta":    "hard_state" -> crc32 | eraftpb.HardState
//!                     "conf_state" -> crc32 | eraftpb.ConfState
//!                     "log_start"  -> crc32 | index (u64 BE) | term (u64 BE)
//!                     (crc32 covers key name | payload)
//!     wal/<first index, 20 digits>.wal   the entries (see `wal`): a checked header, then
//!                     per entry (consecutive indexes) a record
//!                     len (u32 BE) | crc32 (u32 BE) | term (u64 BE) | eraftpb.Entry
//!                     crc32 covers the entry's index | term | entry, so a torn, rotten or
//!                     misplaced entry is detected. The sled layouts before (trees
//!                     "entries" and "batches") are converted at open.
//! <dataDir>/keeperd/snapshots/snapshot.<zxid in hex>   one file per snapshot, written whole:
//!     "KPRSNAP1" | u32 BE meta_len | eraftpb.SnapshotMetadata | u64 BE data_len | data
//!     | crc32 (u32 BE) of everything before it
//!     a delta's data: "KPRDELTA" | base_zxid u64 | base_len u64 | full_len u64 | op*,
//!     op = 0x00 | len u32 | bytes, or 0x01 | off u64 | len u32 (see `delta`)
//! ```
//!
//! `log_start` is the (index, term) of the entry just before the first one kept: the log was
//! compacted up to it (0, 0 for a log that never was). Entries are contiguous from
//! `log_start.index + 1` to `last_index`; the first segment may start at or below the start
//! (its entries there are ignored).
//!
//! Invariants:
//! - A new term or vote is durable in sled before the entries of the same Ready are
//!   written; a Ready's entries (after removing any tail they overwrite) are one `pwrite`
//!   to the newest segment and, with force_sync, one `fdatasync` of it. See
//!   docs/durability.md.
//! - A snapshot file is complete and fsynced (file and directory) before the log is compacted
//!   past its predecessor; compaction writes the new log_start, and a cleaner thread makes
//!   it durable and then removes the segments wholly at or below it.
//! - Nothing read from disk is trusted before its checksum matched.
//!
//! Files:
//! - `layout`: where keeperd's state lives (`keeperd/raftlog`, `keeperd/snapshots`), the move
//!   out of the old `version-2` layout, and `has_state`.
//! - `log`: `SledStorage`: persist, compaction, snapshot install, open (and the conversion of
//!   the sled layouts before), and its `raft::Storage` impl.
//! - `wal`: `Wal`, the segment files.
//! - `error`: `StorageError`, and its conversions into `raft::Error` and `proto::Error`.
//! - `codec`: the checksummed value and record format.
//! - `fsync`: `FileSyncer` (fdatasync of sled's files), `sync_dir`, `wait_unlocked`.
//! - `snapshots`: `SnapshotStore`, the snapshot files.
//! - `delta`: delta snapshot files (literal bytes and copies from a base snapshot), and
//!   `SnapshotData`, which streams any snapshot file's data.
//! - `tests`: the error messages and conversions, against temp dirs.
//! - `delta_tests`: delta snapshots (chains, damage, retention) against expected bytes.
//! - `wal_tests`: the segments against a model log (overwrites, compaction, reopening), and
//!   the conversion of the sled layouts.

mod codec;
mod delta;
#[cfg(test)]
mod delta_tests;
mod error;
mod fsync;
mod layout;
mod log;
mod snapshots;
#[cfg(test)]
mod tests;
mod wal;
#[cfg(test)]
mod wal_tests;

pub use delta::SnapshotData;
pub use error::{EntryDefect, IoOp, LogOp, SnapshotDefect, StorageError};
pub use fsync::{sync_dir, wait_unlocked};
pub use layout::{
    has_state, log_db_dir, snapshot_dir, LOG_DB_DIR, SNAP_DIR, SNAP_PREFIX, STATE_DIR,
};
pub use log::{OpenReport, SledStorage};
pub use snapshots::{MappedSnapshot, SnapshotFile, SnapshotStore, SnapshotWriter};
#[cfg(test)]
pub(crate) use wal::data_end;
