//! The node table: every znode by full path, one heap block per node holding both.
//!
//! A `HashMap<Box<str>, Box<Node>>` costs a 24-byte slot (a fat key pointer and the node's
//! pointer) times the ~2 slots per node a hash table keeps at 1,000,000 nodes, plus a heap
//! block for each key. Here a slot is one thin pointer (8 bytes) to an `Entry`: the node, the
//! path's length and the path's bytes in one allocation (docs/performance.md, "One block per
//! znode"). Lookups hash the `&str` asked for and compare it with each candidate's path.
//!
//! The table grows without a pause. A full hash table is usually replaced by one twice the
//! size in one go, every entry rehashed and moved: 0.2-0.5 s at 1-2 million nodes, under the
//! tree's write lock. Here the paths are split by hash into `SHARDS` tables, and a full one
//! is kept aside as `draining` next to a new one twice its size; every change (`insert`,
//! `remove`, `get_mut`) of a shard first moves the entries of the draining table's next
//! `STEP` buckets to the new one, and lookups try the new table, then the draining one.
//! Every path is in exactly one of them. A table of B buckets is empty after B / `STEP`
//! changes of its shard, long before the new one (2B buckets) fills. The shards keep the
//! new table's allocation small too (docs/performance.md, "Growing the node table").

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::hash::BuildHasher;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ptr::{self, NonNull};

use hashbrown::HashTable;

use super::Node;

/// Offset of the path's length (a `u32`) in an entry's block; the node is at 0.
const LEN_AT: usize = size_of::<Node>();
/// Offset of the path's bytes.
const PATH_AT: usize = LEN_AT + size_of::<u32>();

// The length is stored right after the node: aligned because a type's size is a multiple of
// its alignment, and `Node`'s is at least a `u32`'s.
const _: () = assert!(align_of::<Node>() >= align_of::<u32>());

/// A znode and its full path in one heap block: `Node`, then the path's length as a `u32`,
/// then its UTF-8 bytes. Owns the block (like a `Box`).
struct Entry(NonNull<u8>);

// SAFETY: an `Entry` owns its `Node` and bytes exclusively, like `Box<(Node, str)>` would;
// it is Send / Sync exactly when `Node` is (checked below).
unsafe impl Send for Entry {}
unsafe impl Sync for Entry {}
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Node>();
};

fn layout(path_len: usize) -> Layout {
    Layout::from_size_align(PATH_AT + path_len, align_of::<Node>()).expect("a path's layout")
}

/// Counts entries made and freed, for the tests' checks that each is freed exactly once.
#[cfg(test)]
fn count_live(delta: isize) {
    tests::LIVE.with(|n| n.set(n.get() + delta));
}

#[cfg(not(test))]
fn count_live(_: isize) {}

impl Entry {
    fn new(path: &str, node: Node) -> Entry {
        count_live(1);
        let len = u32::try_from(path.len()).expect("a path shorter than 4 GiB");
        let layout = layout(path.len());
        // SAFETY: `layout` has a non-zero size (it holds a `Node`); the writes are within it,
        // at offsets aligned for their types (see `LEN_AT`).
        unsafe {
            let Some(p) = NonNull::new(alloc(layout)) else {
                handle_alloc_error(layout)
            };
            p.as_ptr().cast::<Node>().write(node);
            p.as_ptr().add(LEN_AT).cast::<u32>().write(len);
            ptr::copy_nonoverlapping(path.as_ptr(), p.as_ptr().add(PATH_AT), path.len());
            Entry(p)
        }
    }

    fn path_len(&self) -> usize {
        // SAFETY: written by `new`, never changed.
        unsafe { self.0.as_ptr().add(LEN_AT).cast::<u32>().read() as usize }
    }

    fn path(&self) -> &str {
        // SAFETY: `new` copied a whole `&str` of this length there.
        unsafe {
            let bytes = std::slice::from_raw_parts(self.0.as_ptr().add(PATH_AT), self.path_len());
            std::str::from_utf8_unchecked(bytes)
        }
    }

