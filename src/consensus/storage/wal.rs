//! `Wal`: the raft log's entries in append-only segment files.
//!
//! ```text
//! <log dir>/keeperd/raftlog/wal/<index of the first entry, 20 digits>.wal
//!     "KPRWAL01" | first index (u64 BE) | crc32 of the 16 bytes before (u32 BE)
//!     then one record per entry, consecutive indexes from the first on:
//!     len (u32 BE) | crc32 (u32 BE) | term (u64 BE) | eraftpb.Entry
//!     (the records of `codec`; the crc32 covers the entry's index | term | entry)
//! ```
//!
//! One persist is one `pwrite` at the end of the newest segment and, when it must be
//! durable, one fdatasync of that file: no page cache, B-tree or IO threads in between (the
//! log was sled values before; see `log`'s conversion). A segment closes once it holds
//! `SEGMENT_BYTES`; a new one starts with the next persist. A new leader's overwrite of the
//! tail truncates the segment holding its first index and removes the later ones. Compaction
//! removes whole segments below the log start, on a thread of its own, after the log start
//! is durable in sled (`Deleter`). Opening checks every record: the first torn, corrupt,
//! misplaced or older-term record cuts the log there (the segment is truncated, later
//! segments removed), as the sled layout did.
//!
//! Segments are zero-filled ahead of need (`Prepared`, file `next.wal.zeroed` until the log
//! rolls over to it and renames it), so a persist overwrites zeros instead of growing the
//! file and its fdatasync has no file system metadata to commit. Where the records end, the
//! rest of the file is zeros: at open a zero tail is free space, while anything else after
//! the last good record is damage, as before.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use raft::prelude::Entry;

use super::codec::{
    crc, decode_entry, entry_term, push_record, record_count, records, records_end, RECORD_LEN,
};
use super::error::{EntryDefect, IoOp, StorageError};
use super::fsync::{ensure_dir, sync_dir};

const MAGIC: &[u8; 8] = b"KPRWAL01";
/// Magic, first index, crc32.
pub(super) const HEADER: u64 = 20;
/// A segment takes no more persists once it holds this many bytes (small in unit tests, so
/// that they cross segments).
#[cfg(not(test))]
const SEGMENT_BYTES: u64 = 16 << 20;
#[cfg(test)]
const SEGMENT_BYTES: u64 = 64 << 10;
const SUFFIX: &str = ".wal";
/// The next segment, zero-filled ahead of need (`Prepared`); renamed to its segment name
/// when the log rolls over to it.
const PREPARED_NAME: &str = "next.wal.zeroed";
/// Bytes zero-filled in a prepared segment: a segment closes once it holds `SEGMENT_BYTES`,
/// so the last persist into it may run past that by one Ready.
const PREPARED_BYTES: u64 = HEADER + SEGMENT_BYTES + SEGMENT_BYTES / 16;
/// Zeros written per write while preparing.
const ZERO_CHUNK: usize = 1 << 20;

/// One segment file: entries `first ..= first + offsets.len() - 1`.
struct Segment {
    first: u64,
    path: PathBuf,
    file: File,
    /// Where each record starts in the file.
    offsets: Vec<u64>,
    /// End of the last record (the file's length).
    len: u64,
    /// Written since its last fdatasync.
    unsynced: bool,
}

impl Segment {
    fn count(&self) -> u64 {
        self.offsets.len() as u64
    }

    /// Index of the last record, or `first - 1` when it holds none.
    fn last(&self) -> u64 {
        self.first + self.count() - 1
    }

    fn holds(&self, index: u64) -> bool {
        index >= self.first && index - self.first < self.count()
    }

    /// The end (exclusive index) of a read of records from `from` up to `to` that stops
    /// once `max` bytes are passed: the record that passes it is included (as `read`
    /// returns it when it is the first), no record after it is read.
    fn span_end(&self, from: u64, to: u64, max: Option<u64>) -> u64 {
        let Some(max) = max else {
            return to;
        };
        let start = self.offsets[(from - self.first) as usize];
        let rest = &self.offsets[(from - self.first) as usize..(to - self.first) as usize];
        // Records whose start is within `max` bytes of `start`: every one of them may
        // still fit, the first starting beyond cannot.
        let within = rest.partition_point(|&o| o - start <= max);
        from + (within as u64).max(1)
    }

