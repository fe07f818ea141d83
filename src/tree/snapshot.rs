//! Snapshots: the whole replicated state of a `DataTree` as one checksummed byte string.
//!
//! A snapshot holds what `apply` reads: every node (name, data with null distinct from empty,
//! the persisted Stat, kind with its ephemeral owner or TTL, ACL list), the ACL lists, the
//! session table and `last_zxid`. Everything derivable is rebuilt on load instead of stored:
//! full paths, children sets, the sessions' ephemeral lists, the container and TTL sets, ACL
//! reference counts and `data_size`.
//!
//! ```text
//! snapshot := header body crc
//! header   := "KPDSNAP\n", u32 version (3; 1 and 2 are read too), u64 length of body
//! body     := i64 last_zxid,
//!             u32 n, n * acl_list        -- strictly increasing (sorted by content)
//!             u32 n, n * session         -- strictly increasing id
//!             u64 n, node                -- n nodes in all: "/" and its subtree
//! crc      := u32 CRC-32 (IEEE) of header and body
//! acl_list := u32 n, n * (i32 perms, str scheme, str id)
//! session  := i64 id, i32 timeout_ms, u8 session flags (versions 2 and 3),
//!             [u64 server, u32 n, n * (str scheme, str id)]  -- when flags bit 1 (version 3)
//! session flags := bit 0: imported from ZooKeeper (accepts ZooKeeper's password),
//!             bit 1: the session's identities and the member that recorded them
//!             (`Txn::SessionAuth`) follow
//! node     := str name ("" for "/"), u8 flags,
//!             [i64 owner | i64 ttl]       -- ephemeral | TTL kinds only
//!             i64 czxid, [i64 mzxid], [i64 pzxid], i64 ctime, [i64 mtime],
//!             [i32 version, i32 cversion, i32 aversion],
//!             u32 acl                     -- index into the acl lists
//!             [u32 len, len bytes data]   -- absent when data is null
//!             [u32 k, k * node]           -- children in strictly increasing name order
//! flags    := bits 0-1 kind (0 persistent, 1 ephemeral, 2 container, 3 TTL),
//!             bit 2 data is null, bit 3 mzxid = czxid, bit 4 pzxid = czxid,
//!             bit 5 mtime = ctime, bit 6 version = cversion = aversion = 0,
//!             bit 7 has children (k > 0 follows); a set bit 3-6 omits those fields
//! str      := u32 len, UTF-8 bytes
//! ```
//! Integers are big-endian, like jute. Nodes are in depth-first pre-order, so a parent always
//! precedes its children and the loader builds the tree in one pass with a stack, inserting
//! each node into the map once its children set is complete. The fields bits 3-6 omit are the
//! common case of a leaf that was never modified, which saves ~30 bytes a node.
//!
//! Canonical: ACL lists are numbered by content order (not by table slot, which depends on the
//! history of interning), sessions by id, children by name; so trees with equal contents give
//! equal bytes. The loader rejects what would break the tree's invariants or that canonical
//! order (unsorted or repeated names, ids or lists, an unused ACL list, a dangling ACL index,
//! an ephemeral without its session or with children, a missing special node).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use super::acl::AclTable;
use super::{
    java_len, next_cut_id, Changed, CowLog, DataTree, Name, Node, NodeKind, NodeMap, NodeTable,
    PStat, Session, SessionAuth, MAX_TTL_MS, SPECIAL_PATHS,
};
use crate::proto::{Acl, Error, Id};
use crate::tree::path::{name_of, parent_of};
use crate::tree::TreeOptions;
use prev::{Prev, PrevResult};

const MAGIC: &[u8; 8] = b"KPDSNAP\n";
const VERSION: u32 = 3;
/// Version 1 had no session flags.
const VERSION_1: u32 = 1;
/// Version 2 had no session identities.
const VERSION_2: u32 = 2;
const SESSION_ZK_PASSWORD: u8 = 1;
const SESSION_AUTH: u8 = 2;
/// Magic, version and body length.
const HEADER_LEN: usize = 8 + 4 + 8;
const CRC_LEN: usize = 4;

const KIND_MASK: u8 = 0b11;
const KIND_PERSISTENT: u8 = 0;
const KIND_EPHEMERAL: u8 = 1;
const KIND_CONTAINER: u8 = 2;
const KIND_TTL: u8 = 3;
const NULL_DATA: u8 = 1 << 2;
const MZXID_IS_CZXID: u8 = 1 << 3;
const PZXID_IS_CZXID: u8 = 1 << 4;
const MTIME_IS_CTIME: u8 = 1 << 5;
const ZERO_VERSIONS: u8 = 1 << 6;
const HAS_CHILDREN: u8 = 1 << 7;

/// The fewest bytes a node can take (empty name, flags, czxid, ctime, acl): bounds every
/// count read from the input before anything is reserved for it.
const MIN_NODE_LEN: usize = 4 + 1 + 8 + 8 + 4;
/// The fewest bytes an ACL entry (perms and two empty strings) or a session can take.
const MIN_ACL_LEN: usize = 4 + 4 + 4;
const SESSION_LEN: usize = 8 + 4 + 1;

