//! ZooKeeper's own state, in and out of a `DataTree`: a tree built from the records of a
//! ZooKeeper snapshot, rolled forward by the records of its transaction logs, and turned back
//! into snapshot records for `keeperd export-zk`.
//!
//! Replay follows `DataTree.processTxn` of ZooKeeper 3.8 as it runs during restore, where
//! errors are expected and ignored: ZooKeeper snapshots are fuzzy (taken while writes go on),
//! so a replayed create may find its node already there and a delete may find it gone. The
//! quirks that decide the result are kept: a create of an existing node still replaces its
//! ACL and (for `create`) moves the parent's cversion/pzxid forward; a delete moves the
//! parent's pzxid even when the node is missing; setData/setACL take the new version from the
//! txn. Nothing here reads a clock or a file; every input is a record.
//!
//! ZooKeeper keeps its ephemerals by owner apart from the session table, so a fuzzy snapshot
//! can hold an ephemeral whose session is not (yet) in the table. keeperd keeps every
//! ephemeral under a session: such an owner is added to the table with the longest timeout
//! the import has seen, so it expires (deleting the node) unless its client comes back, which
//! is what ZooKeeper would do once the session is replayed or the client reconnects.

use super::{
    parent_of, validate_path, AclRef, DataTree, Node, NodeKind, PStat, Session, MAX_TTL_MS,
};
use crate::proto::{Acl, Error, Id};
use crate::tree::TreeOptions;
use crate::zkfiles::{LogEntry, StatPersisted, ZkNode, ZkSnapshot, ZkTxn};

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
const CONTAINER_OWNER: i64 = i64::MIN;
/// The top byte of an extended ephemeralOwner (TTL nodes): ZooKeeper reserves server id 255.
const EXTENDED_MASK: i64 = 0xff << 56;
/// An extended owner's type bits (0 = TTL) and value bits.
const EXTENDED_TYPE_BITS: i64 = 0x00ff_ff00_0000_0000;
const EXTENDED_VALUE_BITS: i64 = 0x0000_00ff_ffff_ffff;
/// `ZooDefs.OpCode`s that replay treats specially.
const OP_CREATE: i32 = 1;
const OP_RECONFIG: i32 = 16;
/// Timeout of a session known only as an ephemeral's owner, when the import saw none.
const FALLBACK_TIMEOUT_MS: i32 = 30_000;

/// What replaying one log entry did (for the import report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Changed the tree (or the session table) as the txn says.
    Applied,
    /// ZooKeeper would have failed it too (NodeExists, NoNode, ...): a fuzzy-snapshot
    /// overlap, or an error txn.
    Ignored,
    /// A reconfig or a write to /zookeeper/config: keeperd keeps its own config node.
    Config,
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::malformed("ZooKeeper data", detail)
}

fn applied(changed: bool) -> Replayed {
    if changed {
        Replayed::Applied
    } else {
        Replayed::Ignored
    }
}

/// The kind a raw ZooKeeper ephemeralOwner stands for (EphemeralType.get).
fn kind_of(owner: i64) -> Result<NodeKind, String> {
    if owner == 0 {
        Ok(NodeKind::Persistent)
    } else if owner == CONTAINER_OWNER {
        Ok(NodeKind::Container)
    } else if owner & EXTENDED_MASK == EXTENDED_MASK {
        let ttl = owner & EXTENDED_VALUE_BITS;
        if owner & EXTENDED_TYPE_BITS != 0 || ttl <= 0 || ttl > MAX_TTL_MS {
            return Err(format!("unknown extended ephemeralOwner {owner:#x}"));
        }
        Ok(NodeKind::Ttl(ttl))
    } else {
        Ok(NodeKind::Ephemeral(owner))
    }
}

/// The raw ephemeralOwner ZooKeeper stores for a kind.
fn owner_of(kind: NodeKind) -> i64 {
    match kind {
        NodeKind::Persistent => 0,
        NodeKind::Ephemeral(s) => s,
        NodeKind::Container => CONTAINER_OWNER,
        NodeKind::Ttl(ttl) => EXTENDED_MASK | ttl,
    }
}

/// A node's Stat as ZooKeeper persists it (the kind folded into ephemeralOwner).
fn stat_persisted(n: &Node) -> StatPersisted {
    let s = &n.stat;
    StatPersisted {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: owner_of(n.kind),
        pzxid: s.pzxid,
    }
}

fn pstat(s: &StatPersisted) -> PStat {
    PStat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        pzxid: s.pzxid,
    }
}

/// The placeholder ACL of a node whose ACL is not known yet (see `from_zk_snapshot`): no
/// permission for anyone.
fn missing_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 0,
        id: Id {
            scheme: "keeperd".into(),
            id: "acl-missing-from-zookeeper-snapshot".into(),
        },
    }]
}

