//! `SledStorage`: the raft log, hard state and conf state in sled (open and recovery,
//! persist, compaction, snapshot install), and its `raft::Storage` impl.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::codec::{
    be_u64, decode_entry, entry_key, entry_term, key_index, pb, push_record, push_sealed,
    record_count, records, seal, start_bytes, unseal, Record, Torn, KEY_CONF_STATE, KEY_HARD_STATE,
    KEY_LOG_START,
};
use super::error::{EntryDefect, LogOp, StorageError};
use super::fsync::{ensure_dir, FileSyncer};
use super::layout::{log_db_dir, move_old_layout, snapshot_dir};
use super::snapshots::SnapshotStore;

/// sled keeps a page cache per db; the log is read back once for apply, so a modest cache is
/// enough (sled's default is 1 GiB).
const LOG_CACHE_BYTES: u64 = 16 << 20;

/// Batches of entries a compaction removes per sled batch on its cleaner thread.
const CLEAN_BATCH: usize = 64;

/// The tree of the log: one value per batch of consecutive entries (see `codec`).
const BATCHES_TREE: &str = "batches";
/// The tree of the layout before batches, one key per entry: converted at open.
const PER_ENTRY_TREE: &str = "entries";

/// A batch value is closed once it holds this many bytes; one persist writes as many
/// values as its entries fill (an entry larger than this is a value of its own). sled
/// splits a leaf page at 17 values and writes a page over 128 KiB (its segment size / 4)
/// as a blob file of its own, which our fdatasync round then also syncs, with its
/// directory: 7 KiB values keep the leaves of the log below that.
const BATCH_BYTES: usize = 7 << 10;

/// Converted batches written per sled batch when converting the per-entry layout.
const CONVERT_BATCH: usize = 256;

/// Bound of `Recent`: the newest persisted entries kept in memory (their data and context
/// bytes), so that applying them and sending them to followers needs no read back from sled.
const RECENT_BYTES: usize = 4 << 20;

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

/// Where the open-time scan cuts the log: the batch under `key` keeps its first `keep`
/// bytes (0: it goes), and every later batch goes.
struct Cut {
    key: sled::IVec,
    keep: usize,
    why: EntryDefect,
}

impl Cut {
    fn whole(key: sled::IVec, why: EntryDefect) -> Cut {
        Cut { key, keep: 0, why }
    }
}

/// A batch value and its key (the index of its first entry).
type SealedBatch = ([u8; 8], Vec<u8>);

/// `entries` (consecutive, non-empty) as batch values under their first index, each closed
/// once it holds `BATCH_BYTES`.
fn seal_batches(entries: &[Entry]) -> Result<Vec<SealedBatch>, StorageError> {
    let mut out: Vec<SealedBatch> = Vec::new();
    for e in entries {
        match out.last_mut() {
            Some((_, v)) if v.len() < BATCH_BYTES => {
                push_record(v, e)?;
            }
            _ => {
                let mut v = Vec::new();
                push_record(&mut v, e)?;
                out.push((entry_key(e.index), v));
            }
        }
    }
    Ok(out)
}

/// Raft `Storage` over sled, plus the write side the driver uses (persist, compact, ...).
pub struct SledStorage {
    /// The sled db directory (log dir/keeperd/raftlog), for messages.
    path: PathBuf,
    db: sled::Db,
    /// The entries, one value per batch (see `codec`).
    batches: sled::Tree,
    meta: sled::Tree,
    syncer: FileSyncer,
    force_sync: bool,
    /// Cached copies of what is on disk; every write goes to both.
    hard_state: HardState,
    conf_state: ConfState,
    log_start: (u64, u64),
    last_index: u64,
    last_term: u64,
    /// Sum of the stored entry values (what `mntr` reports as the log size), before
    /// subtracting what the compaction cleaner removed (`Cleaner::removed_bytes`).
    log_bytes: u64,
    /// Removes compacted entries off the raft thread (see `compact`).
    cleaner: Cleaner,
    /// fdatasync calls made by `persist` (each may cover several files).
    syncs: u64,
    snaps: SnapshotStore,
    /// Copies of the newest persisted entries (see `Recent`).
    recent: Recent,
}