    /// The bytes of records `[from, to)` (indexes), one read.
    fn read_span(&self, from: u64, to: u64) -> Result<Vec<u8>, StorageError> {
        let start = self.offsets[(from - self.first) as usize];
        let end = match self.offsets.get((to - self.first) as usize) {
            Some(&o) => o,
            None => self.len,
        };
        let mut buf = vec![0u8; (end - start) as usize];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| StorageError::io(IoOp::ReadLog, &self.path, e))?;
        Ok(buf)
    }
}

/// What opening the segments found.
#[derive(Debug, Default)]
pub(super) struct Opened {
    /// Index and term of the last good entry (the log start when none is above it).
    pub last: (u64, u64),
    /// Where the log was cut, why, and how many stored entries went.
    pub cut: Option<(u64, EntryDefect, u64)>,
}

/// The segment files of one log.
pub(super) struct Wal {
    dir: PathBuf,
    segs: Vec<Segment>,
    /// A segment was created or removed since the directory's last fsync.
    dir_dirty: bool,
    deleter: Deleter,
    prepared: Prepared,
}

fn segment_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

fn header(first: u64) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&first.to_be_bytes());
    let sum = crc(&[&h[..16]]);
    h[16..].copy_from_slice(&sum);
    h
}

/// The segment files in `dir` (none if it does not exist), by first index; other files are
/// logged and ignored.
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let listing = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io(IoOp::ReadDir("raft log"), dir, e)),
    };
    let mut names = Vec::new();
    for ent in listing {
        let ent = ent.map_err(|e| StorageError::io(IoOp::List, dir, e))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name == PREPARED_NAME {
            continue;
        }
        match name
            .strip_suffix(SUFFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            Some(first) => names.push((first, ent.path())),
            None => tracing::warn!(
                "raft log {}: ignoring {name}, not a segment file",
                dir.display()
            ),
        }
    }
    names.sort();
    Ok(names)
}

fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(IoOp::Remove, path, e)),
    }
}

