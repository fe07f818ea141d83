//! ZooKeeper snapshot files (`version-2/snapshot.<hex zxid>[.gz|.snappy]`).
//!
//! ```text
//! file     := stream, or stream compressed whole (.gz: gzip; .snappy: snappy-java framing)
//! stream   := header sessions acls nodes seal [digest seal] [lastzxid seal]
//! header   := int magic 0x5a4b534e ("ZKSN"), int version (2), long dbid (-1)
//! sessions := int n, n * (long session id, int timeout ms)
//! acls     := int n, n * (long key, vector<ACL>)       -- the ACL cache
//! nodes    := node* ustring "/"                          -- "/" ends the list
//! node     := ustring path ("" for the root), buffer data, long acl key, StatPersisted
//! seal     := long Adler-32 of every stream byte before it (earlier seals included),
//!             ustring "/"
//! digest   := long zxid, int version, long digest        -- 3.6+, zookeeper.digest.enabled
//!             (version < 2: ustring hex digest instead of the long)
//! lastzxid := long lastProcessedZxid                     -- 3.9+, off by default
//! ```
//!
//! Nodes come in pre-order (a parent before its children), children in hash-set order. The
//! session and ACL maps are written in hash order too, so two snapshots of one tree need not be
//! byte-equal.
//!
//! ZooKeeper reads the optional parts by trying and treating EOF as "absent": the digest only
//! when its own digest feature is on, the last zxid only when its feature is on. A reader that
//! does not know the writer's settings can still tell them apart by the bytes left after the
//! first seal, since each part has a fixed size: 0 (neither), 33 (digest), 21 (last zxid
//! only), 54 (both); a version 1 digest (hex string, 3.6.0 only) is parsed as such. Each
//! part's seal is checked.
//!
//! The Adler-32 covers the uncompressed stream, which is what `read` takes: call `decompress`
//! on a file's bytes first.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;

use super::{adler32, put, Reader, ZkDigest, ZkNode, ZkSnapshot, STAT_LEN};
use crate::proto::Error;

/// "ZKSN".
pub const MAGIC: i32 = 0x5a4b_534e;
pub const VERSION: i32 = 2;
const WHAT: &str = "ZooKeeper snapshot";

/// A seal: the checksum and the "/" string.
const SEAL_LEN: usize = 8 + 4 + 1;
const LAST_ZXID_LEN: usize = 8;
/// The fewest bytes a node can take: path, data, acl and stat.
const MIN_NODE_LEN: usize = 4 + 4 + 8 + STAT_LEN;

/// snappy-java's stream header: magic, then int version 1 and int compatible version 1.
const SNAPPY_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const SNAPPY_HEADER_LEN: usize = 16;

/// Parses an uncompressed snapshot stream and checks its checksums.
pub fn read(bytes: &[u8]) -> Result<ZkSnapshot, Error> {
    let mut r = Reader::new(bytes, 0, WHAT);
    let magic = r.i32("magic")?;
    if magic != MAGIC {
        return Err(Error::malformed(
            WHAT,
            format!("bad magic {magic:#010x} (want {MAGIC:#010x}, \"ZKSN\")"),
        ));
    }
    let version = r.i32("version")?;
    let dbid = r.i64("dbid")?;

    let n = r.count("session count", 12, false)?;
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.i64("session id")?;
        let timeout = r.i32("session timeout")?;
        sessions.push((id, timeout));
    }

    let n = r.count("ACL cache size", 8 + 4, false)?;
    let mut acls = Vec::with_capacity(n);
    let mut keys = HashSet::with_capacity(n);
    for _ in 0..n {
        let key = r.i64("ACL key")?;
        if !keys.insert(key) {
            return Err(r.err(format_args!("ACL key {key} appears twice")));
        }
        acls.push((key, r.acls("ACL list", false)?));
    }

    let mut nodes: Vec<ZkNode> = Vec::new();
    let mut paths: HashSet<String> = HashSet::new();
    loop {
        let at = r.pos();
        let path = r.string("node path")?;
        if path == "/" {
            break;
        }
        if r.remaining() < MIN_NODE_LEN - 4 {
            return Err(r.err(format_args!("node {path:?} cut off")));
        }
        let data = r.buffer("node data")?.map(<[u8]>::to_vec);
        let acl = r.i64("node acl")?;
        let stat = r.stat()?;
        let path = if path.is_empty() {
            if !nodes.is_empty() {
                return Err(Error::malformed(
                    WHAT,
                    format!("at byte {at}: the root is not the first node"),
                ));
            }
            "/".to_string()
        } else {
            let parent = match path.rfind('/') {
                Some(0) => "/",
                Some(i) => &path[..i],
                None => "",
            };
            if nodes.is_empty() || !path.starts_with('/') || !paths.contains(parent) {
                return Err(Error::malformed(
                    WHAT,
                    format!("at byte {at}: node {path:?} comes before its parent"),
                ));
            }
            path
        };
        if !paths.insert(path.clone()) {
            return Err(Error::malformed(
                WHAT,
                format!("at byte {at}: node {path:?} appears twice"),
            ));
        }
        nodes.push(ZkNode {
            path,
            data,
            acl,
            stat,
        });
    }
    if nodes.is_empty() {
        return Err(r.err("no root node"));
    }
    check_seal(&mut r, bytes, "")?;

    let mut digest = None;
    let mut last_processed_zxid = None;
    let rem = r.remaining();
    if rem != 0 && rem != LAST_ZXID_LEN + SEAL_LEN {
        let zxid = r.i64("digest zxid")?;
        let version = r.i32("digest version")?;
        let value = if version >= 2 {
            r.i64("digest")?
        } else {
            // 3.6.0 wrote the digest as a hex string.
            match r.opt_string("digest")? {
                None => 0,
                Some(s) => i64::from_str_radix(&s, 16)
                    .map_err(|_| r.err(format_args!("digest {s:?} is not hex")))?,
            }
        };
        check_seal(&mut r, bytes, " after the digest")?;
        digest = Some(ZkDigest {
            zxid,
            version,
            digest: value,
        });
    }
    if r.remaining() == LAST_ZXID_LEN + SEAL_LEN {
        last_processed_zxid = Some(r.i64("lastProcessedZxid")?);
        check_seal(&mut r, bytes, " after lastProcessedZxid")?;
    }
    if r.remaining() != 0 {
        return Err(r.err(format_args!(
            "{} unexpected bytes at the end",
            r.remaining()
        )));
    }
    Ok(ZkSnapshot {
        version,
        dbid,
        sessions,
        acls,
        nodes,
        digest,
        last_processed_zxid,
    })
}