impl DataTree {
    /// The whole replicated state (nodes, ACL lists, sessions, last zxid) in the format of
    /// the module docs. Deterministic: trees with equal contents give equal bytes.
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        let mut cut = self.cut(None, true);
        cut.step(self, usize::MAX)
            .expect("a snapshot of a tree held still completes");
        cut.finish()
            .expect("a snapshot of a tree held still completes")
    }

    /// Starts a snapshot of the tree as it is now, written while the tree keeps changing:
    /// from here until `end_snapshot`, each node's state at this cut is kept aside the first
    /// time it is changed (copy-on-write, `NodeMap::preserve`), and `SnapshotCut::step`, run
    /// in chunks under the caller's lock, writes the cut's nodes from there or from the
    /// unchanged live tree. The bytes are exactly what `snapshot_bytes` would have given
    /// here. Memory: one copy of each node changed while the snapshot is written.
    ///
    /// Changes are tracked from each cut to the next (`Changed`), so the snapshot of a cut
    /// may be written by merging the previous one with the nodes changed since
    /// (`SnapshotCut::merge_previous`).
    pub fn begin_snapshot(&mut self) -> SnapshotCut {
        let log = Arc::new(CowLog::default());
        self.nodes.cow = Some(log.clone());
        let id = next_cut_id();
        let changed = self.nodes.restart_changed(id);
        let mut cut = self.cut(Some(log), false);
        cut.id = id;
        cut.changed = changed;
        cut
    }

    /// Stops keeping the cut's nodes for `cut` (call once its writing ended, or failed).
    pub fn end_snapshot(&mut self, cut: &SnapshotCut) {
        if cut.is_of(self) {
            self.nodes.cow = None;
        }
    }

    /// The snapshot's prefix (header, ACL lists, sessions, node count, root) and the state
    /// of its walk over the nodes. `whole`: the bytes will be kept in one buffer (sized
    /// for the whole snapshot here) rather than drained chunk by chunk.
    fn cut(&self, log: Option<Arc<CowLog>>, whole: bool) -> SnapshotCut {
        // Canonical ACL numbering: by list content.
        let mut lists: Vec<(u32, &[Acl])> = self.acls.used().collect();
        lists.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let mut acl_index = vec![u32::MAX; self.acls.slot_count()];
        for (i, &(slot, _)) in lists.iter().enumerate() {
            acl_index[slot as usize] = i as u32;
        }

        // An estimate (exact but for names, which `data_size` over-counts as full paths) so
        // the buffer is allocated once.
        let acl_len: usize = lists
            .iter()
            .flat_map(|l| l.1.iter())
            .map(|a| MIN_ACL_LEN + a.id.scheme.len() + a.id.id.len())
            .sum();
        let capacity = HEADER_LEN
            + 8
            + 4
            + 4 * lists.len()
            + acl_len
            + 4
            + SESSION_LEN * self.sessions.len()
            + 8
            + self.nodes.len() * (MIN_NODE_LEN + 8 + 24 + 12 + 8)
            + self.data_size as usize
            + CRC_LEN;
        let mut w = Writer(Vec::with_capacity(if whole {
            capacity
        } else {
            capacity.min(DRAIN_CAPACITY)
        }));
        w.0.extend_from_slice(MAGIC);
        w.u32(VERSION);
        w.u64(0); // body length, patched below

        w.i64(self.last_zxid);
        let acl_lists_at = w.0.len();
        w.u32(lists.len() as u32);
        for (_, list) in &lists {
            w.u32(list.len() as u32);
            for a in *list {
                w.i32(a.perms);
                w.str(&a.id.scheme);
                w.str(&a.id.id);
            }
        }
        let acl_lists = acl_lists_at..w.0.len();
        w.u32(self.sessions.len() as u32);
        for (&id, s) in &self.sessions {
            w.i64(id);
            w.i32(s.timeout_ms);
            let mut flags = 0;
            if s.zk_password {
                flags |= SESSION_ZK_PASSWORD;
            }
            if s.auth.is_some() {
                flags |= SESSION_AUTH;
            }
            w.u8(flags);
            if let Some(a) = &s.auth {
                w.u64(a.server);
                w.u32(a.ids.len() as u32);
                for id in &a.ids {
                    w.str(&id.scheme);
                    w.str(&id.id);
                }
            }
        }

        w.u64(self.nodes.len() as u64);
        let root = self.nodes.get("/").expect("the root always exists");
        w.node("", root, root.num_children(), &acl_index);
        let mut stack = Vec::new();
        if root.children.is_some() {
            stack.push(WalkFrame::fresh(0, root.num_children(), 0, Vec::new()));
        }
        SnapshotCut {
            w,
            acl_index,
            acl_lists,
            log,
            id: 0,
            changed: None,
            prev: None,
            changed_children: HashMap::new(),
            copied: 0,
            path: String::new(),
            stack,
            written: 1,
            total: self.nodes.len(),
            body: Body::default(),
            drained: false,
            copies: None,
        }
    }
}

/// A snapshot being written (`DataTree::begin_snapshot`): the bytes so far and where the
/// depth-first walk over the cut's nodes stands.
pub struct SnapshotCut {
    w: Writer,
    /// ACL table slot at the cut -> index of its list in the snapshot.
    acl_index: Vec<u32>,
    /// Where the ACL lists are in `w` (until the first `drain`).
    acl_lists: std::ops::Range<usize>,
    /// The cut's copy-on-write log (`None`: the tree is held still, `snapshot_bytes`).
    log: Option<Arc<CowLog>>,
    /// This cut (`begin_snapshot`; 0 for `snapshot_bytes`).
    id: u64,
    /// The paths changed between the previous cut and this one, if tracked.
    changed: Option<Changed>,
    /// The previous cut's snapshot, being merged (`merge_previous`).
    prev: Option<Prev>,
    /// When merging: by parent path, the names of the children changed since the previous
    /// cut, sorted (each list moves to its parent's frame when the walk gets there).
    changed_children: HashMap<Box<str>, Vec<Name>>,
    /// Nodes copied from `prev` so far.
    copied: usize,
    /// The full path of the node written last ("" for the root).
    path: String,
    /// One frame per node whose children are being written, outermost first.
    stack: Vec<WalkFrame>,
    written: usize,
    total: usize,
    /// The CRC and length of the body so far: the bytes of `w` before `body.hashed` and
    /// what was drained or copied by reference.
    body: Body,
    /// `drain` was called (`w` then holds the header and the body bytes not yet drained).
    drained: bool,
    /// Once `by_reference`: the copies from the previous snapshot not drained yet, each
    /// listed by where it goes in `w`.
    copies: Option<Vec<PendingCopy>>,
}

/// The CRC and length of a snapshot's body, kept as it is drained (and, for copies by
/// reference, as they are made, so that the CRC covers the bytes in order).
struct Body {
    crc: crc32fast::Hasher,
    len: u64,
    /// Bytes of `w` before this are in `crc` and `len`.
    hashed: usize,
}

