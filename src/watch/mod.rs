//! Per-server watch registry. Watches are not replicated: each server remembers which of its
//! sessions watch what, and turns the `WatchTrigger`s that `DataTree::apply` returns into
//! notifications for those sessions.
//!
//! ZooKeeper keeps two tables, `dataWatches` and `childWatches`; a (session, path) pair is at
//! most once in each, whatever modes it holds there. This registry keeps one entry per
//! (session, path) with a bit per `WatchKind` and derives the two tables from the bits:
//!
//! ```text
//! data table  = Data | Persistent | PersistentRecursive   (what wchs/wchc/wchp list)
//! child table = Child | Persistent                        (counted in mntr zk_watch_count)
//! ```
//!
//! Trigger mapping (ZooKeeper 3.8 `DataTree` + `WatchManager.triggerWatch`):
//!
//! ```text
//! event                 exact path fires                         ancestors fire
//! NodeCreated           Data*, Persistent, PersistentRecursive    PersistentRecursive
//! NodeDataChanged       Data*, Persistent, PersistentRecursive    PersistentRecursive
//! NodeDeleted           Data*, Child*, Persistent, Recursive      PersistentRecursive
//! NodeChildrenChanged   Child*, Persistent                        -
//! (* one-shot: removed when it fires)
//! ```
//!
//! A session gets at most one event per trigger, however many of its watches match.
//!
//! Where ZooKeeper 3.8 and 3.9 differ, this follows 3.9 (ZOOKEEPER-4466/4472): a session may
//! hold a one-shot and a persistent watch on the same path at once (3.8 let the later
//! registration overwrite the mode of the earlier one), and checkWatches/removeWatches accept
//! `WatcherType::Persistent` / `PersistentRecursive` and match modes exactly.
//!
//! Invariants: no empty per-path or per-session maps are kept; `recursive` counts the entries
//! holding the `PersistentRecursive` bit (when it is zero a trigger never walks ancestors).

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::request::SetWatches;
use crate::proto::{EventType, KeeperState, Stat, WatcherEvent, WatcherType};
use crate::tree::{DataTree, WatchTrigger};

/// How a watch was registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// getData / exists on an existing node: NodeDataChanged, NodeDeleted; exists on a
    /// missing node: NodeCreated. One-shot.
    Data,
    /// getChildren: NodeChildrenChanged, NodeDeleted. One-shot.
    Child,
    /// addWatch PERSISTENT: every event on the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: events on the path and below (no NodeChildrenChanged).
    PersistentRecursive,
}

const DATA: u8 = 1;
const CHILD: u8 = 2;
const PERSISTENT: u8 = 4;
const RECURSIVE: u8 = 8;
/// Bits that put a (session, path) into ZooKeeper's dataWatches table.
const DATA_TABLE: u8 = DATA | PERSISTENT | RECURSIVE;
/// Bits that put a (session, path) into ZooKeeper's childWatches table.
const CHILD_TABLE: u8 = CHILD | PERSISTENT;

impl WatchKind {
    fn bit(self) -> u8 {
        match self {
            WatchKind::Data => DATA,
            WatchKind::Child => CHILD,
            WatchKind::Persistent => PERSISTENT,
            WatchKind::PersistentRecursive => RECURSIVE,
        }
    }
}

/// The wchs summary: ZooKeeper prints it from the data-watch table only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchSummary {
    /// Sessions with at least one data-table watch ("N connections").
    pub connections: usize,
    /// Distinct paths in the data table ("watching M paths").
    pub paths: usize,
    /// (session, path) pairs in the data table ("Total watches:K").
    pub total: usize,
}

#[derive(Debug, Default)]
pub struct WatchRegistry {
    /// path -> session -> kind bits. BTreeMaps so listings come out sorted without a copy.
    by_path: BTreeMap<String, BTreeMap<i64, u8>>,
    /// session -> paths it has any watch on; makes `remove_session` proportional to the
    /// session's own watches rather than to the whole table.
    by_session: BTreeMap<i64, BTreeSet<String>>,
    /// Entries holding the PersistentRecursive bit; zero means triggers skip the ancestor walk.
    recursive: usize,
}

impl WatchRegistry {
    pub fn new() -> WatchRegistry {
        WatchRegistry::default()
    }

    /// Registers a watch. Registering the same kind twice on a path is one watch, as in
    /// ZooKeeper (a connection is in a path's watcher set once).
    pub fn add(&mut self, session_id: i64, path: &str, kind: WatchKind) {
        let bits = self
            .by_path
            .entry(path.to_string())
            .or_default()
            .entry(session_id)
            .or_insert(0);
        let bit = kind.bit();
        if bit == RECURSIVE && *bits & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *bits |= bit;
        self.by_session
            .entry(session_id)
            .or_default()
            .insert(path.to_string());
    }

