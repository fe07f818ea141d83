//! The znode tree and the session table, with ZooKeeper 3.8's validation and apply rules.
//!
//! ZooKeeper splits a write in two: `PrepRequestProcessor` validates it against the tree plus
//! the outstanding changes and turns it into a txn, and `DataTree.processTxn` applies the txn.
//! Here both happen in `apply`, in the same order of checks, so every error code a client can
//! see comes out of the same comparison ZooKeeper makes (e.g. NoNode for a missing parent
//! before BadArguments for an invalid full path, because ZooKeeper looks the parent up first).
//!
//! Invariants:
//! - `nodes` holds every znode by full path; each node's `children` holds exactly the names of
//!   the nodes one level below it; the four special nodes always exist.
//! - `Node.cversion` is ZooKeeper's persisted cversion: the number of child *creations*. The
//!   `Stat` clients see has `2 * cversion - numChildren` (DataNode.copyStat), which counts
//!   creations and deletions. Sequential suffixes use the persisted value.
//! - Every ephemeral is listed under its owner in `sessions`; every container / TTL node is in
//!   `containers` / `ttls`. `data_size` is the sum that `approximate_data_size` reports.
//! - A multi is applied op by op with an undo log; on failure the log is replayed backwards,
//!   which restores the tree exactly (including ACL table reference counts).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::acl::{self, AclRef, AclTable};
use super::path::{java_len, join, name_of, parent_of, validate_path};
use super::{reconfig, Applied, LeaderView, SessionInfo, TreeOptions, Txn, WatchTrigger};
use crate::config::Membership;
use crate::proto::request::ReconfigRequest;
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, MultiOp, Request, SetAclRequest,
    SetDataRequest,
};
use crate::proto::response::{OpResult, Response};
use crate::proto::{perms, Acl, CreateMode, EventType, Id, OpCode, Stat, ZkError};

/// Largest TTL ZooKeeper accepts (EphemeralType.TTL.maxValue(): 40 bits of milliseconds).
const MAX_TTL_MS: i64 = 0xff_ffff_ffff;

/// The special nodes ZooKeeper creates in every tree; deleting them is BadArguments.
const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// What kind of znode this is; ZooKeeper packs this into `ephemeralOwner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    Persistent,
    /// Deleted when this session closes.
    Ephemeral(i64),
    /// Deleted by the reaper once it has had children and has none.
    Container,
    /// Deleted by the reaper when childless and unmodified for this many milliseconds.
    Ttl(i64),
}

/// The persisted part of a znode's Stat (ZooKeeper's StatPersisted minus ephemeralOwner).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PStat {
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    /// Number of child creations (see the module invariants).
    cversion: i32,
    aversion: i32,
    pzxid: i64,
}

/// One znode. Kept small: a tree is expected to hold millions of these.
#[derive(Debug, Clone)]
struct Node {
    /// `None` is a null buffer (length -1 on the wire), distinct from empty data. A boxed
    /// slice rather than `Bytes`: half the size in the node, and no shared-buffer header
    /// allocated the first time a read clones it; reads copy the (small) value instead.
    data: Option<Box<[u8]>>,
    acl: AclRef,
    stat: PStat,
    kind: NodeKind,
    /// Names of the children; boxed so a leaf costs one pointer instead of an empty set's
    /// three words (most znodes are leaves).
    #[allow(clippy::box_collection)]
    children: Option<Box<BTreeSet<Box<str>>>>,
}

impl Node {
    fn num_children(&self) -> usize {
        self.children.as_ref().map_or(0, |c| c.len())
    }

    fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    /// The Stat a client sees (DataNode.copyStat).
    fn client_stat(&self) -> Stat {
        let n = self.num_children() as i32;
        Stat {
            czxid: self.stat.czxid,
            mzxid: self.stat.mzxid,
            ctime: self.stat.ctime,
            mtime: self.stat.mtime,
            version: self.stat.version,
            cversion: self.stat.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: self.stat.aversion,
            // getClientEphemeralOwner: containers and TTL nodes show 0.
            ephemeral_owner: match self.kind {
                NodeKind::Ephemeral(s) => s,
                _ => 0,
            },
            data_length: self.data_len() as i32,
            num_children: n,
            pzxid: self.stat.pzxid,
        }
    }
}