impl Default for Body {
    fn default() -> Body {
        Body {
            crc: crc32fast::Hasher::new(),
            len: 0,
            hashed: HEADER_LEN,
        }
    }
}

impl Body {
    /// Takes in the bytes of `w` not hashed yet.
    fn hash_written(&mut self, w: &[u8]) {
        self.crc.update(&w[self.hashed..]);
        self.len += (w.len() - self.hashed) as u64;
        self.hashed = w.len();
    }
}

/// A run of the previous snapshot's bytes that goes before `w[at]`.
struct PendingCopy {
    at: usize,
    off: u64,
    len: u64,
}

/// A piece of a snapshot drained by `SnapshotCut::drain_pieces`: bytes, or a run of the
/// previous snapshot's bytes (from offset `off` of its data, `len` of them), which a delta
/// file stores as a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Copy { off: u64, len: u64 },
}

/// Copies the previous snapshot's next record into `w`, or, when copies go by reference
/// (`copies`), notes it as a copy (merged with the one before when they are contiguous in
/// both) and takes its bytes into `body`. Returns its number of children.
fn copy_record(
    prev: &mut Prev,
    w: &mut Writer,
    body: &mut Body,
    copies: &mut Option<Vec<PendingCopy>>,
) -> PrevResult<u32> {
    let Some(copies) = copies else {
        return prev.copy_record(&mut w.0);
    };
    let (off, bytes, children) = prev.take_record()?;
    body.hash_written(&w.0);
    body.crc.update(bytes);
    let len = bytes.len() as u64;
    body.len += len;
    let at = w.0.len();
    match copies.last_mut() {
        Some(c) if c.at == at && c.off + c.len == off => c.len += len,
        _ => copies.push(PendingCopy { at, off, len }),
    }
    Ok(children)
}

/// A node whose children are being written: its path is `path[..base]` ("/" when `base` is
/// 0); unless `fresh`, its child written last is the component of `path` after `base`.
struct WalkFrame {
    base: usize,
    fresh: bool,
    /// Children it had at the cut and that are not written yet.
    due: usize,
    /// Its children in the previous snapshot not consumed yet (0 without one).
    prev_left: u32,
    /// The node was copied from the previous snapshot (unchanged since): its children are
    /// the ones there, in its order, and only they are read (`due` is not used).
    copied: bool,
    /// When merging: the names of its children changed since the previous cut, in order,
    /// and the first one not yet passed.
    changed: Vec<Name>,
    next_changed: usize,
}

impl WalkFrame {
    fn fresh(base: usize, due: usize, prev_left: u32, changed: Vec<Name>) -> WalkFrame {
        WalkFrame {
            base,
            fresh: true,
            due,
            prev_left,
            copied: false,
            changed,
            next_changed: 0,
        }
    }

    fn copied(base: usize, prev_left: u32, changed: Vec<Name>) -> WalkFrame {
        WalkFrame {
            base,
            fresh: false,
            due: 0,
            prev_left,
            copied: true,
            changed,
            next_changed: 0,
        }
    }

    /// Whether child `name` changed since the previous cut; asked in name order.
    fn changed(&mut self, name: &str) -> bool {
        while let Some(n) = self.changed.get(self.next_changed) {
            match (**n).cmp(name) {
                std::cmp::Ordering::Less => self.next_changed += 1,
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Greater => return false,
            }
        }
        false
    }
}

impl SnapshotCut {
    /// The length of the head of a drained snapshot (`finish_drained`).
    pub const HEAD_LEN: usize = HEADER_LEN;

    /// Whether `tree` is the tree this snapshot was cut from (not replaced since, e.g. by a
    /// snapshot from the leader).
    fn is_of(&self, tree: &DataTree) -> bool {
        match (&self.log, &tree.nodes.cow) {
            (None, _) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (Some(_), None) => false,
        }
    }

    /// Writes up to `budget` more nodes of the cut, reading `tree` (which must not change
    /// during the call: hold its lock). Ok(true) once every node is written.
    pub fn step(&mut self, tree: &DataTree, budget: usize) -> Result<bool, String> {
        self.step_until(tree, budget, || false)
    }