    /// Events to deliver for one trigger, at most one per session, one-shot watches removed.
    /// Sessions come out in ascending id order.
    pub fn trigger(&mut self, t: &WatchTrigger) -> Vec<(i64, WatcherEvent)> {
        // (bits that fire at the exact path, of which the one-shot bits to clear, whether
        // recursive watches on ancestors fire)
        let (fire, consume, ancestors) = match t.event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                (DATA | PERSISTENT | RECURSIVE, DATA, true)
            }
            EventType::NodeDeleted => (DATA | CHILD | PERSISTENT | RECURSIVE, DATA | CHILD, true),
            EventType::NodeChildrenChanged => (CHILD | PERSISTENT, CHILD, false),
            // The tree never emits these as triggers; nothing watches for them server-side.
            EventType::None
            | EventType::DataWatchRemoved
            | EventType::ChildWatchRemoved
            | EventType::PersistentWatchRemoved => return vec![],
        };
        let mut sessions = BTreeSet::new();
        let mut emptied = Vec::new();
        if let Some(watchers) = self.by_path.get_mut(&t.path) {
            for (&session, bits) in watchers.iter_mut() {
                if *bits & fire != 0 {
                    sessions.insert(session);
                    *bits &= !consume;
                }
            }
            watchers.retain(|session, bits| {
                if *bits == 0 {
                    emptied.push(*session);
                }
                *bits != 0
            });
            if watchers.is_empty() {
                self.by_path.remove(&t.path);
            }
        }
        for session in emptied {
            self.forget_path_of_session(session, &t.path);
        }
        if ancestors && self.recursive > 0 {
            for parent in ancestors_of(&t.path) {
                if let Some(watchers) = self.by_path.get(parent) {
                    for (&session, bits) in watchers {
                        if bits & RECURSIVE != 0 {
                            sessions.insert(session);
                        }
                    }
                }
            }
        }
        sessions
            .into_iter()
            .map(|s| (s, event(t.event, &t.path)))
            .collect()
    }

    /// Forgets every watch of a session (its connection closed).
    pub fn remove_session(&mut self, session_id: i64) {
        let Some(paths) = self.by_session.remove(&session_id) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if let Some(bits) = watchers.remove(&session_id) {
                    if bits & RECURSIVE != 0 {
                        self.recursive -= 1;
                    }
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    /// checkWatches (`remove` false) / removeWatches (`remove` true). Returns whether a
    /// matching watch existed (else the caller answers NOWATCHER).
    ///
    /// Matches on the exact path only (a recursive watch on an ancestor does not count), as
    /// ZooKeeper 3.9's `DataTree.containsWatcher/removeWatch`: Children = one-shot child
    /// watch, Data = one-shot data/exist watch, Persistent, PersistentRecursive = that mode,
    /// Any = every kind.
    pub fn remove(&mut self, session_id: i64, path: &str, kind: WatcherType, remove: bool) -> bool {
        let mask = match kind {
            WatcherType::Children => CHILD,
            WatcherType::Data => DATA,
            WatcherType::Persistent => PERSISTENT,
            WatcherType::PersistentRecursive => RECURSIVE,
            WatcherType::Any => DATA | CHILD | PERSISTENT | RECURSIVE,
        };
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(bits) = watchers.get_mut(&session_id) else {
            return false;
        };
        let found = *bits & mask != 0;
        if !found || !remove {
            return found;
        }
        if *bits & mask & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        *bits &= !mask;
        if *bits == 0 {
            watchers.remove(&session_id);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            self.forget_path_of_session(session_id, path);
        }
        true
    }

    /// setWatches / setWatches2 after a reconnect: re-registers the watches and returns the
    /// events that already happened after `relative_zxid` (fired now, watch consumed).
    pub fn set_watches(
        &mut self,
        session_id: i64,
        sw: &SetWatches,
        tree: &DataTree,
    ) -> Vec<WatcherEvent> {
        self.set_watches_with(session_id, sw, |path| tree.exists(path))
    }

    /// `set_watches` with the node lookup abstracted, so the logic is testable without a tree.
    /// Follows ZooKeeper's `DataTree.setWatches` list by list, in its order.
    pub fn set_watches_with(
        &mut self,
        session_id: i64,
        sw: &SetWatches,
        lookup: impl Fn(&str) -> Option<Stat>,
    ) -> Vec<WatcherEvent> {
        let mut fired = Vec::new();
        for path in &sw.data_watches {
            match lookup(path) {
                None => fired.push(event(EventType::NodeDeleted, path)),
                Some(stat) if stat.mzxid > sw.relative_zxid => {
                    fired.push(event(EventType::NodeDataChanged, path))
                }
                Some(_) => self.add(session_id, path, WatchKind::Data),
            }
        }
        for path in &sw.exist_watches {
            match lookup(path) {
                Some(_) => fired.push(event(EventType::NodeCreated, path)),
                None => self.add(session_id, path, WatchKind::Data),
            }
        }
        for path in &sw.child_watches {
            match lookup(path) {
                None => fired.push(event(EventType::NodeDeleted, path)),
                Some(stat) if stat.pzxid > sw.relative_zxid => {
                    fired.push(event(EventType::NodeChildrenChanged, path))
                }
                Some(_) => self.add(session_id, path, WatchKind::Child),
            }
        }
        for path in &sw.persistent_watches {
            self.add(session_id, path, WatchKind::Persistent);
        }
        for path in &sw.persistent_recursive_watches {
            self.add(session_id, path, WatchKind::PersistentRecursive);
        }
        fired
    }

    /// Number of watches as mntr's `zk_watch_count` counts them: entries of ZooKeeper's
    /// data table plus entries of its child table (a persistent watch is in both, so 2).
    pub fn watch_count(&self) -> usize {
        self.by_path
            .values()
            .flat_map(|w| w.values())
            .map(|&bits| usize::from(bits & DATA_TABLE != 0) + usize::from(bits & CHILD_TABLE != 0))
            .sum()
    }

    /// Number of distinct watched paths (any kind).
    pub fn path_count(&self) -> usize {
        self.by_path.len()
    }

    /// Number of sessions holding at least one watch (any kind).
    pub fn session_count(&self) -> usize {
        self.by_session.len()
    }

    /// What wchs prints. ZooKeeper 3.8 summarises only its data-watch table, so one-shot
    /// child watches (getChildren) do not appear there; this keeps that.
    pub fn summary(&self) -> WatchSummary {
        let mut s = WatchSummary::default();
        let mut sessions = BTreeSet::new();
        for watchers in self.by_path.values() {
            let mut any = false;
            for (&session, &bits) in watchers {
                if bits & DATA_TABLE != 0 {
                    any = true;
                    s.total += 1;
                    sessions.insert(session);
                }
            }
            s.paths += usize::from(any);
        }
        s.connections = sessions.len();
        s
    }

    /// wchc: session -> watched paths, sorted. Data table only, like ZooKeeper 3.8.
    pub fn by_session(&self) -> Vec<(i64, Vec<String>)> {
        let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (path, watchers) in &self.by_path {
            for (&session, &bits) in watchers {
                if bits & DATA_TABLE != 0 {
                    out.entry(session).or_default().push(path.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// wchp: path -> sessions, sorted. Data table only, like ZooKeeper 3.8.
    pub fn by_path(&self) -> Vec<(String, Vec<i64>)> {
        self.by_path
            .iter()
            .filter_map(|(path, watchers)| {
                let sessions: Vec<i64> = watchers
                    .iter()
                    .filter(|(_, &bits)| bits & DATA_TABLE != 0)
                    .map(|(&s, _)| s)
                    .collect();
                (!sessions.is_empty()).then(|| (path.clone(), sessions))
            })
            .collect()
    }

    /// The kinds a session holds on a path (for tests and debugging).
    pub fn kinds(&self, session_id: i64, path: &str) -> Vec<WatchKind> {
        let bits = self
            .by_path
            .get(path)
            .and_then(|w| w.get(&session_id))
            .copied()
            .unwrap_or(0);
        [
            WatchKind::Data,
            WatchKind::Child,
            WatchKind::Persistent,
            WatchKind::PersistentRecursive,
        ]
        .into_iter()
        .filter(|k| bits & k.bit() != 0)
        .collect()
    }

    fn forget_path_of_session(&mut self, session_id: i64, path: &str) {
        if let Some(paths) = self.by_session.get_mut(&session_id) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_session.remove(&session_id);
            }
        }
    }
}

fn event(event_type: EventType, path: &str) -> WatcherEvent {
    WatcherEvent {
        event_type,
        state: KeeperState::SyncConnected,
        path: path.to_string(),
    }
}

/// Strict ancestors of an absolute path, nearest first: "/a/b/c" -> "/a/b", "/a", "/".
/// "/" has none. A path without a leading slash yields nothing (the tree never emits one).
fn ancestors_of(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = if path.starts_with('/') && path.len() > 1 {
        Some(path)
    } else {
        None
    };
    std::iter::from_fn(move || {
        let p = rest?;
        let cut = p.rfind('/')?;
        if cut == 0 {
            rest = None;
            Some("/")
        } else {
            let parent = &p[..cut];
            rest = Some(parent);
            Some(parent)
        }
    })
}

#[cfg(test)]
mod tests;