    fn node(&self) -> &Node {
        // SAFETY: a valid `Node` lives at offset 0 for the entry's lifetime.
        unsafe { &*self.0.as_ptr().cast::<Node>() }
    }

    fn node_mut(&mut self) -> &mut Node {
        // SAFETY: as in `node`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.0.as_ptr().cast::<Node>() }
    }

    /// The node, freeing the block.
    fn into_node(self) -> Node {
        count_live(-1);
        let e = ManuallyDrop::new(self);
        // SAFETY: the node is moved out once and the block freed with the layout it was
        // allocated with; `e` is not dropped, so neither happens again.
        unsafe {
            let node = e.0.as_ptr().cast::<Node>().read();
            dealloc(e.0.as_ptr(), layout(e.path_len()));
            node
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        count_live(-1);
        // SAFETY: as in `into_node`, for an entry whose node was not moved out.
        unsafe {
            let len = self.path_len();
            ptr::drop_in_place(self.0.as_ptr().cast::<Node>());
            dealloc(self.0.as_ptr(), layout(len));
        }
    }
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry::new(self.path(), self.node().clone())
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Entry")
            .field(&self.path())
            .field(self.node())
            .finish()
    }
}

/// Tables a `NodeTable` is split into, by bits 32-35 of a path's hash (hashbrown places an
/// entry by the hash's low bits and tags it with the top 7). Each grows on its own, so a
/// growth allocates a sixteenth of the slots: initialising a table's control bytes (one per
/// bucket, page faults included) takes ~6 ms for 8 million buckets on its own.
const SHARDS: usize = 16;

/// Buckets of a draining table emptied into the new one per change: at most this many
/// entries rehashed and moved (tens of microseconds), and the new table, twice the size,
/// takes at most one new entry per `STEP` old buckets while the old one drains.
const STEP: usize = 128;

/// `STEP`, or a test's own (smaller, for drains over more operations).
#[cfg(not(test))]
fn step_len() -> usize {
    STEP
}

#[cfg(test)]
fn step_len() -> usize {
    tests::STEP_LEN.with(std::cell::Cell::get)
}

fn shard_of(hash: u64) -> usize {
    (hash >> 32) as usize % SHARDS
}

/// Nodes by full path (see the module docs): the `HashMap<path, Node>` operations the tree
/// uses.
#[derive(Clone, Debug, Default)]
pub(super) struct NodeTable {
    shards: Box<[Shard; SHARDS]>,
    hasher: std::collections::hash_map::RandomState,
}

/// The paths whose hash picks this shard. Every path is in exactly one of its two tables.
#[derive(Clone, Debug, Default)]
struct Shard {
    /// Where new paths go.
    table: HashTable<Entry>,
    /// The table `table` replaced when it filled up, while its entries move over.
    draining: Option<Draining>,
}

/// A full table being emptied into its successor, in the order of its buckets.
#[derive(Clone, Debug)]
struct Draining {
    /// Never inserted into. (`Clone` keeps each entry in its bucket, so a copy drains the
    /// same way.)
    table: HashTable<Entry>,
    /// The next bucket to empty: the ones before it are empty.
    next: usize,
}

/// A path's entry, for hashbrown's lookups.
fn is(path: &str) -> impl Fn(&Entry) -> bool + '_ {
    move |e| e.path() == path
}

/// A stored entry's hash, for hashbrown's (and `Shard::step`'s) rehashing.
fn rehash(hasher: &impl BuildHasher) -> impl Fn(&Entry) -> u64 + '_ {
    move |e| hasher.hash_one(e.path())
}

impl Shard {
    fn len(&self) -> usize {
        self.table.len() + self.draining.as_ref().map_or(0, |d| d.table.len())
    }

