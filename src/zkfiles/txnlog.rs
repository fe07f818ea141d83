//! ZooKeeper transaction logs (`version-2/log.<hex zxid of the first txn>`).
//!
//! ```text
//! file    := header record* end
//! header  := int magic 0x5a4b4c47 ("ZKLG"), int version (2), long dbid (0)
//! record  := long crc, int n, n bytes txn, byte 0x42 ('B')
//!            -- crc: Adler-32 of the n txn bytes
//! end     := EOF | zeros                  -- logs are preallocated (64 MB by default) with
//!                                            zeros, so a zero length means "no more records"
//! txn     := TxnHeader body [TxnDigest]
//! TxnHeader := long clientId, int cxid, long zxid, long time, int type
//! TxnDigest := int version, long treeDigest    -- 3.6+ with digests on: the tree digest
//!                                                 after this txn
//! ```
//!
//! The body, by `type` (ZooDefs.OpCode):
//!
//! ```text
//! -10 createSession      int timeout
//! -11 closeSession       vector<ustring> paths2Delete (3.6+), or nothing (older logs, and
//!                        3.6+ with zookeeper.closeSessionTxn.enabled=false)
//!   1 create, 15 create2 CreateTxn: ustring path, buffer data, vector<ACL> acl,
//!                        boolean ephemeral, int parentCVersion
//!                        (create only: CreateTxnV0, the same without parentCVersion)
//!  19 createContainer    ustring path, buffer data, vector<ACL> acl, int parentCVersion
//!  21 createTTL          ustring path, buffer data, vector<ACL> acl, int parentCVersion,
//!                        long ttl
//!   2 delete, 20 deleteContainer   ustring path
//!   5 setData, 16 reconfig         ustring path, buffer data, int version
//!   7 setACL             ustring path, vector<ACL> acl, int version
//!  13 check              ustring path, int version           (inside a multi only)
//!  14 multi              vector<{int type, buffer txn}>, each txn one of these bodies
//!  -1 error              int err
//! ```
//!
//! ZooKeeper decodes the body and then tries the TxnDigest, treating EOF as "none" (and a short
//! CreateTxn as a CreateTxnV0, a short closeSession as an old empty one). Every body has a
//! definite length, so here the bytes left after it say which: 0 (no digest) or 12 (a
//! TxnDigest); anything else is an error.
//!
//! How a log ends: at EOF or at a zero length (preallocation); or with a torn record, which a
//! crash leaves: a record cut off by EOF, or the last record with a bad checksum, a bad end
//! byte or bytes that do not decode, followed only by zeros. The same defects followed by
//! anything nonzero are corruption in the middle of the log, and an error.

use super::{LogEntry, Reader, TxnHeader, ZkTxn};
use crate::proto::Error;

/// "ZKLG".
pub const MAGIC: i32 = 0x5a4b_4c47;
pub const VERSION: i32 = 2;
const WHAT: &str = "ZooKeeper txn log";
const HEADER_LEN: usize = 16;
const TXN_HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4;
const TXN_DIGEST_LEN: usize = 4 + 8;
/// The end-of-record byte.
const EOR: u8 = b'B';

/// ZooDefs.OpCode values of the txns a log holds.
pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const SET_DATA: i32 = 5;
    pub const SET_ACL: i32 = 7;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// A whole log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLog {
    pub dbid: i64,
    pub entries: Vec<LogEntry>,
    pub end: LogEnd,
}

/// How a log file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// The last record ended exactly at EOF.
    Eof,
    /// Zeros from `offset` to EOF (a zero length: preallocated space never written).
    ZeroPadding { offset: usize },
    /// A record starting at `offset` that a crash left incomplete: cut off by EOF, or bad and
    /// followed only by zeros. `reason` says which.
    Torn { offset: usize, reason: String },
}

