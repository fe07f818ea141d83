//! Delta snapshot files: the snapshot wrapper (`snapshots`) around stored data that
//! describes the real ("virtual") data as literal bytes and copies from the virtual data of
//! a base snapshot file beside it, which may itself be a delta (a chain). Most of a snapshot
//! is unchanged since the previous one, so a delta writes a fraction of the bytes.
//!
//! ```text
//! delta data := "KPRDELTA" | base_zxid u64 | base_len u64 | full_len u64 | op*
//! op         := 0x00 | len u32 | len bytes     literal bytes of the virtual data
//!             | 0x01 | off u64 | len u32       the base's virtual data [off, off + len)
//! ```
//!
//! The base is `snapshot.<base_zxid hex>`, older than the delta (so a chain always ends);
//! `base_len` is the length of its virtual data (a mismatch: not the file the delta was
//! written over); `full_len` is the sum of the ops' lengths. Copies go forward only (each
//! starts at or after the end of the one before), so a base is read front to back, once.
//!
//! Every reader sees the virtual data: `SnapshotData` streams it, resolving the chain as it
//! goes; `SnapshotStore::read` and `map` verify every file of the chain and materialize it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::prelude::SnapshotMetadata;

use super::error::SnapshotDefect;
use super::layout::SNAP_PREFIX;
use super::snapshots::{MappedSnapshot, SnapshotFile, SNAP_MAGIC, SNAP_TMP_SUFFIX};

pub(super) const DELTA_MAGIC: &[u8; 8] = b"KPRDELTA";
/// Magic, base_zxid, base_len, full_len.
pub(super) const DELTA_HEADER_LEN: usize = 8 + 8 + 8 + 8;
pub(super) const OP_LITERAL: u8 = 0x00;
pub(super) const OP_COPY: u8 = 0x01;
/// Tag and length.
pub(super) const LITERAL_HEADER_LEN: usize = 1 + 4;
/// Tag, offset and length.
pub(super) const COPY_HEADER_LEN: usize = 1 + 8 + 4;

/// What a delta's stored data starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeltaHead {
    pub base_zxid: u64,
    /// The length of the base's virtual data.
    pub base_len: u64,
    /// The length of this file's virtual data.
    pub full_len: u64,
}

impl DeltaHead {
    pub fn encode(&self) -> [u8; DELTA_HEADER_LEN] {
        let mut b = [0u8; DELTA_HEADER_LEN];
        b[..8].copy_from_slice(DELTA_MAGIC);
        b[8..16].copy_from_slice(&self.base_zxid.to_be_bytes());
        b[16..24].copy_from_slice(&self.base_len.to_be_bytes());
        b[24..32].copy_from_slice(&self.full_len.to_be_bytes());
        b
    }
}

/// The delta header at the start of a file's stored `data`, if it is a delta's. Full data
/// never starts with `DELTA_MAGIC` (the tree's snapshots start with "KPDSNAP\n").
pub(super) fn delta_head(data: &[u8]) -> Result<Option<DeltaHead>, SnapshotDefect> {
    if !data.starts_with(DELTA_MAGIC) {
        return Ok(None);
    }
    let h = data
        .get(..DELTA_HEADER_LEN)
        .ok_or(SnapshotDefect::DeltaHeader)?;
    let u = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().expect("8 bytes"));
    Ok(Some(DeltaHead {
        base_zxid: u(8),
        base_len: u(16),
        full_len: u(24),
    }))
}

/// Where a snapshot file's stored data is, and its delta header if it is a delta: read from
/// the file's head alone, not verified.
#[derive(Debug, Clone, Copy)]
pub(super) struct DataHead {
    /// File offset of the stored data.
    pub data_at: u64,
    /// Length of the stored data (the wrapper's data_len).
    pub data_len: u64,
    pub delta: Option<DeltaHead>,
}

impl DataHead {
    /// The length of the file's virtual data.
    pub fn virtual_len(&self) -> u64 {
        self.delta.map_or(self.data_len, |d| d.full_len)
    }
}

