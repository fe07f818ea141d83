//! The snapshot files: `SnapshotStore` over `dataDir/keeperd/snapshots`, one
//! `snapshot.<zxid hex>` file per snapshot (`SnapshotFile`), written whole and checksummed.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{Snapshot, SnapshotMetadata};

use super::codec::be_u64;
use super::delta::{self, DeltaHead, SnapshotData};
use super::error::{IoOp, SnapshotDefect, StorageError};
use super::fsync::{ensure_dir, sync_dir};
use super::layout::SNAP_PREFIX;

pub(super) const SNAP_MAGIC: &[u8; 8] = b"KPRSNAP1";
pub(super) const SNAP_TMP_SUFFIX: &str = ".tmp";

/// Bytes of a snapshot made durable at a time while it is written (`SnapshotWriter::append`).
///
/// The log's fdatasync waits for whatever else is queued for the disk: on a virtual disk
/// with a write-back cache, its cache flush makes the host write back every byte written
/// since the last flush, the snapshot's included. An fdatasync per MiB keeps that to at
/// most about a MiB (~10 ms here), where 8 MiB pieces of writeback held the log's
/// fdatasync up for 50-200 ms (docs/performance.md, Finding 6).
pub(super) const SYNC_CHUNK: u64 = 1 << 20;

/// The longest a paced snapshot waits between two chunks (`SnapshotWriter::spread_over`):
/// a floor of 100 MiB/s on its rate, whatever the interval between snapshots.
pub const MAX_CHUNK_GAP: std::time::Duration = std::time::Duration::from_millis(10);