    fn find(&self, hash: u64, path: &str) -> Option<&Entry> {
        self.table
            .find(hash, is(path))
            .or_else(|| self.draining.as_ref()?.table.find(hash, is(path)))
    }

    fn find_mut(&mut self, hash: u64, path: &str) -> Option<&mut Entry> {
        match self.table.find_mut(hash, is(path)) {
            Some(e) => Some(e),
            None => self.draining.as_mut()?.table.find_mut(hash, is(path)),
        }
    }

    /// Adds an entry whose path is in neither table.
    fn insert_new(&mut self, hasher: &impl BuildHasher, hash: u64, entry: Entry) {
        // `capacity` is what fits before hashbrown would grow the table itself (removed
        // entries' markers count against it). While a table drains the new one has room: it
        // was made for twice the old one's entries and takes at most one insert per `STEP`
        // buckets moved. Were it full all the same, hashbrown would grow it: a pause, not an
        // error.
        if self.draining.is_none() && self.table.len() == self.table.capacity() {
            self.grow();
            self.step(hasher);
        }
        self.table.insert_unique(hash, entry, rehash(hasher));
    }

    /// (A draining table this empties is dropped by the next `step`.)
    fn remove(&mut self, hash: u64, path: &str) -> Option<Entry> {
        let found = match self.table.find_entry(hash, is(path)) {
            Ok(found) => found,
            Err(_) => self
                .draining
                .as_mut()?
                .table
                .find_entry(hash, is(path))
                .ok()?,
        };
        Some(found.remove().0)
    }

    /// Puts a new table in place of the full one, which starts draining.
    fn grow(&mut self) {
        let len = self.table.len();
        // Twice the entries (buckets doubled when the table is full: it holds 7/8 of them),
        // and at least room for the entries plus one insert per `STEP` buckets to drain.
        let capacity = (2 * len).max(len + self.table.num_buckets() / step_len() + 1);
        let old = std::mem::replace(&mut self.table, HashTable::with_capacity(capacity));
        if !old.is_empty() {
            self.draining = Some(Draining {
                table: old,
                next: 0,
            });
        }
    }

    /// Moves the entries of the draining table's next `STEP` buckets to `table`, and drops
    /// the draining table once it is empty.
    fn step(&mut self, hasher: &impl BuildHasher) {
        let Some(d) = &mut self.draining else {
            return;
        };
        let buckets = d.table.num_buckets();
        let end = (d.next + step_len()).min(buckets);
        for i in d.next..end {
            if let Ok(full) = d.table.get_bucket_entry(i) {
                let (entry, _) = full.remove();
                self.table
                    .insert_unique(hasher.hash_one(entry.path()), entry, rehash(hasher));
            }
        }
        // At the end with entries left could only be a table whose entries changed buckets;
        // start over rather than leave them.
        d.next = if end == buckets { 0 } else { end };
        if d.table.is_empty() {
            self.draining = None;
        }
    }
}