impl Wal {
    /// No segments, nothing on disk yet (a placeholder until `open`).
    pub(super) fn empty(dir: &Path) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            segs: Vec::new(),
            dir_dirty: false,
            deleter: Deleter::default(),
            prepared: Prepared::default(),
        }
    }

    /// Whether `dir` holds any segment file.
    pub(super) fn has_segments(dir: &Path) -> Result<bool, StorageError> {
        Ok(!segment_files(dir)?.is_empty())
    }

    /// Opens (creating `dir` if needed) and checks every record above `start` (the log
    /// start: entries at or below it are compacted, and a segment wholly below it is
    /// removed). The first bad record and everything after it are removed.
    pub(super) fn open(dir: &Path, start: (u64, u64)) -> Result<(Wal, Opened), StorageError> {
        ensure_dir(dir, "raft log segment directory")?;
        let names = segment_files(dir)?;
        let mut wal = Wal::empty(dir);
        let mut opened = Opened {
            last: start,
            cut: None,
        };
        for (i, (first, path)) in names.iter().enumerate() {
            let (first, path) = (*first, path.clone());
            // Wholly at or below the log start (the next segment starts at most one past
            // it): left by a compaction whose files were not all removed yet. Removed
            // unread: its records are not the log any more, and a bad one among them must
            // not cut the log that follows.
            if names
                .get(i + 1)
                .is_some_and(|(next, _)| *next <= start.0 + 1)
            {
                remove(&path)?;
                wal.dir_dirty = true;
                continue;
            }
            let data = fs::read(&path).map_err(|e| StorageError::io(IoOp::ReadLog, &path, e))?;
            let (seg, defect) = check_segment(first, path, &data, start.0, &mut opened.last)?;
            match defect {
                None if seg.count() > 0 && seg.last() <= start.0 => {
                    // Left by a compaction.
                    remove(&seg.path)?;
                    wal.dir_dirty = true;
                }
                None => wal.segs.push(seg),
                Some((at, why)) => {
                    let idx = opened.last.0 + 1;
                    let mut dropped = record_count(data.get(at as usize..).unwrap_or(&[])).max(1);
                    let mut seg = seg;
                    if !seg.offsets.is_empty() && at > HEADER {
                        seg.file
                            .set_len(at)
                            .map_err(|e| StorageError::io(IoOp::Truncate, &seg.path, e))?;
                        seg.file
                            .sync_data()
                            .map_err(|e| StorageError::io(IoOp::SyncFile, &seg.path, e))?;
                        seg.len = at;
                        wal.segs.push(seg);
                    } else {
                        remove(&seg.path)?;
                        wal.dir_dirty = true;
                    }
                    for (_, later) in &names[i + 1..] {
                        if let Ok(d) = fs::read(later) {
                            dropped += record_count(d.get(HEADER as usize..).unwrap_or(&[]));
                        }
                        remove(later)?;
                        wal.dir_dirty = true;
                    }
                    opened.cut = Some((idx, why, dropped));
                    break;
                }
            }
        }
        wal.sync()?;
        Ok((wal, opened))
    }

    /// Index of the last stored record, if any.
    fn last_stored(&self) -> Option<u64> {
        self.segs
            .iter()
            .rev()
            .find(|s| s.count() > 0)
            .map(|s| s.last())
    }

    /// Appends `entries` (consecutive), first removing every stored entry from their first
    /// index on. Returns (bytes removed, bytes added).
    pub(super) fn append(&mut self, entries: &[Entry]) -> Result<(u64, u64), StorageError> {
        let Some(first) = entries.first() else {
            return Ok((0, 0));
        };
        // The first append of this process starts preparing the next segment (a log
        // opened only to be read never does).
        if !self.prepared.started {
            self.prepared.start(&self.dir);
        }
        let mut removed = 0;
        if self.last_stored().is_some_and(|last| first.index <= last) {
            removed = self.truncate_from(first.index)?;
        }
        let roll = match self.segs.last() {
            None => true,
            Some(s) => s.len >= SEGMENT_BYTES || s.last() + 1 != first.index,
        };
        if roll {
            self.create(first.index)?;
        }
        let seg = self.segs.last_mut().expect("a segment");
        let mut buf = Vec::with_capacity(entries.len() * 64);
        let mut offsets = Vec::with_capacity(entries.len());
        for e in entries {
            offsets.push(seg.len + buf.len() as u64);
            push_record(&mut buf, e)?;
        }
        seg.file
            .write_all_at(&buf, seg.len)
            .map_err(|e| StorageError::io(IoOp::WriteLog, &seg.path, e))?;
        seg.len += buf.len() as u64;
        seg.offsets.extend(offsets);
        seg.unsynced = true;
        Ok((removed, buf.len() as u64))
    }

    fn create(&mut self, first: u64) -> Result<(), StorageError> {
        let path = self.dir.join(segment_name(first));
        // A segment of that name holds nothing live (its entries were removed from the
        // log): start it again.
        remove(&path)?;
        let from = self.dir.join(PREPARED_NAME);
        let prepared = self
            .prepared
            .take()
            .and_then(|file| match fs::rename(&from, &path) {
                Ok(()) => Some(file),
                Err(e) => {
                    tracing::warn!(
                        "raft log: could not use the prepared segment {}: {e}; creating {}",
                        from.display(),
                        path.display()
                    );
                    None
                }
            });
        let file = match prepared {
            Some(file) => file,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| StorageError::io(IoOp::Open, &path, e))?,
        };
        self.prepared.start(&self.dir);
        file.write_all_at(&header(first), 0)
            .map_err(|e| StorageError::io(IoOp::WriteLog, &path, e))?;
        self.segs.push(Segment {
            first,
            path,
            file,
            offsets: Vec::new(),
            len: HEADER,
            unsynced: true,
        });
        self.dir_dirty = true;
        Ok(())
    }

    /// Removes the entries from `index` on. Returns the bytes removed.
    fn truncate_from(&mut self, index: u64) -> Result<u64, StorageError> {
        let mut removed = 0;
        while let Some(seg) = self.segs.last_mut() {
            if seg.first >= index {
                removed += seg.len - HEADER;
                remove(&seg.path)?;
                self.segs.pop();
                self.dir_dirty = true;
                continue;
            }
            if seg.holds(index) {
                let at = seg.offsets[(index - seg.first) as usize];
                seg.file
                    .set_len(at)
                    .map_err(|e| StorageError::io(IoOp::Truncate, &seg.path, e))?;
                removed += seg.len - at;
                seg.len = at;
                seg.offsets.truncate((index - seg.first) as usize);
                seg.unsynced = true;
            }
            break;
        }
        // Later segments must be gone before entries that replace theirs are acknowledged.
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(removed)
    }

    /// fdatasyncs every segment written since its last sync (and the directory after a
    /// segment was created or removed). Returns how many files were synced.
    pub(super) fn sync(&mut self) -> Result<u32, StorageError> {
        let started = std::time::Instant::now();
        let mut n = 0;
        for seg in self.segs.iter_mut().filter(|s| s.unsynced) {
            seg.file
                .sync_data()
                .map_err(|e| StorageError::io(IoOp::SyncFile, &seg.path, e))?;
            seg.unsynced = false;
            n += 1;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
            n += 1;
        }
        crate::summary::FSYNC_TIME.record(started.elapsed().as_millis() as u64);
        Ok(n)
    }

    /// Hands every segment whose entries are all at or below `through` (never the newest)
    /// to the deleter, which removes them once `durable` (making the new log start durable)
    /// has run. Returns their bytes.
    pub(super) fn compact(&mut self, through: u64, durable: DurableStart) -> u64 {
        let mut gone = Vec::new();
        let mut bytes = 0;
        while self.segs.len() > 1 && self.segs[0].last() <= through {
            let seg = self.segs.remove(0);
            bytes += seg.len - HEADER;
            gone.push(seg.path);
        }
        if !gone.is_empty() {
            self.deleter.delete(gone, durable, self.dir.clone());
        }
        bytes
    }

    /// Removes every segment (the log was replaced by a snapshot, durable already).
    pub(super) fn clear(&mut self) -> Result<(), StorageError> {
        for seg in self.segs.drain(..) {
            remove(&seg.path)?;
        }
        sync_dir(&self.dir)?;
        self.dir_dirty = false;
        Ok(())
    }

    fn segment_of(&self, index: u64) -> Option<&Segment> {
        let at = self.segs.partition_point(|s| s.first <= index);
        let seg = self.segs.get(at.checked_sub(1)?)?;
        seg.holds(index).then_some(seg)
    }

    /// Entries `[low, high)`, cut at `max_size` bytes of records (at least one entry);
    /// `None` when one of them is not stored.
    pub(super) fn read(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Option<Vec<Entry>>, StorageError> {
        // Sized for what is returned, not for what is asked (raft-rs asks for every
        // committed entry at once while replaying a log).
        let mut out = Vec::with_capacity((high - low).min(1024) as usize);
        // Bytes of the records taken so far, length prefixes included (as `span_end`).
        let mut size = 0u64;
        let mut next = low;
        while next < high {
            let Some(seg) = self.segment_of(next) else {
                return Ok(None);
            };
            let left = max_size.map(|max| max.saturating_sub(size));
            let to = seg.span_end(next, high.min(seg.last() + 1), left);
            let span = seg.read_span(next, to)?;
            let before = size;
            for rec in records(next, &span) {
                let r = rec.map_err(|t| StorageError::BadEntry {
                    index: t.index,
                    defect: EntryDefect::TooShort,
                })?;
                size = before + (r.offset + RECORD_LEN + r.sealed.len()) as u64;
                if max_size.is_some_and(|max| !out.is_empty() && size > max) {
                    return Ok(Some(out));
                }
                let e =
                    decode_entry(r.index, r.sealed).map_err(|defect| StorageError::BadEntry {
                        index: r.index,
                        defect,
                    })?;
                out.push(e);
            }
            next = to;
        }
        Ok(Some(out))
    }

    /// The term of a stored entry, checked.
    pub(super) fn term(&self, index: u64) -> Result<Option<u64>, StorageError> {
        let Some(seg) = self.segment_of(index) else {
            return Ok(None);
        };
        let span = seg.read_span(index, index + 1)?;
        match records(index, &span).next() {
            Some(Ok(r)) => entry_term(index, r.sealed)
                .map(Some)
                .map_err(|defect| StorageError::BadEntry { index, defect }),
            _ => Err(StorageError::BadEntry {
                index,
                defect: EntryDefect::TooShort,
            }),
        }
    }

    /// Record bytes stored.
    pub(super) fn bytes(&self) -> u64 {
        self.segs.iter().map(|s| s.len - HEADER).sum()
    }

    /// (first index, entries, bytes) of every segment, in order (tests).
    #[cfg(test)]
    pub(super) fn segments(&self) -> Vec<(u64, u64, u64)> {
        self.segs
            .iter()
            .map(|s| (s.first, s.count(), s.len))
            .collect()
    }
}