/// One snapshot file on disk, as listed (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// From the file name: `zxid(term, index)` of the last entry the snapshot includes.
    pub zxid: u64,
    /// File size in bytes.
    pub size: u64,
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
    pub fn open(dir: &Path) -> Result<SnapshotStore, StorageError> {
        const WHAT: &str = "snapshot directory";
        ensure_dir(dir, WHAT)?;
        let listing =
            fs::read_dir(dir).map_err(|e| StorageError::io(IoOp::ReadDir(WHAT), dir, e))?;
        for ent in listing {
            let ent = ent.map_err(|e| StorageError::io(IoOp::List, dir, e))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(SNAP_PREFIX) && name.ends_with(SNAP_TMP_SUFFIX) {
                tracing::warn!(
                    "removing {} (a snapshot interrupted by a crash)",
                    ent.path().display()
                );
                fs::remove_file(ent.path())
                    .map_err(|e| StorageError::io(IoOp::Remove, ent.path(), e))?;
            }
        }
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The snapshot directory as it is, for reading only: nothing is created or removed
    /// (start-up reads the newest snapshot with this while `open` runs elsewhere).
    pub fn existing(dir: &Path) -> SnapshotStore {
        SnapshotStore {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Snapshot files, newest (highest zxid) first.
    pub fn list(&self) -> Result<Vec<SnapshotFile>, StorageError> {
        let listing = fs::read_dir(&self.dir)
            .map_err(|e| StorageError::io(IoOp::ReadDir("snapshot directory"), &self.dir, e))?;
        let mut out = vec![];
        for ent in listing {
            let ent = ent.map_err(|e| StorageError::io(IoOp::List, &self.dir, e))?;
            let name = ent.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(SNAP_PREFIX)) else {
                continue;
            };
            let Ok(zxid) = u64::from_str_radix(hex, 16) else {
                continue;
            };
            let size = ent
                .metadata()
                .map_err(|e| StorageError::io(IoOp::Stat, ent.path(), e))?
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
    pub fn write(
        &self,
        meta: &SnapshotMetadata,
        data: &[u8],
    ) -> Result<SnapshotFile, StorageError> {
        let mut w = self.create(meta, 0)?;
        w.append(data)?;
        w.finish(&[])
    }

    /// Starts writing a snapshot whose data is streamed (`SnapshotWriter`): the data is a
    /// head of `head_len` bytes, given last to `SnapshotWriter::finish`, and what `append`
    /// gets. The file is `write`'s, byte for byte.
    pub fn create(
        &self,
        meta: &SnapshotMetadata,
        head_len: usize,
    ) -> Result<SnapshotWriter, StorageError> {
        let started = std::time::Instant::now();
        let zxid = crate::consensus::zxid(meta.term, meta.index) as u64;
        let path = self.dir.join(format!("{SNAP_PREFIX}{zxid:x}"));
        let tmp = self
            .dir
            .join(format!("{SNAP_PREFIX}{zxid:x}{SNAP_TMP_SUFFIX}"));
        let meta_pb = meta
            .write_to_bytes()
            .map_err(|err| StorageError::EncodeSnapshotMeta { err })?;
        let io = |e: std::io::Error| StorageError::io(IoOp::WriteSnapshot, &tmp, e);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io)?;
        let mut prefix = Vec::with_capacity(SNAP_MAGIC.len() + 4 + meta_pb.len() + 8);
        prefix.extend_from_slice(SNAP_MAGIC);
        prefix.extend_from_slice(&(meta_pb.len() as u32).to_be_bytes());
        prefix.extend_from_slice(&meta_pb);
        // The data length is written (over these zeros) by `finish`, with the head.
        prefix.extend_from_slice(&[0; 8]);
        let mut w = SnapshotWriter {
            file: Some(file),
            buf: Vec::with_capacity(SYNC_CHUNK as usize),
            store: self.dir.clone(),
            path,
            tmp,
            zxid,
            prefix: prefix.clone(),
            head_len,
            rest: crc32fast::Hasher::new(),
            data_len: head_len as u64,
            synced: 0,
            renamed: false,
            delta: None,
            started,
            gap: std::time::Duration::ZERO,
            chunk_started: None,
        };
        prefix.resize(prefix.len() + head_len, 0);
        w.write_raw(&prefix)?;
        Ok(w)
    }

    /// Reads and verifies a snapshot. `Err` (`BadSnapshot`) says why it is unusable. A
    /// delta's data is its virtual data, materialized in memory, once every base down its
    /// chain verified as well: a missing or bad base makes the delta unusable
    /// (`SnapshotDefect::Base`), like any bad file.
    pub fn read(&self, file: &SnapshotFile) -> Result<Snapshot, StorageError> {
        read_verified(file).map_err(|defect| bad(file, defect))
    }

    /// `read`, without reading the file into memory: it is mapped (`MappedSnapshot`) and
    /// verified the same way, with the same errors. A delta's virtual data is materialized
    /// into an unlinked temporary file beside it, which is mapped instead.
    pub fn map(&self, file: &SnapshotFile) -> Result<MappedSnapshot, StorageError> {
        map_verified(file).map_err(|defect| bad(file, defect))
    }

    /// The base a delta snapshot file was written over (`SnapshotWriter::delta_over`): the
    /// zxid of `snapshot.<zxid hex>` beside it; `None` for a full snapshot. Reads the head
    /// alone, verifies nothing.
    pub fn base_of(&self, file: &SnapshotFile) -> Result<Option<u64>, StorageError> {
        let f = File::open(&file.path).map_err(|e| bad(file, SnapshotDefect::OpenFailed(e)))?;
        let head = delta::read_data_head(&f).map_err(|defect| bad(file, defect))?;
        Ok(head.delta.map(|d| d.base_zxid))
    }

    /// Which of `files` (`list`'s, newest first) to keep so that the `newest` newest stay
    /// readable: those, and every base they need down their chains. A base that is missing
    /// has nothing to keep; a file whose head cannot be read counts as a full snapshot
    /// (logged), kept if it is among the newest.
    pub fn keep_closure(
        &self,
        files: &[SnapshotFile],
        newest: usize,
    ) -> Result<Vec<bool>, StorageError> {
        let mut keep = vec![false; files.len()];
        let mut todo: Vec<usize> = (0..newest.min(files.len())).collect();
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut keep[i], true) {
                continue;
            }
            match self.base_of(&files[i]) {
                Ok(Some(base)) => todo.extend(files.iter().position(|f| f.zxid == base)),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "snapshot {}: {e}; keeping it as a full snapshot",
                    files[i].path.display()
                ),
            }
        }
        Ok(keep)
    }

    /// The metadata at the head of a snapshot file, without reading (or verifying) the data:
    /// enough to know which log index it covers.
    pub fn read_header(&self, file: &SnapshotFile) -> Result<SnapshotMetadata, StorageError> {
        read_head(file).map_err(|defect| bad(file, defect))
    }

    pub fn remove(&self, file: &SnapshotFile) -> Result<(), StorageError> {
        fs::remove_file(&file.path).map_err(|e| StorageError::io(IoOp::Remove, &file.path, e))
    }
}

