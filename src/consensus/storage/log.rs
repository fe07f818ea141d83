//! `SledStorage`: the raft log (entries in `wal` segment files; hard state, conf state and
//! log start in sled): open and recovery, persist, compaction, snapshot install, the
//! conversion of the sled layouts before, and its `raft::Storage` impl.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage};

use super::codec::{
    be_u64, decode_entry, key_index, pb, push_sealed, records, seal, start_bytes, unseal,
    KEY_CONF_STATE, KEY_HARD_STATE, KEY_LOG_START,
};
use super::error::{EntryDefect, IoOp, LogOp, StorageError};
use super::fsync::{ensure_dir, sync_dir, FileSyncer};
use super::layout::{log_db_dir, move_old_layout, snapshot_dir};
use super::snapshots::SnapshotStore;
use super::wal::{DurableStart, Wal};

/// sled keeps a page cache per db; the log is read back once for apply, so a modest cache is
/// enough (sled's default is 1 GiB).
const LOG_CACHE_BYTES: u64 = 16 << 20;

/// The tree of the layout before segment files: one value per batch of consecutive
/// entries (see `codec`), converted to segments at open.
const BATCHES_TREE: &str = "batches";
/// The segment files, inside the sled db directory; `WAL_DIR.tmp` while the batches are
/// being converted.
const WAL_DIR: &str = "wal";
/// The tree of the layout before batches, one key per entry: converted at open.
const PER_ENTRY_TREE: &str = "entries";

/// Where a log is cut at open: the first index that goes, why, and how many stored entries
/// go with it.
type Cut = (u64, EntryDefect, u64);

/// A batch value of the per-entry layout's conversion is closed at this many bytes.
const BATCH_BYTES: usize = 7 << 10;

/// Entries copied into segments per write when converting the batch layout, in bytes.
const CONVERT_CHUNK: usize = 64 << 10;

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
    /// The cut entries were a tail older than the snapshot the log starts at, left by a
    /// snapshot install that stopped before clearing the old log (not damage).
    pub stale_tail: bool,
}

/// Raft `Storage` over sled, plus the write side the driver uses (persist, compact, ...).
pub struct SledStorage {
    /// The sled db directory (log dir/keeperd/raftlog), for messages.
    path: PathBuf,
    db: sled::Db,
    /// The entries.
    wal: Wal,
    meta: sled::Tree,
    syncer: Arc<Mutex<FileSyncer>>,
    force_sync: bool,
    /// Cached copies of what is on disk; every write goes to both.
    hard_state: HardState,
    conf_state: ConfState,
    log_start: (u64, u64),
    last_index: u64,
    last_term: u64,
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
        let meta = open_tree("meta")?;
        let syncer = Arc::new(Mutex::new(FileSyncer::open(&path)?));
        // Opened for real by `load`, once the log start is known.
        let wal = Wal::empty(&path.join(WAL_DIR));
        let mut s = SledStorage {
            path,
            db,
            wal,
            meta,
            syncer,
            force_sync,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            log_start: (0, 0),
            last_index: 0,
            last_term: 0,
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
        if !self.has_tree(PER_ENTRY_TREE) {
            return Ok(());
        }
        let at = self.path.clone();
        let sled_err = |err| StorageError::Sled {
            op: LogOp::Convert(at.clone()),
            err,
        };
        let old = self.db.open_tree(PER_ENTRY_TREE).map_err(sled_err)?;
        let batches = self.db.open_tree(BATCHES_TREE).map_err(sled_err)?;
        let mut converted = 0u64;
        if !old.is_empty() {
            let mut clear = sled::Batch::default();
            for k in batches.iter().keys() {
                clear.remove(k.map_err(sled_err)?);
            }
            batches.apply_batch(clear).map_err(sled_err)?;
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
                        batches
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
            batches.apply_batch(out).map_err(sled_err)?;
            self.flush_and_sync(true)?;
        }
        drop(old);
        self.drop_converted(PER_ENTRY_TREE, converted, "one key each to batches")
    }

    /// Drops the tree of a layout whose entries were converted (and made durable), makes
    /// the drop durable, and says so.
    fn drop_converted(
        &mut self,
        tree: &str,
        converted: u64,
        how: &str,
    ) -> Result<(), StorageError> {
        self.db.drop_tree(tree).map_err(|err| StorageError::Sled {
            op: LogOp::Convert(self.path.clone()),
            err,
        })?;
        self.flush_and_sync(true)?;
        tracing::info!(
            "raft log {}: converted {converted} entries from {how}",
            self.path.display()
        );
        Ok(())
    }

