//! Durable Raft storage: the log, hard state and conf state in sled; snapshots in files.
//!
//! ```text
//! <dataLogDir or dataDir>/keeperd/raftlog/       sled db (files: conf, db, blobs/, snap.*)
//!     tree "batches": key = index of the batch's first entry (u64 big-endian)
//!                     value = per entry (consecutive indexes from the key on), a record
//!                     len (u32 BE) | crc32 (u32 BE) | term (u64 BE) | eraftpb.Entry
//!                     crc32 covers the entry's index | term | entry, so a torn, rotten or
//!                     misplaced entry is detected. One persist's entries make one batch
//!                     (split at ~7 KiB). The layout before (tree "entries", one key per
//!                     entry, value = a record without `len`) is converted at open.
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
//! compacted up to it (0, 0 for a log that never was). Entries are contiguous from
//! `log_start.index + 1` to `last_index`; the first batch may start at or below the start
//! (its entries there are ignored).
//!
//! Invariants:
//! - A Ready's entries and any overwritten tail go in one sled batch (atomic), with its hard
//!   state in one transaction when the term or vote changes, then one `flush()` and, with force_sync, one `fdatasync` of sled's `db` file
//!   (plus any new blob file): sled 0.34's flush alone ends in `sync_file_range`, which does
//!   not force the device cache or the file size to disk. See docs/durability.md.
//! - A snapshot file is complete and fsynced (file and directory) before the log is compacted
//!   past its predecessor; compaction writes the new log_start, and a cleaner thread then
//!   removes the batches wholly at or below it.
//! - Nothing read from disk is trusted before its checksum matched.
//!
//! Files:
//! - `layout`: where keeperd's state lives (`keeperd/raftlog`, `keeperd/snapshots`), the move
//!   out of the old `version-2` layout, and `has_state`.
//! - `log`: `SledStorage`, the log, hard state and conf state in sled, and its
//!   `raft::Storage` impl.
//! - `error`: `StorageError`, and its conversions into `raft::Error` and `proto::Error`.
//! - `codec`: the checksummed value format of the sled trees.
//! - `fsync`: `FileSyncer` (fdatasync of sled's files), `sync_dir`, `wait_unlocked`.
//! - `snapshots`: `SnapshotStore`, the snapshot files.
//! - `tests`: the error messages and conversions, against temp dirs.
//! - `batch_tests`: the batches against a model log (overwrites, compaction, reopening), and
//!   the conversion of the per-entry layout.

#[cfg(test)]
mod batch_tests;
mod codec;
mod error;
mod fsync;
mod layout;
mod log;
mod snapshots;
#[cfg(test)]
mod tests;

pub use error::{EntryDefect, IoOp, LogOp, SnapshotDefect, StorageError};
pub use fsync::{sync_dir, wait_unlocked};
pub use layout::{
    has_state, log_db_dir, snapshot_dir, LOG_DB_DIR, SNAP_DIR, SNAP_PREFIX, STATE_DIR,
};
pub use log::{OpenReport, SledStorage};
pub use snapshots::{MappedSnapshot, SnapshotFile, SnapshotStore, SnapshotWriter};