/// A snapshot file being written (`SnapshotStore::create`): `append` streams the data out a
/// `SYNC_CHUNK` at a time and makes each chunk durable, so the log's own fdatasync on the
/// same disk never waits behind more than that (100+ MB in one go stalls it for ~1 s), and
/// `finish` writes the parts that depend on the whole (data length, head, checksum) and
/// makes the file durable. Dropped unfinished (or failed), it removes its `.tmp` file.
///
/// The writes go through the page cache, where the file stays (clean, once synced) until the
/// next snapshot merges from it (`SnapshotData`, which drops it as it reads): that merge
/// then reads memory, not the disk. Written with `O_DIRECT` instead, the next merge read the
/// whole file back from the disk, and that traffic next to the log's fdatasyncs cost
/// setData 20-30% of its p99.9 latency (docs/performance.md, Finding 14).
///
/// Made a delta (`delta_over`), it stores the data as literal bytes (`append`) and copies
/// from a base snapshot (`copy`) instead (`delta`); the wrapper, the chunks and their pacing
/// are the same.
pub struct SnapshotWriter {
    /// `None` once finished.
    file: Option<File>,
    /// The chunk being filled; the file holds `synced` bytes before it.
    buf: Vec<u8>,
    store: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    zxid: u64,
    /// Magic, metadata length, metadata and (zeros standing for) the data length.
    prefix: Vec<u8>,
    head_len: usize,
    /// CRC of the bytes after the head.
    rest: crc32fast::Hasher,
    data_len: u64,
    /// Bytes of the file written and fdatasynced so far (whole chunks).
    synced: u64,
    renamed: bool,
    /// A delta's state (`delta_over`); `None` for a full snapshot.
    delta: Option<DeltaWriter>,
    started: std::time::Instant,
    /// Pacing (`spread_over`): the least time from one chunk's start to the next's.
    gap: std::time::Duration,
    /// When the last chunk was started.
    chunk_started: Option<std::time::Instant>,
}

/// A delta being written (`SnapshotWriter::delta_over`).
struct DeltaWriter {
    base_zxid: u64,
    base_len: u64,
    /// Virtual bytes so far (the head's included).
    virtual_len: u64,
    /// The end of the last copy: the next may not start before it.
    copy_end: u64,
    /// The last op, held back so that the next one can extend it.
    pending: PendingOp,
}

enum PendingOp {
    None,
    Copy { off: u64, len: u64 },
    Literal(Vec<u8>),
}

/// Consecutive `append`s of a delta are gathered into one literal op up to this many bytes
/// (one op per appended node record would cost 5 bytes and a step of every reader each).
const LITERAL_GATHER: usize = 64 << 10;

impl SnapshotWriter {
    fn io(&self, e: std::io::Error) -> StorageError {
        StorageError::io(IoOp::WriteSnapshot, &self.tmp, e)
    }

    fn misuse(&self, why: impl Into<String>) -> StorageError {
        StorageError::DeltaWrite {
            path: self.tmp.clone(),
            why: why.into(),
        }
    }

    fn file(&self) -> &File {
        self.file.as_ref().expect("an unfinished snapshot writer")
    }

    /// Spreads the chunks of a snapshot of about `expected_len` bytes over `over`: each
    /// chunk starts at least `over / chunks` (at most `MAX_CHUNK_GAP`) after the one before.
    ///
    /// Every chunk's fdatasync is a cache flush the log's own fdatasync may have to wait
    /// behind; a snapshot that writes its chunks back to back makes many of the log's
    /// fdatasyncs wait in a short time, a paced one few at a time (docs/performance.md,
    /// Finding 12). The wait is outside any lock: it only makes the snapshot take longer.
    pub fn spread_over(&mut self, expected_len: u64, over: std::time::Duration) {
        let chunks = (expected_len / SYNC_CHUNK).clamp(1, u64::from(u32::MAX)) as u32;
        self.gap = (over / chunks).min(MAX_CHUNK_GAP);
    }