/// Checks a segment file's header and records. Entries at or below `start_index` are
/// skipped (compacted); the others must follow `last` with a term no lower. Returns the
/// segment (its good records) and, at the first bad one, its offset and why.
fn check_segment(
    first: u64,
    path: PathBuf,
    data: &[u8],
    start_index: u64,
    last: &mut (u64, u64),
) -> Result<(Segment, Option<(u64, EntryDefect)>), StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io(IoOp::Open, &path, e))?;
    let mut seg = Segment {
        first,
        path,
        file,
        offsets: Vec::new(),
        len: HEADER,
        unsynced: false,
    };
    if data.len() < HEADER as usize || data[..HEADER as usize] != header(first) {
        seg.len = 0;
        return Ok((seg, Some((0, EntryDefect::TooShort))));
    }
    if first > last.0 + 1 {
        return Ok((seg, Some((HEADER, EntryDefect::Gap { next: first }))));
    }
    if first <= last.0 && last.0 > start_index {
        return Ok((seg, Some((HEADER, EntryDefect::Overlap { first }))));
    }
    let body = &data[HEADER as usize..];
    // Space zero-filled ahead (`Prepared`) and not written yet is not part of the log.
    let body = &body[..records_end(body)];
    for rec in records(first, body) {
        let (offset, why) = match rec {
            Err(torn) => (torn.offset, EntryDefect::TooShort),
            Ok(r) if r.index <= start_index => {
                seg.offsets.push(HEADER + r.offset as u64);
                seg.len = HEADER + (r.offset + 4 + r.sealed.len()) as u64;
                continue;
            }
            Ok(r) => match entry_term(r.index, r.sealed) {
                Ok(t) if t >= last.1 => {
                    *last = (r.index, t);
                    seg.offsets.push(HEADER + r.offset as u64);
                    seg.len = HEADER + (r.offset + 4 + r.sealed.len()) as u64;
                    continue;
                }
                Ok(t) => (
                    r.offset,
                    EntryDefect::TermBelow {
                        term: t,
                        previous: last.1,
                    },
                ),
                Err(why) => (r.offset, why),
            },
        };
        return Ok((seg, Some((HEADER + offset as u64, why))));
    }
    Ok((seg, None))
}

