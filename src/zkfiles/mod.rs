//! Apache ZooKeeper's on-disk files: snapshots (`version-2/snapshot.<zxid>`, "ZKSN") and
//! transaction logs (`version-2/log.<zxid>`, "ZKLG"), read for the import of a ZooKeeper
//! dataDir and written (snapshots only) for the way back (`keeperd export-zk`).
//!
//! This module only turns bytes into records and records into bytes: no I/O beyond what the
//! `dir` helpers do to list and read files, and no knowledge of keeperd's tree. The tree is
//! built from these records by `tree::DataTree::from_zk_snapshot` and rolled forward by
//! `DataTree::replay_zk_txn`.
//!
//! Decoding rules, as in `proto::codec`: nothing a file says is trusted before it is checked;
//! no allocation is sized from a length before the length was checked against the bytes that
//! remain; every error names what was being read and where.
//!
//! The layouts follow Apache ZooKeeper 3.4-3.9 (`FileSnap`, `FileTxnLog`, `SerializeUtils`,
//! `DataTree.serialize`, `zookeeper.jute`); the details are in the submodules.

pub mod digest;
pub mod dir;
pub mod snapshot;
pub mod txnlog;

use crate::proto::Acl;

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
    pub digest: Option<ZkDigest>,
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