impl NodeTable {
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(Shard::len).sum()
    }

    pub(super) fn get(&self, path: &str) -> Option<&Node> {
        let hash = self.hash(path);
        self.shards[shard_of(hash)]
            .find(hash, path)
            .map(Entry::node)
    }

    pub(super) fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub(super) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let hash = self.hash(path);
        let shard = &mut self.shards[shard_of(hash)];
        shard.step(&self.hasher);
        shard.find_mut(hash, path).map(Entry::node_mut)
    }

    /// Sets `path`'s node, returning the one it replaces.
    pub(super) fn insert(&mut self, path: &str, node: Node) -> Option<Node> {
        let hash = self.hash(path);
        let shard = &mut self.shards[shard_of(hash)];
        shard.step(&self.hasher);
        if let Some(old) = shard.find_mut(hash, path) {
            return Some(std::mem::replace(old.node_mut(), node));
        }
        shard.insert_new(&self.hasher, hash, Entry::new(path, node));
        None
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        let hash = self.hash(path);
        let shard = &mut self.shards[shard_of(hash)];
        shard.step(&self.hasher);
        shard.remove(hash, path).map(Entry::into_node)
    }

    /// Every node with its path, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.shards
            .iter()
            .flat_map(|s| {
                let draining = s.draining.iter().flat_map(|d| d.table.iter());
                s.table.iter().chain(draining)
            })
            .map(|e| (e.path(), e.node()))
    }

    /// A table to be filled with `total` paths known to be distinct (a snapshot's: see
    /// `Filler`).
    pub(super) fn filler(total: usize) -> Filler {
        let mut table = NodeTable::default();
        // A shard's share of the paths varies by about its square root: room for four
        // times that more, so that none grows while filled. (Were one to, hashbrown would
        // grow it in one go: slower, not wrong.)
        let share = total / SHARDS;
        let room = share + 4 * share.isqrt() + 16;
        for s in table.shards.iter_mut() {
            s.table = HashTable::with_capacity(room);
        }
        Filler {
            table,
            pending: Vec::with_capacity(total.min(FILL_BATCH)),
        }
    }
}

/// Entries a `Filler` sorts and inserts at a time: 1 MiB of (hash, pointer).
const FILL_BATCH: usize = 1 << 16;

/// Fills a presized table with distinct paths, `FILL_BATCH` at a time in the order of the
/// slots they land in. Inserted in the order they come (a snapshot's, unrelated to their
/// hashes), each insert reads a random group of the table's control bytes and writes a
/// random slot, two cache misses (most of the time of a node's insert at 1,000,000 nodes);
/// a sorted batch walks the tables from one end to the other.
pub(super) struct Filler {
    table: NodeTable,
    pending: Vec<(u64, Entry)>,
}

impl Filler {
    /// Adds a path that was not added before.
    pub(super) fn push(&mut self, path: &str, node: Node) {
        self.pending
            .push((self.table.hash(path), Entry::new(path, node)));
        if self.pending.len() == FILL_BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        // A fresh, presized table: nothing drains.
        let NodeTable { shards, hasher } = &mut self.table;
        // hashbrown puts a hash's entry in the first free slot from `hash & (buckets - 1)`
        // on. Were that to change, only the order of inserts (and so the speed) would be
        // off, not the table.
        let slot = |hash: u64| {
            let shard = shard_of(hash);
            (shard, hash & (shards[shard].table.num_buckets() as u64 - 1))
        };
        self.pending.sort_unstable_by_key(|(hash, _)| slot(*hash));
        for (hash, entry) in self.pending.drain(..) {
            shards[shard_of(hash)]
                .table
                .insert_unique(hash, entry, rehash(&*hasher));
        }
    }

    /// The table with every path pushed.
    pub(super) fn finish(mut self) -> NodeTable {
        self.flush();
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NodeKind, PStat};
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;

    thread_local! {
        /// Entries this thread made and has not freed (`count_live`).
        pub(super) static LIVE: Cell<isize> = const { Cell::new(0) };
        /// `step_len` on this thread.
        pub(super) static STEP_LEN: Cell<usize> = const { Cell::new(STEP) };
    }

    fn live() -> isize {
        LIVE.with(Cell::get)
    }

