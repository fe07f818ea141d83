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
//!
//! This file owns the types (`NodeKind`, `PStat`, `Node`, `Session`, `DataTree`), `new()`, the
//! node map's path operations that keep the invariants above (`insert_node`, `remove_node`,
//! `delete_node`), the ACL check and the reads (`get_data`, `exists`, `get_children`,
//! `get_acl`, `config`, counts). The rest of `DataTree`'s methods are in child modules:
//! - `apply.rs`: `apply()` and what each `Txn` does, multi with its undo log, the
//!   /zookeeper/config writes (`SetConfig`, reconfig);
//! - `write_ops.rs`: the client writes (create, delete, setData, setACL, check) with
//!   ZooKeeper's checks in ZooKeeper's order;
//! - `sessions.rs`: the session table and each session's ephemerals;
//! - `reap.rs`: containers and TTL nodes, which the leader's reaper deletes;
//! - `nodetable.rs`: the node table (one heap block per znode holding it and its path);
//! - `digest.rs`: the replica-comparison digest;
//! - `snapshot.rs`: keeperd's snapshot format; `zk.rs`: ZooKeeper's snapshots and txn logs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::acl::{self, AclRef, AclTable};
use super::path::{java_len, join, name_of, parent_of, validate_path};
use super::{TreeOptions, WatchTrigger};
use crate::proto::codec::encode_names;
use crate::proto::{perms, Acl, EventType, Id, Stat, ZkError};

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
    children: Option<Box<Children>>,
}

/// Lists shorter than this are encoded for each getChildren; longer ones once per change.
const CACHED_LIST_MIN: usize = 64;

/// A node's child names, in name order, and the getChildren reply body built from them.
///
/// The reply body (the jute vector of names) of a list of `CACHED_LIST_MIN` or more names is
/// kept after the first getChildren until the next change to the names, so repeated reads
/// of a big list copy one buffer instead of building a string per child. Bound: the cache
/// holds 4 + length bytes per name of such lists, i.e. at most the names once more, and
/// only for lists read since their last change. It is a cache, not state: clones, digests
/// and snapshots ignore it, and every mutation goes through `insert` / `remove`, which drop
/// it.
#[derive(Debug, Clone, Default)]
pub(super) struct Children {
    names: BTreeSet<Name>,
    encoded: std::sync::OnceLock<Bytes>,
}

impl Children {
    fn from_names(names: impl IntoIterator<Item = Name>) -> Children {
        Children {
            names: names.into_iter().collect(),
            encoded: Default::default(),
        }
    }

    fn insert(&mut self, name: &str) -> bool {
        self.encoded.take();
        self.names.insert(Name::new(name))
    }

    fn remove(&mut self, name: &str) -> bool {
        self.encoded.take();
        self.names.remove(name)
    }

    /// The getChildren reply body: `vector<ustring>` of the names.
    fn encoded(&self) -> Bytes {
        let build = || encode_names(self.names.iter().map(|n| &**n));
        if self.names.len() < CACHED_LIST_MIN {
            return build();
        }
        self.encoded.get_or_init(build).clone()
    }
}

impl std::ops::Deref for Children {
    type Target = BTreeSet<Name>;

    fn deref(&self) -> &BTreeSet<Name> {
        &self.names
    }
}

/// Bytes of a name kept inside the `Name` itself.
const INLINE_NAME: usize = 22;

