//! ZooKeeper 3.6+'s tree digest (`DigestCalculator`, digest version 2), the value of the
//! snapshot's digest trailer and of each log record's TxnDigest.
//!
//! ```text
//! node digest := CRC-32 (IEEE) of path bytes, data bytes (none if null),
//!                long czxid, long mzxid, long pzxid, long ctime, long mtime,
//!                int version, int cversion, int aversion, long ephemeralOwner
//!                (big-endian), as an unsigned 32-bit value in a long
//!                -- the root's path is "" ("/" is mapped to ""); a path under
//!                   "/zookeeper/" gives 0 (the quota and config nodes are excluded;
//!                   "/zookeeper" itself counts)
//! tree digest := the wrapping 64-bit sum of the node digests of every node (AdHash)
//! ```
//!
//! The stat fields are in a different order from StatPersisted's (pzxid third). The path is
//! hashed as UTF-8 (Java's default charset on the servers this reads from).

use super::{StatPersisted, ZkSnapshot};

/// The digest version this module computes.
pub const VERSION: i32 = 2;

/// The digest of one node.
pub fn node_digest(path: &str, data: Option<&[u8]>, stat: &StatPersisted) -> i64 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut h = crc32fast::Hasher::new();
    h.update(path.as_bytes());
    if let Some(d) = data {
        h.update(d);
    }
    let mut b = [0u8; 60];
    let fields = [
        stat.czxid.to_be_bytes(),
        stat.mzxid.to_be_bytes(),
        stat.pzxid.to_be_bytes(),
        stat.ctime.to_be_bytes(),
        stat.mtime.to_be_bytes(),
    ];
    for (i, f) in fields.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(f);
    }
    b[40..44].copy_from_slice(&stat.version.to_be_bytes());
    b[44..48].copy_from_slice(&stat.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&stat.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&stat.ephemeral_owner.to_be_bytes());
    h.update(&b);
    i64::from(h.finalize())
}

/// The digest of a whole tree: the sum of its node digests.
pub fn tree_digest(snap: &ZkSnapshot) -> i64 {
    snap.nodes.iter().fold(0i64, |acc, n| {
        acc.wrapping_add(node_digest(&n.path, n.data.as_deref(), &n.stat))
    })
}