    /// `step`, returning early once `stop` says so (asked after every node once
    /// `MIN_STEP` were visited): whoever waits for the tree's write lock gets it within a
    /// few nodes' time instead of a whole budget's.
    pub fn step_until(
        &mut self,
        tree: &DataTree,
        budget: usize,
        stop: impl Fn() -> bool,
    ) -> Result<bool, String> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        if !self.is_of(tree) {
            return Err("the tree was replaced while its snapshot was written".into());
        }
        let mut saved = self.log.as_ref().map(|l| l.saved());
        // A node as it was at the cut and how many children it had then: its saved copy if
        // it changed since (`None`: created since), else the live one.
        let at_cut = |path: &str| -> Option<(&Node, usize)> {
            match saved.as_ref().and_then(|s| s.nodes.get(path)) {
                Some(copy) => copy.as_ref().map(|a| (&*a.node, a.children)),
                None => tree.nodes.get(path).map(|n| (n, n.num_children())),
            }
        };
        let mut left = budget;
        while left > 0 {
            let Some(top) = self.stack.last_mut() else {
                break;
            };
            let base = top.base;
            if top.copied {
                // A node unchanged since the previous cut has the children it had there.
                let prev = self
                    .prev
                    .as_mut()
                    .expect("a copied node has a previous snapshot");
                if top.prev_left == 0 {
                    self.stack.pop();
                    self.path.truncate(base);
                    continue;
                }
                top.prev_left -= 1;
                self.path.truncate(base);
                self.path.push('/');
                self.path.push_str(prev.name().map_err(prev_err)?);
                left -= 1;
                if budget - left >= MIN_STEP && stop() {
                    left = 0;
                }
                let name = &self.path[base + 1..];
                let groups = &mut self.changed_children;
                let next = if top.changed(name) {
                    let (node, children) = at_cut(&self.path).ok_or_else(|| {
                        format!("{} changed, under a node that did not", self.path)
                    })?;
                    let kp = prev.skip_record().map_err(prev_err)?;
                    self.w.node(name, node, children, &self.acl_index);
                    (children > 0 || kp > 0).then(|| {
                        let changed = groups.remove(&*self.path).unwrap_or_default();
                        WalkFrame::fresh(self.path.len(), children, kp, changed)
                    })
                } else {
                    let k = copy_record(prev, &mut self.w, &mut self.body, &mut self.copies)
                        .map_err(prev_err)?;
                    self.copied += 1;
                    (k > 0).then(|| {
                        let changed = groups.remove(&*self.path).unwrap_or_default();
                        WalkFrame::copied(self.path.len(), k, changed)
                    })
                };
                self.written += 1;
                if let Some(f) = next {
                    self.stack.push(f);
                }
                continue;
            }
            let parent_path = if base == 0 { "/" } else { &self.path[..base] };
            // The names the parent had at the cut: its live ones (less those created
            // since, which have no node at the cut) and those deleted since. Resume after
            // the last name visited at this level; then run on through its siblings with
            // the one iterator (one lookup of the parent and one B-tree descent per level
            // and call, not per node) until a node has children.
            let from = if top.fresh {
                Bound::Unbounded
            } else {
                Bound::Excluded(&self.path[base + 1..])
            };
            let live = tree
                .nodes
                .get(parent_path)
                .and_then(|p| p.children.as_deref())
                .map(|c| c.range::<str, _>((from, Bound::Unbounded)));
            let gone = saved
                .as_ref()
                .and_then(|s| s.gone.get(parent_path))
                .map(|g| g.range::<str, _>((from, Bound::Unbounded)));
            let mut names = Union::new(live.into_iter().flatten(), gone.into_iter().flatten());
            top.fresh = false;
            while left > 0 {
                let Some(name) = names.next() else {
                    // The previous snapshot's children left were deleted before the cut.
                    if let Some(p) = self.prev.as_mut() {
                        for _ in 0..top.prev_left {
                            p.skip_subtree().map_err(prev_err)?;
                        }
                    }
                    if top.due != 0 {
                        return Err(format!(
                            "{} children of {} not found",
                            top.due,
                            if base == 0 { "/" } else { &self.path[..base] }
                        ));
                    }
                    self.stack.pop();
                    self.path.truncate(base);
                    break;
                };
                self.path.truncate(base);
                self.path.push('/');
                self.path.push_str(name);
                left -= 1;
                if budget - left >= MIN_STEP && stop() {
                    left = 0;
                }
                // Where the previous snapshot has this name: its children before it there
                // were deleted before the cut.
                let mut in_prev = false;
                if let Some(p) = self.prev.as_mut() {
                    while top.prev_left > 0 {
                        match p.name().map_err(prev_err)?.cmp(name) {
                            Less => {
                                p.skip_subtree().map_err(prev_err)?;
                                top.prev_left -= 1;
                            }
                            Equal => {
                                in_prev = true;
                                break;
                            }
                            Greater => break,
                        }
                    }
                }
                if let Some(p) = self.prev.as_mut().filter(|_| !top.changed(name)) {
                    // Unchanged since the previous cut: there, and the same, if it was
                    // there; else created after this cut.
                    if !in_prev {
                        continue;
                    }
                    top.prev_left -= 1;
                    let k = copy_record(p, &mut self.w, &mut self.body, &mut self.copies)
                        .map_err(prev_err)?;
                    self.copied += 1;
                    top.due = top
                        .due
                        .checked_sub(1)
                        .ok_or("more children than at the cut")?;
                    self.written += 1;
                    if k > 0 {
                        let changed = self.changed_children.remove(&*self.path);
                        let f = WalkFrame::copied(self.path.len(), k, changed.unwrap_or_default());
                        self.stack.push(f);
                        break;
                    }
                    continue;
                }
                let Some((node, children)) = at_cut(&self.path) else {
                    if in_prev {
                        top.prev_left -= 1;
                        let p = self.prev.as_mut().expect("in the previous snapshot");
                        p.skip_subtree().map_err(prev_err)?;
                    }
                    continue;
                };
                let mut kp = 0;
                if in_prev {
                    top.prev_left -= 1;
                    let p = self.prev.as_mut().expect("in the previous snapshot");
                    kp = p.skip_record().map_err(prev_err)?;
                }
                self.w.node(name, node, children, &self.acl_index);
                top.due = top
                    .due
                    .checked_sub(1)
                    .ok_or("more children than at the cut")?;
                self.written += 1;
                if children > 0 || kp > 0 {
                    let changed = self.changed_children.remove(&*self.path);
                    let f = WalkFrame::fresh(
                        self.path.len(),
                        children,
                        kp,
                        changed.unwrap_or_default(),
                    );
                    self.stack.push(f);
                    break;
                }
            }
        }
        // Changes to what is written from here on need no copy. (The path may have been cut
        // back to a parent after its last child: that only keeps more than needed.)
        if let Some(s) = saved.as_mut() {
            s.walked.clear();
            s.walked.push_str(&self.path);
        }
        if self.stack.is_empty() {
            if let Some(p) = self.prev.take() {
                p.finish().map_err(prev_err)?;
            }
        }
        Ok(self.stack.is_empty())
    }

    /// When merging (`merge_previous`): reads ahead in the previous snapshot. Call between
    /// steps, without the tree's lock, so that a step seldom reads the file under it.
    pub fn read_ahead(&mut self) -> Result<(), String> {
        match &mut self.prev {
            Some(p) => p.read_ahead().map_err(prev_err),
            None => Ok(()),
        }
    }

    /// Nodes written so far, and how many of them were copied from the previous snapshot.
    pub fn progress(&self) -> (usize, usize) {
        (self.written, self.copied)
    }

    /// This cut's identity (`begin_snapshot`): the next cut's changes are tracked from it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The cut whose snapshot this one can be merged from (`merge_previous`): changes were
    /// tracked from it to this one. `None`: they were not (the first cut of a tree, too
    /// many changes).
    pub fn tracked_since(&self) -> Option<u64> {
        self.changed.as_ref().map(|c| c.since)
    }

    /// Writes this snapshot by merging `previous`, the tree snapshot (`snapshot_bytes`'
    /// format) of the cut `tracked_since`, with the nodes changed since: every node not
    /// changed is copied from there as it is, the others are read from the tree. The bytes
    /// are the same as without it. Call before the first `step`; `Err` (an unusable
    /// previous snapshot: another format version, other ACL list numbering, unreadable)
    /// leaves the cut as it was, to be written from the tree alone. A defect found later
    /// (a checksum that does not match, a record that runs past the end) fails `step`.
    pub fn merge_previous(
        &mut self,
        previous: Box<dyn std::io::Read + Send>,
    ) -> Result<(), String> {
        if self.changed.is_none() || self.written != 1 || self.drained {
            return Err("not a snapshot that has just begun, with its changes tracked".into());
        }
        let opened = Prev::open(previous)?;
        if opened.acl_lists != self.w.0[self.acl_lists.clone()] {
            return Err("its ACL lists differ".into());
        }
        // Grouped by parent and sorted, the changed names are read in step with the walk,
        // in the same order: no lookup per node.
        let paths = self.changed.as_mut().map(|c| std::mem::take(&mut c.paths));
        let mut groups: HashMap<Box<str>, Vec<Name>> = HashMap::new();
        for path in paths.into_iter().flatten() {
            let Some(parent) = parent_of(&path) else {
                continue; // the root: always written from the tree
            };
            let name = Name::new(name_of(&path));
            match groups.get_mut(parent) {
                Some(names) => names.push(name),
                None => {
                    groups.insert(parent.into(), vec![name]);
                }
            }
        }
        for names in groups.values_mut() {
            names.sort_unstable();
        }
        let root_changed = groups.remove("/").unwrap_or_default();
        self.changed_children = groups;
        match self.stack.first_mut() {
            Some(root) => {
                root.prev_left = opened.root_children;
                root.changed = root_changed;
            }
            None => self
                .stack
                .push(WalkFrame::fresh(0, 0, opened.root_children, root_changed)),
        }
        self.prev = Some(opened.prev);
        Ok(())
    }

    /// From here on, the nodes copied from the previous snapshot (`merge_previous`) are
    /// handed out by `drain_pieces` as references to its bytes (`Piece::Copy`) instead of
    /// the bytes themselves, for a file that stores this snapshot as a delta over the
    /// previous one. The snapshot's bytes, length and checksum are the same either way.
    /// Call after `merge_previous` succeeded and before the first `step`.
    pub fn by_reference(&mut self) -> Result<(), String> {
        if self.prev.is_none() || self.written != 1 || self.drained {
            return Err("not a merged snapshot that has just begun".into());
        }
        self.copies = Some(Vec::new());
        Ok(())
    }

    /// The finished snapshot's bytes (after `step` returned true; not after `drain`, nor
    /// for a snapshot whose copies go by reference).
    pub fn finish(mut self) -> Result<Vec<u8>, String> {
        self.check_complete()?;
        if self.drained || self.copies.is_some() {
            return Err("snapshot: finish after drain or by reference (use finish_drained)".into());
        }
        let w = &mut self.w;
        let body_len = (w.0.len() - HEADER_LEN) as u64;
        w.0[12..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
        let crc = crc32fast::hash(&w.0);
        w.u32(crc);
        // The estimate counts full paths where names are stored; give the slack back (for a
        // large buffer this is an mremap, not a copy).
        w.0.shrink_to_fit();
        Ok(std::mem::take(&mut w.0))
    }

    fn check_complete(&self) -> Result<(), String> {
        if !self.stack.is_empty() || self.written != self.total {
            return Err(format!(
                "snapshot: wrote {} of {} nodes",
                self.written, self.total
            ));
        }
        Ok(())
    }

    /// Hands `out` the snapshot's bytes that `step` wrote since the last call, after the
    /// `HEAD_LEN`-byte head (which depends on the total length and comes from
    /// `finish_drained`), and forgets them: a snapshot streamed to a file this way holds one
    /// chunk in memory, not the whole serialised tree. Concatenated, the head and every
    /// `out` give exactly `finish`'s bytes. Not for a snapshot whose copies go by
    /// reference (`drain_pieces`).
    pub fn drain<E>(&mut self, out: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<(), E> {
        debug_assert!(
            self.copies.is_none(),
            "drain_pieces for copies by reference"
        );
        let mut out = Some(out);
        self.drain_pieces(|p| match p {
            Piece::Bytes(b) => out.take().map_or(Ok(()), |f| f(b)),
            Piece::Copy { .. } => Ok(()),
        })
    }

    /// `drain`, in pieces: bytes, and (once `by_reference`) the runs copied from the
    /// previous snapshot as `Piece::Copy`. Concatenated (each copy replaced by the previous
    /// snapshot's bytes it names), the head and the pieces give exactly `finish`'s bytes.
    pub fn drain_pieces<E>(
        &mut self,
        mut out: impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drained = true;
        let w = &self.w.0;
        self.body.hash_written(w);
        let mut from = HEADER_LEN;
        let copies = self.copies.as_mut().map(std::mem::take).unwrap_or_default();
        for c in &copies {
            if c.at > from {
                out(Piece::Bytes(&w[from..c.at]))?;
                from = c.at;
            }
            out(Piece::Copy {
                off: c.off,
                len: c.len,
            })?;
        }
        if w.len() > from {
            out(Piece::Bytes(&w[from..]))?;
        }
        self.w.0.truncate(HEADER_LEN);
        self.body.hashed = HEADER_LEN;
        if let Some(list) = self.copies.as_mut() {
            // The list's allocation is kept for the next chunk's copies.
            *list = copies;
            list.clear();
        }
        Ok(())
    }

    /// Ends a drained snapshot (after `step` returned true, and its last chunk drained when
    /// copies go by reference): the head, which goes before the first drained byte, and the
    /// tail, which follows the last one (the body bytes not drained yet and the checksum).
    pub fn finish_drained(mut self) -> Result<([u8; Self::HEAD_LEN], Vec<u8>), String> {
        self.check_complete()?;
        if self.copies.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err("snapshot: copies not drained before the end".into());
        }
        let mut tail = Vec::new();
        tail.extend_from_slice(&self.w.0[HEADER_LEN..]);
        self.body.hash_written(&self.w.0);
        let mut head = [0u8; Self::HEAD_LEN];
        head.copy_from_slice(&self.w.0[..HEADER_LEN]);
        head[12..].copy_from_slice(&self.body.len.to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.combine(&self.body.crc);
        tail.extend_from_slice(&crc.finalize().to_be_bytes());
        Ok((head, tail))
    }
}

/// A defect of the previous snapshot being merged, as `step` reports it.
fn prev_err(e: String) -> String {
    format!("the previous snapshot: {e}")
}

/// Nodes `SnapshotCut::step_until` visits before it asks whether to stop: each call makes
/// progress however often it is asked to stop.
const MIN_STEP: usize = 16;

/// The buffer a drained snapshot starts with (it grows to the largest chunk).
const DRAIN_CAPACITY: usize = 256 << 10;

impl DataTree {
    /// Rebuilds a tree from `snapshot_bytes` output. Bad magic, an unknown version, a length
    /// or checksum mismatch, and content that `snapshot_bytes` cannot have produced (unsorted
    /// or duplicate names, a dangling ACL index, an ephemeral without its session, ...) are
    /// `Error::Malformed` saying what was wrong.
    pub fn from_snapshot_bytes(data: &[u8], opts: TreeOptions) -> Result<DataTree, Error> {
        Self::from_snapshot_releasing(data, opts, &keep)
    }

    /// `from_snapshot_bytes`, telling `release` every `RELEASE_EVERY` bytes (in the checksum
    /// pass, then in the decoding pass, each from the start) an offset of `data` before
    /// which that pass reads nothing more: memory holding those bytes (a mapped file) can
    /// be given back while the tree grows.
    pub fn from_snapshot_releasing(
        data: &[u8],
        opts: TreeOptions,
        release: &dyn Fn(usize),
    ) -> Result<DataTree, Error> {
        let (version, body) = check_envelope(data, release)?;
        let mut r = Reader {
            buf: body,
            pos: 0,
            release,
            base: HEADER_LEN,
            mark: RELEASE_EVERY,
        };
        let last_zxid = r.i64()?;

        let n = r.count(4, "ACL lists")?;
        let mut lists: Vec<(Arc<[Acl]>, u32)> = Vec::with_capacity(n);
        for i in 0..n {
            let len = r.count(MIN_ACL_LEN, "ACL entries")?;
            let mut list = Vec::with_capacity(len);
            for _ in 0..len {
                let perms = r.i32()?;
                let scheme = r.str()?.to_owned();
                let id = r.str()?.to_owned();
                list.push(Acl {
                    perms,
                    id: Id { scheme, id },
                });
            }
            if lists.last().is_some_and(|(prev, _)| **prev >= *list) {
                return Err(malformed(format!(
                    "ACL list {i} is out of order or repeated"
                )));
            }
            lists.push((list.into(), 0));
        }

        let session_len = if version == VERSION_1 {
            SESSION_LEN - 1
        } else {
            SESSION_LEN
        };
        let n = r.count(session_len, "sessions")?;
        let mut sessions = BTreeMap::new();
        let mut prev = None;
        for _ in 0..n {
            let id = r.i64()?;
            let timeout_ms = r.i32()?;
            let flags = if version == VERSION_1 { 0 } else { r.u8()? };
            let known = match version {
                VERSION_1 | VERSION_2 => SESSION_ZK_PASSWORD,
                _ => SESSION_ZK_PASSWORD | SESSION_AUTH,
            };
            if flags & !known != 0 {
                return Err(malformed(format!(
                    "session {id:#x} has unknown flags {flags:#x}"
                )));
            }
            if prev.is_some_and(|p| p >= id) {
                return Err(malformed(format!(
                    "session {id:#x} is out of order or repeated"
                )));
            }
            prev = Some(id);
            let auth = if flags & SESSION_AUTH != 0 {
                let server = r.u64()?;
                let n = r.count(8, "session identities")?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    let scheme = r.str()?.to_owned();
                    let id = r.str()?.to_owned();
                    ids.push(Id { scheme, id });
                }
                Some(SessionAuth { server, ids })
            } else {
                None
            };
            sessions.insert(
                id,
                Session {
                    timeout_ms,
                    zk_password: flags & SESSION_ZK_PASSWORD != 0,
                    ephemerals: BTreeSet::new(),
                    auth,
                },
            );
        }

        let mut l = Loader {
            nodes: NodeTable::default(),
            lists,
            sessions,
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
        };
        l.nodes(&mut r)?;
        if r.pos != body.len() {
            return Err(malformed(format!(
                "{} bytes after the last node",
                body.len() - r.pos
            )));
        }
        if let Some(p) = SPECIAL_PATHS.iter().find(|p| !l.nodes.contains_key(p)) {
            return Err(malformed(format!("no {p} node")));
        }
        if let Some(i) = l.lists.iter().position(|(_, uses)| *uses == 0) {
            return Err(malformed(format!("ACL list {i} is used by no node")));
        }
        Ok(DataTree {
            opts,
            nodes: NodeMap::new(l.nodes),
            acls: AclTable::from_slots(l.lists),
            sessions: l.sessions,
            containers: l.containers,
            ttls: l.ttls,
            data_size: l.data_size,
            last_zxid,
            deleted: Vec::new(),
            zk_unresolved: Vec::new(),
        })
    }
}

