//! The previous snapshot, read as a stream while the next one is written
//! (`SnapshotCut::merge_previous`): the records of the nodes unchanged since its cut are
//! copied from here, byte for byte, instead of being looked up in the tree and serialised
//! again.
//!
//! The stream is read once, front to back, in chunks of `CHUNK` bytes, and checked as it is
//! read: its checksum over every byte (compared at `finish`), its length, and every record
//! length against what is left. A defect fails the snapshot being written; nothing that is
//! not a whole, checksummed snapshot of this format is ever copied into a finished one.

use std::io::Read;

use super::{
    HAS_CHILDREN, HEADER_LEN, KIND_EPHEMERAL, KIND_MASK, KIND_TTL, MAGIC, MTIME_IS_CTIME,
    MZXID_IS_CZXID, NULL_DATA, PZXID_IS_CZXID, SESSION_AUTH, VERSION, ZERO_VERSIONS,
};

/// Bytes read from the source at a time (a record longer than this is read whole).
const CHUNK: usize = 1 << 20;

pub(super) struct Prev {
    src: Box<dyn Read + Send>,
    /// `buf[pos..end]`: read and not consumed yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Over every byte consumed, header included.
    crc: crc32fast::Hasher,
    /// Body bytes not consumed yet.
    left: u64,
    /// Bytes consumed, header included: the offset of the next one in the snapshot.
    consumed: u64,
}

/// What `Prev::open` read before the first node's children.
pub(super) struct Opened {
    pub(super) prev: Prev,
    /// The ACL lists exactly as stored (their count first): the previous snapshot's records
    /// number lists the same way as the next one's only if these are equal.
    pub(super) acl_lists: Vec<u8>,
    /// The root's children in the previous snapshot.
    pub(super) root_children: u32,
}

pub(super) type PrevResult<T> = Result<T, String>;

impl Prev {
    /// Reads the header and everything before the root's children: the last zxid, the ACL
    /// lists (kept), the sessions and the node count (skipped), the root's record.
    pub(super) fn open(src: Box<dyn Read + Send>) -> PrevResult<Opened> {
        let mut p = Prev {
            src,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            crc: crc32fast::Hasher::new(),
            left: HEADER_LEN as u64,
            consumed: 0,
        };
        let head = p.take(HEADER_LEN)?;
        if &head[..8] != MAGIC {
            return Err("not a keeperd tree snapshot".into());
        }
        let version = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(format!("format version {version}, not {VERSION}"));
        }
        p.left = u64::from_be_bytes(head[12..20].try_into().expect("8 bytes"));