/// Parses a log file. Errors on a bad header and on a bad record with data after it.
pub fn read(bytes: &[u8]) -> Result<TxnLog, Error> {
    let mut r = Reader::new(bytes, 0, WHAT);
    let magic = r.i32("magic")?;
    if magic != MAGIC {
        return Err(Error::malformed(
            WHAT,
            format!("bad magic {magic:#010x} (want {MAGIC:#010x}, \"ZKLG\")"),
        ));
    }
    let version = r.i32("version")?;
    if version != VERSION {
        return Err(Error::malformed(WHAT, format!("unknown version {version}")));
    }
    let dbid = r.i64("dbid")?;
    debug_assert_eq!(r.pos(), HEADER_LEN);

    let mut entries = Vec::new();
    let mut pos = HEADER_LEN;
    let end = loop {
        let rest = &bytes[pos..];
        if rest.is_empty() {
            break LogEnd::Eof;
        }
        if rest.iter().all(|&b| b == 0) {
            break LogEnd::ZeroPadding { offset: pos };
        }
        let torn = |reason: String| LogEnd::Torn {
            offset: pos,
            reason,
        };
        if rest.len() < 12 {
            break torn(format!("{} bytes, too few for a record header", rest.len()));
        }
        let mut rr = Reader::new(rest, pos, WHAT);
        let crc = rr.i64("crc")?;
        let len = rr.i32("length")?;
        let Ok(n) = usize::try_from(len) else {
            return Err(Error::malformed(
                WHAT,
                format!("record at byte {pos}: length {len}"),
            ));
        };
        if n == 0 {
            // A zero length ends the log for ZooKeeper; here only if zeros follow.
            return Err(Error::malformed(
                WHAT,
                format!("record at byte {pos}: zero length followed by data"),
            ));
        }
        if rr.remaining() < n + 1 {
            break torn(format!(
                "record of {n} bytes cut off by the end of the file ({} bytes left)",
                rr.remaining()
            ));
        }
        let body = &rest[12..12 + n];
        let eor = rest[12 + n];
        let next = pos + 12 + n + 1;
        let computed = i64::from(super::adler32(body));
        let problem = if eor != EOR {
            Err(format!("end-of-record byte {eor:#04x}, want 0x42"))
        } else if crc != computed {
            Err(format!(
                "checksum mismatch: stored {crc:#x}, computed {computed:#x}"
            ))
        } else {
            decode_txn(body, pos + 12).map_err(|e| e.to_string())
        };
        match problem {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                let after = bytes.get(next..).unwrap_or(&[]);
                if after.iter().all(|&b| b == 0) {
                    break torn(reason);
                }
                let zxid = if body.len() >= TXN_HEADER_LEN {
                    let mut h = Reader::new(body, 0, WHAT);
                    let _ = h.i64("clientId");
                    let _ = h.i32("cxid");
                    h.i64("zxid").ok().map(|z| format!(" (zxid {z:#x})"))
                } else {
                    None
                };
                return Err(Error::malformed(
                    WHAT,
                    format!(
                        "corrupt record at byte {pos}{}, with more data after it: {reason}",
                        zxid.unwrap_or_default()
                    ),
                ));
            }
        }
        pos = next;
    };
    Ok(TxnLog { dbid, entries, end })
}

/// Decodes the txn bytes of one record (TxnHeader, body, optional TxnDigest). `base` is their
/// offset in the file, for error messages.
pub fn decode_txn(bytes: &[u8], base: usize) -> Result<LogEntry, Error> {
    let mut r = Reader::new(bytes, base, WHAT);
    let header = TxnHeader {
        client_id: r.i64("clientId")?,
        cxid: r.i32("cxid")?,
        zxid: r.i64("zxid")?,
        time: r.i64("time")?,
        kind: r.i32("type")?,
    };
    let txn = match header.kind {
        op::CLOSE_SESSION => {
            // Empty (old), a CloseSessionTxn, or either followed by a TxnDigest.
            let rem = r.remaining();
            let save = r.pos();
            match body(&mut r, header.kind, false) {
                Ok(t) if r.remaining() == 0 || r.remaining() == TXN_DIGEST_LEN => t,
                _ if rem == 0 || rem == TXN_DIGEST_LEN => {
                    r = Reader::new(bytes, base, WHAT);
                    r.take(save, "header")?;
                    ZkTxn::CloseSession { paths: None }
                }
                Ok(_) => return Err(r.err(format_args!("{} unexpected bytes", r.remaining()))),
                Err(e) => return Err(e),
            }
        }
        kind => body(&mut r, kind, true)?,
    };
    let digest = match r.remaining() {
        0 => None,
        TXN_DIGEST_LEN => Some((r.i32("digest version")?, r.i64("digest")?)),
        n => {
            return Err(r.err(format_args!(
                "{n} unexpected bytes after the {} txn",
                header.kind
            )))
        }
    };
    Ok(LogEntry {
        header,
        txn,
        digest,
    })
}