    /// Writes the full chunk at its offset and makes it durable.
    fn write_chunk(&mut self) -> Result<(), StorageError> {
        if let Some(last) = self.chunk_started {
            let due = last + self.gap;
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        self.chunk_started = Some(std::time::Instant::now());
        self.file()
            .write_all_at(&self.buf, self.synced)
            .and_then(|()| self.file().sync_data())
            .map_err(|e| self.io(e))?;
        self.synced += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn write_raw(&mut self, mut bytes: &[u8]) -> Result<(), StorageError> {
        while !bytes.is_empty() {
            let n = bytes.len().min(SYNC_CHUNK as usize - self.buf.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == SYNC_CHUNK as usize {
                self.write_chunk()?;
            }
        }
        Ok(())
    }

    /// Appends the next bytes of the data (after the head); in a delta, as literal bytes of
    /// its virtual data. Every `SYNC_CHUNK` bytes of the file are written and made durable
    /// as they fill: the disk never has more than about that much of the snapshot to write
    /// when the log's fdatasync comes, and the final one has little left to do.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let Some(d) = self.delta.as_mut() else {
            return self.put(bytes);
        };
        d.virtual_len += bytes.len() as u64;
        if let PendingOp::Literal(lit) = &mut d.pending {
            if lit.len() + bytes.len() <= LITERAL_GATHER {
                lit.extend_from_slice(bytes);
                return Ok(());
            }
        }
        self.flush_op()?;
        if bytes.len() <= LITERAL_GATHER {
            if !bytes.is_empty() {
                let d = self.delta.as_mut().expect("a delta writer");
                d.pending = PendingOp::Literal(bytes.to_vec());
            }
            Ok(())
        } else {
            self.put_literal(bytes)
        }
    }

    /// Appends bytes of the stored data after the head.
    fn put(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.rest.update(bytes);
        self.data_len += bytes.len() as u64;
        self.write_raw(bytes)
    }

    fn put_literal(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        for piece in bytes.chunks(u32::MAX as usize) {
            let mut op = [0u8; delta::LITERAL_HEADER_LEN];
            op[0] = delta::OP_LITERAL;
            op[1..].copy_from_slice(&(piece.len() as u32).to_be_bytes());
            self.put(&op)?;
            self.put(piece)?;
        }
        Ok(())
    }

    /// Writes the op held back, if any.
    fn flush_op(&mut self) -> Result<(), StorageError> {
        let Some(d) = self.delta.as_mut() else {
            return Ok(());
        };
        match std::mem::replace(&mut d.pending, PendingOp::None) {
            PendingOp::None => Ok(()),
            PendingOp::Literal(lit) => self.put_literal(&lit),
            PendingOp::Copy { mut off, mut len } => {
                while len > 0 {
                    let piece = len.min(u64::from(u32::MAX));
                    let mut op = [0u8; delta::COPY_HEADER_LEN];
                    op[0] = delta::OP_COPY;
                    op[1..9].copy_from_slice(&off.to_be_bytes());
                    op[9..].copy_from_slice(&(piece as u32).to_be_bytes());
                    self.put(&op)?;
                    off += piece;
                    len -= piece;
                }
                Ok(())
            }
        }
    }

    /// Makes this a delta over the finished snapshot file `base` (in this snapshot's
    /// directory, older than it): the data given from now on (`append`, `copy`, the head
    /// given to `finish`) is the virtual data, stored as literal bytes and copies from the
    /// base's virtual data. Must come right after `SnapshotStore::create`, before any
    /// `append`. Reads the base's head alone; returns the length of its virtual data, which
    /// copies must stay within.
    pub fn delta_over(&mut self, base: &Path) -> Result<u64, StorageError> {
        if self.delta.is_some() {
            return Err(self.misuse("delta_over called twice"));
        }
        if self.data_len != self.head_len as u64 {
            return Err(self.misuse("delta_over after data was appended"));
        }
        let Some(base_zxid) = delta::name_zxid(base) else {
            return Err(self.misuse(format!(
                "base {} is not a {SNAP_PREFIX}<zxid hex> file",
                base.display()
            )));
        };
        if base_zxid >= self.zxid {
            return Err(self.misuse(format!(
                "base {} is not older than the snapshot",
                base.display()
            )));
        }
        let head_len = u32::try_from(self.head_len)
            .map_err(|_| self.misuse(format!("a head of {} bytes", self.head_len)))?;
        let f = File::open(base).map_err(|e| StorageError::io(IoOp::Open, base, e))?;
        if let Some(dir) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !same_dir(dir, &self.store) {
                return Err(self.misuse(format!(
                    "base {} is not in the snapshot directory {}",
                    base.display(),
                    self.store.display()
                )));
            }
        }
        let head = delta::read_data_head(&f).map_err(|defect| StorageError::BadSnapshot {
            path: base.to_path_buf(),
            defect,
        })?;
        let base_len = head.virtual_len();
        // What `create` wrote is written over: the prefix again, then the delta header and
        // the head's literal op, both filled in by `finish`.
        let stored_head = delta::DELTA_HEADER_LEN
            + if head_len > 0 {
                delta::LITERAL_HEADER_LEN + self.head_len
            } else {
                0
            };
        let mut front = self.prefix.clone();
        front.resize(front.len() + stored_head, 0);
        self.buf.clear();
        self.synced = 0;
        self.data_len = stored_head as u64;
        self.write_raw(&front)?;
        self.delta = Some(DeltaWriter {
            base_zxid,
            base_len,
            virtual_len: self.head_len as u64,
            copy_end: 0,
            pending: PendingOp::None,
        });
        Ok(base_len)
    }