impl DataTree {
    /// The tree of a ZooKeeper snapshot whose file name says `zxid`. Every node keeps its
    /// data (null or not), ACL and persisted Stat; sessions keep their timeouts and accept
    /// ZooKeeper's passwords (see `session_is_imported`). `/zookeeper/config` stays keeperd's
    /// own (the membership comes from zoo.cfg). Errors: a node before its parent, a repeated
    /// or invalid path, an ephemeral with children.
    ///
    /// ZooKeeper writes a snapshot while it serves (a fuzzy snapshot): the ACL cache first,
    /// then the nodes, so a node created or re-ACLed in between refers to a key the cache in
    /// the file does not have. ZooKeeper loads it anyway and the txn log replayed on top sets
    /// that node's ACL again. Here such a node gets an ACL nobody passes (`MISSING_ACL`)
    /// until replay sets it; `check_zk_acls` after replay refuses the import if one is left.
    pub fn from_zk_snapshot(
        snap: &ZkSnapshot,
        zxid: i64,
        opts: TreeOptions,
    ) -> Result<DataTree, Error> {
        let mut t = DataTree::new(opts);
        let acls: std::collections::HashMap<i64, &[Acl]> =
            snap.acls.iter().map(|(k, l)| (*k, l.as_slice())).collect();
        for &(id, timeout_ms) in &snap.sessions {
            t.sessions.insert(
                id,
                Session {
                    timeout_ms,
                    zk_password: true,
                    ..Session::default()
                },
            );
        }
        let open = Acl::open_unsafe();
        let missing = missing_acl();
        for n in &snap.nodes {
            let acl: &[Acl] = match acls.get(&n.acl) {
                Some(l) => l,
                // ReferenceCountedACLCache: -1 is OPEN_ACL_UNSAFE.
                None if n.acl == -1 => &open,
                None => {
                    t.zk_unresolved.push((n.path.as_str().into(), n.acl));
                    &missing
                }
            };
            t.import_node(n, acl)?;
        }
        t.last_zxid = zxid;
        Ok(t)
    }

    /// After replay: every node whose ACL key was missing from the snapshot's cache has had
    /// its ACL set by a txn (or is gone). Otherwise ZooKeeper's data is inconsistent (it
    /// would fail the node's first access) and the import stops.
    pub fn check_zk_acls(&self) -> Result<(), Error> {
        let missing = missing_acl();
        for (path, key) in &self.zk_unresolved {
            let path = if path.is_empty() { "/" } else { path };
            if self.acl_of(path).is_some_and(|acl| *acl == *missing) {
                return Err(malformed(format!(
                    "node {path:?} refers to ACL {key} which is not in the snapshot's ACL \
                     cache, and no later txn in the log sets it"
                )));
            }
        }
        Ok(())
    }

    fn import_node(&mut self, n: &ZkNode, acl: &[Acl]) -> Result<(), Error> {
        let path = if n.path.is_empty() { "/" } else { &n.path };
        let kind = kind_of(n.stat.ephemeral_owner)
            .map_err(|why| malformed(format!("node {path:?}: {why}")))?;
        if path == super::CONFIG_NODE {
            return Ok(());
        }
        if let Some(existing) = self.nodes.get(path) {
            // Only the special nodes a new tree already has may come again, once.
            if existing.stat.czxid != 0 || existing.stat.mzxid != 0 || existing.stat.ctime != 0 {
                return Err(malformed(format!("node {path:?} appears twice")));
            }
            let old = existing.acl;
            let new = self.acls.intern(acl);
            self.acls.release(old);
            let data_len = existing.data_len() as u64;
            let node = self.nodes.get_mut(path).expect("looked up above");
            node.acl = new;
            node.stat = pstat(&n.stat);
            node.data = n.data.as_deref().map(Box::from);
            self.data_size = self.data_size - data_len + node.data_len() as u64;
            return Ok(());
        }
        if !validate_path(path) {
            return Err(malformed(format!("node path {path:?} is not valid")));
        }
        let Some(parent) = parent_of(path).and_then(|p| self.nodes.get(p)) else {
            return Err(malformed(format!("node {path:?} comes before its parent")));
        };
        if matches!(parent.kind, NodeKind::Ephemeral(_)) {
            return Err(malformed(format!(
                "node {path:?} is a child of an ephemeral"
            )));
        }
        if let NodeKind::Ephemeral(owner) = kind {
            self.adopt_session(owner);
        }
        let acl = self.acls.intern(acl);
        self.insert_node(
            path,
            Node {
                data: n.data.as_deref().map(Box::from),
                acl,
                stat: pstat(&n.stat),
                kind,
                children: None,
            },
        );
        Ok(())
    }