pub(super) fn read_data_head(f: &File) -> Result<DataHead, SnapshotDefect> {
    use SnapshotDefect as D;
    let mut head = [0u8; 12];
    f.read_exact_at(&mut head, 0).map_err(D::ReadingHeader)?;
    if &head[..8] != SNAP_MAGIC {
        return Err(D::BadMagic);
    }
    let meta_len = u64::from(u32::from_be_bytes([head[8], head[9], head[10], head[11]]));
    let mut len = [0u8; 8];
    f.read_exact_at(&mut len, 12 + meta_len)
        .map_err(D::ReadingHeader)?;
    let data_at = 12 + meta_len + 8;
    let data_len = u64::from_be_bytes(len);
    let mut dh = [0u8; DELTA_HEADER_LEN];
    let n = data_len.min(DELTA_HEADER_LEN as u64) as usize;
    f.read_exact_at(&mut dh[..n], data_at)
        .map_err(D::ReadingHeader)?;
    Ok(DataHead {
        data_at,
        data_len,
        delta: delta_head(&dh[..n])?,
    })
}

/// The zxid in a `snapshot.<zxid hex>` file name.
pub(super) fn name_zxid(path: &Path) -> Option<u64> {
    let hex = path.file_name()?.to_str()?.strip_prefix(SNAP_PREFIX)?;
    u64::from_str_radix(hex, 16).ok()
}

/// The base file of a delta: `snapshot.<zxid hex>` in the delta's directory.
pub(super) fn base_path(delta: &Path, base_zxid: u64) -> PathBuf {
    delta.with_file_name(format!("{SNAP_PREFIX}{base_zxid:x}"))
}

/// A structural problem of the snapshot file at `path`, as the stream's `io::Error`.
fn broken(path: &Path, why: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("snapshot {}: {why}", path.display()),
    )
}

/// Bytes read between two drops from the page cache.
const DROP_EVERY: u64 = 8 << 20;

/// How much of a delta's stored data is read ahead at a time (its op headers are a few
/// bytes each; one `pread` per op would be a system call per changed node).
const DELTA_READ_AHEAD: usize = 1 << 20;

/// The virtual data of a finished snapshot file, read front to back
/// (`SnapshotStore::stream_data`). For a delta it is made as it is read from the ops and
/// the stream of its base (recursively down its chain), each file read front to back once,
/// with a read-ahead buffer of up to a MiB per delta. Unless made with
/// `stream_data_cached`, what has been read is dropped from the page cache as it goes, in
/// every file of the chain: the files are read once, by the next snapshot, and should not
/// push what the server reads often out of the cache.
pub struct SnapshotData {
    stored: Stored,
    /// The length of the virtual data.
    len: u64,
    /// For a delta: its ops' state and its base's data.
    delta: Option<Box<DeltaReader>>,
}

/// A file's stored data, read front to back.
struct Stored {
    file: File,
    path: PathBuf,
    /// File offset of the next byte not yet read from the file.
    at: u64,
    /// File offset of the stored data's end.
    end: u64,
    /// Read ahead (deltas only: `ahead` is 0 for a full file, read straight into the
    /// caller's buffer as before): `buf[pos..]` are the bytes just before `at`.
    buf: Vec<u8>,
    pos: usize,
    ahead: usize,
    drop_behind: bool,
    /// The page cache before this offset was dropped.
    dropped: u64,
}

impl Stored {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64 + (self.end - self.at)
    }

    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos < self.buf.len() {
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        let left = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        // Large reads (all of a full file's) go straight into `out`.
        let direct = out.len() >= self.ahead;
        let n = if direct {
            let want = out.len().min(left);
            self.file.read_at(&mut out[..want], self.at)?
        } else {
            self.buf.resize(self.ahead.min(left), 0);
            let got = self.file.read_at(&mut self.buf, self.at)?;
            self.buf.truncate(got);
            self.pos = 0;
            got
        };
        self.at += n as u64;
        if self.drop_behind
            && (self.at - self.dropped >= DROP_EVERY || (n == 0 && self.at > self.dropped))
        {
            self.drop_cache();
        }
        if direct {
            return Ok(n);
        }
        let k = out.len().min(n);
        out[..k].copy_from_slice(&self.buf[..k]);
        self.pos = k;
        Ok(k)
    }

    /// Reads exactly `out`; the stored data ending first is an error naming `what`.
    fn read_exact(&mut self, out: &mut [u8], what: &str) -> std::io::Result<()> {
        let mut got = 0;
        while got < out.len() {
            match self.read(&mut out[got..])? {
                0 => return Err(broken(&self.path, format!("data ends inside {what}"))),
                n => got += n,
            }
        }
        Ok(())
    }

    /// Passes over the next `n` bytes without reading them.
    fn skip(&mut self, n: u64) -> std::io::Result<()> {
        if n > self.remaining() {
            return Err(broken(&self.path, "its data ends early"));
        }
        let buffered = n.min((self.buf.len() - self.pos) as u64);
        self.pos += buffered as usize;
        self.at += n - buffered;
        if self.drop_behind && self.at - self.dropped >= DROP_EVERY {
            self.drop_cache();
        }
        Ok(())
    }

    fn drop_cache(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: an advisory call on a descriptor this owns; no memory is passed.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                self.dropped as libc::off_t,
                (self.at - self.dropped) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
        self.dropped = self.at;
    }
}