        p.take(8)?; // last zxid
        let mut acl_lists = Vec::new();
        let lists = p.u32_into(&mut acl_lists)?;
        for _ in 0..lists {
            let entries = p.u32_into(&mut acl_lists)?;
            for _ in 0..entries {
                acl_lists.extend_from_slice(p.take(4)?); // perms
                p.str_into(&mut acl_lists)?; // scheme
                p.str_into(&mut acl_lists)?; // id
            }
        }
        let sessions = p.u32()?;
        for _ in 0..sessions {
            p.take(8 + 4)?; // id, timeout
            let flags = p.take(1)?[0];
            if flags & SESSION_AUTH != 0 {
                p.take(8)?; // server
                let ids = p.u32()?;
                for _ in 0..ids {
                    let n = p.u32()? as usize;
                    p.take(n)?;
                    let n = p.u32()? as usize;
                    p.take(n)?;
                }
            }
        }
        p.take(8)?; // node count
        let root_children = p.skip_record()?;
        Ok(Opened {
            prev: p,
            acl_lists,
            root_children,
        })
    }

    /// Reads ahead, so that at least `CHUNK` bytes (or all that is left) are buffered: the
    /// walk calls this outside the tree's lock, and its steps then rarely wait for the file
    /// while holding it.
    pub(super) fn read_ahead(&mut self) -> PrevResult<()> {
        let buffered = self.end - self.pos;
        let left = usize::try_from(self.left + 4).unwrap_or(usize::MAX);
        if buffered >= CHUNK.min(left) {
            return Ok(());
        }
        self.fill((2 * CHUNK).min(left))
    }

    /// Makes `n` unconsumed bytes available in `buf[pos..]`.
    fn fill(&mut self, n: usize) -> PrevResult<()> {
        if self.end - self.pos >= n {
            return Ok(());
        }
        if n as u64 > self.left + 4 {
            return Err(format!(
                "a record of {n} bytes runs past the end ({} bytes left)",
                self.left
            ));
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        let want = n.max(CHUNK);
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        while self.end < n {
            let got = loop {
                match self.src.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.map_err(|e| format!("reading: {e}"))?,
                }
            };
            if got == 0 {
                return Err("it ends early".into());
            }
            self.end += got;
        }
        Ok(())
    }

    /// Consumes `n` bytes (of the header or body, counted against the body's length).
    fn take(&mut self, n: usize) -> PrevResult<&[u8]> {
        if n as u64 > self.left {
            return Err(format!("{n} bytes asked, {} left", self.left));
        }
        self.fill(n)?;
        let s = &self.buf[self.pos..self.pos + n];
        self.crc.update(s);
        self.pos += n;
        self.left -= n as u64;
        self.consumed += n as u64;
        Ok(s)
    }

    /// The big-endian `u32` `at` bytes after the next unconsumed byte (not consumed).
    fn peek_u32(&mut self, at: usize) -> PrevResult<u32> {
        self.fill(at + 4)?;
        let b = &self.buf[self.pos + at..self.pos + at + 4];
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn u32(&mut self) -> PrevResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn u32_into(&mut self, out: &mut Vec<u8>) -> PrevResult<u32> {
        let v = self.u32()?;
        out.extend_from_slice(&v.to_be_bytes());
        Ok(v)
    }

    fn str_into(&mut self, out: &mut Vec<u8>) -> PrevResult<()> {
        let n = self.u32_into(out)? as usize;
        out.extend_from_slice(self.take(n)?);
        Ok(())
    }

    /// The next record's length and its number of children (not consumed).
    fn record(&mut self) -> PrevResult<(usize, u32)> {
        let name = self.peek_u32(0)? as usize;
        self.fill(4 + name + 1)?;
        let flags = self.buf[self.pos + 4 + name];
        let mut len = 4 + name + 1;
        if matches!(flags & KIND_MASK, KIND_EPHEMERAL | KIND_TTL) {
            len += 8; // owner or ttl
        }
        len += 8 + 8; // czxid, ctime
        for (bit, bytes) in [
            (MZXID_IS_CZXID, 8),
            (PZXID_IS_CZXID, 8),
            (MTIME_IS_CTIME, 8),
            (ZERO_VERSIONS, 12),
        ] {
            if flags & bit == 0 {
                len += bytes;
            }
        }
        len += 4; // acl
        if flags & NULL_DATA == 0 {
            len += 4 + self.peek_u32(len)? as usize;
        }
        let mut children = 0;
        if flags & HAS_CHILDREN != 0 {
            children = self.peek_u32(len)?;
            len += 4;
        }
        if len as u64 > self.left {
            return Err(format!("a record of {len} bytes, {} left", self.left));
        }
        self.fill(len)?;
        Ok((len, children))
    }

    /// The next record's name (not consumed).
    pub(super) fn name(&mut self) -> PrevResult<&str> {
        let n = self.peek_u32(0)? as usize;
        self.fill(4 + n)?;
        std::str::from_utf8(&self.buf[self.pos + 4..self.pos + 4 + n])
            .map_err(|_| "a name that is not UTF-8".to_string())
    }

    /// Appends the next record to `out`; returns its number of children.
    pub(super) fn copy_record(&mut self, out: &mut Vec<u8>) -> PrevResult<u32> {
        let (len, children) = self.record()?;
        out.extend_from_slice(self.take(len)?);
        Ok(children)
    }

    /// Consumes the next record; returns its offset in the snapshot, its bytes and its
    /// number of children.
    pub(super) fn take_record(&mut self) -> PrevResult<(u64, &[u8], u32)> {
        let (len, children) = self.record()?;
        let off = self.consumed;
        Ok((off, self.take(len)?, children))
    }

    /// Consumes the next record; returns its number of children.
    pub(super) fn skip_record(&mut self) -> PrevResult<u32> {
        let (len, children) = self.record()?;
        self.take(len)?;
        Ok(children)
    }

    /// Consumes the next record and all its descendants.
    pub(super) fn skip_subtree(&mut self) -> PrevResult<()> {
        let mut records: u64 = 1;
        while records > 0 {
            records = records - 1 + u64::from(self.skip_record()?);
        }
        Ok(())
    }

    /// After the last node: the body must be consumed exactly, and its checksum match.
    pub(super) fn finish(mut self) -> PrevResult<()> {
        if self.left != 0 {
            return Err(format!("{} bytes after its last node", self.left));
        }
        let computed = self.crc.clone().finalize();
        self.left = 4;
        let stored = self.u32()?;
        if stored != computed {
            return Err(format!(
                "checksum {stored:08x} stored, {computed:08x} computed"
            ));
        }
        Ok(())
    }
}