    /// Appends to a delta's virtual data the base's virtual data `[off, off + len)`. Copies
    /// go forward: `off` is at or after the end of the copy before, and within the base.
    pub fn copy(&mut self, off: u64, len: u64) -> Result<(), StorageError> {
        let Some(d) = self.delta.as_ref() else {
            return Err(self.misuse("copy in a full snapshot (not a delta)"));
        };
        if off < d.copy_end {
            let why = format!(
                "a copy from {off}, before the end of the last one ({})",
                d.copy_end
            );
            return Err(self.misuse(why));
        }
        if off.checked_add(len).is_none_or(|end| end > d.base_len) {
            let why = format!(
                "a copy of [{off}, +{len}) past the base's {} bytes",
                d.base_len
            );
            return Err(self.misuse(why));
        }
        if len == 0 {
            return Ok(());
        }
        if !matches!(d.pending, PendingOp::Copy { off: o, len: l } if o + l == off) {
            self.flush_op()?;
        }
        let d = self.delta.as_mut().expect("a delta writer");
        d.pending = match d.pending {
            PendingOp::Copy { off: o, len: l } => PendingOp::Copy {
                off: o,
                len: l + len,
            },
            _ => PendingOp::Copy { off, len },
        };
        d.copy_end = off + len;
        d.virtual_len += len;
        Ok(())
    }

    /// Bytes of the (virtual) data so far, the head's included.
    pub fn virtual_len(&self) -> u64 {
        self.delta.as_ref().map_or(self.data_len, |d| d.virtual_len)
    }

    /// Bytes of data the file stores so far (for a delta, its header and ops, the one held
    /// back included; for a full snapshot, `virtual_len`).
    pub fn stored_len(&self) -> u64 {
        let pending = match self.delta.as_ref().map(|d| &d.pending) {
            Some(PendingOp::Literal(lit)) => (delta::LITERAL_HEADER_LEN + lit.len()) as u64,
            Some(PendingOp::Copy { len, .. }) => {
                len.div_ceil(u64::from(u32::MAX)) * delta::COPY_HEADER_LEN as u64
            }
            Some(PendingOp::None) | None => 0,
        };
        self.data_len + pending
    }

    /// Where the file will be once finished.
    pub fn final_path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file made durable so far (before `finish`).
    #[cfg(test)]
    pub(super) fn synced(&self) -> u64 {
        self.synced
    }