impl Drop for Stored {
    fn drop(&mut self) {
        if self.drop_behind && self.at > self.dropped {
            self.drop_cache();
        }
    }
}

/// Where a delta's stream is in its ops.
struct DeltaReader {
    base: SnapshotData,
    base_len: u64,
    /// Virtual offset of the base's next byte.
    base_at: u64,
    /// Virtual bytes given so far.
    given: u64,
    /// Bytes left of the current op: from the stored data (a literal) or the base (a copy).
    literal: u64,
    copy: u64,
}

impl DeltaReader {
    /// Reads the next op's header. `false` at the end of the stored data, where the ops
    /// must have given exactly `full_len` bytes.
    fn next_op(&mut self, stored: &mut Stored, full_len: u64) -> std::io::Result<bool> {
        debug_assert!(self.literal == 0 && self.copy == 0);
        if stored.remaining() == 0 {
            if self.given != full_len {
                return Err(broken(
                    &stored.path,
                    format!(
                        "its ops make {} bytes, its header says {full_len}",
                        self.given
                    ),
                ));
            }
            return Ok(false);
        }
        let mut tag = [0u8; 1];
        stored.read_exact(&mut tag, "an op")?;
        let (len, copy_from) = match tag[0] {
            OP_LITERAL => {
                let mut b = [0u8; LITERAL_HEADER_LEN - 1];
                stored.read_exact(&mut b, "a literal's header")?;
                (u64::from(u32::from_be_bytes(b)), None)
            }
            OP_COPY => {
                let mut b = [0u8; COPY_HEADER_LEN - 1];
                stored.read_exact(&mut b, "a copy's header")?;
                let off = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
                let len = u32::from_be_bytes(b[8..].try_into().expect("4 bytes"));
                (u64::from(len), Some(off))
            }
            other => {
                let at = stored.at - (stored.buf.len() - stored.pos) as u64 - 1;
                return Err(broken(
                    &stored.path,
                    format!("unknown delta op {other:#04x} at offset {at}"),
                ));
            }
        };
        if len == 0 {
            return Err(broken(&stored.path, "a delta op of length 0"));
        }
        if len > full_len - self.given {
            return Err(broken(
                &stored.path,
                format!("its ops make more than the {full_len} bytes its header says"),
            ));
        }
        match copy_from {
            None => self.literal = len,
            Some(off) => {
                if off < self.base_at {
                    return Err(broken(
                        &stored.path,
                        format!(
                            "a copy from offset {off} goes back before {} of its base",
                            self.base_at
                        ),
                    ));
                }
                if off.checked_add(len).is_none_or(|end| end > self.base_len) {
                    return Err(broken(
                        &stored.path,
                        format!(
                            "a copy of [{off}, +{len}) past the end of its base ({} bytes)",
                            self.base_len
                        ),
                    ));
                }
                self.base.skip(off - self.base_at)?;
                self.base_at = off;
                self.copy = len;
            }
        }
        Ok(true)
    }
}