/// The newest entries `persist` wrote, contiguous and ending at the last stored index,
/// within `RECENT_BYTES`. raft-rs reads committed entries back from storage to apply them
/// right after they were persisted (and the leader reads them to send to followers): these
/// copies answer those reads without a sled lookup, checksum and decode per entry. Every
/// write to the stored log (append, overwrite of a tail, compaction, snapshot install) is
/// mirrored here, so a read sees the same entries either way.
#[derive(Default)]
struct Recent {
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Recent {
    fn size(e: &Entry) -> usize {
        e.data.len() + e.context.len() + 32
    }

    /// After `entries` (contiguous, non-empty) were stored, replacing any stored tail from
    /// their first index on.
    fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        while self.entries.back().is_some_and(|e| e.index >= first.index) {
            if let Some(e) = self.entries.pop_back() {
                self.bytes -= Recent::size(&e);
            }
        }
        if self
            .entries
            .back()
            .is_some_and(|e| e.index + 1 != first.index)
        {
            self.clear();
        }
        for e in entries {
            self.bytes += Recent::size(e);
            self.entries.push_back(e.clone());
        }
        while self.bytes > RECENT_BYTES {
            match self.entries.pop_front() {
                Some(e) => self.bytes -= Recent::size(&e),
                None => break,
            }
        }
    }

    /// Drops the entries at or below `index` (compacted).
    fn compact(&mut self, index: u64) {
        while self.entries.front().is_some_and(|e| e.index <= index) {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= Recent::size(&e);
            }
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Position of `index`, if held.
    fn position(&self, index: u64) -> Option<usize> {
        let first = self.entries.front()?.index;
        let at = usize::try_from(index.checked_sub(first)?).ok()?;
        (at < self.entries.len()).then_some(at)
    }

    /// Entries `[low, high)` if all are held, cut at `max_size` as the sled read does (at
    /// least one entry).
    fn slice(&self, low: u64, high: u64, max_size: Option<u64>) -> Option<Vec<Entry>> {
        if low >= high {
            return None;
        }
        let (from, to) = (self.position(low)?, self.position(high - 1)?);
        let mut out = Vec::with_capacity(to + 1 - from);
        let mut size = 0u64;
        for e in self.entries.range(from..=to) {
            size += e.compute_size() as u64;
            if max_size.is_some_and(|max| !out.is_empty() && size > max) {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }

    fn term(&self, index: u64) -> Option<u64> {
        Some(self.entries.get(self.position(index)?)?.term)
    }
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
    ) -> Result<(SledStorage, OpenReport), StorageError> {
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
            .map_err(|err| StorageError::OpenLog {
                path: path.clone(),
                err,
            })?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|err| StorageError::OpenLog {
                path: path.clone(),
                err,
            })
        };
        let batches = open_tree(BATCHES_TREE)?;
        let meta = open_tree("meta")?;
        let syncer = FileSyncer::open(&path)?;
        let mut s = SledStorage {
            path,
            db,
            batches,
            meta,
            syncer,
            force_sync,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            log_start: (0, 0),
            last_index: 0,
            last_term: 0,
            log_bytes: 0,
            cleaner: Cleaner::default(),
            syncs: 0,
            snaps,
            recent: Recent::default(),
        };
        s.convert_per_entry_layout()?;
        let report = s.load(voters)?;
        Ok((s, report))
    }