    /// Makes sure an ephemeral's owner is in the table (see the module docs).
    fn adopt_session(&mut self, owner: i64) {
        if self.sessions.contains_key(&owner) {
            return;
        }
        let timeout_ms = self
            .sessions
            .values()
            .map(|s| s.timeout_ms)
            .max()
            .unwrap_or(FALLBACK_TIMEOUT_MS);
        self.sessions.insert(
            owner,
            Session {
                timeout_ms,
                zk_password: true,
                ..Session::default()
            },
        );
    }

    /// Rolls one ZooKeeper log entry forward, as ZooKeeper's restore does.
    pub fn replay_zk(&mut self, entry: &LogEntry) -> Replayed {
        let h = &entry.header;
        let r = self.replay_txn(h.client_id, h.zxid, h.time, h.kind, &entry.txn);
        self.last_zxid = self.last_zxid.max(h.zxid);
        r
    }

    fn replay_txn(
        &mut self,
        client: i64,
        zxid: i64,
        time: i64,
        kind: i32,
        txn: &ZkTxn,
    ) -> Replayed {
        use Replayed::*;
        match txn {
            ZkTxn::CreateSession { timeout_ms } => {
                let s = self.sessions.entry(client).or_default();
                s.timeout_ms = *timeout_ms;
                s.zk_password = true;
                Applied
            }
            ZkTxn::CloseSession { paths } => {
                let local = self.sessions.remove(&client).map(|s| s.ephemerals);
                let mut any = local.is_some();
                for p in paths.iter().flatten() {
                    any |= self.replay_delete(p, zxid);
                }
                for p in local.into_iter().flatten() {
                    self.replay_delete(&p, zxid);
                }
                applied(any)
            }
            ZkTxn::Create {
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            } => {
                let owner = if *ephemeral { client } else { 0 };
                let created =
                    self.replay_create(path, data, acl, owner, *parent_cversion, zxid, time);
                if !created && kind == OP_CREATE {
                    // processTxn's fuzzy-snapshot fix-up for plain create.
                    if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
                        let cv = if *parent_cversion == -1 {
                            parent.stat.cversion.wrapping_add(1)
                        } else {
                            *parent_cversion
                        };
                        if cv > parent.stat.cversion {
                            parent.stat.cversion = cv;
                            parent.stat.pzxid = zxid;
                        }
                    }
                }
                applied(created)
            }
            ZkTxn::CreateContainer {
                path,
                data,
                acl,
                parent_cversion,
            } => applied(self.replay_create(
                path,
                data,
                acl,
                CONTAINER_OWNER,
                *parent_cversion,
                zxid,
                time,
            )),
            ZkTxn::CreateTtl {
                path,
                data,
                acl,
                parent_cversion,
                ttl,
            } => {
                let owner = EXTENDED_MASK | (*ttl & EXTENDED_VALUE_BITS);
                applied(self.replay_create(path, data, acl, owner, *parent_cversion, zxid, time))
            }
            ZkTxn::Delete { path } => applied(self.replay_delete(path, zxid)),
            ZkTxn::SetData { path, .. } if kind == OP_RECONFIG || path == super::CONFIG_NODE => {
                Config
            }
            ZkTxn::SetData {
                path,
                data,
                version,
            } => {
                let Some(node) = self.nodes.get_mut(path.as_str()) else {
                    return Ignored;
                };
                let old_len = node.data_len() as u64;
                node.data = data.as_deref().map(Box::from);
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                node.stat.version = *version;
                self.data_size = self.data_size - old_len + node.data_len() as u64;
                Applied
            }
            ZkTxn::SetAcl { path, acl, version } => {
                let Some(node) = self.nodes.get(path.as_str()) else {
                    return Ignored;
                };
                let old = node.acl;
                let new = self.acls.intern(acl);
                self.acls.release(old);
                let node = self.nodes.get_mut(path.as_str()).expect("looked up above");
                node.acl = new;
                node.stat.aversion = *version;
                Applied
            }
            ZkTxn::Check { .. } | ZkTxn::Error { .. } => Ignored,
            ZkTxn::Multi(ops) => {
                // A failed multi is all error txns; otherwise each op replays on its own.
                if ops.iter().any(|(_, t)| matches!(t, ZkTxn::Error { .. })) {
                    return Ignored;
                }
                let mut any = false;
                for (k, t) in ops {
                    any |= self.replay_txn(client, zxid, time, *k, t) != Ignored;
                }
                applied(any)
            }
        }
    }

    /// DataTree.createNode: false (and no change but the existing node's ACL) when the
    /// parent is missing or the node exists.
    #[allow(clippy::too_many_arguments)]
    fn replay_create(
        &mut self,
        path: &str,
        data: &Option<Vec<u8>>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> bool {
        let Some(parent_path) = parent_of(path) else {
            return false;
        };
        let Some(parent) = self.nodes.get(parent_path) else {
            return false;
        };
        let parent_kind = parent.kind;
        let Ok(kind) = kind_of(owner) else {
            return false;
        };
        let new_acl: AclRef = self.acls.intern(acl);
        if let Some(existing) = self.nodes.get_mut(path) {
            // ZooKeeper re-points the existing node at the txn's ACL before failing.
            let old = std::mem::replace(&mut existing.acl, new_acl);
            self.acls.release(old);
            return false;
        }
        if matches!(parent_kind, NodeKind::Ephemeral(_)) || !validate_path(path) {
            self.acls.release(new_acl);
            return false;
        }
        let parent = self.nodes.get_mut(parent_path).expect("looked up above");
        let cv = if parent_cversion == -1 {
            parent.stat.cversion.wrapping_add(1)
        } else {
            parent_cversion
        };
        if cv > parent.stat.cversion {
            parent.stat.cversion = cv;
            parent.stat.pzxid = zxid;
        }
        if let NodeKind::Ephemeral(s) = kind {
            self.adopt_session(s);
        }
        self.insert_node(
            path,
            Node {
                data: data.as_deref().map(Box::from),
                acl: new_acl,
                stat: PStat {
                    czxid: zxid,
                    mzxid: zxid,
                    ctime: time,
                    mtime: time,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    pzxid: zxid,
                },
                kind,
                children: None,
            },
        );
        true
    }

    /// DataTree.deleteNode: the parent's pzxid moves forward even when the node is missing.
    fn replay_delete(&mut self, path: &str, zxid: i64) -> bool {
        let Some(parent_path) = parent_of(path) else {
            return false;
        };
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return false;
        };
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        match self.nodes.get(path) {
            // A node with children cannot be deleted (ZooKeeper never logs that).
            Some(n) if n.num_children() == 0 && !super::SPECIAL_PATHS.contains(&path) => {}
            _ => return false,
        }
        if let Some(node) = self.remove_node(path) {
            self.acls.release(node.acl);
        }
        true
    }

    /// ZooKeeper's tree digest (`zkfiles::digest`) of this tree, as ZooKeeper would compute
    /// it over the same nodes: to check an import against the digest ZooKeeper logged.
    /// Computed in place (no copy of the data).
    pub fn zk_digest(&self) -> i64 {
        self.nodes.iter().fold(0i64, |acc, (path, n)| {
            acc.wrapping_add(crate::zkfiles::digest::node_digest(
                path,
                n.data.as_deref(),
                &stat_persisted(n),
            ))
        })
    }

    /// Whether this session came from ZooKeeper's data: its client holds the password
    /// ZooKeeper derived from the id, which keeperd must accept (see `session::zk_password`).
    pub fn session_is_imported(&self, session_id: i64) -> bool {
        self.sessions
            .get(&session_id)
            .is_some_and(|s| s.zk_password)
    }

    /// The whole tree as ZooKeeper snapshot records (for `keeperd export-zk`): nodes in
    /// depth-first order (parents first, children by name), ACL lists numbered from 1 in
    /// content order, sessions by id. `/zookeeper/config` is written empty: ZooKeeper fills
    /// it from its own configuration when it starts.
    pub fn to_zk_snapshot(&self) -> ZkSnapshot {
        let mut lists: Vec<(AclRef, &[Acl])> = self.acls.used().collect();
        lists.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let mut key = vec![0i64; self.acls.slot_count()];
        for (i, (slot, _)) in lists.iter().enumerate() {
            key[*slot as usize] = i as i64 + 1;
        }
        let mut nodes = Vec::with_capacity(self.nodes.len());
        let mut stack = vec!["/".to_string()];
        while let Some(path) = stack.pop() {
            let Some(n) = self.nodes.get(path.as_str()) else {
                continue;
            };
            let config = path == super::CONFIG_NODE;
            nodes.push(ZkNode {
                path: if path == "/" {
                    String::new()
                } else {
                    path.clone()
                },
                data: if config {
                    Some(Vec::new())
                } else {
                    n.data.as_deref().map(<[u8]>::to_vec)
                },
                acl: key[n.acl as usize],
                stat: stat_persisted(n),
            });
            if let Some(children) = &n.children {
                stack.extend(children.iter().rev().map(|c| super::join(&path, c)));
            }
        }
        ZkSnapshot {
            version: 2,
            dbid: -1,
            sessions: self
                .sessions
                .iter()
                .map(|(&id, s)| (id, s.timeout_ms))
                .collect(),
            acls: lists
                .iter()
                .enumerate()
                .map(|(i, (_, l))| (i as i64 + 1, l.to_vec()))
                .collect(),
            nodes,
            digest: None,
            last_processed_zxid: None,
        }
    }
}

#[cfg(test)]
#[path = "zk_tests.rs"]
mod tests;