/// The next segment file, zero-filled and fsynced on a thread of its own before the log
/// needs it. Appending into space already written changes no file size or block
/// allocation, so the fdatasync of each persist writes the data alone, without a journal
/// commit of the file system's metadata: measurably shorter on ext4, the more so while a
/// snapshot is being written (ZooKeeper preallocates its log files for the same reason).
/// A log that rolls over before the file is ready creates a plain one; a failure
/// (a full disk) is logged and leaves no file behind.
#[derive(Default)]
struct Prepared {
    job: Option<JoinHandle<Option<File>>>,
    /// `start` was called once.
    started: bool,
}

impl Prepared {
    /// Starts preparing one in `dir`, unless one is being prepared or ready, or the file
    /// system has less than four times its size free (zero-filling must never be what
    /// fills a disk: the log's own writes would then fail).
    fn start(&mut self, dir: &Path) {
        self.started = true;
        if self.job.is_some() {
            return;
        }
        if available(dir).is_none_or(|free| free < 4 * PREPARED_BYTES) {
            return;
        }
        let path = dir.join(PREPARED_NAME);
        let spawned = std::thread::Builder::new()
            .name("raft-log-prep".into())
            .spawn(move || match zero_fill(&path) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(
                        "raft log: could not prepare the next segment {}: {e}; it will be \
                         created when needed",
                        path.display()
                    );
                    let _ = fs::remove_file(&path);
                    None
                }
            });
        match spawned {
            Ok(h) => self.job = Some(h),
            Err(e) => tracing::warn!("raft log: could not start preparing a segment: {e}"),
        }
    }

    /// The prepared file, if it is ready (never waits; in unit tests it waits, so that
    /// every segment is a prepared one and the tests see the same files every run).
    fn take(&mut self) -> Option<File> {
        if cfg!(not(test)) && !self.job.as_ref()?.is_finished() {
            return None;
        }
        self.job.take()?.join().ok().flatten()
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some(h) = self.job.take() {
            let _ = h.join();
        }
    }
}

