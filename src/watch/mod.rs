//! Per-server watch registry. Watches are not replicated: each server remembers which of its
//! sessions watch what, and turns the `WatchTrigger`s that `DataTree::apply` returns into
//! notifications for those sessions. (Implementation in progress.)

use crate::proto::request::SetWatches;
use crate::proto::{WatcherEvent, WatcherType};
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

#[derive(Debug, Default)]
pub struct WatchRegistry {}

impl WatchRegistry {
    pub fn new() -> WatchRegistry {
        WatchRegistry::default()
    }

    pub fn add(&mut self, _session_id: i64, _path: &str, _kind: WatchKind) {}

    /// Events to deliver for one trigger, at most one per session, one-shot watches removed.
    pub fn trigger(&mut self, _t: &WatchTrigger) -> Vec<(i64, WatcherEvent)> {
        vec![]
    }

    /// Forgets every watch of a session (its connection closed).
    pub fn remove_session(&mut self, _session_id: i64) {}

    /// checkWatches (`remove` false) / removeWatches (`remove` true). Returns whether a
    /// matching watch existed (else the caller answers NOWATCHER).
    pub fn remove(
        &mut self,
        _session_id: i64,
        _path: &str,
        _kind: WatcherType,
        _remove: bool,
    ) -> bool {
        false
    }

    /// setWatches / setWatches2 after a reconnect: re-registers the watches and returns the
    /// events that already happened after `relative_zxid` (fired now, watch consumed).
    pub fn set_watches(
        &mut self,
        _session_id: i64,
        _sw: &SetWatches,
        _tree: &DataTree,
    ) -> Vec<WatcherEvent> {
        vec![]
    }

    /// Total number of watches (wchs "Total watches").
    pub fn watch_count(&self) -> usize {
        0
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        0
    }

    /// Number of sessions holding at least one watch.
    pub fn session_count(&self) -> usize {
        0
    }

    /// wchc: session -> watched paths, sorted.
    pub fn by_session(&self) -> Vec<(i64, Vec<String>)> {
        vec![]
    }

    /// wchp: path -> sessions, sorted.
    pub fn by_path(&self) -> Vec<(String, Vec<i64>)> {
        vec![]
    }
}