impl SnapshotData {
    /// Opens the snapshot file at `path` for streaming its virtual data, and its chain of
    /// bases if it is a delta. Each base must be older than the file over it (names give
    /// zxids), so a chain always ends.
    pub(super) fn open(path: &Path, drop_behind: bool) -> std::io::Result<SnapshotData> {
        let file = File::open(path)?;
        let head = read_data_head(&file).map_err(|d| broken(path, d))?;
        let mut stored = Stored {
            file,
            path: path.to_path_buf(),
            at: head.data_at,
            end: head.data_at + head.data_len,
            buf: Vec::new(),
            pos: 0,
            ahead: 0,
            drop_behind,
            dropped: 0,
        };
        let Some(d) = head.delta else {
            return Ok(SnapshotData {
                stored,
                len: head.data_len,
                delta: None,
            });
        };
        stored.ahead = DELTA_READ_AHEAD;
        stored.skip(DELTA_HEADER_LEN as u64)?;
        if name_zxid(path).is_some_and(|own| d.base_zxid >= own) {
            return Err(broken(
                path,
                format!(
                    "a delta over snapshot {:x}, which is not older",
                    d.base_zxid
                ),
            ));
        }
        let base_at = base_path(path, d.base_zxid);
        let mut base = SnapshotData::open(&base_at, drop_behind).map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                e
            } else {
                broken(path, format!("its base {}: {e}", base_at.display()))
            }
        })?;
        // A base is read in copies of a few records each: through a read-ahead buffer, not
        // a system call per copy.
        base.stored.ahead = DELTA_READ_AHEAD;
        if base.len != d.base_len {
            return Err(broken(
                path,
                format!(
                    "written over {} bytes of data, its base {} has {}",
                    d.base_len,
                    base_at.display(),
                    base.len
                ),
            ));
        }
        Ok(SnapshotData {
            stored,
            len: d.full_len,
            delta: Some(Box::new(DeltaReader {
                base,
                base_len: d.base_len,
                base_at: 0,
                given: 0,
                literal: 0,
                copy: 0,
            })),
        })
    }

    /// The length of the virtual data (as the file's head says).
    pub fn virtual_len(&self) -> u64 {
        self.len
    }

    /// Passes over the next `n` bytes of the virtual data: a full file's are not read at
    /// all, a delta's literals are not and its copies pass over the base's.
    fn skip(&mut self, mut n: u64) -> std::io::Result<()> {
        let Some(d) = self.delta.as_deref_mut() else {
            return self.stored.skip(n);
        };
        while n > 0 {
            if d.literal > 0 {
                let k = n.min(d.literal);
                self.stored.skip(k)?;
                d.literal -= k;
                d.given += k;
                n -= k;
            } else if d.copy > 0 {
                let k = n.min(d.copy);
                d.base.skip(k)?;
                d.base_at += k;
                d.copy -= k;
                d.given += k;
                n -= k;
            } else if !d.next_op(&mut self.stored, self.len)? {
                return Err(broken(&self.stored.path, "data ends inside a copy from it"));
            }
        }
        Ok(())
    }
}

impl std::io::Read for SnapshotData {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(d) = self.delta.as_deref_mut() else {
            return self.stored.read(buf);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if d.literal > 0 {
                let want = buf
                    .len()
                    .min(usize::try_from(d.literal).unwrap_or(usize::MAX));
                let n = self.stored.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(broken(&self.stored.path, "data ends inside a literal"));
                }
                d.literal -= n as u64;
                d.given += n as u64;
                return Ok(n);
            }
            if d.copy > 0 {
                let want = buf.len().min(usize::try_from(d.copy).unwrap_or(usize::MAX));
                let n = d.base.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(broken(
                        &d.base.stored.path,
                        "data ends inside a copy from it",
                    ));
                }
                d.copy -= n as u64;
                d.base_at += n as u64;
                d.given += n as u64;
                return Ok(n);
            }
            if !d.next_op(&mut self.stored, self.len)? {
                return Ok(0);
            }
        }
    }
}

/// Verifies the base of a delta (the file `delta`, zxid `child`, whose header is `d`) and,
/// down its chain, every base under it, as `SnapshotStore::read` verifies a file (checksum,
/// header, name), and that each has the length the file over it was written over. A defect
/// is the base's (`SnapshotDefect::Base`, nested down the chain); a base not older than
/// its delta is the delta's own.
pub(super) fn verify_base(delta: &Path, child: u64, d: DeltaHead) -> Result<(), SnapshotDefect> {
    use SnapshotDefect as D;
    let zxid = d.base_zxid;
    if zxid >= child {
        return Err(D::BaseNotOlder { zxid });
    }
    let in_base = |why| D::Base {
        zxid,
        why: Box::new(why),
    };
    let path = base_path(delta, zxid);
    let size = std::fs::metadata(&path)
        .map_err(|e| in_base(D::OpenFailed(e)))?
        .len();
    let file = SnapshotFile { path, zxid, size };
    let m = super::snapshots::map_file(&file).map_err(in_base)?;
    let next = delta_head(m.data()).map_err(in_base)?;
    let len = next.map_or(m.data().len() as u64, |n| n.full_len);
    drop(m);
    if len != d.base_len {
        return Err(in_base(D::BaseLength {
            expected: d.base_len,
            actual: len,
        }));
    }
    match next {
        Some(n) => verify_base(&file.path, zxid, n).map_err(in_base),
        None => Ok(()),
    }
}