    /// A log written before batches keeps one key per entry in the `entries` tree. Its
    /// values are the records of a batch without their length prefix, so runs of
    /// consecutive keys become batch values byte for byte, checked by `load` as any batch
    /// (a corrupt or misplaced entry is cut there as before; a key that is no index becomes
    /// a batch key of its own, which `load` cuts at as before). The old tree is the log
    /// until it is dropped: the batches it was converted to are written and made durable
    /// first, and a conversion cut short by a crash starts again from scratch (sled drops
    /// a tree atomically).
    fn convert_per_entry_layout(&mut self) -> Result<(), StorageError> {
        if !self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == PER_ENTRY_TREE.as_bytes())
        {
            return Ok(());
        }
        let at = self.path.clone();
        let sled_err = |err| StorageError::Sled {
            op: LogOp::Convert(at.clone()),
            err,
        };
        let old = self.db.open_tree(PER_ENTRY_TREE).map_err(sled_err)?;
        let mut converted = 0u64;
        if !old.is_empty() {
            let mut clear = sled::Batch::default();
            for k in self.batches.iter().keys() {
                clear.remove(k.map_err(sled_err)?);
            }
            self.batches.apply_batch(clear).map_err(sled_err)?;
            // (first key, index the next entry must have to join, value)
            let mut run: Option<(sled::IVec, Option<u64>, Vec<u8>)> = None;
            let mut out = sled::Batch::default();
            let mut pending = 0;
            for kv in old.iter() {
                let (k, v) = kv.map_err(sled_err)?;
                let index = key_index(&k);
                let joins = matches!(
                    (&run, index),
                    (Some((_, Some(next), value)), Some(i))
                        if i == *next && value.len() + v.len() <= BATCH_BYTES
                );
                if !joins {
                    if let Some((key, _, value)) = run.take() {
                        out.insert(key, value);
                        pending += 1;
                    }
                    if pending >= CONVERT_BATCH {
                        self.batches
                            .apply_batch(std::mem::take(&mut out))
                            .map_err(sled_err)?;
                        pending = 0;
                    }
                    run = Some((k, index, Vec::new()));
                }
                if let Some((_, next, value)) = &mut run {
                    push_sealed(value, index.unwrap_or(0), &v)?;
                    *next = index.map(|i| i + 1);
                }
                converted += 1;
            }
            if let Some((key, _, value)) = run {
                out.insert(key, value);
            }
            self.batches.apply_batch(out).map_err(sled_err)?;
            self.flush_and_sync(true)?;
        }
        drop(old);
        self.db.drop_tree(PER_ENTRY_TREE).map_err(sled_err)?;
        self.flush_and_sync(true)?;
        tracing::info!(
            "raft log {}: converted {converted} entries from one key each to batches",
            self.path.display()
        );
        Ok(())
    }

    fn read_meta(&self, key: &'static str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = || self.path.clone();
        let Some(v) = self.meta.get(key).map_err(|err| StorageError::Sled {
            op: LogOp::ReadMeta { key, path: path() },
            err,
        })?
        else {
            return Ok(None);
        };
        let payload = unseal(key.as_bytes(), &v)
            .ok_or_else(|| StorageError::CorruptMeta { key, path: path() })?;
        Ok(Some(payload.to_vec()))
    }

    fn load(&mut self, voters: &[u64]) -> Result<OpenReport, StorageError> {
        let at = self.path.clone();
        let sled_err = |op: fn(PathBuf) -> LogOp, err| StorageError::Sled {
            op: op(at.clone()),
            err,
        };
        let path = self.path.display().to_string();
        let hs = self.read_meta(KEY_HARD_STATE)?;
        let cs = self.read_meta(KEY_CONF_STATE)?;
        let start = self.read_meta(KEY_LOG_START)?;
        let mut report = OpenReport::default();
        let (hs, cs, start) = match (hs, cs, start) {
            (None, None, None) => {
                if !self.batches.is_empty() {
                    return Err(StorageError::EntriesWithoutHardState { path: at });
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
            _ => return Err(StorageError::PartialMeta { path: at }),
        };
        let decode_err = |what, err| StorageError::DecodeMeta {
            what,
            path: at.clone(),
            err,
        };
        self.hard_state =
            HardState::parse_from_bytes(&hs).map_err(|e| decode_err("hard state", e))?;
        self.conf_state =
            ConfState::parse_from_bytes(&cs).map_err(|e| decode_err("conf state", e))?;
        let (Some(si), Some(st)) = (be_u64(&start), start.get(8..).and_then(be_u64)) else {
            return Err(StorageError::ShortLogStart { path: at });
        };
        self.log_start = (si, st);
        self.last_index = si;
        self.last_term = st;

        // Check every entry; the first bad one and all after it go. A batch whose entries
        // are all at or below the log start (left by a compaction) goes; one straddling it
        // stays, its entries below the start ignored.
        let mut stale = sled::Batch::default();
        let mut cut: Option<Cut> = None;
        'scan: for kv in self.batches.iter() {
            let (k, v) = kv.map_err(|e| sled_err(LogOp::Scan, e))?;
            let Some(first) = key_index(&k) else {
                cut = Some(Cut::whole(k, EntryDefect::KeyNotIndex));
                break;
            };
            let mut live = false;
            for rec in records(first, &v) {
                let expect = self.last_index + 1;
                let (offset, why) = match rec {
                    Err(torn) => (torn.offset, EntryDefect::TooShort),
                    Ok(r) if r.index <= si => continue,
                    Ok(r) if r.index > expect => {
                        cut = Some(Cut::whole(k, EntryDefect::Gap { next: r.index }));
                        break 'scan;
                    }
                    Ok(r) if r.index < expect => {
                        cut = Some(Cut::whole(k, EntryDefect::Overlap { first }));
                        break 'scan;
                    }
                    Ok(r) => match entry_term(r.index, r.sealed) {
                        Ok(t) if t >= self.last_term => {
                            self.last_index = r.index;
                            self.last_term = t;
                            live = true;
                            continue;
                        }
                        Ok(t) => {
                            let previous = self.last_term;
                            (r.offset, EntryDefect::TermBelow { term: t, previous })
                        }
                        Err(why) => (r.offset, why),
                    },
                };
                let keep = if live { offset } else { 0 };
                cut = Some(Cut { key: k, keep, why });
                break 'scan;
            }
            if live {
                self.log_bytes += v.len() as u64;
            } else {
                stale.remove(k);
            }
        }
        let mut dirty = false;
        if let Some(Cut { key, keep, why }) = cut {
            let idx = self.last_index + 1;
            let mut batch = sled::Batch::default();
            let mut dropped = 0u64;
            for kv in self.batches.range(key.clone()..) {
                let (k, v) = kv.map_err(|e| sled_err(LogOp::Scan, e))?;
                if k == key && keep > 0 {
                    dropped += record_count(&v[keep..]).max(1);
                    batch.insert(k, v.subslice(0, keep));
                    self.log_bytes += keep as u64;
                } else {
                    dropped += record_count(&v).max(u64::from(k == key));
                    batch.remove(k);
                }
            }
            self.batches
                .apply_batch(batch)
                .map_err(|e| sled_err(LogOp::Truncate, e))?;
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
        self.batches
            .apply_batch(stale)
            .map_err(|e| sled_err(LogOp::Clean, e))?;
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
    ) -> Result<(), StorageError> {
        let mut b = sled::Batch::default();
        b.insert(KEY_HARD_STATE, seal(KEY_HARD_STATE, &pb(hs)?));
        b.insert(KEY_CONF_STATE, seal(KEY_CONF_STATE, &pb(cs)?));
        b.insert(KEY_LOG_START, seal(KEY_LOG_START, &start_bytes(start)));
        self.meta.apply_batch(b).map_err(|err| StorageError::Sled {
            op: LogOp::WriteMeta(self.path.clone()),
            err,
        })?;
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
    fn flush_and_sync(&mut self, always: bool) -> Result<bool, StorageError> {
        self.db.flush().map_err(|err| StorageError::Sled {
            op: LogOp::Flush(self.path.clone()),
            err,
        })?;
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
    ) -> Result<bool, StorageError> {
        if entries.is_empty() && hs.is_none() {
            return Ok(false);
        }
        let mut batch = sled::Batch::default();
        let mut removed_bytes = 0u64;
        let mut added_bytes = 0u64;
        if let Some(first) = entries.first() {
            if first.index <= self.log_start.0 {
                return Err(StorageError::AppendCompacted {
                    index: first.index,
                    compacted: self.log_start.0,
                });
            }
            if first.index > self.last_index + 1 {
                return Err(StorageError::AppendGap {
                    index: first.index,
                    last: self.last_index,
                });
            }
            if first.index <= self.last_index {
                // A new leader overwrote our uncommitted tail: the batch holding its first
                // index keeps the entries before it (unless they are all compacted), every
                // later batch goes.
                let from = entry_key(first.index);
                if let Some(kv) = self.batches.range(..from).next_back() {
                    let (k, v) = kv.map_err(read_err)?;
                    let start = key_index(&k).ok_or(StorageError::KeyNotIndex)?;
                    if let Some(r) = find_record(start, &v, first.index)? {
                        if first.index > self.log_start.0 + 1 {
                            removed_bytes += (v.len() - r.offset) as u64;
                            batch.insert(k, v.subslice(0, r.offset));
                        } else {
                            removed_bytes += v.len() as u64;
                            batch.remove(k);
                        }
                    }
                }
                for kv in self.batches.range(from..) {
                    let (k, v) = kv.map_err(read_err)?;
                    removed_bytes += v.len() as u64;
                    batch.remove(k);
                }
            }
            for (k, v) in seal_batches(entries)? {
                added_bytes += v.len() as u64;
                batch.insert(&k, v);
            }
        }
        let hs_value = match hs {
            Some(hs) => Some(seal(KEY_HARD_STATE, &pb(hs)?)),
            None => None,
        };
        // A new term or vote goes in one transaction with the entries (atomic across the
        // two trees). Otherwise the hard state differs at most in its commit index, which
        // needs no atomicity (it can be re-learnt; `load` lowers one beyond the log end):
        // the entries as one batch, then the commit, in that order, both before the flush
        // and fdatasync below. A sled transaction over two trees costs several times the
        // batch (it reads every key it writes), and this is the path of every write.
        let new_term_or_vote =
            hs.is_some_and(|hs| hs.term != self.hard_state.term || hs.vote != self.hard_state.vote);
        if new_term_or_vote {
            let res: Result<(), TransactionError<()>> =
                (&self.batches, &self.meta).transaction(|(et, mt)| {
                    et.apply_batch(&batch)?;
                    if let Some(v) = &hs_value {
                        mt.insert(KEY_HARD_STATE, v.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                });
            res.map_err(|err| StorageError::Transaction {
                what: "writing raft log",
                path: self.path.clone(),
                err,
            })?;
        } else {
            if !entries.is_empty() {
                self.batches
                    .apply_batch(batch)
                    .map_err(|err| StorageError::Sled {
                        op: LogOp::Append,
                        err,
                    })?;
            }
            if let Some(v) = hs_value {
                self.put_hard_state(v)?;
            }
        }
        self.recent.append(entries);
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
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        self.hard_state.commit = commit;
        self.put_hard_state(seal(KEY_HARD_STATE, &pb(&self.hard_state)?))
    }

    /// Writes a sealed hard state alone (durable with the next flush).
    fn put_hard_state(&self, sealed: Vec<u8>) -> Result<(), StorageError> {
        self.meta
            .insert(KEY_HARD_STATE, sealed)
            .map_err(|err| StorageError::Sled {
                op: LogOp::WriteHardState,
                err,
            })?;
        Ok(())
    }

    /// Records the configuration after an applied conf change.
    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), StorageError> {
        let v = seal(KEY_CONF_STATE, &pb(&cs)?);
        self.meta
            .insert(KEY_CONF_STATE, v)
            .map_err(|err| StorageError::Sled {
                op: LogOp::WriteConfState,
                err,
            })?;
        self.conf_state = cs;
        self.flush_and_sync(false)?;
        Ok(())
    }

    /// Drops the log up to and including `index` (which must be applied and covered by a
    /// durable snapshot). The new log start is written at once (durable with the next
    /// flush); the batches whose entries are all at or below it are then deleted by a
    /// cleaner thread, a few at a time, off the raft thread. A batch straddling the new
    /// start stays until a later compaction passes its end: nothing reads below the log
    /// start. A restart deletes whatever a crash left there (`load`: "left by a
    /// compaction").
    pub fn compact(&mut self, index: u64) -> Result<(), StorageError> {
        if index <= self.log_start.0 {
            return Ok(());
        }
        if index > self.last_index {
            return Err(StorageError::CompactBeyondLog {
                index,
                last: self.last_index,
            });
        }
        let term = self
            .term(index)
            .map_err(|err| StorageError::CompactTerm { index, err })?;
        let start = seal(KEY_LOG_START, &start_bytes((index, term)));
        self.meta
            .insert(KEY_LOG_START, start)
            .map_err(|err| StorageError::Sled {
                op: LogOp::WriteLogStart,
                err,
            })?;
        self.log_start = (index, term);
        self.recent.compact(index);
        self.cleaner.remove(&self.batches, index);
        Ok(())
    }

    /// Resets the log to a snapshot that is already durable in the snapshot directory: a
    /// follower that received the leader's snapshot, or a log that was lost while its
    /// snapshot survived. Everything in the log is dropped.
    pub fn install_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for k in self.batches.iter().keys() {
            batch.remove(k.map_err(read_err)?);
        }
        self.batches
            .apply_batch(batch)
            .map_err(|err| StorageError::Sled {
                op: LogOp::Reset,
                err,
            })?;
        self.recent.clear();
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        self.last_index = meta.index;
        self.last_term = meta.term;
        // Empty: `log_bytes()` subtracts what the cleaner removed.
        self.log_bytes = self.cleaner.removed_bytes.load(Ordering::Relaxed);
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
    pub fn read_entries(&self, low: u64, high: u64) -> Result<Vec<Entry>, StorageError> {
        self.entries(low, high, None, GetEntriesContext::empty(false))
            .map_err(|err| StorageError::ReadEntries { low, high, err })
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
            .saturating_sub(self.cleaner.removed_bytes.load(Ordering::Relaxed))
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

/// Deletes compacted batches on its own thread (started by the first compaction), one
/// range per compaction, `CLEAN_BATCH` per sled batch. Stopped and joined when the log is
/// dropped: what it had not deleted yet, the next open does.
#[derive(Default)]
struct Cleaner {
    /// Sum of the values deleted so far.
    removed_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Sends "delete every entry at or below this index".
    to: Option<std::sync::mpsc::Sender<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Cleaner {
    fn remove(&mut self, batches: &sled::Tree, through: u64) {
        if self.to.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let batches = batches.clone();
            let removed = self.removed_bytes.clone();
            let stop = self.stop.clone();
            let spawned = std::thread::Builder::new()
                .name("raft-log-clean".into())
                .spawn(move || {
                    while let Ok(through) = rx.recv() {
                        if let Err(err) = clean(&batches, through, &removed, &stop) {
                            // Left for the next open to delete; a failing db fails the
                            // raft thread's next flush anyway.
                            tracing::error!("deleting compacted raft log entries: {err}");
                        }
                    }
                });
            match spawned {
                Ok(h) => {
                    self.thread = Some(h);
                    self.to = Some(tx);
                }
                Err(e) => {
                    tracing::warn!("no raft log cleaner thread ({e}); compacted entries stay until the next open");
                    return;
                }
            }
        }
        if let Some(tx) = &self.to {
            let _ = tx.send(through);
        }
    }
}

impl Drop for Cleaner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.to = None;
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

/// Deletes the batches whose entries are all at or below `through`, `CLEAN_BATCH` at a
/// time, until none is left or `stop` is set. The one batch that may straddle `through`
/// stays. (The raft thread never rewrites a batch this removes: it only rewrites the batch
/// holding the first index of an overwritten tail, which is above the log start.)
fn clean(
    batches: &sled::Tree,
    through: u64,
    removed: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(), sled::Error> {
    let end = entry_key(through);
    while !stop.load(Ordering::Relaxed) {
        let mut batch = sled::Batch::default();
        let mut bytes = 0u64;
        let mut n = 0;
        for kv in batches.range(..=end).take(CLEAN_BATCH) {
            let (k, v) = kv?;
            if key_index(&k).is_some_and(|first| first + record_count(&v) > through + 1) {
                break;
            }
            bytes += v.len() as u64;
            batch.remove(k);
            n += 1;
        }
        if n == 0 {
            break;
        }
        batches.apply_batch(batch)?;
        removed.fetch_add(bytes, Ordering::Relaxed);
    }
    Ok(())
}

/// A sled error while reading entries to replace or remove them.
fn read_err(err: sled::Error) -> StorageError {
    StorageError::Sled {
        op: LogOp::Read,
        err,
    }
}

/// A record whose length runs past its batch value, as a read's error.
fn torn_entry(torn: Torn) -> StorageError {
    StorageError::BadEntry {
        index: torn.index,
        defect: EntryDefect::TooShort,
    }
}

/// The record of `index` in the batch value stored under `first`, if it holds it.
fn find_record(first: u64, value: &[u8], index: u64) -> Result<Option<Record<'_>>, StorageError> {
    for rec in records(first, value) {
        let r = rec.map_err(torn_entry)?;
        if r.index == index {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The read side raft-rs uses, typed; the `raft::Storage` impl below converts the errors.
impl SledStorage {
    fn entries_in(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.log_start.0 {
            return Err(StorageError::Compacted);
        }
        if high > self.last_index + 1 || low > high {
            return Err(StorageError::Unavailable);
        }
        if let Some(held) = self.recent.slice(low, high, max_size) {
            return Ok(held);
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        // From the batch holding `low` (the last one starting at or below it).
        let from = match self.batches.range(..=entry_key(low)).next_back() {
            Some(kv) => kv.map_err(StorageError::LogRead)?.0,
            None => return Err(StorageError::MissingEntries { low, high }),
        };
        for kv in self.batches.range(from..sled::IVec::from(&entry_key(high))) {
            let (k, v) = kv.map_err(StorageError::LogRead)?;
            let first = key_index(&k).ok_or(StorageError::KeyNotIndex)?;
            for rec in records(first, &v) {
                let r = rec.map_err(torn_entry)?;
                if r.index < low {
                    continue;
                }
                if r.index >= high {
                    break;
                }
                let expect = low + out.len() as u64;
                if r.index != expect {
                    return Err(StorageError::LogGap { index: expect });
                }
                size += r.sealed.len() as u64;
                if let Some(max) = max_size {
                    if !out.is_empty() && size > max {
                        return Ok(out);
                    }
                }
                let e =
                    decode_entry(r.index, r.sealed).map_err(|defect| StorageError::BadEntry {
                        index: r.index,
                        defect,
                    })?;
                out.push(e);
            }
        }
        if out.len() as u64 != high - low {
            return Err(StorageError::MissingEntries { low, high });
        }
        Ok(out)
    }

    fn term_of(&self, idx: u64) -> Result<u64, StorageError> {
        if idx == self.log_start.0 {
            return Ok(self.log_start.1);
        }
        if idx < self.log_start.0 {
            return Err(StorageError::Compacted);
        }
        if idx > self.last_index {
            return Err(StorageError::Unavailable);
        }
        if idx == self.last_index {
            return Ok(self.last_term);
        }
        if let Some(term) = self.recent.term(idx) {
            return Ok(term);
        }
        let missing = StorageError::MissingEntry { index: idx };
        let Some(kv) = self.batches.range(..=entry_key(idx)).next_back() else {
            return Err(missing);
        };
        let (k, v) = kv.map_err(StorageError::LogRead)?;
        let first = key_index(&k).ok_or(StorageError::KeyNotIndex)?;
        let r = find_record(first, &v, idx)?.ok_or(missing)?;
        entry_term(idx, r.sealed).map_err(|defect| StorageError::BadEntry { index: idx, defect })
    }

    /// The newest snapshot that verifies, for a follower behind the compacted log. It must
    /// list `to` as a member: a joining server learns its membership from it, and raft-rs
    /// drops a snapshot whose configuration does not contain the receiver (the leader
    /// forces a newer snapshot; see `Node::reconcile`).
    fn snapshot_for(&self, request_index: u64, to: u64) -> Result<Snapshot, StorageError> {
        let files = self.snaps.list()?;
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
        Err(StorageError::SnapshotTemporarilyUnavailable)
    }
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
        Ok(self.entries_in(low, high, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        Ok(self.term_of(idx)?)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.log_start.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    /// See `snapshot_for`.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        Ok(self.snapshot_for(request_index, to)?)
    }
}

#[cfg(test)]
impl SledStorage {
    /// (first index, entries, value bytes) of every stored batch, in order.
    pub(super) fn stored_batches(&self) -> Vec<(u64, u64, usize)> {
        self.batches
            .iter()
            .map(|kv| {
                let (k, v) = kv.expect("read batch");
                let first = key_index(&k).expect("index key");
                (first, record_count(&v), v.len())
            })
            .collect()
    }
}