/// Reads a seal at the reader's position: the Adler-32 of `bytes` up to there, and "/".
fn check_seal(r: &mut Reader<'_>, bytes: &[u8], which: &str) -> Result<(), Error> {
    let computed = i64::from(adler32(&bytes[..r.pos()]));
    let stored = r.i64("checksum")?;
    let end = r.opt_string("checksum end marker")?;
    if stored != computed {
        return Err(Error::malformed(
            WHAT,
            format!("checksum mismatch{which}: stored {stored:#x}, computed {computed:#x}"),
        ));
    }
    if end.as_deref() != Some("/") {
        return Err(r.err(format_args!("checksum end marker {end:?}, want \"/\"")));
    }
    Ok(())
}

fn seal(out: &mut Vec<u8>) {
    let sum = adler32(out);
    put::i64(out, i64::from(sum));
    put::string(out, "/");
}

/// Undoes a snapshot file's compression, chosen like ZooKeeper's `SnapStream` does by the
/// last dot-separated part of the file name: `gz`, `snappy`, anything else plain.
pub fn decompress<'a>(name: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, Error> {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("gz") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| Error::malformed("gzip snapshot", e.to_string()))?;
            Ok(Cow::Owned(out))
        }
        Some("snappy") => snappy_java(bytes).map(Cow::Owned),
        _ => Ok(Cow::Borrowed(bytes)),
    }
}

/// snappy-java's `SnappyOutputStream` framing (not the Snappy "framing format" of
/// `snap::read::FrameDecoder`):
///
/// ```text
/// stream := header chunk*          -- streams may be concatenated, header and all
/// header := 8 bytes "\x82SNAPPY\0", int version (1), int compatible version (1)
/// chunk  := int n, n bytes of one raw Snappy block (no CRC)
/// ```
fn snappy_java(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    const WHAT: &str = "snappy snapshot";
    if !bytes.starts_with(SNAPPY_MAGIC) {
        return Err(Error::malformed(WHAT, "no snappy-java stream header"));
    }
    let mut r = Reader::new(bytes, 0, WHAT);
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while r.remaining() > 0 {
        if r.rest().starts_with(SNAPPY_MAGIC) {
            r.take(SNAPPY_HEADER_LEN, "stream header")?;
            continue;
        }
        let at = r.pos();
        let n = r.i32("chunk length")?;
        let n = usize::try_from(n).map_err(|_| r.err(format_args!("chunk length {n}")))?;
        let chunk = r.take(n, "chunk")?;
        let len = snap::raw::decompress_len(chunk)
            .map_err(|e| Error::malformed(WHAT, format!("chunk at byte {at}: {e}")))?;
        let start = out.len();
        out.resize(start + len, 0);
        decoder
            .decompress(chunk, &mut out[start..])
            .map_err(|e| Error::malformed(WHAT, format!("chunk at byte {at}: {e}")))?;
    }
    Ok(out)
}

/// A plain (uncompressed, "CHECKED") snapshot stream of `snap`, as ZooKeeper 3.6+ writes it:
/// sealed, with the digest part when `snap.digest` is set and the last zxid part when
/// `snap.last_processed_zxid` is. The root is written as "". Nodes go out in `snap.nodes`
/// order, which must have parents first.
pub fn write(snap: &ZkSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    put::i32(&mut out, MAGIC);
    put::i32(&mut out, snap.version);
    put::i64(&mut out, snap.dbid);
    put::i32(
        &mut out,
        i32::try_from(snap.sessions.len()).unwrap_or(i32::MAX),
    );
    for &(id, timeout) in &snap.sessions {
        put::i64(&mut out, id);
        put::i32(&mut out, timeout);
    }
    put::i32(&mut out, i32::try_from(snap.acls.len()).unwrap_or(i32::MAX));
    for (key, list) in &snap.acls {
        put::i64(&mut out, *key);
        put::acls(&mut out, list);
    }
    for node in &snap.nodes {
        put::string(&mut out, if node.path == "/" { "" } else { &node.path });
        put::buffer(&mut out, node.data.as_deref());
        put::i64(&mut out, node.acl);
        put::stat(&mut out, &node.stat);
    }
    put::string(&mut out, "/");
    seal(&mut out);
    if let Some(d) = snap.digest {
        put::i64(&mut out, d.zxid);
        put::i32(&mut out, d.version);
        if d.version >= 2 {
            put::i64(&mut out, d.digest);
        } else {
            put::string(&mut out, &format!("{:x}", d.digest));
        }
        seal(&mut out);
    }
    if let Some(z) = snap.last_processed_zxid {
        put::i64(&mut out, z);
        seal(&mut out);
    }
    out
}
