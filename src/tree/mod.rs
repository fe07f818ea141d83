//! The replicated state machine: the znode tree, the session table and `apply()`.
//!
//! Everything here is pure and deterministic: no I/O, no clocks, no randomness, no locks.
//! Every replica that applies the same `Txn`s with the same zxids ends with a byte-identical
//! tree (see `DataTree::digest`). Time enters only through `time_ms` stamped into a `Txn` by
//! the server that proposed it.
//!
//! Writes are validated here, at apply time, not before proposing: versions, NodeExists,
//! NoNode, ACLs (against the `auth` ids carried in the txn), sequential names from the
//! parent's cversion. A write that fails still consumes its zxid, as in ZooKeeper.

mod acl;
mod datatree;
mod path;
mod reconfig;
mod txn_codec;

pub(crate) use acl::zk_auth_order;
pub use datatree::{DataTree, Piece, Replayed, SnapshotCut, CONFIG_NODE};

use crate::proto::request::{ReconfigRequest, Request};
use crate::proto::response::Response;
use std::sync::Arc;

use crate::proto::{Acl, EventType, Id, ZkError};

/// Options that change apply semantics; every replica must use the same values.
#[derive(Debug, Clone, Default)]
pub struct TreeOptions {
    /// zoo.cfg skipACL=yes: no ACL is checked.
    pub skip_acl: bool,
    /// The sasl authentication provider is registered (authProvider.N=...SASL...): `sasl:`
    /// ids are valid in ACLs and match SASL identities.
    pub sasl_acls: bool,
}

impl TreeOptions {
    /// The options zoo.cfg gives (the same on every server of an ensemble).
    pub fn from_config(config: &crate::config::Config) -> TreeOptions {
        TreeOptions {
            skip_acl: config.skip_acl,
            sasl_acls: config.client_auth.sasl_provider,
        }
    }
}

/// One entry of the replicated log, as the tree sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    /// A new session (the id and its clamped timeout were chosen by the accepting server).
    CreateSession { session_id: i64, timeout_ms: i32 },
    /// closeSession from a client, or expiry decided by the leader: deletes its ephemerals.
    CloseSession { session_id: i64 },
    /// A client write (one of the `Request::is_write` variants other than CloseSession).
    Client {
        session_id: i64,
        /// The proposing server's wall clock (`now_ms()` where the request arrived; a
        /// forwarded txn keeps it), used for ctime/mtime and TTL bookkeeping.
        time_ms: i64,
        /// The identities the connection has authenticated (digest, super, ip, ...).
        auth: Vec<Id>,
        request: Request,
    },
    /// Leader housekeeping: delete these containers / expired TTL nodes if they still
    /// qualify at `time_ms` (re-checked here, so a racing create keeps the node).
    Reap { time_ms: i64, paths: Vec<String> },
    /// Leader housekeeping: the ensemble's membership in ZooKeeper's dynamic-config format
    /// (`server.N=...` lines and `version=...`) becomes the data of /zookeeper/config, so
    /// clients (`config` in zkCli) read and watch it as in ZooKeeper.
    SetConfig { time_ms: i64, data: Vec<u8> },
    /// reconfig (opcode 16): the new membership is computed at apply time from the current
    /// /zookeeper/config. Proposed without a `view`; the leader stamps its view into the
    /// entry as it appends it (an entry without one is refused at apply).
    Reconfig {
        session_id: i64,
        time_ms: i64,
        auth: Vec<Id>,
        request: ReconfigRequest,
        /// Fewest voters the new membership may have: 2 with standaloneEnabled=true (as in
        /// ZooKeeper), else 1.
        min_voters: u32,
        view: Option<LeaderView>,
    },
    /// The identities of a session's connection from now on, vouched for by `server`, the
    /// member that holds that connection (it authenticated the client: ip and x509 when the
    /// connection attached to the session, then each addauth or SASL login). Replaces what
    /// the session had; only `server` may then write for the session (`Owned`).
    SessionAuth {
        session_id: i64,
        server: u64,
        ids: Vec<Id>,
    },
    /// A client's write (`Client`, `Reconfig` or the client's `CloseSession`) submitted by
    /// `server` for a session it holds. It carries no authority of its own: the inner
    /// txn's `auth` is empty and ignored, and the write is applied only if the session's
    /// last `SessionAuth` came from `server`, against the identities recorded there
    /// (SessionExpired without the session, SessionMoved otherwise).
    Owned { server: u64, txn: Box<Txn> },
}

impl Txn {
    /// The txn itself, or the client write inside an `Owned`.
    pub fn inner(&self) -> &Txn {
        match self {
            Txn::Owned { txn, .. } => txn,
            t => t,
        }
    }

    /// `inner`, mutable (the leader stamps its view into a reconfig).
    pub fn inner_mut(&mut self) -> &mut Txn {
        match self {
            Txn::Owned { txn, .. } => txn,
            t => t,
        }
    }

    /// The session a client-side txn acts for (`None` for leader housekeeping).
    pub fn session_id(&self) -> Option<i64> {
        match self.inner() {
            Txn::CreateSession { session_id, .. }
            | Txn::CloseSession { session_id }
            | Txn::Client { session_id, .. }
            | Txn::Reconfig { session_id, .. }
            | Txn::SessionAuth { session_id, .. } => Some(*session_id),
            Txn::Reap { .. } | Txn::SetConfig { .. } | Txn::Owned { .. } => None,
        }
    }
}

/// What the leader knew when it appended a reconfig: whether a membership change was still
/// in flight, and which servers (itself included) were connected and caught up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderView {
    pub in_progress: bool,
    pub synced: Vec<u64>,
}

/// A change a watch may be waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTrigger {
    pub path: String,
    pub event: EventType,
}

/// What applying one `Txn` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The zxid this txn was applied at.
    pub zxid: i64,
    /// For `Txn::Client`: the reply body or the error code. Multi always answers
    /// `Ok(Response::Multi(..))`, with per-op errors inside. `Ok(Response::Empty)` otherwise.
    pub result: Result<Response, ZkError>,
    /// Watch events, in the order ZooKeeper fires them.
    pub triggers: Vec<WatchTrigger>,
    /// The ACL each znode deleted by this txn had: who may see its NodeDeleted event.
    pub deleted: Vec<(String, Arc<[Acl]>)>,
}

impl Applied {
    /// The ACL `path` had when this txn deleted it (the last deletion, if a multi deleted it
    /// twice).
    pub fn deleted_acl(&self, path: &str) -> Option<Arc<[Acl]>> {
        self.deleted
            .iter()
            .rev()
            .find(|(p, _)| p == path)
            .map(|(_, a)| a.clone())
    }
}

/// Whether identities `auth` may READ a znode with this ACL (what a watch event about it
/// needs, as a read would). An empty ACL, world:anyone and super allow.
pub fn may_read(acl: &[Acl], auth: &[Id], opts: &TreeOptions) -> bool {
    opts.skip_acl || acl::check_acl(acl, crate::proto::perms::READ, auth, opts.sasl_acls).is_ok()
}

/// What clients see of a session in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub session_id: i64,
    pub timeout_ms: i32,
}