/// A child's name. Names of up to `INLINE_NAME` bytes (nearly all) are kept inline: 24
/// bytes in the children set instead of a `Box<str>`'s 16 plus a 32-byte heap block. Ordered,
/// compared and hashed as the `str` it holds, so sets of names are looked up by `&str`.
#[derive(Clone)]
pub(super) enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl Name {
    pub(super) fn new(s: &str) -> Name {
        if s.len() <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(s.into())
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Name::Inline { len, bytes } => {
                let b = &bytes[..*len as usize];
                // SAFETY: `b` is a copy of a whole `&str` (`Name::new`), so valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            Name::Heap(s) => s,
        }
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        **self == **other
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        (**self).cmp(&**other)
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl Node {
    /// A copy without the children (`None`): what a snapshot keeps of a changed node.
    fn clone_fields(&self) -> Node {
        Node {
            data: self.data.clone(),
            acl: self.acl,
            stat: self.stat,
            kind: self.kind,
            children: None,
        }
    }

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

/// The node map. Reads go straight to the table; every change goes through `get_mut`,
/// `insert` or `remove`, which first keep the node's state at the cut of a snapshot being
/// written (`DataTree::begin_snapshot`), if it was not kept yet, and note the path as changed
/// since the last cut (`Changed`).
#[derive(Debug, Default)]
struct NodeMap {
    map: NodeTable,
    /// Set while a snapshot is written.
    cow: Option<Arc<CowLog>>,
    /// The paths changed since the last snapshot's cut (`None`: not tracked, e.g. before the
    /// first cut of this tree, or after more changes than are worth tracking).
    changed: Option<Changed>,
}

/// The paths of the nodes changed (set, created or deleted) since a snapshot's cut: the
/// next snapshot copies every other node from that snapshot's bytes instead of reading the
/// tree (`SnapshotCut::merge_previous`).
#[derive(Debug)]
pub(super) struct Changed {
    /// The cut tracking started at (`SnapshotCut::id`).
    pub(super) since: u64,
    pub(super) paths: std::collections::HashSet<Box<str>>,
}

/// A cut's identity: unique in the process, so a snapshot file is only ever merged into the
/// snapshot whose changes were tracked from exactly its cut.
pub(super) fn next_cut_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Changed paths tracked at most: a quarter of the nodes, plus this. Past it, tracking stops
/// until the next cut (whose snapshot then reads every node): the set is bounded whatever
/// the load (a queue's sequential names, snapshots failing), and a snapshot merged from that
/// many changes would save little.
pub(super) const CHANGED_SLACK: usize = 4096;

/// What a snapshot's walk needs of the nodes changed since its cut.
#[derive(Debug, Default)]
pub(super) struct CowLog {
    saved: std::sync::Mutex<Saved>,
}

#[derive(Debug, Default)]
struct Saved {
    /// The state at the cut of every node changed since: `None` for a path that had no node
    /// then.
    nodes: HashMap<Box<str>, Option<AtCut>>,
    /// By parent path: the names of children the parent had at the cut and that were
    /// deleted since. With the parent's live names (less those created since), the names it
    /// had at the cut; so a node's set of children is never copied, however large.
    gone: HashMap<Box<str>, BTreeSet<Name>>,
    /// The path the walk visited last (set by `SnapshotCut::step`; "" for the root alone):
    /// every path at or before it in the walk's order is written already, so its changes
    /// need no copy (`walked_past`).
    walked: String,
}

/// Whether `path` comes at or before `cursor` in a snapshot walk's order: depth first, a
/// parent before its children, children by name. That is their names compared one by one
/// (a prefix first), not the strings: "/a/b" comes before "/a-c".
fn walked_past(path: &str, cursor: &str) -> bool {
    let names = |p| str::split(p, '/').filter(|n: &&str| !n.is_empty());
    names(path).cmp(names(cursor)) != std::cmp::Ordering::Greater
}

/// A node as it was at a snapshot's cut: its fields but its children, and how many
/// children it had.
#[derive(Debug)]
struct AtCut {
    node: Box<Node>,
    children: usize,
}

impl CowLog {
    fn saved(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.saved.lock().expect("snapshot copy-on-write log")
    }
}

impl Saved {
    /// Keeps `path`'s state at the cut, unless kept already.
    fn keep(&mut self, path: &str, map: &NodeTable) {
        if walked_past(path, &self.walked) || self.nodes.contains_key(path) {
            return;
        }
        let at = map.get(path).map(|n| AtCut {
            node: Box::new(n.clone_fields()),
            children: n.num_children(),
        });
        self.nodes.insert(path.into(), at);
    }

    /// `keep` for a path being deleted; a name its parent had at the cut is listed as gone.
    fn keep_removed(&mut self, path: &str, map: &NodeTable) {
        self.keep(path, map);
        let at_cut = matches!(self.nodes.get(path), Some(Some(_)));
        if let (true, Some(parent)) = (at_cut, parent_of(path)) {
            let name = Name::new(name_of(path));
            self.gone.entry(parent.into()).or_default().insert(name);
        }
    }
}

impl Clone for NodeMap {
    /// A copy takes no part in the original's snapshot.
    fn clone(&self) -> NodeMap {
        NodeMap {
            map: self.map.clone(),
            cow: None,
            changed: None,
        }
    }
}

impl std::ops::Deref for NodeMap {
    type Target = NodeTable;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl NodeMap {
    fn new(map: NodeTable) -> NodeMap {
        NodeMap {
            map,
            cow: None,
            changed: None,
        }
    }

    fn preserve(&mut self, path: &str) {
        if let Some(log) = &self.cow {
            log.saved().keep(path, &self.map);
        }
        self.note_changed(path);
    }

    fn note_changed(&mut self, path: &str) {
        let Some(c) = &mut self.changed else {
            return;
        };
        if c.paths.contains(path) {
            return;
        }
        if c.paths.len() >= self.map.len() / 4 + CHANGED_SLACK {
            self.changed = None;
            return;
        }
        c.paths.insert(path.into());
    }

    /// Starts tracking changes from the cut `id`; returns what was tracked up to it. The new
    /// set is sized for as many paths as the last one held, so that it does not grow (and
    /// rehash every path, on the thread that applies) as often between cuts.
    pub(super) fn restart_changed(&mut self, id: u64) -> Option<Changed> {
        let expected = self.changed.as_ref().map_or(0, |c| c.paths.len());
        self.changed.replace(Changed {
            since: id,
            paths: std::collections::HashSet::with_capacity(expected),
        })
    }

    fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.preserve(path);
        self.map.get_mut(path)
    }

    fn insert(&mut self, path: &str, node: Node) -> Option<Node> {
        self.preserve(path);
        self.map.insert(path, node)
    }

    fn remove(&mut self, path: &str) -> Option<Node> {
        if let Some(log) = &self.cow {
            log.saved().keep_removed(path, &self.map);
        }
        self.note_changed(path);
        self.map.remove(path)
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
    /// The last `Txn::SessionAuth`: who holds the session's connection and its identities.
    auth: Option<SessionAuth>,
}

/// A session's identities and the member that vouched for them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionAuth {
    server: u64,
    ids: Vec<crate::proto::Id>,
}

#[derive(Debug, Clone)]
pub struct DataTree {
    opts: TreeOptions,
    /// Every znode by full path, one heap block per node holding both: a table slot is one
    /// pointer, which matters because hashbrown keeps between 12.5% and 56% of its slots
    /// empty (1,000,000 nodes sit in 2^21 slots).
    nodes: NodeMap,
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
    /// Import only: nodes of a ZooKeeper snapshot whose ACL key was not in its ACL cache,
    /// with the key (see `zk::DataTree::check_zk_acls`).
    zk_unresolved: Vec<(Box<str>, i64)>,
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
            nodes: NodeMap::default(),
            acls: AclTable::default(),
            sessions: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            last_zxid: 0,
            deleted: Vec::new(),
            zk_unresolved: Vec::new(),
        };
        // As in ZooKeeper's DataTree constructor: empty (not null) data, zero stats, open
        // ACLs, except /zookeeper/config which is world-readable only and whose ACL was set
        // with version -1 (so its aversion is -1).
        let open = t.acls.intern(&Acl::open_unsafe());
        t.nodes.insert(
            "/",
            Node {
                data: Some(Box::default()),
                acl: open,
                stat: PStat::default(),
                kind: NodeKind::Persistent,
                children: None,
            },
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
                Node {
                    data: Some(Box::default()),
                    acl,
                    stat: PStat {
                        aversion,
                        ..PStat::default()
                    },
                    kind: NodeKind::Persistent,
                    children: None,
                },
            );
        }
        t.acls.release(open);
        t
    }

    /// Whether `auth` holds every permission bit of `perms` on `path` (false if there is no
    /// such node). Each bit is checked on its own: ZooKeeper's checkACL passes a request for
    /// several bits when any one of them is granted.
    pub fn permits_all(&self, path: &str, perms: i32, auth: &[Id]) -> bool {
        let Some(node) = self.nodes.get(path) else {
            return false;
        };
        (0..5)
            .map(|b| 1 << b)
            .filter(|bit| perms & bit != 0)
            .all(|bit| self.check_acl(node, bit, auth).is_ok())
    }

    fn check_acl(&self, node: &Node, perm: i32, auth: &[Id]) -> Result<(), ZkError> {
        if self.opts.skip_acl {
            return Ok(());
        }
        acl::check_acl(self.acls.get(node.acl), perm, auth, self.opts.sasl_acls)
    }

    /// DataTree.deleteNode: unlinks `path`, moves the parent's pzxid forward (cversion is
    /// not touched: it counts creations), drops the node's ACL use and emits the triggers.
    /// Returns the removed node (its `acl` slot is no longer valid).
    fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Option<Node> {
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
    fn insert_node(&mut self, path: &str, node: Node) {
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
            parent
                .children
                .get_or_insert_with(Default::default)
                .insert(name_of(path));
        }
        match node.kind {
            NodeKind::Persistent => {}
            NodeKind::Ephemeral(owner) => {
                // The owner exists: creates check the session, and an undone delete runs
                // inside the multi that removed the node, before any session can close.
                if let Some(s) = self.sessions.get_mut(&owner) {
                    s.ephemerals.insert(path.into());
                }
            }
            NodeKind::Container => {
                self.containers.insert(path.into());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.into());
            }
        }
        self.data_size += java_len(path) + node.data_len() as u64;
        self.nodes.insert(path, node);
    }

    /// Unlinks a node from the tree and the bookkeeping sets (ACL reference untouched).
    fn remove_node(&mut self, path: &str) -> Option<Node> {
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

    /// `get_children` with the names as the reply encodes them (see `Children`).
    pub fn get_children_encoded(&self, path: &str, auth: &[Id]) -> Result<(Bytes, Stat), ZkError> {
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, auth)?;
        let names = match &node.children {
            Some(c) => c.encoded(),
            None => encode_names(std::iter::empty()),
        };
        Ok((names, node.client_stat()))
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
}

#[path = "apply.rs"]
mod apply;

#[path = "write_ops.rs"]
mod write_ops;

#[path = "sessions.rs"]
mod sessions;

#[path = "reap.rs"]
mod reap;

#[path = "digest.rs"]
mod digest;

#[path = "nodetable.rs"]
mod nodetable;
use nodetable::NodeTable;

#[path = "snapshot.rs"]
mod snapshot;
pub use snapshot::{Piece, SnapshotCut};

#[path = "zk.rs"]
mod zk;
pub use zk::Replayed;

#[cfg(test)]
#[path = "datatree_tests.rs"]
mod tests;