/// The virtual data of a verified delta, in memory (`SnapshotStore::read`). The chain is
/// left in the page cache: the next snapshot reads it again.
pub(super) fn materialize_vec(
    file: &SnapshotFile,
    d: DeltaHead,
) -> Result<Vec<u8>, SnapshotDefect> {
    let mut data = Vec::new();
    let len = usize::try_from(d.full_len).map_err(|_| SnapshotDefect::DataLength)?;
    data.try_reserve_exact(len)
        .map_err(|e| SnapshotDefect::ReadFailed(std::io::Error::other(e)))?;
    let mut stream = SnapshotData::open(&file.path, false).map_err(SnapshotDefect::DeltaData)?;
    stream
        .read_to_end(&mut data)
        .map_err(SnapshotDefect::DeltaData)?;
    Ok(data)
}

/// Why materializing into a temporary file failed: the delta (a defect), or the file
/// (then the data goes to anonymous memory instead).
enum Materialize {
    Data(std::io::Error),
    Tmp(std::io::Error),
}

/// An unlinked file in the snapshot directory to materialize `file`'s data into:
/// `O_TMPFILE`, or where that is not supported a `snapshot.<zxid>.materialized.tmp`
/// created and unlinked at once (one left by a crash in between is removed by
/// `SnapshotStore::open`, as any `.tmp` file).
fn unlinked_file(file: &SnapshotFile) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file.path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let tmpfile = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir);
    if let Ok(f) = tmpfile {
        return Ok(f);
    }
    let named = file.path.with_file_name(format!(
        "{SNAP_PREFIX}{:x}.materialized{SNAP_TMP_SUFFIX}",
        file.zxid
    ));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&named)?;
    match std::fs::remove_file(&named) {
        // `SnapshotStore::open` elsewhere may have removed it first.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(f),
    }
}

fn materialize_file(file: &SnapshotFile) -> Result<File, Materialize> {
    let out = unlinked_file(file).map_err(Materialize::Tmp)?;
    let mut stream = SnapshotData::open(&file.path, false).map_err(Materialize::Data)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    loop {
        let n = stream.read(&mut buf).map_err(Materialize::Data)?;
        if n == 0 {
            return Ok(out);
        }
        out.write_all_at(&buf[..n], at).map_err(Materialize::Tmp)?;
        at += n as u64;
    }
}

/// A verified delta's virtual data, mapped (`SnapshotStore::map`): materialized into an
/// unlinked temporary file mapped as a full snapshot is, so that `release` gives its pages
/// back and they re-fault from the page cache (or the disk, under memory pressure: the
/// file is what lets them leave memory). When that file cannot be written (no space), the
/// data is materialized into anonymous memory instead, which `release` cannot give back.
pub(super) fn materialize_mapped(
    file: &SnapshotFile,
    meta: SnapshotMetadata,
    d: DeltaHead,
) -> Result<MappedSnapshot, SnapshotDefect> {
    use SnapshotDefect as D;
    let len = usize::try_from(d.full_len).map_err(|_| D::DataLength)?;
    if len > 0 {
        match materialize_file(file) {
            Ok(tmp) => return MappedSnapshot::of_materialized(tmp, len, meta),
            Err(Materialize::Data(e)) => return Err(D::DeltaData(e)),
            Err(Materialize::Tmp(e)) => tracing::warn!(
                "snapshot {}: cannot materialize its data into a file beside it ({e}); \
                 holding all {len} bytes in memory instead",
                file.path.display()
            ),
        }
    }
    materialize_anonymous(file, meta, len)
}

/// The anonymous fallback of `materialize_mapped`, its own function for the tests.
pub(super) fn materialize_anonymous(
    file: &SnapshotFile,
    meta: SnapshotMetadata,
    len: usize,
) -> Result<MappedSnapshot, SnapshotDefect> {
    let mut m = MappedSnapshot::anonymous(len, meta)?;
    let mut stream = SnapshotData::open(&file.path, false).map_err(SnapshotDefect::DeltaData)?;
    let out = m.data_mut();
    stream.read_exact(out).map_err(SnapshotDefect::DeltaData)?;
    if stream
        .read(&mut [0u8; 1])
        .map_err(SnapshotDefect::DeltaData)?
        != 0
    {
        return Err(SnapshotDefect::DataLength);
    }
    m.seal();
    Ok(m)
}
