//! Apache ZooKeeper's on-disk files: snapshots (`version-2/snapshot.<zxid>`, "ZKSN") and
//! transaction logs (`version-2/log.<zxid>`, "ZKLG"), read for the import of a ZooKeeper
//! dataDir and written (snapshots only) for the way back (`keeperd export-zk`).
//!
//! This module only turns bytes into records and records into bytes: no I/O beyond what the
//! `dir` helpers do to list and read files, and no knowledge of keeperd's tree. The tree is
//! built from these records by `tree::DataTree::from_zk_snapshot` and rolled forward by
//! `DataTree::replay_zk`.
//!
//! Decoding rules, as in `proto::codec`: nothing a file says is trusted before it is checked;
//! no allocation is sized from a length before the length was checked against the bytes that
//! remain; every error names what was being read and where.
//!
//! The layouts follow Apache ZooKeeper 3.4-3.9 (`FileSnap`, `FileTxnLog`, `SerializeUtils`,
//! `DataTree.serialize`, `zookeeper.jute`); the details are in the submodules. Both kinds of
//! file are jute, ZooKeeper's serialization:
//!
//! ```text
//! int     := 4 bytes, big-endian two's complement
//! long    := 8 bytes, big-endian two's complement
//! boolean := 1 byte, nonzero is true
//! buffer  := int len, len bytes; len -1 is null
//! ustring := int len, len bytes of UTF-8; len -1 is null
//! vector  := int count, count elements; count -1 is null
//! ACL     := int perms, ustring scheme, ustring id
//! StatPersisted := long czxid, long mzxid, long ctime, long mtime,
//!                  int version, int cversion, int aversion, long ephemeralOwner, long pzxid
//! ```
//!
//! Checksums are Adler-32 (`java.util.zip.Adler32`), stored as a long holding the unsigned
//! 32-bit value.

pub mod digest;
pub mod dir;
pub mod snapshot;
pub mod txnlog;

#[cfg(test)]
mod tests;

use crate::proto::{Acl, Error, Id};

/// ZooKeeper's StatPersisted: the Stat fields a snapshot stores for each node.
///
/// `cversion` is the persisted one (the number of child creations), not the one clients see
/// (`2 * cversion - numChildren`). `ephemeral_owner` is raw: a session id for an ephemeral,
/// `i64::MIN` (0x8000000000000000) for a container, `0xff << 56 | ttl` for a TTL node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// One node of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkNode {
    /// Full path; the root is written as "" by ZooKeeper and is "/" here.
    pub path: String,
    /// `None` for a null buffer (length -1), distinct from empty data.
    pub data: Option<Vec<u8>>,
    /// Key into `ZkSnapshot::acls` (-1 is ZooKeeper's "no ACL", read as open).
    pub acl: i64,
    pub stat: StatPersisted,
}

/// The 3.6+ digest record (ZxidDigest): the tree digest as of `zxid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZkDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// A whole snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZkSnapshot {
    /// File header version (2) and dbid (-1 in every ZooKeeper release).
    pub version: i32,
    pub dbid: i64,
    /// (session id, timeout ms), in file order.
    pub sessions: Vec<(i64, i32)>,
    /// The ACL cache: (key, list), in file order.
    pub acls: Vec<(i64, Vec<Acl>)>,
    /// Every node, in file order (parents before children).
    pub nodes: Vec<ZkNode>,
    /// The digest trailer of 3.6+ snapshots; `None` in older files (and with digests off).
    /// A trailer with zxid 0 is ZooKeeper's "no digest yet" (written before the first txn).
    pub digest: Option<ZkDigest>,
    /// The lastProcessedZxid trailer of 3.9+ snapshots written with
    /// `zookeeper.serializeLastProcessedZxid.enabled=true`; `None` otherwise. ZooKeeper's own
    /// loader takes the zxid from the file name regardless.
    pub last_processed_zxid: Option<i64>,
}

/// TxnHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnHeader {
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
    /// The opcode (ZooDefs.OpCode): 1 create, -10 createSession, -1 error, ...
    pub kind: i32,
}

/// The body of one transaction, by the header's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZkTxn {
    /// createSession (-10).
    CreateSession { timeout_ms: i32 },
    /// closeSession (-11). 3.6+ lists the ephemerals to delete; older logs have no body
    /// (`None`).
    CloseSession { paths: Option<Vec<String>> },
    /// create (1) and create2 (15): CreateTxn, or CreateTxnV0 (no parentCVersion, written by
    /// 3.3 and read by every later release) with `parent_cversion` -1.
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    /// createContainer (19).
    CreateContainer {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    /// createTTL (21).
    CreateTtl {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl: i64,
    },
    /// delete (2) and deleteContainer (20).
    Delete { path: String },
    /// setData (5), and reconfig (16), which ZooKeeper logs as a SetDataTxn on
    /// /zookeeper/config.
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    /// setACL (7).
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// check (13).
    Check { path: String, version: i32 },
    /// multi (14): each sub-txn with its own type (an ErrorTxn for each op of a failed multi).
    Multi(Vec<(i32, ZkTxn)>),
    /// error (-1).
    Error { err: i32 },
}

/// One record of a transaction log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub header: TxnHeader,
    pub txn: ZkTxn,
    /// The 3.6+ TxnDigest after the txn: (version, tree digest after applying it).
    pub digest: Option<(i32, i64)>,
}

/// The ephemeralOwner of a container node.
pub const CONTAINER_OWNER: i64 = i64::MIN;

impl ZkSnapshot {
    /// The greatest czxid, mzxid or pzxid of any node (0 for no nodes): a lower bound of
    /// the last zxid the snapshot reflects, changes made while a fuzzy snapshot was written
    /// included.
    pub fn max_stat_zxid(&self) -> i64 {
        self.nodes
            .iter()
            .flat_map(|n| [n.stat.czxid, n.stat.mzxid, n.stat.pzxid])
            .max()
            .unwrap_or(0)
    }
}

impl StatPersisted {
    /// The ephemeralOwner as a client sees it in a Stat: 0 for containers and TTL nodes
    /// (ZooKeeper's `DataTree.copyStat` hides their markers), the session id otherwise.
    pub fn client_ephemeral_owner(&self) -> i64 {
        let owner = self.ephemeral_owner;
        if owner == CONTAINER_OWNER || (owner as u64 >> 56) == 0xff {
            0
        } else {
            owner
        }
    }
}

/// `java.util.zip.Adler32` of `bytes`.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    // 5552 is the most bytes that can be summed before the 32-bit sums could overflow.
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// A bounds-checked jute cursor over a whole file (or one record of it). Errors name `what`
/// and the byte offset, counted from `base` (the slice's offset in its file).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    what: &'static str,
}