    /// Writes the last partial chunk, the data's `head` (`head_len` bytes) before what was
    /// appended, the data length and the checksum; fdatasync, rename, fsync of the
    /// directory. In a delta, its header (with the length of its virtual data, known only
    /// now) and the head's literal op come before the head.
    pub fn finish(mut self, head: &[u8]) -> Result<SnapshotFile, StorageError> {
        assert_eq!(head.len(), self.head_len, "the snapshot head's length");
        self.flush_op()?;
        let file = self.file.take().expect("an unfinished snapshot writer");
        let len_at = self.prefix.len() - 8;
        let mut front = std::mem::take(&mut self.prefix);
        front.truncate(len_at);
        front.extend_from_slice(&self.data_len.to_be_bytes());
        if let Some(d) = &self.delta {
            let dh = DeltaHead {
                base_zxid: d.base_zxid,
                base_len: d.base_len,
                full_len: d.virtual_len,
            };
            front.extend_from_slice(&dh.encode());
            if !head.is_empty() {
                front.push(delta::OP_LITERAL);
                front.extend_from_slice(&(head.len() as u32).to_be_bytes());
            }
        }
        front.extend_from_slice(head);
        let mut h = crc32fast::Hasher::new();
        h.update(&front);
        h.combine(&self.rest);
        let end = (len_at + 8) as u64 + self.data_len;
        debug_assert_eq!(end, self.synced + self.buf.len() as u64);
        file.write_all_at(&self.buf, self.synced)
            .and_then(|()| file.write_all_at(&front[len_at..], len_at as u64))
            .and_then(|()| file.write_all_at(&h.finalize().to_be_bytes(), end))
            .and_then(|()| file.sync_data())
            .map_err(|e| self.io(e))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(|e| {
            let op = IoOp::Rename {
                to: self.path.clone(),
            };
            StorageError::io(op, &self.tmp, e)
        })?;
        self.renamed = true;
        sync_dir(&self.store)?;
        crate::summary::SNAPSHOT_TIME.record(self.started.elapsed().as_millis() as u64);
        Ok(SnapshotFile {
            path: self.path.clone(),
            zxid: self.zxid,
            size: end + 4,
        })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.renamed {
            // A failed snapshot leaves no half-written file behind.
            drop(self.file.take());
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl SnapshotStore {
    /// The (virtual) data of the snapshot file at `path` as a stream (`SnapshotData`), after
    /// checking its magic and reading its data length; for a delta, the bases down its chain
    /// are opened by name beside it. Not verified here: the data carries its own checksum,
    /// for the reader to check at its end. What has been read is dropped from the page cache
    /// as it goes, in every file of the chain.
    pub fn stream_data(path: &Path) -> std::io::Result<SnapshotData> {
        SnapshotData::open(path, true)
    }

    /// `stream_data`, leaving the page cache alone: for a chain that will be read again (the
    /// next snapshot, a delta over the same bases, reads it again).
    pub fn stream_data_cached(path: &Path) -> std::io::Result<SnapshotData> {
        SnapshotData::open(path, false)
    }
}

/// Whether two paths name the same directory (device and inode: one may be relative).
fn same_dir(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn bad(file: &SnapshotFile, defect: SnapshotDefect) -> StorageError {
    StorageError::BadSnapshot {
        path: file.path.clone(),
        defect,
    }
}

fn read_verified(file: &SnapshotFile) -> Result<Snapshot, SnapshotDefect> {
    let buf = fs::read(&file.path).map_err(SnapshotDefect::ReadFailed)?;
    let (meta, data) = verify(&buf, file, &|_| {})?;
    let mut snap = Snapshot::default();
    snap.set_metadata(meta);
    match delta::delta_head(&buf[data.clone()])? {
        None => snap.data = bytes::Bytes::from(buf).slice(data),
        Some(d) => {
            drop(buf);
            delta::verify_base(&file.path, file.zxid, d)?;
            snap.data = delta::materialize_vec(file, d)?.into();
        }
    }
    Ok(snap)
}

/// Bytes of a mapped snapshot read between two `MappedSnapshot::release`s.
const RELEASE_EVERY: usize = 4 << 20;

/// Checks a snapshot file's bytes (checksum first, then header and name); returns its
/// metadata and where its data is. `release(offset)` is told, every `RELEASE_EVERY` bytes
/// of the checksum pass, that the bytes before `offset` will not be read again.
fn verify(
    buf: &[u8],
    file: &SnapshotFile,
    release: &dyn Fn(usize),
) -> Result<(SnapshotMetadata, std::ops::Range<usize>), SnapshotDefect> {
    use SnapshotDefect as D;
    let body_len = buf.len().checked_sub(4).ok_or(D::ShorterThanChecksum)?;
    let (body, sum) = buf.split_at(body_len);
    let mut h = crc32fast::Hasher::new();
    for (i, chunk) in body.chunks(RELEASE_EVERY).enumerate() {
        h.update(chunk);
        release(i * RELEASE_EVERY + chunk.len());
    }
    if h.finalize().to_be_bytes() != sum {
        return Err(D::ChecksumMismatch);
    }
    let rest = body.strip_prefix(&SNAP_MAGIC[..]).ok_or(D::BadMagic)?;
    let meta_len = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(D::TruncatedHeader)? as usize;
    let meta_pb = rest.get(4..4 + meta_len).ok_or(D::TruncatedMetadata)?;
    let meta = SnapshotMetadata::parse_from_bytes(meta_pb).map_err(D::MetadataProtobuf)?;
    let data_at = SNAP_MAGIC.len() + 4 + meta_len + 8;
    let data_len =
        be_u64(rest.get(4 + meta_len..).ok_or(D::TruncatedHeader)?).ok_or(D::TruncatedHeader)?;
    if data_at > body.len() || (body.len() - data_at) as u64 != data_len {
        return Err(D::DataLength);
    }
    if crate::consensus::zxid(meta.term, meta.index) as u64 != file.zxid {
        return Err(D::NameMismatch {
            term: meta.term,
            index: meta.index,
        });
    }
    Ok((meta, data_at..body_len))
}

/// A verified snapshot file mapped read-only (`SnapshotStore::map`), so that it can be
/// decoded without a copy of it in memory: `release` gives back the pages of what was read
/// (they count in the process's RSS while mapped), so at most a few MiB of the file are
/// resident at a time. A restart decodes a 124 MiB snapshot this way while the tree it
/// builds grows. The files are never changed once written (a new snapshot is a new file);
/// one removed while mapped stays readable until unmapped.
///
/// A delta's virtual data is materialized into an unlinked temporary file (`tmp`), mapped
/// the same way; when that cannot be written, into anonymous memory, which `release` cannot
/// drop (it would read back as zeros), so it does nothing there.
pub struct MappedSnapshot {
    ptr: *mut libc::c_void,
    len: usize,
    page: usize,
    meta: SnapshotMetadata,
    data: std::ops::Range<usize>,
    /// File bytes before this are released (page-aligned).
    released: std::cell::Cell<usize>,
    /// False for anonymous memory.
    releasable: bool,
    /// The unlinked file a delta's data was materialized into, emptied on drop.
    tmp: Option<File>,
}

impl MappedSnapshot {
    pub fn metadata(&self) -> &SnapshotMetadata {
        &self.meta
    }

    /// The snapshot's data (what `SnapshotStore::read` gives as `Snapshot::data`).
    pub fn data(&self) -> &[u8] {
        &self.file_bytes()[self.data.clone()]
    }

    fn file_bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `drop` unmaps them; released pages
        // read back from the file, which is not written once it is a snapshot.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }

    /// The data before `offset` (into `data()`) will not be read again by this pass over
    /// it: its whole pages are dropped from this process's memory (they stay in the page
    /// cache; reading them anyway faults them back in from the file). Offsets grow within a
    /// pass; a smaller one than the last starts a new pass (a decoder checksums the data,
    /// then decodes it).
    pub fn release(&self, offset: usize) {
        self.release_file(self.data.start + offset.min(self.data.len()));
    }

    fn release_file(&self, upto: usize) {
        if !self.releasable {
            return;
        }
        let upto = upto.min(self.len) / self.page * self.page;
        let mut from = self.released.get();
        if upto < from {
            // A new pass from the start: what it read since is resident again.
            from = 0;
        }
        if upto > from {
            // SAFETY: `from..upto` lies in the mapping; MADV_DONTNEED on a read-only private
            // file mapping only drops pages, which are read again from the file if touched.
            unsafe {
                libc::madvise(
                    self.ptr.cast::<u8>().add(from).cast(),
                    upto - from,
                    libc::MADV_DONTNEED,
                );
            }
        }
        self.released.set(upto);
    }
}

impl Drop for MappedSnapshot {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping `SnapshotStore::map` made; nothing borrows
        // from it once `self` is dropped.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
        if let Some(tmp) = self.tmp.take() {
            // Truncating drops its pages from the page cache without writing them back,
            // which `POSIX_FADV_DONTNEED` would start doing first for dirty pages.
            let _ = tmp.set_len(0);
        }
    }
}

/// Maps the first `len` bytes of `file` read-only and private, advised for reading front to
/// back. The caller unmaps it (`MappedSnapshot`'s drop).
fn map_read_only(file: &File, len: usize) -> std::io::Result<*mut libc::c_void> {
    use std::os::fd::AsRawFd;
    // SAFETY: a new read-only private mapping of the open file; checked for failure.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: advice on the mapping just made (read ahead; errors are harmless).
    unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
    Ok(ptr)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory arguments.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    }
}

impl MappedSnapshot {
    /// Maps `tmp`, holding a delta's materialized data (`len` bytes, not 0), as `map_file`
    /// maps a snapshot file.
    pub(super) fn of_materialized(
        tmp: File,
        len: usize,
        meta: SnapshotMetadata,
    ) -> Result<MappedSnapshot, SnapshotDefect> {
        let ptr = map_read_only(&tmp, len).map_err(SnapshotDefect::ReadFailed)?;
        Ok(MappedSnapshot {
            ptr,
            len,
            page: page_size(),
            meta,
            data: 0..len,
            released: std::cell::Cell::new(0),
            releasable: true,
            tmp: Some(tmp),
        })
    }

    /// Anonymous memory for `len` bytes of data, writable (`data_mut`) until `seal`.
    pub(super) fn anonymous(
        len: usize,
        meta: SnapshotMetadata,
    ) -> Result<MappedSnapshot, SnapshotDefect> {
        let page = page_size();
        // A mapping is never empty.
        let map_len = len.max(1).div_ceil(page) * page;
        // SAFETY: a new private anonymous mapping; checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(SnapshotDefect::ReadFailed(std::io::Error::last_os_error()));
        }
        Ok(MappedSnapshot {
            ptr,
            len: map_len,
            page,
            meta,
            data: 0..len,
            released: std::cell::Cell::new(0),
            releasable: false,
            tmp: None,
        })
    }

    /// The data of an `anonymous` mapping, to fill before `seal`.
    pub(super) fn data_mut(&mut self) -> &mut [u8] {
        debug_assert!(self.tmp.is_none() && !self.releasable);
        // SAFETY: an anonymous mapping made readable and writable (`anonymous`), not yet
        // sealed; `&mut self` makes this the only borrow.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.cast::<u8>().add(self.data.start),
                self.data.len(),
            )
        }
    }

    /// Makes an `anonymous` mapping read-only, as the others are.
    pub(super) fn seal(&mut self) {
        // SAFETY: `ptr`/`len` are this mapping; read-only from now on (`data_mut` is not
        // called after).
        unsafe { libc::mprotect(self.ptr, self.len, libc::PROT_READ) };
    }
}

