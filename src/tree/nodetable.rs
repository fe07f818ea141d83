//! The node table: every znode by full path, one heap block per node holding both.
//!
//! A `HashMap<Box<str>, Box<Node>>` costs a 24-byte slot (a fat key pointer and the node's
//! pointer) times the ~2 slots per node a hash table keeps at 1,000,000 nodes, plus a heap
//! block for each key. Here a slot is one thin pointer (8 bytes) to an `Entry`: the node, the
//! path's length and the path's bytes in one allocation (docs/performance.md, "One block per
//! znode"). Lookups hash the `&str` asked for and compare it with each candidate's path.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::hash::BuildHasher;
use std::mem::{align_of, size_of, ManuallyDrop};
use std::ptr::{self, NonNull};

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

impl Entry {
    fn new(path: &str, node: Node) -> Entry {
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

/// Nodes by full path (see the module docs): the `HashMap<path, Node>` operations the tree
/// uses.
#[derive(Clone, Debug, Default)]
pub(super) struct NodeTable {
    table: hashbrown::HashTable<Entry>,
    hasher: std::collections::hash_map::RandomState,
}

impl NodeTable {
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Makes room for `additional` more nodes without growing the table on the way.
    pub(super) fn reserve(&mut self, additional: usize) {
        let hasher = &self.hasher;
        self.table
            .reserve(additional, |e| hasher.hash_one(e.path()));
    }

    pub(super) fn get(&self, path: &str) -> Option<&Node> {
        self.table
            .find(self.hash(path), |e| e.path() == path)
            .map(Entry::node)
    }

    pub(super) fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub(super) fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let hash = self.hash(path);
        self.table
            .find_mut(hash, |e| e.path() == path)
            .map(Entry::node_mut)
    }

    /// Sets `path`'s node, returning the one it replaces.
    pub(super) fn insert(&mut self, path: &str, node: Node) -> Option<Node> {
        if let Some(old) = self.get_mut(path) {
            return Some(std::mem::replace(old, node));
        }
        self.insert_new(path, node);
        None
    }

    /// `insert` of a path not in the table.
    fn insert_new(&mut self, path: &str, node: Node) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hasher.hash_one(path), Entry::new(path, node), |e| {
                hasher.hash_one(e.path())
            });
    }

    /// A table to be filled with `total` paths known to be distinct (a snapshot's: see
    /// `Filler`).
    pub(super) fn filler(total: usize) -> Filler {
        let mut table = NodeTable::default();
        table.reserve(total);
        // hashbrown puts a hash's entry in the first free slot from `hash & (buckets - 1)`
        // on, and keeps `capacity` at 7/8 of the buckets. Were that to change, only the
        // order of inserts (and so the speed) would be off, not the table.
        let buckets = (table.table.capacity() / 7 * 8).next_power_of_two();
        Filler {
            table,
            pending: Vec::with_capacity(total.min(FILL_BATCH)),
            mask: buckets as u64 - 1,
        }
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Node> {
        let hash = self.hash(path);
        let (entry, _) = self
            .table
            .find_entry(hash, |e| e.path() == path)
            .ok()?
            .remove();
        Some(entry.into_node())
    }

    /// Every node with its path, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.table.iter().map(|e| (e.path(), e.node()))
    }
}

/// Entries a `Filler` sorts and inserts at a time: 1 MiB of (hash, pointer).
const FILL_BATCH: usize = 1 << 16;

/// Fills a presized table with distinct paths, `FILL_BATCH` at a time in the order of the
/// slots they land in. Inserted in the order they come (a snapshot's, unrelated to their
/// hashes), each insert reads a random group of the table's control bytes and writes a
/// random slot, two cache misses (most of the time of a node's insert at 1,000,000 nodes);
/// a sorted batch walks the table from one end to the other.
pub(super) struct Filler {
    table: NodeTable,
    pending: Vec<(u64, Entry)>,
    /// The table's bucket mask: a hash's first slot is `hash & mask`.
    mask: u64,
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
        let mask = self.mask;
        self.pending.sort_unstable_by_key(|(hash, _)| hash & mask);
        let NodeTable { table, hasher } = &mut self.table;
        for (hash, entry) in self.pending.drain(..) {
            table.insert_unique(hash, entry, |e| hasher.hash_one(e.path()));
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

    /// One slot is one pointer.
    #[test]
    fn a_slot_is_a_pointer() {
        assert_eq!(size_of::<Entry>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Entry>>(), size_of::<usize>());
    }
}