    /// splitmix64: the same operations on every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) % n
        }
    }

    /// What the model test saw happen, so that it fails if it stops covering them.
    #[derive(Default, Debug)]
    struct Seen {
        growths: usize,
        found_draining: usize,
        changed_draining: usize,
        replaced_draining: usize,
        removed_draining: usize,
    }

    fn draining_count(t: &NodeTable) -> usize {
        t.shards.iter().filter(|s| s.draining.is_some()).count()
    }

    /// Whether `path` is in its shard's draining table.
    fn in_draining(t: &NodeTable, path: &str) -> bool {
        let hash = t.hash(path);
        let d = t.shards[shard_of(hash)].draining.as_ref();
        d.is_some_and(|d| d.table.find(hash, is(path)).is_some())
    }

    /// A path from a random bucket of a random draining table, if one drains.
    fn pick_draining(t: &NodeTable, rng: &mut Rng) -> Option<String> {
        let draining: Vec<&Draining> = t
            .shards
            .iter()
            .filter_map(|s| s.draining.as_ref())
            .collect();
        let d = draining.get(rng.below(draining.len().max(1) as u64) as usize)?;
        let n = d.table.num_buckets();
        let from = rng.below(n as u64) as usize;
        (from..n)
            .chain(0..from)
            .find_map(|b| d.table.get_bucket(b))
            .map(|e| e.path().to_owned())
    }

    /// One random operation on `t` and on the model `m`, the results compared; half the
    /// time, while a table drains, on a path in it.
    fn random_op(
        t: &mut NodeTable,
        m: &mut HashMap<String, i64>,
        rng: &mut Rng,
        space: u64,
        version: i64,
        seen: &mut Seen,
    ) {
        let k = rng.below(space);
        let p = if let Some(p) = pick_draining(t, rng).filter(|_| rng.below(2) == 0) {
            p
        } else if k.is_multiple_of(5) {
            format!("/é/{}/{k}", "x".repeat((k % 40) as usize))
        } else {
            format!("/n/{}/{k}", k % 13)
        };
        let draining = in_draining(t, &p);
        let before = draining_count(t);
        match rng.below(20) {
            0..=9 => {
                let old = t.insert(&p, node(version, p.as_bytes()));
                if let Some(old) = &old {
                    assert_eq!(old.data.as_deref(), Some(p.as_bytes()));
                    seen.replaced_draining += usize::from(draining);
                }
                let old = old.map(|n| n.stat.czxid);
                assert_eq!(old, m.insert(p.clone(), version), "insert {p}");
            }
            10..=14 => {
                let gone = t.remove(&p).map(|n| n.stat.czxid);
                assert_eq!(gone, m.remove(&p), "remove {p}");
                assert!(t.get(&p).is_none());
                seen.removed_draining += usize::from(draining && gone.is_some());
            }
            15..=16 => {
                let got = t.get_mut(&p).map(|n| {
                    n.stat.czxid = version;
                    n.stat.czxid
                });
                let want = m.get_mut(&p).map(|v| {
                    *v = version;
                    *v
                });
                assert_eq!(got, want, "get_mut {p}");
                seen.changed_draining += usize::from(draining && got.is_some());
            }
            _ => {
                let got = t.get(&p).map(|n| n.stat.czxid);
                assert_eq!(got, m.get(&p).copied(), "get {p}");
                assert_eq!(t.contains_key(&p), got.is_some());
                seen.found_draining += usize::from(draining);
            }
        }
        seen.growths += draining_count(t).saturating_sub(before);
    }

    /// `t` holds exactly what `m` does, and (listed twice) nothing twice.
    fn check(t: &NodeTable, m: &HashMap<String, i64>) {
        assert_eq!(t.len(), m.len());
        let mut listed: Vec<(&str, i64)> = t.iter().map(|(p, n)| (p, n.stat.czxid)).collect();
        listed.sort_unstable();
        let mut want: Vec<(&str, i64)> = m.iter().map(|(p, v)| (p.as_str(), *v)).collect();
        want.sort_unstable();
        assert_eq!(listed, want);
        for (p, v) in m {
            assert_eq!(t.get(p).map(|n| n.stat.czxid), Some(*v), "{p}");
        }
    }

    /// The table against a `HashMap` through random inserts (new paths and replacements),
    /// removes, changes and lookups while the paths in use grow from 64 to ~100,000: each
    /// shard's table is replaced several times and drains over many operations. Clones
    /// taken while tables drain go on independently. Every entry made is freed exactly
    /// once (counted by `count_live`).
    #[test]
    fn behaves_as_a_map_while_growing_and_draining() {
        // Drains over 32 times as many changes as with `STEP`: the random paths meet
        // draining tables far more often.
        let seen = STEP_LEN.with(|n| n.replace(4));
        let seen = (model(300_000), STEP_LEN.with(|n| n.set(seen))).0;
        assert!(seen.growths > 5 * SHARDS, "{seen:?}");
        for n in [
            seen.found_draining,
            seen.changed_draining,
            seen.replaced_draining,
            seen.removed_draining,
        ] {
            assert!(n > 1000, "{seen:?}");
        }
        // With `STEP`, tables of up to `STEP` buckets drain at once: the larger ones count.
        let seen = model(300_000);
        assert!(seen.growths > 3 * SHARDS, "{seen:?}");
    }

    fn model(rounds: i64) -> Seen {
        let base = live();
        let mut rng = Rng(0x5eed);
        let mut seen = Seen::default();
        let mut t = NodeTable::default();
        let mut m = HashMap::new();
        let mut clones = Vec::new();
        for round in 0..rounds {
            let space = 64 + round as u64 / 2;
            random_op(&mut t, &mut m, &mut rng, space, round, &mut seen);
            // Clones while a table drains, at the first chance after 1/16, 1/8 and 1/4 of
            // the rounds (the paths in use double in between, and the tables grow).
            let clone = clones.len() < 3
                && draining_count(&t) > 0
                && round >= (rounds / 16) << clones.len();
            if clone {
                clones.push((t.clone(), m.clone(), space));
            }
            if round % 30_000 == 0 || clone {
                check(&t, &m);
                let in_clones: usize = clones.iter().map(|(c, _, _)| c.len()).sum();
                assert_eq!(live() - base, (t.len() + in_clones) as isize);
            }
        }
        check(&t, &m);
        assert_eq!(clones.len(), 3, "clones of draining tables; {seen:?}");
        for (mut c, mut cm, space) in clones {
            check(&c, &cm);
            for round in 0..20_000 {
                random_op(&mut c, &mut cm, &mut rng, space, -round, &mut seen);
            }
            check(&c, &cm);
        }
        check(&t, &m);
        drop(t);
        assert_eq!(live(), base, "entries left or freed twice");
        seen
    }

    /// Removing what is left in a draining table, from its far end (which the moves reach
    /// last), then a table that drained into empty, and one that goes on.
    #[test]
    fn a_draining_table_emptied_by_removes() {
        let base = live();
        let mut t = NodeTable::default();
        let mut m = HashMap::new();
        let mut i = 0;
        while draining_count(&t) == 0 || t.len() < 10_000 {
            let p = format!("/r/{i}");
            t.insert(&p, node(i, b""));
            m.insert(p, i);
            i += 1;
        }
        let s = t.shards.iter().position(|s| s.draining.is_some()).unwrap();
        while let Some(d) = &t.shards[s].draining {
            let far = (0..d.table.num_buckets())
                .rev()
                .find_map(|b| d.table.get_bucket(b))
                .map(|e| e.path().to_owned());
            let Some(far) = far else {
                // Emptied by a remove: the next change on the shard drops it.
                t.get_mut(&far_path_in(&t, s));
                continue;
            };
            assert_eq!(t.remove(&far).map(|n| n.stat.czxid), m.remove(&far));
        }
        check(&t, &m);
        for p in m.keys() {
            t.remove(p);
        }
        assert_eq!(t.len(), 0);
        assert!(t.iter().next().is_none());
        assert_eq!(
            live(),
            base + t.shards.iter().map(Shard::len).sum::<usize>() as isize
        );
        assert!(t.insert("/again", node(1, b"")).is_none());
        assert_eq!(t.get("/again").map(|n| n.stat.czxid), Some(1));
        drop(t);
        assert_eq!(live(), base);
    }

    /// Some path (not necessarily present) that hashes to shard `s`.
    fn far_path_in(t: &NodeTable, s: usize) -> String {
        (0..)
            .map(|i| format!("/absent/{i}"))
            .find(|p| shard_of(t.hash(p)) == s)
            .unwrap()
    }

    fn node(czxid: i64, data: &[u8]) -> Node {
        Node {
            data: Some(data.into()),
            acl: 0,
            stat: PStat {
                czxid,
                ..PStat::default()
            },
            kind: NodeKind::Persistent,
            children: None,
        }
    }

    /// The table behaves as a `HashMap<String, Node>` through inserts, replacements,
    /// changes, removals and a clone, with paths of many lengths (multi-byte characters
    /// included) and the empty one.
    #[test]
    fn behaves_as_a_map_of_paths() {
        use std::collections::HashMap;
        let mut t = NodeTable::default();
        let mut m: HashMap<String, i64> = HashMap::new();
        let paths: Vec<String> = (0..3000)
            .map(|i| {
                let len = i % 70;
                format!("/{}{}", "é".repeat(len / 2), i)
            })
            .chain([String::new()])
            .collect();
        for (i, p) in paths.iter().enumerate() {
            assert!(t.insert(p, node(i as i64, p.as_bytes())).is_none());
            m.insert(p.clone(), i as i64);
        }
        // Replace every third, change every fifth, remove every seventh.
        for (i, p) in paths.iter().enumerate() {
            if i % 3 == 0 {
                let old = t.insert(p, node(-(i as i64), b"x")).expect("present");
                assert_eq!(old.stat.czxid, i as i64);
                assert_eq!(old.data.as_deref(), Some(p.as_bytes()));
                m.insert(p.clone(), -(i as i64));
            }
            if i % 5 == 0 {
                t.get_mut(p).expect("present").stat.czxid += 1_000_000;
                *m.get_mut(p).unwrap() += 1_000_000;
            }
            if i % 7 == 0 {
                let gone = t.remove(p).expect("present");
                assert_eq!(gone.stat.czxid, m.remove(p).unwrap());
                assert!(t.remove(p).is_none());
                assert!(t.get_mut(p).is_none());
            }
        }
        let copy = t.clone();
        t.insert("/only/in/the/original", node(7, b""));
        assert!(!copy.contains_key("/only/in/the/original"));
        assert_eq!(copy.len(), m.len());
        for (p, czxid) in &m {
            for table in [&t, &copy] {
                let n = table.get(p).unwrap_or_else(|| panic!("{p:?} missing"));
                assert_eq!(n.stat.czxid, *czxid, "{p:?}");
            }
        }
        let mut listed: Vec<(String, i64)> = copy
            .iter()
            .map(|(p, n)| (p.to_owned(), n.stat.czxid))
            .collect();
        listed.sort();
        let mut want: Vec<(String, i64)> = m.into_iter().collect();
        want.sort();
        assert_eq!(listed, want);
        assert!(t.get("/nope").is_none() && !t.contains_key("/0/"));
    }

    /// A filled table holds what was pushed, across batches, and takes inserts after.
    #[test]
    fn a_filled_table_holds_what_was_pushed() {
        let total = FILL_BATCH * 2 + 1234;
        let paths: Vec<String> = (0..total).map(|i| format!("/p{}/{i}", i % 977)).collect();
        let mut fill = NodeTable::filler(total);
        for (i, p) in paths.iter().enumerate() {
            fill.push(p, node(i as i64, b"v"));
        }
        let mut t = fill.finish();
        assert_eq!(t.len(), total);
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(t.get(p).map(|n| n.stat.czxid), Some(i as i64), "{p}");
        }
        assert!(t.insert("/p0/0", node(-1, b"")).is_some());
        assert!(t.insert("/new", node(-2, b"")).is_none());
        assert_eq!(t.len(), total + 1);
        // Dropped half way: the entries pushed so far are freed with the filler.
        let mut fill = NodeTable::filler(10);
        fill.push("/a", node(1, b"x"));
        drop(fill);
    }

    /// The longest single insert while a table grows to `KEEPERD_TABLE_NODES` (default
    /// 3,000,000) paths, and the mean insert and lookup. A measurement, not a check: run by
    /// hand (docs/performance.md, "Growing the node table"):
    /// `cargo test --release --lib nodetable::tests::growth_pauses -- --ignored --nocapture`
    /// On a shared machine any insert may be preempted for a few milliseconds: the inserts
    /// that replaced a table or moved entries are counted apart, over 1 ms and on average.
    #[test]
    #[ignore]
    fn growth_pauses() {
        use std::time::{Duration, Instant};
        #[derive(Default)]
        struct Kind {
            count: usize,
            total: Duration,
            max: (Duration, usize),
            over_1ms: usize,
        }
        impl Kind {
            fn add(&mut self, took: Duration, at: usize) {
                self.count += 1;
                self.total += took;
                self.max = self.max.max((took, at));
                self.over_1ms += usize::from(took > Duration::from_millis(1));
            }
            fn show(&self, name: &str) {
                println!(
                    "{name}: {} inserts, {:.0} ns on average, {} over 1 ms, longest {:.3} ms at {}",
                    self.count,
                    self.total.as_nanos() as f64 / self.count.max(1) as f64,
                    self.over_1ms,
                    self.max.0.as_secs_f64() * 1e3,
                    self.max.1
                );
            }
        }
        let total: usize = std::env::var("KEEPERD_TABLE_NODES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3_000_000);
        let path = |i: usize| format!("/bench/{:04}/{:07}", i / 1000, i);
        let buckets =
            |t: &NodeTable| -> usize { t.shards.iter().map(|s| s.table.num_buckets()).sum() };
        let draining = |t: &NodeTable| t.shards.iter().filter(|s| s.draining.is_some()).count();
        let mut t = NodeTable::default();
        let (mut growing, mut moving, mut plain) =
            (Kind::default(), Kind::default(), Kind::default());
        let mut ending = Kind::default();
        let start = Instant::now();
        for i in 0..total {
            let (p, n) = (path(i), node(i as i64, b"0123456789"));
            let (before, drained) = (buckets(&t), draining(&t));
            let t0 = Instant::now();
            t.insert(&p, n);
            let took = t0.elapsed();
            if buckets(&t) != before {
                growing.add(took, i);
            } else if draining(&t) < drained {
                ending.add(took, i);
            } else if drained > 0 {
                moving.add(took, i);
            } else {
                plain.add(took, i);
            }
        }
        let fill = start.elapsed();
        let start = Instant::now();
        let mut found = 0;
        for i in (0..total).step_by(7) {
            found += usize::from(t.get(&path(i)).is_some());
        }
        let lookups = start.elapsed();
        assert_eq!(found, total.div_ceil(7));
        println!(
            "{total} inserts in {:.2} s; {found} gets: {:.0} ns each (path formatting included)",
            fill.as_secs_f64(),
            lookups.as_nanos() as f64 / found as f64
        );
        growing.show("replaced a table");
        moving.show("moved entries of a draining table");
        ending.show("emptied a draining table");
        plain.show("neither");
        drop(t);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for shift in [20, 21, 22, 23, 24] {
            let buckets = 1usize << shift;
            let t0 = Instant::now();
            let table = HashTable::<Entry>::with_capacity(buckets / 8 * 7);
            let made = t0.elapsed();
            assert_eq!(table.num_buckets(), buckets);
            let t0 = Instant::now();
            drop(table);
            println!(
                "an empty table of {buckets} buckets: made in {:.3} ms, freed in {:.3} ms",
                ms(made),
                ms(t0.elapsed())
            );
        }
    }

    /// One slot is one pointer.
    #[test]
    fn a_slot_is_a_pointer() {
        assert_eq!(size_of::<Entry>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Entry>>(), size_of::<usize>());
    }
}