/// Bytes available to unprivileged users on the file system holding `dir`.
fn available(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, valid when zeroed; the call fills it from a
    // NUL-terminated path and touches nothing else.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Where the records of a segment file's bytes end: after the last one, before a zero
/// tail (tests that cut or flip a file's last bytes).
#[cfg(test)]
pub(crate) fn data_end(bytes: &[u8]) -> usize {
    let body = bytes.get(HEADER as usize..).unwrap_or(&[]);
    bytes.len().min(HEADER as usize) + records_end(body)
}

/// Zero-fills `path` (created, or rewritten: one an earlier run left half written) and
/// makes it durable.
fn zero_fill(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut at = 0;
    while at < PREPARED_BYTES {
        let n = (PREPARED_BYTES - at).min(ZERO_CHUNK as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        // A chunk at a time to the disk, not all at the end: a burst of writeback would
        // hold up the log's own fdatasyncs.
        file.sync_data()?;
        at += n;
    }
    file.sync_all()?;
    Ok(file)
}

/// Makes the new log start durable (sled's flush and fdatasync) before the segments below
/// it are removed.
pub(super) type DurableStart = Arc<dyn Fn() -> Result<(), StorageError> + Send + Sync>;

/// Removes compacted segments on its own thread, started by the first compaction. Stopped
/// and joined when the log is dropped; what it had not removed, the next open does.
#[derive(Default)]
struct Deleter {
    to: Option<std::sync::mpsc::Sender<(Vec<PathBuf>, DurableStart, PathBuf)>>,
    thread: Option<JoinHandle<()>>,
}

impl Deleter {
    fn delete(&mut self, paths: Vec<PathBuf>, durable: DurableStart, dir: PathBuf) {
        if self.to.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<(Vec<PathBuf>, DurableStart, PathBuf)>();
            let spawned = std::thread::Builder::new()
                .name("raft-log-clean".into())
                .spawn(move || {
                    while let Ok((paths, durable, dir)) = rx.recv() {
                        let done = durable().and_then(|()| {
                            for p in &paths {
                                remove(p)?;
                            }
                            sync_dir(&dir)
                        });
                        if let Err(err) = done {
                            // Left for the next open to remove.
                            tracing::error!("removing compacted raft log segments: {err}");
                        }
                    }
                });
            match spawned {
                Ok(h) => {
                    self.thread = Some(h);
                    self.to = Some(tx);
                }
                Err(e) => {
                    tracing::warn!(
                        "no raft log cleaner thread ({e}); compacted segments stay until the next open"
                    );
                    return;
                }
            }
        }
        if let Some(tx) = &self.to {
            let _ = tx.send((paths, durable, dir));
        }
    }
}

impl Drop for Deleter {
    fn drop(&mut self) {
        self.to = None;
        if let Some(h) = self.thread.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read with a size limit reads the records it may return and at most one more,
    /// never the rest of the segment.
    #[test]
    fn a_limited_read_stops_at_the_limit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s.wal");
        let seg = Segment {
            first: 10,
            file: File::create(&path).expect("file"),
            path,
            // Five records of 100 bytes each.
            offsets: vec![0, 100, 200, 300, 400],
            len: 500,
            unsynced: false,
        };
        assert_eq!(seg.span_end(10, 15, None), 15);
        assert_eq!(seg.span_end(10, 15, Some(150)), 12);
        assert_eq!(seg.span_end(10, 15, Some(200)), 13);
        assert_eq!(seg.span_end(11, 15, Some(0)), 12, "at least one record");
        assert_eq!(seg.span_end(12, 14, Some(10_000)), 14);
    }
}