/// One txn body of type `kind`. `top`: directly in a record (CreateTxnV0 possible) rather than
/// inside a multi.
fn body(r: &mut Reader<'_>, kind: i32, top: bool) -> Result<ZkTxn, Error> {
    Ok(match kind {
        op::CREATE_SESSION => ZkTxn::CreateSession {
            timeout_ms: r.i32("timeout")?,
        },
        op::CLOSE_SESSION => {
            let n = r.count("paths2Delete", 4, true)?;
            let mut paths = Vec::with_capacity(n);
            for _ in 0..n {
                paths.push(r.opt_string("path to delete")?.unwrap_or_default());
            }
            ZkTxn::CloseSession { paths: Some(paths) }
        }
        op::CREATE | op::CREATE2 => {
            let path = r.string("path")?;
            let data = r.buffer("data")?.map(<[u8]>::to_vec);
            let acl = r.acls("acl", true)?;
            let ephemeral = r.bool("ephemeral")?;
            // CreateTxnV0 (3.3) has no parentCVersion: all that is left is nothing or a digest.
            let v0 = top
                && kind == op::CREATE
                && (r.remaining() == 0 || r.remaining() == TXN_DIGEST_LEN);
            let parent_cversion = if v0 { -1 } else { r.i32("parentCVersion")? };
            ZkTxn::Create {
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            }
        }
        op::CREATE_CONTAINER => ZkTxn::CreateContainer {
            path: r.string("path")?,
            data: r.buffer("data")?.map(<[u8]>::to_vec),
            acl: r.acls("acl", true)?,
            parent_cversion: r.i32("parentCVersion")?,
        },
        op::CREATE_TTL => ZkTxn::CreateTtl {
            path: r.string("path")?,
            data: r.buffer("data")?.map(<[u8]>::to_vec),
            acl: r.acls("acl", true)?,
            parent_cversion: r.i32("parentCVersion")?,
            ttl: r.i64("ttl")?,
        },
        op::DELETE | op::DELETE_CONTAINER => ZkTxn::Delete {
            path: r.string("path")?,
        },
        op::SET_DATA | op::RECONFIG => ZkTxn::SetData {
            path: r.string("path")?,
            data: r.buffer("data")?.map(<[u8]>::to_vec),
            version: r.i32("version")?,
        },
        op::SET_ACL => ZkTxn::SetAcl {
            path: r.string("path")?,
            acl: r.acls("acl", true)?,
            version: r.i32("version")?,
        },
        op::CHECK => ZkTxn::Check {
            path: r.string("path")?,
            version: r.i32("version")?,
        },
        op::ERROR => ZkTxn::Error { err: r.i32("err")? },
        op::MULTI => {
            if !top {
                return Err(r.err("multi inside a multi"));
            }
            let n = r.count("multi txns", 8, true)?;
            let mut subs = Vec::with_capacity(n);
            for i in 0..n {
                let sub_kind = r.i32("multi txn type")?;
                let at = r.pos();
                let sub = r
                    .buffer("multi txn")?
                    .ok_or_else(|| r.err(format_args!("multi txn {i}: null")))?;
                let mut sr = Reader::new(sub, at + 4, WHAT);
                let txn = body(&mut sr, sub_kind, false)?;
                // A failed multi's ops can be logged as error with the op's own record as
                // their data: when a learner applies a DIFF before logging it, processTxn has
                // already turned every op of the failed multi into an error (it sets the
                // type, not the data). ZooKeeper reads the first int as the error code and
                // ignores the rest; so does this (a real ErrorTxn is 4 bytes).
                if sr.remaining() != 0 && sub_kind != op::ERROR {
                    return Err(sr.err(format_args!(
                        "multi txn {i} (type {sub_kind}): {} unexpected bytes",
                        sr.remaining()
                    )));
                }
                subs.push((sub_kind, txn));
            }
            ZkTxn::Multi(subs)
        }
        other => return Err(r.err(format_args!("unknown txn type {other}"))),
    })
}

/// Encodes a txn body as ZooKeeper does (the inverse of `body`); used by tests to build logs.
#[cfg(test)]
pub(crate) fn encode_body(out: &mut Vec<u8>, txn: &ZkTxn) {
    use super::put;
    match txn {
        ZkTxn::CreateSession { timeout_ms } => put::i32(out, *timeout_ms),
        ZkTxn::CloseSession { paths } => {
            if let Some(paths) = paths {
                put::i32(out, paths.len() as i32);
                for p in paths {
                    put::string(out, p);
                }
            }
        }
        ZkTxn::Create {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
        } => {
            put::string(out, path);
            put::buffer(out, data.as_deref());
            put::acls(out, acl);
            out.push(u8::from(*ephemeral));
            put::i32(out, *parent_cversion);
        }
        ZkTxn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => {
            put::string(out, path);
            put::buffer(out, data.as_deref());
            put::acls(out, acl);
            put::i32(out, *parent_cversion);
        }
        ZkTxn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        } => {
            put::string(out, path);
            put::buffer(out, data.as_deref());
            put::acls(out, acl);
            put::i32(out, *parent_cversion);
            put::i64(out, *ttl);
        }
        ZkTxn::Delete { path } => put::string(out, path),
        ZkTxn::SetData {
            path,
            data,
            version,
        } => {
            put::string(out, path);
            put::buffer(out, data.as_deref());
            put::i32(out, *version);
        }
        ZkTxn::SetAcl { path, acl, version } => {
            put::string(out, path);
            put::acls(out, acl);
            put::i32(out, *version);
        }
        ZkTxn::Check { path, version } => {
            put::string(out, path);
            put::i32(out, *version);
        }
        ZkTxn::Multi(subs) => {
            put::i32(out, subs.len() as i32);
            for (kind, sub) in subs {
                put::i32(out, *kind);
                let mut b = Vec::new();
                encode_body(&mut b, sub);
                put::buffer(out, Some(&b));
            }
        }
        ZkTxn::Error { err } => put::i32(out, *err),
    }
}