fn malformed(detail: impl Into<String>) -> Error {
    Error::malformed("snapshot", detail)
}

/// Bytes read between two calls of `from_snapshot_releasing`'s `release`.
pub const RELEASE_EVERY: usize = 4 << 20;

/// A `release` that keeps everything.
fn keep(_: usize) {}

/// Checks magic, version, length and checksum (telling `release` how far the checksum got);
/// returns the version and the body.
fn check_envelope<'a>(data: &'a [u8], release: &dyn Fn(usize)) -> Result<(u32, &'a [u8]), Error> {
    if data.len() < HEADER_LEN + CRC_LEN {
        return Err(malformed(format!(
            "{} bytes is shorter than header and checksum",
            data.len()
        )));
    }
    if &data[..8] != MAGIC {
        return Err(malformed("bad magic (not a keeperd snapshot)"));
    }
    let mut h = Reader {
        buf: &data[8..HEADER_LEN],
        pos: 0,
        release: &keep,
        base: 8,
        mark: usize::MAX,
    };
    let version = h.u32()?;
    if !(VERSION_1..=VERSION).contains(&version) {
        return Err(malformed(format!(
            "unknown format version {version} (this build reads {VERSION_1} to {VERSION})"
        )));
    }
    let body_len = h.u64()?;
    let expected = usize::try_from(body_len)
        .ok()
        .and_then(|b| b.checked_add(HEADER_LEN + CRC_LEN));
    if expected != Some(data.len()) {
        return Err(malformed(format!(
            "{} bytes but the header says {body_len} bytes of body: truncated or extended",
            data.len()
        )));
    }
    let (covered, crc) = data.split_at(data.len() - CRC_LEN);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let mut hasher = crc32fast::Hasher::new();
    for (i, chunk) in covered.chunks(RELEASE_EVERY).enumerate() {
        hasher.update(chunk);
        release(i * RELEASE_EVERY + chunk.len());
    }
    let actual = hasher.finalize();
    if stored != actual {
        return Err(malformed(format!(
            "checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    Ok((version, &covered[HEADER_LEN..]))
}

/// A node whose children are still being read.
struct Frame {
    /// Length of its full path, which is the loader's path buffer up to here ("" for the
    /// root, so a child's path is always `path + "/" + name`).
    path_len: usize,
    node: Node,
    /// Children still to read.
    left: u32,
    /// Names of the children read so far, in increasing order.
    names: Vec<Name>,
}

/// The parts of a `DataTree` the node section fills in.
struct Loader {
    nodes: NodeTable,
    /// ACL lists with the number of nodes using each.
    lists: Vec<(Arc<[Acl]>, u32)>,
    sessions: BTreeMap<i64, Session>,
    containers: BTreeSet<Box<str>>,
    ttls: BTreeSet<Box<str>>,
    data_size: u64,
}

impl Loader {
    fn nodes(&mut self, r: &mut Reader<'_>) -> Result<(), Error> {
        let declared = r.u64()?;
        let total = usize::try_from(declared)
            .ok()
            .filter(|&n| n >= 1 && n <= r.remaining() / MIN_NODE_LEN)
            .ok_or_else(|| {
                malformed(format!(
                    "node count {declared} does not fit the {} bytes left",
                    r.remaining()
                ))
            })?;
        let mut fill = NodeTable::filler(total);

        let (name, root, k) = self.node(r)?;
        // The full path of the node read last; each frame's path is a prefix of it.
        let mut path = String::new();
        if !name.is_empty() {
            return Err(malformed("the first node is not the root"));
        }
        if !matches!(root.kind, NodeKind::Persistent) {
            return Err(malformed("the root is not a persistent node"));
        }
        self.data_size += 1 + root.data_len() as u64;
        let mut read = 1usize;
        let mut stack = Vec::new();
        if k == 0 {
            fill.push("/", root);
        } else {
            stack.push(Frame {
                path_len: 0,
                node: root,
                left: k,
                names: Vec::with_capacity(k as usize),
            });
        }

        while let Some(top) = stack.last_mut() {
            if top.left == 0 {
                let Some(mut done) = stack.pop() else { break };
                done.node.children = Some(Box::new(super::Children::from_names(done.names)));
                path.truncate(done.path_len);
                let name = Name::new(&path[path.rfind('/').map_or(0, |i| i + 1)..]);
                fill.push(if path.is_empty() { "/" } else { &path }, done.node);
                if let Some(parent) = stack.last_mut() {
                    parent.names.push(name);
                }
                continue;
            }
            top.left -= 1;
            read += 1;
            if read > total {
                return Err(malformed(format!("more than the {total} nodes declared")));
            }
            let (name, node, k) = self.node(r)?;
            path.truncate(top.path_len);
            if name.is_empty() || name.contains('/') {
                return Err(malformed(format!(
                    "bad name {name:?} under {:?}",
                    display(&path)
                )));
            }
            if top.names.last().is_some_and(|prev| **prev >= *name) {
                return Err(malformed(format!(
                    "child {name:?} of {:?} is out of order or repeated",
                    display(&path)
                )));
            }
            path.push('/');
            path.push_str(name);
            self.data_size += java_len(&path) + node.data_len() as u64;
            match node.kind {
                NodeKind::Persistent => {}
                NodeKind::Ephemeral(owner) => {
                    if k > 0 {
                        return Err(malformed(format!("ephemeral {path:?} has children")));
                    }
                    let Some(s) = self.sessions.get_mut(&owner) else {
                        return Err(malformed(format!(
                            "ephemeral {path:?} of session {owner:#x}, which is not in the table"
                        )));
                    };
                    s.ephemerals.insert(path.as_str().into());
                }
                NodeKind::Container => {
                    self.containers.insert(path.as_str().into());
                }
                NodeKind::Ttl(_) => {
                    self.ttls.insert(path.as_str().into());
                }
            }
            if k == 0 {
                top.names.push(Name::new(name));
                fill.push(&path, node);
            } else {
                let names = Vec::with_capacity(k as usize);
                stack.push(Frame {
                    path_len: path.len(),
                    node,
                    left: k,
                    names,
                });
            }
        }
        if read != total {
            return Err(malformed(format!(
                "{read} nodes under the root, {total} declared"
            )));
        }
        self.nodes = fill.finish();
        Ok(())
    }

    /// Reads one node's own fields: its name, the node (no children yet) and the number of
    /// children that follow.
    fn node<'a>(&mut self, r: &mut Reader<'a>) -> Result<(&'a str, Node, u32), Error> {
        let name = r.str()?;
        let flags = r.u8()?;
        let kind = match flags & KIND_MASK {
            KIND_PERSISTENT => NodeKind::Persistent,
            KIND_EPHEMERAL => NodeKind::Ephemeral(r.i64()?),
            KIND_CONTAINER => NodeKind::Container,
            _ => {
                let ttl = r.i64()?;
                if ttl <= 0 || ttl > MAX_TTL_MS {
                    return Err(malformed(format!("node {name:?} has TTL {ttl}")));
                }
                NodeKind::Ttl(ttl)
            }
        };
        let czxid = r.i64()?;
        let mzxid = if flags & MZXID_IS_CZXID != 0 {
            czxid
        } else {
            r.i64()?
        };
        let pzxid = if flags & PZXID_IS_CZXID != 0 {
            czxid
        } else {
            r.i64()?
        };
        let ctime = r.i64()?;
        let mtime = if flags & MTIME_IS_CTIME != 0 {
            ctime
        } else {
            r.i64()?
        };
        let (version, cversion, aversion) = if flags & ZERO_VERSIONS != 0 {
            (0, 0, 0)
        } else {
            (r.i32()?, r.i32()?, r.i32()?)
        };
        let acl = r.u32()?;
        match self.lists.get_mut(acl as usize) {
            Some(list) => list.1 += 1,
            None => {
                return Err(malformed(format!(
                    "node {name:?} refers to ACL list {acl} of {}",
                    self.lists.len()
                )))
            }
        }
        let data = if flags & NULL_DATA != 0 {
            None
        } else {
            let len = r.u32()? as usize;
            Some(Box::from(r.take(len)?))
        };
        let children = if flags & HAS_CHILDREN != 0 {
            let k = r.u32()?;
            if k == 0 || k as usize > r.remaining() / MIN_NODE_LEN {
                return Err(malformed(format!("node {name:?} has {k} children")));
            }
            k
        } else {
            0
        };
        let node = Node {
            data,
            acl,
            stat: PStat {
                czxid,
                mzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                pzxid,
            },
            kind,
            children: None,
        };
        Ok((name, node, children))
    }
}

/// A loader path for messages ("" is the root).
fn display(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Appends big-endian fields.
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        // Node data and names are bounded by jute.maxbuffer, far below 4 GiB.
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Node `n` named `name` with `children` children.
    fn node(&mut self, name: &str, n: &Node, children: usize, acl_index: &[u32]) {
        let s = &n.stat;
        let (mut flags, extra) = match n.kind {
            NodeKind::Persistent => (KIND_PERSISTENT, None),
            NodeKind::Ephemeral(owner) => (KIND_EPHEMERAL, Some(owner)),
            NodeKind::Container => (KIND_CONTAINER, None),
            NodeKind::Ttl(ttl) => (KIND_TTL, Some(ttl)),
        };
        let zero_versions = s.version == 0 && s.cversion == 0 && s.aversion == 0;
        for (cond, bit) in [
            (n.data.is_none(), NULL_DATA),
            (s.mzxid == s.czxid, MZXID_IS_CZXID),
            (s.pzxid == s.czxid, PZXID_IS_CZXID),
            (s.mtime == s.ctime, MTIME_IS_CTIME),
            (zero_versions, ZERO_VERSIONS),
            (children > 0, HAS_CHILDREN),
        ] {
            if cond {
                flags |= bit;
            }
        }
        self.str(name);
        self.u8(flags);
        if let Some(v) = extra {
            self.i64(v);
        }
        self.i64(s.czxid);
        if s.mzxid != s.czxid {
            self.i64(s.mzxid);
        }
        if s.pzxid != s.czxid {
            self.i64(s.pzxid);
        }
        self.i64(s.ctime);
        if s.mtime != s.ctime {
            self.i64(s.mtime);
        }
        if !zero_versions {
            self.i32(s.version);
            self.i32(s.cversion);
            self.i32(s.aversion);
        }
        self.u32(acl_index[n.acl as usize]);
        if let Some(d) = &n.data {
            self.bytes(d);
        }
        if children > 0 {
            self.u32(children as u32);
        }
    }
}

/// The names of two ordered sets' ranges, in order, each once.
struct Union<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'a, A, B> Union<A, B>
where
    A: Iterator<Item = &'a Name>,
    B: Iterator<Item = &'a Name>,
{
    fn new(a: A, b: B) -> Union<A, B> {
        Union {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A, B> Iterator for Union<A, B>
where
    A: Iterator<Item = &'a Name>,
    B: Iterator<Item = &'a Name>,
{
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let order = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(_), None) => Less,
            (None, Some(_)) => Greater,
            (Some(x), Some(y)) => x.cmp(y),
        };
        let next = match order {
            Less => self.a.next(),
            Greater => self.b.next(),
            Equal => {
                self.b.next();
                self.a.next()
            }
        };
        next.map(|n| &**n)
    }
}

/// A bounds-checked big-endian cursor over the body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Told, once `pos` reaches `mark`, that the snapshot's bytes before `base + pos` are
    /// read (`from_snapshot_releasing`); `mark` then moves `RELEASE_EVERY` further.
    release: &'a dyn Fn(usize),
    base: usize,
    mark: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.pos >= self.mark {
            (self.release)(self.base + self.pos);
            self.mark = self.pos + RELEASE_EVERY;
        }
        if n > self.remaining() {
            return Err(malformed(format!(
                "{n} bytes wanted at body offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, Error> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A count of items of at least `min_len` bytes each that the rest of the body can hold.
    fn count(&mut self, min_len: usize, what: &str) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n > self.remaining() / min_len {
            return Err(malformed(format!(
                "{n} {what} cannot fit the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<&'a str, Error> {
        let len = self.u32()? as usize;
        let at = self.pos;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| malformed(format!("invalid UTF-8 at body offset {at}")))
    }
}

#[path = "snapshot_prev.rs"]
mod prev;

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