    fn has_tree(&self, name: &str) -> bool {
        self.db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
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
        let path = self.path.display().to_string();
        let hs = self.read_meta(KEY_HARD_STATE)?;
        let cs = self.read_meta(KEY_CONF_STATE)?;
        let start = self.read_meta(KEY_LOG_START)?;
        let mut report = OpenReport::default();
        let wal_dir = self.path.join(WAL_DIR);
        let (hs, cs, start) = match (hs, cs, start) {
            (None, None, None) => {
                let batches = match self.has_tree(BATCHES_TREE) {
                    true => !self
                        .db
                        .open_tree(BATCHES_TREE)
                        .map_err(|err| StorageError::Sled {
                            op: LogOp::Scan(at.clone()),
                            err,
                        })?
                        .is_empty(),
                    false => false,
                };
                if batches || Wal::has_segments(&wal_dir)? {
                    return Err(StorageError::EntriesWithoutHardState { path: at });
                }
                let cs = ConfState {
                    voters: voters.to_vec(),
                    ..Default::default()
                };
                self.write_meta_now(&HardState::default(), &cs, (0, 0))?;
                self.wal = Wal::open(&wal_dir, (0, 0))?.0;
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
        let converted_cut = self.convert_batches((si, st))?;

        // Check every entry; the first bad one and all after it go. A segment whose entries
        // are all at or below the log start (left by a compaction) goes; one straddling it
        // stays, its entries below the start ignored.
        let (wal, opened) = Wal::open(&wal_dir, (si, st))?;
        self.wal = wal;
        (self.last_index, self.last_term) = opened.last;
        let mut dirty = false;
        if let Some((idx, why, dropped)) = opened.cut.or(converted_cut) {
            if idx == si + 1 && matches!(why, EntryDefect::TermBelow { .. }) {
                // Entries right after the log start, of a term older than the start's: a
                // snapshot from the leader was installed (the start moved to it) and the
                // process stopped before the old log was cleared. Not damage.
                tracing::info!(
                    "raft log {path}: {dropped} entries from index {idx} on predate the \
                     snapshot the log starts at ({why}): left by an interrupted snapshot \
                     install, removed"
                );
                report.stale_tail = true;
            } else if dropped <= 1 {
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

    /// A log written before segment files keeps its entries as sled values, one per batch
    /// of consecutive entries (`codec`). They are copied into segments written under
    /// `wal.tmp`, made durable, and the directory renamed to `wal` (atomic); only then is
    /// the sled tree dropped. A crash before the rename leaves the tree as the log (the
    /// `.tmp` is removed and the conversion starts again); one after it leaves segments
    /// that are complete, and the tree is dropped. Entries are checked as they are copied:
    /// the first bad one ends the copy (logged), and `Wal::open` checks the copy again.
    fn convert_batches(&mut self, start: (u64, u64)) -> Result<Option<Cut>, StorageError> {
        if !self.has_tree(BATCHES_TREE) {
            return Ok(None);
        }
        let at = self.path.clone();
        let sled_err = |err| StorageError::Sled {
            op: LogOp::Convert(at.clone()),
            err,
        };
        let batches = self.db.open_tree(BATCHES_TREE).map_err(sled_err)?;
        let wal_dir = self.path.join(WAL_DIR);
        let tmp = self.path.join(format!("{WAL_DIR}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| StorageError::io(IoOp::Remove, &tmp, e))?;
        }
        let mut converted = 0u64;
        // The first bad entry: where the log is cut, why, and how many entries go.
        let mut cut: Option<Cut> = None;
        if !batches.is_empty() && !Wal::has_segments(&wal_dir)? {
            let (mut wal, _) = Wal::open(&tmp, start)?;
            let mut last = start;
            let mut chunk: Vec<Entry> = Vec::new();
            let mut chunk_bytes = 0usize;
            for kv in batches.iter() {
                let (k, v) = kv.map_err(sled_err)?;
                let Some(first) = key_index(&k) else {
                    match &mut cut {
                        Some(c) => c.2 += 1,
                        None => cut = Some((last.0 + 1, EntryDefect::KeyNotIndex, 1)),
                    }
                    continue;
                };
                for rec in records(first, &v) {
                    if let Some(c) = &mut cut {
                        c.2 += 1;
                        continue;
                    }
                    let problem = match rec {
                        Err(_) => EntryDefect::TooShort,
                        Ok(r) if r.index <= start.0 => continue,
                        Ok(r) if r.index > last.0 + 1 => EntryDefect::Gap { next: r.index },
                        Ok(r) if r.index <= last.0 => EntryDefect::Overlap { first },
                        Ok(r) => match decode_entry(r.index, r.sealed) {
                            Ok(e) if e.term >= last.1 => {
                                last = (e.index, e.term);
                                chunk_bytes += r.sealed.len();
                                chunk.push(e);
                                if chunk_bytes >= CONVERT_CHUNK {
                                    wal.append(&chunk)?;
                                    chunk.clear();
                                    chunk_bytes = 0;
                                }
                                converted += 1;
                                continue;
                            }
                            Ok(e) => EntryDefect::TermBelow {
                                term: e.term,
                                previous: last.1,
                            },
                            Err(why) => why,
                        },
                    };
                    cut = Some((last.0 + 1, problem, 1));
                }
            }
            wal.append(&chunk)?;
            wal.sync()?;
            drop(wal);
            std::fs::rename(&tmp, &wal_dir).map_err(|e| {
                StorageError::io(
                    IoOp::Rename {
                        to: wal_dir.clone(),
                    },
                    &tmp,
                    e,
                )
            })?;
            sync_dir(&self.path)?;
        }
        drop(batches);
        self.drop_converted(BATCHES_TREE, converted, "sled values to segment files")?;
        Ok(cut)
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
            self.syncer.lock().expect("log syncer").sync()?;
            self.syncs += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Persists one Ready: `entries` (replacing any stored tail from their first index on)
    /// and the hard state; then, if `must_sync` (and force_sync), one fdatasync of the
    /// segment written. A new term or vote is written to sled and made durable first: a
    /// crash between the two leaves the new term with the old log, a state raft allows
    /// (the reverse, entries of a term the hard state has not reached, it does not). A
    /// newer commit alone is written after the entries and not flushed.
    /// Returns whether an fdatasync happened.
    pub fn persist(
        &mut self,
        entries: &[Entry],
        hs: Option<&HardState>,
        must_sync: bool,
    ) -> Result<bool, StorageError> {
        if entries.is_empty() && hs.is_none() {
            return Ok(false);
        }
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
        }
        let mut synced = false;
        let new_term_or_vote =
            hs.is_some_and(|hs| hs.term != self.hard_state.term || hs.vote != self.hard_state.vote);
        if let (Some(hs), true) = (hs, new_term_or_vote) {
            self.put_hard_state(hs.clone())?;
            synced = self.flush_and_sync(false)?;
        }
        if !entries.is_empty() {
            self.wal.append(entries)?;
            self.recent.append(entries);
            if let Some(last) = entries.last() {
                self.last_index = last.index;
                self.last_term = last.term;
            }
            if must_sync && self.force_sync {
                self.wal.sync()?;
                self.syncs += 1;
                synced = true;
            }
        }
        if let (Some(hs), false) = (hs, new_term_or_vote) {
            // The commit alone, after the entries it may cover: it can be re-learnt, and
            // rides on a later flush of sled.
            self.put_hard_state(hs.clone())?;
        }
        Ok(synced)
    }

    /// Records a newer commit index (from a LightReady). Not flushed on its own: the commit
    /// index can be re-learnt, and the next Ready's flush carries it.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let hs = HardState {
            commit,
            ..self.hard_state.clone()
        };
        self.put_hard_state(hs)
    }

    /// Writes a hard state alone (durable with the next flush) and keeps it as the cached one.
    fn put_hard_state(&mut self, hs: HardState) -> Result<(), StorageError> {
        self.meta
            .insert(KEY_HARD_STATE, seal(KEY_HARD_STATE, &pb(&hs)?))
            .map_err(|err| StorageError::Sled {
                op: LogOp::WriteHardState,
                err,
            })?;
        self.hard_state = hs;
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
        let (db, syncer, path) = (self.db.clone(), self.syncer.clone(), self.path.clone());
        let durable: DurableStart = Arc::new(move || {
            db.flush().map_err(|err| StorageError::Sled {
                op: LogOp::Flush(path.clone()),
                err,
            })?;
            syncer.lock().expect("log syncer").sync().map(|_| ())
        });
        self.wal.compact(index, durable);
        Ok(())
    }

    /// Resets the log to a snapshot that is already durable in the snapshot directory: a
    /// follower that received the leader's snapshot, or a log that was lost while its
    /// snapshot survived. Everything in the log is dropped.
    pub fn install_snapshot(&mut self, meta: &SnapshotMetadata) -> Result<(), StorageError> {
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = meta.index;
        // The new start first: segments left by a crash before they are removed hold
        // entries at or below it (removed at open) or a tail after it that raft may keep
        // or overwrite, as any follower's uncommitted tail.
        self.write_meta_now(&hs, meta.get_conf_state(), (meta.index, meta.term))?;
        self.wal.clear()?;
        self.recent.clear();
        self.last_index = meta.index;
        self.last_term = meta.term;
        Ok(())
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
        self.wal.bytes()
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
        self.wal
            .read(low, high, max_size)?
            .ok_or(StorageError::MissingEntries { low, high })
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
        self.wal
            .term(idx)?
            .ok_or(StorageError::MissingEntry { index: idx })
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
    /// (first index, entries, file bytes) of every segment, in order.
    pub(super) fn stored_segments(&self) -> Vec<(u64, u64, u64)> {
        self.wal.segments()
    }
}
