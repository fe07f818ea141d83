//! Containers and TTL nodes: which ones the leader's reaper may delete, and `Txn::Reap`,
//! which re-checks that rule at apply time (a child module of `datatree`; the sets of their
//! paths, `containers` and `ttls`, are kept by `insert_node` / `remove_node`).

use super::{DataTree, Node, NodeKind};
use crate::tree::WatchTrigger;

impl DataTree {
    /// `Txn::Reap`: deletes each of `paths` that still qualifies at `time_ms` (a create that
    /// raced the reaper keeps its container).
    pub(super) fn reap(
        &mut self,
        zxid: i64,
        time_ms: i64,
        paths: &[String],
        triggers: &mut Vec<WatchTrigger>,
    ) {
        for path in paths {
            let qualifies = self
                .nodes
                .get(path.as_str())
                .is_some_and(|n| reapable(n, time_ms));
            if qualifies {
                self.delete_node(path, zxid, triggers);
            }
        }
    }

    /// Containers with no children that once had some, and TTL nodes past their TTL with no
    /// children, at `now_ms`: candidates for a `Txn::Reap`.
    pub fn reap_candidates(&self, now_ms: i64) -> Vec<String> {
        let mut out: Vec<String> = self
            .containers
            .iter()
            .chain(self.ttls.iter())
            .filter(|p| self.nodes.get(p).is_some_and(|n| reapable(n, now_ms)))
            .map(|p| p.to_string())
            .collect();
        out.sort();
        out
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