/// A session in the table.
#[derive(Debug, Clone, Default)]
struct Session {
    timeout_ms: i32,
    /// Imported from ZooKeeper's data: its client holds ZooKeeper's password for the id.
    zk_password: bool,
    /// Paths of this session's ephemerals.
    ephemerals: BTreeSet<Box<str>>,
}

/// How to revert one step of a multi.
#[derive(Debug)]
enum Undo {
    Created {
        path: Box<str>,
        parent_stat: PStat,
    },
    Deleted {
        path: Box<str>,
        node: Box<Node>,
        acl: Arc<[Acl]>,
        parent_stat: PStat,
    },
    DataSet {
        path: Box<str>,
        data: Option<Box<[u8]>>,
        stat: PStat,
    },
}

/// The per-request context of a client write.
struct Ctx<'a> {
    zxid: i64,
    session_id: i64,
    time_ms: i64,
    auth: &'a [Id],
}

#[derive(Debug, Clone)]
pub struct DataTree {
    opts: TreeOptions,
    /// Every znode by full path. Boxed: a table slot is 24 bytes instead of 120, which
    /// matters because hashbrown keeps between 12.5% and 56% of its slots empty (1,000,000
    /// nodes sit in 2^21 slots).
    nodes: HashMap<Box<str>, Box<Node>>,
    acls: AclTable,
    sessions: BTreeMap<i64, Session>,
    /// Paths of container nodes (for the reaper).
    containers: BTreeSet<Box<str>>,
    /// Paths of TTL nodes (for the reaper).
    ttls: BTreeSet<Box<str>>,
    /// Sum over nodes of path length (UTF-16 units, like Java) + data length.
    data_size: u64,
    last_zxid: i64,
    /// The ACLs of the nodes the txn being applied deleted (moved into `Applied::deleted`).
    deleted: Vec<(String, Arc<[Acl]>)>,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new(TreeOptions::default())
    }
}

/// ZooKeeper's dynamic configuration node.
pub const CONFIG_NODE: &str = "/zookeeper/config";