/// The fewest bytes an ACL can take (perms and two empty strings).
pub(crate) const MIN_ACL_LEN: usize = 4 + 4 + 4;
pub(crate) const STAT_LEN: usize = 6 * 8 + 3 * 4;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize, what: &'static str) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// An error at the current position.
    pub(crate) fn err(&self, detail: impl std::fmt::Display) -> Error {
        Error::malformed(
            self.what,
            format!("at byte {}: {detail}", self.base + self.pos),
        )
    }

    pub(crate) fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.err(format_args!(
                "{field}: {n} bytes wanted, {} left",
                self.remaining()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &str) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn i32(&mut self, field: &str) -> Result<i32, Error> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, field: &str) -> Result<i64, Error> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn bool(&mut self, field: &str) -> Result<bool, Error> {
        Ok(self.u8(field)? != 0)
    }

    /// A buffer: `None` for length -1; below -1 or beyond the input is an error.
    pub(crate) fn buffer(&mut self, field: &str) -> Result<Option<&'a [u8]>, Error> {
        let len = self.i32(field)?;
        if len == -1 {
            return Ok(None);
        }
        let n =
            usize::try_from(len).map_err(|_| self.err(format_args!("{field}: length {len}")))?;
        self.take(n, field).map(Some)
    }

    /// A ustring; invalid UTF-8 is replaced with U+FFFD, as Java's decoder does.
    pub(crate) fn opt_string(&mut self, field: &str) -> Result<Option<String>, Error> {
        Ok(self
            .buffer(field)?
            .map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    /// A ustring that must not be null.
    pub(crate) fn string(&mut self, field: &str) -> Result<String, Error> {
        self.opt_string(field)?
            .ok_or_else(|| self.err(format_args!("{field}: null string")))
    }

    /// A count of items that take at least `min_len` bytes each, checked against the input
    /// left; -1 (null) reads as 0 when `null_ok`, and is an error otherwise.
    pub(crate) fn count(
        &mut self,
        field: &str,
        min_len: usize,
        null_ok: bool,
    ) -> Result<usize, Error> {
        let n = self.i32(field)?;
        if n == -1 && null_ok {
            return Ok(0);
        }
        let n = usize::try_from(n).map_err(|_| self.err(format_args!("{field}: count {n}")))?;
        if n.saturating_mul(min_len) > self.remaining() {
            return Err(self.err(format_args!(
                "{field}: count {n} cannot fit in the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// vector<ACL>; null reads as empty when `null_ok`.
    pub(crate) fn acls(&mut self, field: &str, null_ok: bool) -> Result<Vec<Acl>, Error> {
        let n = self.count(field, MIN_ACL_LEN, null_ok)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let perms = self.i32("ACL perms")?;
            let scheme = self.opt_string("ACL scheme")?.unwrap_or_default();
            let id = self.opt_string("ACL id")?.unwrap_or_default();
            out.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        Ok(out)
    }

    pub(crate) fn stat(&mut self) -> Result<StatPersisted, Error> {
        Ok(StatPersisted {
            czxid: self.i64("czxid")?,
            mzxid: self.i64("mzxid")?,
            ctime: self.i64("ctime")?,
            mtime: self.i64("mtime")?,
            version: self.i32("version")?,
            cversion: self.i32("cversion")?,
            aversion: self.i32("aversion")?,
            ephemeral_owner: self.i64("ephemeralOwner")?,
            pzxid: self.i64("pzxid")?,
        })
    }
}

/// jute encoders over a `Vec<u8>`. Lengths beyond `i32::MAX` cannot be written; callers hold
/// data that came from (or is bound for) ZooKeeper, whose jute.maxbuffer is far below that.
pub(crate) mod put {
    use super::{Acl, StatPersisted};

    pub(crate) fn i32(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn i64(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    fn len(out: &mut Vec<u8>, n: usize) {
        i32(out, i32::try_from(n).unwrap_or(i32::MAX));
    }

    pub(crate) fn buffer(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            None => i32(out, -1),
            Some(b) => {
                len(out, b.len());
                out.extend_from_slice(b);
            }
        }
    }

    pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
        buffer(out, Some(s.as_bytes()));
    }

    pub(crate) fn acls(out: &mut Vec<u8>, acls: &[Acl]) {
        len(out, acls.len());
        for a in acls {
            i32(out, a.perms);
            string(out, &a.id.scheme);
            string(out, &a.id.id);
        }
    }

    pub(crate) fn stat(out: &mut Vec<u8>, s: &StatPersisted) {
        i64(out, s.czxid);
        i64(out, s.mzxid);
        i64(out, s.ctime);
        i64(out, s.mtime);
        i32(out, s.version);
        i32(out, s.cversion);
        i32(out, s.aversion);
        i64(out, s.ephemeral_owner);
        i64(out, s.pzxid);
    }
}