// SAFETY: the mapping is owned (unmapped once, on drop) and only read; `released` is a
// `Cell`, so `MappedSnapshot` is `Send` but not `Sync`.
unsafe impl Send for MappedSnapshot {}

fn map_verified(file: &SnapshotFile) -> Result<MappedSnapshot, SnapshotDefect> {
    let m = map_file(file)?;
    let Some(d) = delta::delta_head(m.data())? else {
        return Ok(m);
    };
    let meta = m.meta.clone();
    drop(m);
    delta::verify_base(&file.path, file.zxid, d)?;
    delta::materialize_mapped(file, meta, d)
}

/// Maps a snapshot file and verifies it (checksum, header, name): its stored data, a
/// delta's as it is.
pub(super) fn map_file(file: &SnapshotFile) -> Result<MappedSnapshot, SnapshotDefect> {
    use SnapshotDefect as D;
    let f = File::open(&file.path).map_err(D::OpenFailed)?;
    let len = f.metadata().map_err(D::ReadFailed)?.len();
    let len = usize::try_from(len).map_err(|_| D::DataLength)?;
    if len < 4 {
        return Err(D::ShorterThanChecksum);
    }
    let ptr = map_read_only(&f, len).map_err(D::ReadFailed)?;
    let mut m = MappedSnapshot {
        ptr,
        len,
        page: page_size(),
        meta: SnapshotMetadata::default(),
        data: 0..0,
        released: std::cell::Cell::new(0),
        releasable: true,
        tmp: None,
    };
    let (meta, data) = verify(m.file_bytes(), file, &|at| m.release_file(at))?;
    m.meta = meta;
    m.data = data;
    Ok(m)
}

fn read_head(file: &SnapshotFile) -> Result<SnapshotMetadata, SnapshotDefect> {
    use std::io::Read;
    use SnapshotDefect as D;
    let mut f = File::open(&file.path).map_err(D::OpenFailed)?;
    let mut head = [0u8; 12];
    f.read_exact(&mut head).map_err(D::ReadingHeader)?;
    if &head[..8] != SNAP_MAGIC {
        return Err(D::BadMagic);
    }
    let meta_len = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as u64;
    if meta_len > file.size {
        return Err(D::MetadataTooLong);
    }
    let mut meta_pb = vec![0u8; meta_len as usize];
    f.read_exact(&mut meta_pb).map_err(D::ReadingMetadata)?;
    SnapshotMetadata::parse_from_bytes(&meta_pb).map_err(D::MetadataProtobuf)
}