impl DataTree {
    /// An empty tree holding only `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    pub fn new(opts: TreeOptions) -> DataTree {
        let mut t = DataTree {
            opts,
            nodes: HashMap::new(),
            acls: AclTable::default(),
            sessions: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            last_zxid: 0,
            deleted: Vec::new(),
        };
        // As in ZooKeeper's DataTree constructor: empty (not null) data, zero stats, open
        // ACLs, except /zookeeper/config which is world-readable only and whose ACL was set
        // with version -1 (so its aversion is -1).
        let open = t.acls.intern(&Acl::open_unsafe());
        t.nodes.insert(
            "/".into(),
            Box::new(Node {
                data: Some(Box::default()),
                acl: open,
                stat: PStat::default(),
                kind: NodeKind::Persistent,
                children: None,
            }),
        );
        t.data_size = 1;
        for (path, acl, aversion) in [
            ("/zookeeper", Acl::open_unsafe(), 0),
            ("/zookeeper/quota", Acl::open_unsafe(), 0),
            ("/zookeeper/config", Acl::read_unsafe(), -1),
        ] {
            let acl = t.acls.intern(&acl);
            t.insert_node(
                path,
                Box::new(Node {
                    data: Some(Box::default()),
                    acl,
                    stat: PStat {
                        aversion,
                        ..PStat::default()
                    },
                    kind: NodeKind::Persistent,
                    children: None,
                }),
            );
        }
        t.acls.release(open);
        t
    }

    /// Applies one committed txn at `zxid`. Deterministic.
    pub fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied {
        // Like DataTree.lastProcessedZxid: failed writes consume their zxid too.
        self.last_zxid = self.last_zxid.max(zxid);
        let mut triggers = Vec::new();
        let result = match txn {
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                self.sessions.entry(*session_id).or_default().timeout_ms = *timeout_ms;
                Ok(Response::Empty)
            }
            Txn::CloseSession { session_id } => {
                self.close_session(*session_id, zxid, &mut triggers);
                Ok(Response::Empty)
            }
            Txn::Client {
                session_id,
                time_ms,
                auth,
                request,
            } => {
                let ctx = Ctx {
                    zxid,
                    session_id: *session_id,
                    time_ms: *time_ms,
                    auth,
                };
                self.apply_client(&ctx, request, &mut triggers)
            }
            Txn::Reap { time_ms, paths } => {
                for path in paths {
                    let qualifies = self
                        .nodes
                        .get(path.as_str())
                        .is_some_and(|n| reapable(n, *time_ms));
                    if qualifies {
                        self.delete_node(path, zxid, &mut triggers);
                    }
                }
                Ok(Response::Empty)
            }
            Txn::SetConfig { time_ms, data } => {
                self.set_config(zxid, *time_ms, data, &mut triggers);
                Ok(Response::Empty)
            }
            Txn::Reconfig {
                time_ms,
                auth,
                request,
                min_voters,
                view,
                ..
            } => self.reconfig(
                zxid,
                *time_ms,
                auth,
                request,
                *min_voters,
                view.as_ref(),
                &mut triggers,
            ),
        };
        Applied {
            zxid,
            result,
            triggers,
            deleted: std::mem::take(&mut self.deleted),
        }
    }

    /// The new data of /zookeeper/config. As in ZooKeeper 3.8: its dataVersion stays -1,
    /// its mzxid is the configuration's version (the `version=` line, the zxid of the
    /// reconfig that made it; 0 for zoo.cfg's), its mtime the time of the change.
    fn set_config(
        &mut self,
        zxid: i64,
        time_ms: i64,
        data: &[u8],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Option<Stat> {
        let node = self.nodes.get_mut(CONFIG_NODE)?;
        let old_len = node.data_len() as u64;
        node.data = Some(Box::from(data));
        node.stat.version = -1;
        node.stat.mtime = time_ms;
        node.stat.mzxid = std::str::from_utf8(data)
            .ok()
            .and_then(|t| Membership::parse(t).ok())
            .map_or(zxid, |m| m.version as i64);
        let stat = node.client_stat();
        self.data_size = self.data_size - old_len + node.data_len() as u64;
        triggers.push(WatchTrigger {
            path: CONFIG_NODE.to_string(),
            event: EventType::NodeDataChanged,
        });
        Some(stat)
    }

    /// reconfig: the next membership from the current /zookeeper/config (see
    /// `reconfig::next_membership`), then WRITE on /zookeeper/config (super or skipACL in
    /// practice: its ACL is world-readable only), then the new text with `version=<zxid>`.
    /// Answers the new config and its stat, as ZooKeeper's GetDataResponse.
    #[allow(clippy::too_many_arguments)]
    fn reconfig(
        &mut self,
        zxid: i64,
        time_ms: i64,
        auth: &[Id],
        request: &ReconfigRequest,
        min_voters: u32,
        view: Option<&LeaderView>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Response, ZkError> {
        // An entry no leader stamped cannot show a synced quorum.
        let view = view.ok_or(ZkError::NewConfigNoQuorum)?;
        let (text, _) = self.config();
        let current = Membership::parse(&text).map_err(|_| ZkError::BadArguments)?;
        let node = self.nodes.get(CONFIG_NODE).ok_or(ZkError::NoNode)?;
        let servers = reconfig::next_membership(&current, request, view, min_voters as usize)?;
        self.check_acl(node, perms::WRITE, auth)?;
        let data = Membership {
            servers,
            version: zxid as u64,
        }
        .render()
        .into_bytes();
        let stat = self
            .set_config(zxid, time_ms, &data, triggers)
            .ok_or(ZkError::NoNode)?;
        Ok(Response::GetData {
            data: Some(Bytes::from(data)),
            stat,
        })
    }

    fn apply_client(
        &mut self,
        ctx: &Ctx<'_>,
        request: &Request,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Response, ZkError> {
        let mut undo = Vec::new();
        match request {
            Request::Create { op, req } => {
                let (path, stat) = self.op_create(ctx, *op, req, &mut undo, triggers)?;
                Ok(if *op == OpCode::Create {
                    Response::Create { path }
                } else {
                    // create2, createContainer and createTTL all answer Create2Response
                    // (FinalRequestProcessor in 3.8).
                    Response::Create2 { path, stat }
                })
            }
            Request::Delete(req) => {
                self.op_delete(ctx, req, &mut undo, triggers)?;
                Ok(Response::Empty)
            }
            Request::SetData(req) => {
                let stat = self.op_set_data(ctx, req, &mut undo, triggers)?;
                Ok(Response::Stat(stat))
            }
            Request::SetAcl(req) => Ok(Response::Stat(self.op_set_acl(ctx, req)?)),
            Request::Check(req) => {
                self.op_check(ctx, req)?;
                Ok(Response::Empty)
            }
            Request::Multi(ops) => Ok(Response::Multi(self.apply_multi(ctx, ops, triggers))),
            Request::CloseSession => {
                self.close_session(ctx.session_id, ctx.zxid, triggers);
                Ok(Response::Empty)
            }
            // Reconfig travels as `Txn::Reconfig`; reads never reach the log.
            _ => Err(ZkError::Unimplemented),
        }
    }

    fn apply_multi(
        &mut self,
        ctx: &Ctx<'_>,
        ops: &[MultiOp],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Vec<OpResult> {
        let mut undo = Vec::new();
        let mut op_triggers = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                MultiOp::Create { op, req } => self
                    .op_create(ctx, *op, req, &mut undo, &mut op_triggers)
                    .map(|(path, stat)| {
                        if *op == OpCode::Create {
                            OpResult::Create { path }
                        } else {
                            OpResult::Create2 { path, stat }
                        }
                    }),
                MultiOp::Delete(req) => self
                    .op_delete(ctx, req, &mut undo, &mut op_triggers)
                    .map(|()| OpResult::Delete),
                MultiOp::SetData(req) => self
                    .op_set_data(ctx, req, &mut undo, &mut op_triggers)
                    .map(|stat| OpResult::SetData { stat }),
                MultiOp::Check(req) => self.op_check(ctx, req).map(|()| OpResult::Check),
            };
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    self.rollback(undo);
                    return (0..ops.len())
                        .map(|j| OpResult::Error {
                            err: match j.cmp(&i) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => e.code(),
                                std::cmp::Ordering::Greater => ZkError::RuntimeInconsistency.code(),
                            },
                        })
                        .collect();
                }
            }
        }
        triggers.extend(op_triggers);
        results
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created { path, parent_stat } => {
                    if let Some(node) = self.remove_node(&path) {
                        self.acls.release(node.acl);
                    }
                    self.restore_parent_stat(&path, parent_stat);
                }
                Undo::Deleted {
                    path,
                    mut node,
                    acl,
                    parent_stat,
                } => {
                    node.acl = self.acls.intern(&acl);
                    self.insert_node(&path, node);
                    self.restore_parent_stat(&path, parent_stat);
                }
                Undo::DataSet { path, data, stat } => {
                    if let Some(node) = self.nodes.get_mut(&*path) {
                        let old = node.data_len() as u64;
                        node.data = data;
                        node.stat = stat;
                        let new = node.data_len() as u64;
                        self.data_size = self.data_size - old + new;
                    }
                }
            }
        }
    }

    fn restore_parent_stat(&mut self, path: &str, stat: PStat) {
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
            parent.stat = stat;
        }
    }

    fn check_session(&self, session_id: i64) -> Result<(), ZkError> {
        if self.sessions.contains_key(&session_id) {
            Ok(())
        } else {
            Err(ZkError::SessionExpired)
        }
    }

    fn check_acl(&self, node: &Node, perm: i32, auth: &[Id]) -> Result<(), ZkError> {
        if self.opts.skip_acl {
            return Ok(());
        }
        acl::check_acl(self.acls.get(node.acl), perm, auth)
    }

    /// PrepRequestProcessor.pRequest2TxnCreate followed by DataTree.createNode.
    fn op_create(
        &mut self,
        ctx: &Ctx<'_>,
        op: OpCode,
        req: &CreateRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(String, Stat), ZkError> {
        if !matches!(
            op,
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl
        ) {
            return Err(ZkError::Unimplemented);
        }
        let mode = CreateMode::from_flag(req.flags).ok_or(ZkError::BadArguments)?;
        // Only createTTL carries a ttl; ZooKeeper uses -1 for the other opcodes.
        let ttl = if op == OpCode::CreateTtl { req.ttl } else { -1 };
        // EphemeralType.validateTTL. ZooKeeper would also accept createTTL with a non-TTL
        // mode and a negative ttl and then fail while applying it; that is BadArguments here.
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL_MS {
                return Err(ZkError::BadArguments);
            }
        } else if ttl >= 0 || op == OpCode::CreateTtl {
            return Err(ZkError::BadArguments);
        }
        self.check_session(ctx.session_id)?;
        // validatePathForCreate: only "has a slash, no NUL" before the parent lookup.
        if req.path.contains('\0') {
            return Err(ZkError::BadArguments);
        }
        let parent_path = parent_of(&req.path).ok_or(ZkError::BadArguments)?;
        let acl = acl::fixup_acl(&req.acl, ctx.auth)?;
        let parent = self.nodes.get(parent_path).ok_or(ZkError::NoNode)?;
        self.check_acl(parent, perms::CREATE, ctx.auth)?;
        let parent_cversion = parent.stat.cversion;
        let path = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent_cversion)
        } else {
            req.path.clone()
        };
        if !validate_path(&path) {
            return Err(ZkError::BadArguments);
        }
        if self.nodes.contains_key(path.as_str()) {
            return Err(ZkError::NodeExists);
        }
        if matches!(parent.kind, NodeKind::Ephemeral(_)) {
            return Err(ZkError::NoChildrenForEphemerals);
        }
        // The opcode decides the kind: createContainer always makes a container, and
        // create/create2 with the container flag make a plain persistent node.
        let kind = match op {
            OpCode::CreateContainer => NodeKind::Container,
            OpCode::CreateTtl => NodeKind::Ttl(ttl),
            _ if mode.is_ephemeral() => NodeKind::Ephemeral(ctx.session_id),
            _ => NodeKind::Persistent,
        };

        // Apply.
        let parent_path = parent_path.to_owned();
        if let Some(parent) = self.nodes.get_mut(parent_path.as_str()) {
            undo.push(Undo::Created {
                path: path.as_str().into(),
                parent_stat: parent.stat,
            });
            parent.stat.cversion = parent_cversion.wrapping_add(1);
            parent.stat.pzxid = ctx.zxid;
        }
        let acl = self.acls.intern(&acl);
        let node = Box::new(Node {
            // Copied so a node never pins a larger network or log buffer in memory.
            data: req.data.as_deref().map(Box::from),
            acl,
            stat: PStat {
                czxid: ctx.zxid,
                mzxid: ctx.zxid,
                ctime: ctx.time_ms,
                mtime: ctx.time_ms,
                version: 0,
                cversion: 0,
                aversion: 0,
                pzxid: ctx.zxid,
            },
            kind,
            children: None,
        });
        let stat = node.client_stat();
        self.insert_node(&path, node);
        triggers.push(WatchTrigger {
            path: path.clone(),
            event: EventType::NodeCreated,
        });
        triggers.push(WatchTrigger {
            path: parent_path,
            event: EventType::NodeChildrenChanged,
        });
        Ok((path, stat))
    }

    fn op_delete(
        &mut self,
        ctx: &Ctx<'_>,
        req: &DeleteRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ZkError> {
        self.check_session(ctx.session_id)?;
        // getParentPathAndValidate; no full path validation for delete.
        let path = req.path.as_str();
        if path.contains('\0') || SPECIAL_PATHS.contains(&path) {
            return Err(ZkError::BadArguments);
        }
        let parent_path = parent_of(path).ok_or(ZkError::BadArguments)?;
        let parent = self.nodes.get(parent_path).ok_or(ZkError::NoNode)?;
        self.check_acl(parent, perms::DELETE, ctx.auth)?;
        let parent_stat = parent.stat;
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        check_version(node.stat.version, req.version)?;
        if node.num_children() > 0 {
            return Err(ZkError::NotEmpty);
        }
        let acl = self.acls.get_shared(node.acl);
        if let Some(node) = self.delete_node(path, ctx.zxid, triggers) {
            undo.push(Undo::Deleted {
                path: path.into(),
                node,
                acl,
                parent_stat,
            });
        }
        Ok(())
    }

    fn op_set_data(
        &mut self,
        ctx: &Ctx<'_>,
        req: &SetDataRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::WRITE, ctx.auth)?;
        let version = check_version(node.stat.version, req.version)?;
        let Some(node) = self.nodes.get_mut(req.path.as_str()) else {
            return Err(ZkError::NoNode);
        };
        let data = req.data.as_deref().map(Box::from);
        let old_len = node.data_len() as u64;
        let old_data = std::mem::replace(&mut node.data, data);
        undo.push(Undo::DataSet {
            path: req.path.as_str().into(),
            data: old_data,
            stat: node.stat,
        });
        node.stat.version = version;
        node.stat.mtime = ctx.time_ms;
        node.stat.mzxid = ctx.zxid;
        let stat = node.client_stat();
        self.data_size = self.data_size - old_len + node.data_len() as u64;
        triggers.push(WatchTrigger {
            path: req.path.clone(),
            event: EventType::NodeDataChanged,
        });
        Ok(stat)
    }

    fn op_set_acl(&mut self, ctx: &Ctx<'_>, req: &SetAclRequest) -> Result<Stat, ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let acl = acl::fixup_acl(&req.acl, ctx.auth)?;
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::ADMIN, ctx.auth)?;
        let aversion = check_version(node.stat.aversion, req.version)?;
        let old = node.acl;
        let new = self.acls.intern(&acl);
        self.acls.release(old);
        let Some(node) = self.nodes.get_mut(req.path.as_str()) else {
            return Err(ZkError::NoNode);
        };
        node.acl = new;
        node.stat.aversion = aversion;
        Ok(node.client_stat())
    }

    fn op_check(&self, ctx: &Ctx<'_>, req: &CheckVersionRequest) -> Result<(), ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, ctx.auth)?;
        check_version(node.stat.version, req.version)?;
        Ok(())
    }

    /// Removes the session and its ephemerals (in path order), as DataTree.killSession.
    fn close_session(&mut self, session_id: i64, zxid: i64, triggers: &mut Vec<WatchTrigger>) {
        let Some(session) = self.sessions.remove(&session_id) else {
            return;
        };
        for path in session.ephemerals {
            self.delete_node(&path, zxid, triggers);
        }
    }

    /// DataTree.deleteNode: unlinks `path`, moves the parent's pzxid forward (cversion is
    /// not touched: it counts creations), drops the node's ACL use and emits the triggers.
    /// Returns the removed node (its `acl` slot is no longer valid).
    fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Option<Box<Node>> {
        let node = self.remove_node(path)?;
        let parent_path = parent_of(path).unwrap_or("/");
        if let Some(parent) = self.nodes.get_mut(parent_path) {
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        triggers.push(WatchTrigger {
            path: path.to_owned(),
            event: EventType::NodeDeleted,
        });
        triggers.push(WatchTrigger {
            path: parent_path.to_owned(),
            event: EventType::NodeChildrenChanged,
        });
        self.deleted
            .push((path.to_owned(), self.acls.get_shared(node.acl)));
        // Deleting drops the node's ACL use; an undo re-interns from a saved list.
        self.acls.release(node.acl);
        Some(node)
    }

    /// Links a node into the tree and the bookkeeping sets. The parent must exist.
    fn insert_node(&mut self, path: &str, node: Box<Node>) {
        let name: Box<str> = name_of(path).into();
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
            parent
                .children
                .get_or_insert_with(Default::default)
                .insert(name);
        }
        let key: Box<str> = path.into();
        match node.kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(owner) => {
                // The owner exists: creates check the session, and an undone delete runs
                // inside the multi that removed the node, before any session can close.
                if let Some(s) = self.sessions.get_mut(&owner) {
                    s.ephemerals.insert(key.clone());
                }
            }
            NodeKind::Container => {
                self.containers.insert(key.clone());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(key.clone());
            }
        }
        self.data_size += java_len(path) + node.data_len() as u64;
        self.nodes.insert(key, node);
    }

    /// Unlinks a node from the tree and the bookkeeping sets (ACL reference untouched).
    fn remove_node(&mut self, path: &str) -> Option<Box<Node>> {
        let node = self.nodes.remove(path)?;
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
            if let Some(children) = parent.children.as_mut() {
                children.remove(name_of(path));
                if children.is_empty() {
                    parent.children = None;
                }
            }
        }
        match node.kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(owner) => {
                if let Some(s) = self.sessions.get_mut(&owner) {
                    s.ephemerals.remove(path);
                }
            }
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
        }
        self.data_size -= java_len(path) + node.data_len() as u64;
        Some(node)
    }

    /// A znode's ACL (who may see watch events about it).
    pub fn acl_of(&self, path: &str) -> Option<Arc<[Acl]>> {
        self.nodes.get(path).map(|n| self.acls.get_shared(n.acl))
    }

    /// The apply options this tree was made with.
    pub fn options(&self) -> &TreeOptions {
        &self.opts
    }

    /// The zxid of the last applied txn (0 when none).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<Bytes>, Stat), ZkError> {
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, auth)?;
        Ok((
            node.data.as_deref().map(Bytes::copy_from_slice),
            node.client_stat(),
        ))
    }

    /// /zookeeper/config's text (empty before the first configuration is written) and
    /// stat, whatever its ACL: the server's own view of the ensemble's membership.
    pub fn config(&self) -> (String, Stat) {
        match self.nodes.get(CONFIG_NODE) {
            Some(n) => (
                String::from_utf8_lossy(n.data.as_deref().unwrap_or_default()).into_owned(),
                n.client_stat(),
            ),
            None => (String::new(), Stat::default()),
        }
    }

    pub fn exists(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|n| n.client_stat())
    }

    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), ZkError> {
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, auth)?;
        let children = node
            .children
            .iter()
            .flat_map(|c| c.iter())
            .map(|c| c.to_string())
            .collect();
        Ok((children, node.client_stat()))
    }

    /// getACL needs READ or ADMIN; without ADMIN, digest ids come back as `user:x`.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ZkError> {
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ | perms::ADMIN, auth)?;
        let acl = self.acls.get(node.acl);
        let acl = if self.check_acl(node, perms::ADMIN, auth).is_ok() {
            acl.to_vec()
        } else {
            acl::redact_digests(acl)
        };
        Ok((acl, node.client_stat()))
    }

    /// Paths of this session's ephemerals that start with `prefix` ("/" for all), sorted.
    pub fn get_ephemerals(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let Some(session) = self.sessions.get(&session_id) else {
            return vec![];
        };
        // FinalRequestProcessor: a blank or "/" prefix (after Java's trim) means all.
        let trimmed = prefix.trim_matches(|c: char| c <= ' ');
        let all = trimmed.is_empty() || trimmed == "/";
        session
            .ephemerals
            .iter()
            .filter(|p| all || p.starts_with(prefix))
            .map(|p| p.to_string())
            .collect()
    }

    /// Number of descendants of `path` (not counting itself). Needs READ on `path`.
    pub fn all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ZkError> {
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, auth)?;
        if path == "/" {
            return Ok((self.nodes.len() - 1) as i32);
        }
        let mut count = 0usize;
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            if let Some(children) = self.nodes.get(p.as_str()).and_then(|n| n.children.as_ref()) {
                count += children.len();
                stack.extend(children.iter().map(|c| join(&p, c)));
            }
        }
        Ok(count as i32)
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(&session_id, s)| SessionInfo {
                session_id,
                timeout_ms: s.timeout_ms,
            })
            .collect()
    }

    pub fn session(&self, session_id: i64) -> Option<SessionInfo> {
        self.sessions.get(&session_id).map(|s| SessionInfo {
            session_id,
            timeout_ms: s.timeout_ms,
        })
    }

    /// Containers with no children that once had some, and TTL nodes past their TTL with no
    /// children, at `now_ms`: candidates for a `Txn::Reap`.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .containers
            .iter()
            .chain(self.ttls.iter())
            .filter(|p| self.nodes.get(&***p).is_some_and(|n| reapable(n, now_ms)))
            .map(|p| p.to_string())
            .collect();
        out.sort();
        out
    }

    /// What ZooKeeper's `getNodeCount()` (mntr zk_znode_count, srvr "Node count") reports:
    /// ZooKeeper's node map also holds the root under the alias `""`, so an empty tree
    /// counts 5 (verified against 3.8.0's mntr).
    pub fn node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    /// Sum of path lengths and data lengths, like ZooKeeper's approximateDataSize
    /// (44 for an empty tree, as 3.8.0's mntr reports).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    pub fn ephemerals_count(&self) -> usize {
        self.sessions.values().map(|s| s.ephemerals.len()).sum()
    }

    /// Ephemeral paths by session, for the `dump` four-letter word.
    pub fn ephemerals_by_session(&self) -> Vec<(i64, Vec<String>)> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.ephemerals.is_empty())
            .map(|(&id, s)| (id, s.ephemerals.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    /// A digest of the whole tree (paths, data, Stat, ACLs, sessions), equal on replicas that
    /// applied the same log. FNV-1a over a canonical encoding: nodes in depth-first order
    /// with children in name order, then sessions in id order.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        let mut stack: Vec<String> = vec!["/".to_owned()];
        while let Some(path) = stack.pop() {
            let Some(node) = self.nodes.get(path.as_str()) else {
                continue;
            };
            h.bytes(path.as_bytes());
            match &node.data {
                None => h.u8(0),
                Some(d) => {
                    h.u8(1);
                    h.bytes(d);
                }
            }
            let s = &node.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime, s.pzxid] {
                h.i64(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                h.i64(v.into());
            }
            match node.kind {
                NodeKind::Persistent => h.u8(0),
                NodeKind::Ephemeral(owner) => {
                    h.u8(1);
                    h.i64(owner);
                }
                NodeKind::Container => h.u8(2),
                NodeKind::Ttl(ttl) => {
                    h.u8(3);
                    h.i64(ttl);
                }
            }
            let acl = self.acls.get(node.acl);
            h.i64(acl.len() as i64);
            for a in acl {
                h.i64(a.perms.into());
                h.bytes(a.id.scheme.as_bytes());
                h.bytes(a.id.id.as_bytes());
            }
            h.i64(node.num_children() as i64);
            if let Some(children) = &node.children {
                // Reversed so the stack pops them in name order.
                stack.extend(children.iter().rev().map(|c| join(&path, c)));
            }
        }
        h.i64(self.sessions.len() as i64);
        for (&id, s) in &self.sessions {
            h.i64(id);
            h.i64(s.timeout_ms.into());
            h.u8(s.zk_password.into());
        }
        h.finish()
    }
}

/// ContainerManager.getCandidates' rule, re-checked at apply time.
fn reapable(node: &Node, now_ms: i64) -> bool {
    if node.num_children() > 0 {
        return false;
    }
    match node.kind {
        // cversion > 0: it has had a child (a fresh container is not reaped at once).
        NodeKind::Container => node.stat.cversion > 0,
        NodeKind::Ttl(ttl) => now_ms.saturating_sub(node.stat.mtime) > ttl,
        _ => false,
    }
}

/// PrepRequestProcessor.checkAndIncVersion as of 3.8.0: -1 matches anything; the new version
/// wraps like a Java int.
fn check_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// 64-bit FNV-1a with length-prefixed byte strings, so field boundaries are unambiguous.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    fn raw(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u8(&mut self, v: u8) {
        self.raw(&[v]);
    }

    fn i64(&mut self, v: i64) {
        self.raw(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.i64(b.len() as i64);
        self.raw(b);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[path = "snapshot.rs"]
mod snapshot;

#[path = "zk.rs"]
mod zk;
pub use zk::Replayed;

#[cfg(test)]
#[path = "datatree_tests.rs"]
mod tests;
