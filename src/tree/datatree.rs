//! The znode tree. (Implementation in progress.)

use bytes::Bytes;

use super::{Applied, SessionInfo, TreeOptions, Txn};
use crate::proto::response::Response;
use crate::proto::{Acl, Id, Stat, ZkError};

#[derive(Debug, Clone, Default)]
pub struct DataTree {
    _opts: TreeOptions,
}

impl DataTree {
    /// An empty tree holding only `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    pub fn new(opts: TreeOptions) -> DataTree {
        DataTree { _opts: opts }
    }

    /// Applies one committed txn at `zxid`. Deterministic.
    pub fn apply(&mut self, zxid: i64, _txn: &Txn) -> Applied {
        Applied {
            zxid,
            result: Ok(Response::Empty),
            triggers: vec![],
        }
    }

    /// The zxid of the last applied txn (0 when none).
    pub fn last_zxid(&self) -> i64 {
        0
    }

    pub fn get_data(&self, _path: &str, _auth: &[Id]) -> Result<(Option<Bytes>, Stat), ZkError> {
        Err(ZkError::NoNode)
    }

    pub fn exists(&self, _path: &str) -> Option<Stat> {
        None
    }

    pub fn get_children(&self, _path: &str, _auth: &[Id]) -> Result<(Vec<String>, Stat), ZkError> {
        Err(ZkError::NoNode)
    }

    pub fn get_acl(&self, _path: &str, _auth: &[Id]) -> Result<(Vec<Acl>, Stat), ZkError> {
        Err(ZkError::NoNode)
    }

    /// Paths of this session's ephemerals that start with `prefix` ("/" for all), sorted.
    pub fn get_ephemerals(&self, _session_id: i64, _prefix: &str) -> Vec<String> {
        vec![]
    }

    /// Number of descendants of `path` (not counting itself).
    pub fn all_children_number(&self, _path: &str, _auth: &[Id]) -> Result<i32, ZkError> {
        Err(ZkError::NoNode)
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        vec![]
    }

    pub fn session(&self, _session_id: i64) -> Option<SessionInfo> {
        None
    }

    /// Containers with no children that once had some, and TTL nodes past their TTL with no
    /// children, at `now_ms`: candidates for a `Txn::Reap`.
    pub fn reap_candidates(&self, _now_ms: i64) -> Vec<String> {
        vec![]
    }

    pub fn node_count(&self) -> usize {
        0
    }

    /// Sum of path lengths and data lengths, like ZooKeeper's approximateDataSize.
    pub fn approximate_data_size(&self) -> u64 {
        0
    }

    pub fn ephemerals_count(&self) -> usize {
        0
    }

    /// Ephemeral paths by session, for the `dump` four-letter word.
    pub fn ephemerals_by_session(&self) -> Vec<(i64, Vec<String>)> {
        vec![]
    }

    /// A digest of the whole tree (paths, data, Stat, ACLs, sessions), equal on replicas that
    /// applied the same log.
    pub fn digest(&self) -> u64 {
        0
    }
}
