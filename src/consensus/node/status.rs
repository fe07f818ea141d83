//! What the node tells the rest of the process: `RaftStatus` (published on a watch channel
//! after every event, for the 4lw, mntr and the server), which peers count as synced and
//! caught up, and the leader's view stamped into a reconfig as it enters the log.

use std::time::Instant;

use raft::{ProgressState, StateRole};

use super::{sorted, Node, RaftRole, RaftStatus};
use crate::consensus::peer::Transport;
use crate::consensus::StateMachine;
use crate::tree::{LeaderView, Txn};

/// How far (in entries) a learner may trail the leader's last index to be promoted.
const CATCH_UP_SLACK: u64 = 128;

/// A peer the leader is streaming entries to: raft-rs's Replicate state, or Probe with
/// everything matched. (After a snapshot a peer stays in Probe until an append moves it
/// on; in an idle ensemble no append comes, though the peer has everything.)
fn replicating(p: &raft::Progress, last: u64) -> bool {
    p.matched > 0
        && (p.state == ProgressState::Replicate
            || (p.state == ProgressState::Probe && p.matched >= last))
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// A peer that is connected (heard from within an election timeout) and replicating
    /// (mntr's "synced").
    pub(super) fn synced(&self, id: u64, now: Instant) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.raw
            .raft
            .prs()
            .get(id)
            .is_some_and(|p| replicating(p, last))
            && self
                .live
                .heard
                .get(&id)
                .is_some_and(|t| now.duration_since(*t) <= self.opts.election_timeout())
    }

    /// Synced, and matched within `CATCH_UP_SLACK` of the leader's last index.
    pub(super) fn caught_up(&self, id: u64, now: Instant) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.synced(id, now)
            && self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|p| p.matched + CATCH_UP_SLACK >= last)
    }

    /// What a reconfig entry carries from its leader (see `tree::LeaderView`): the servers
    /// synced now (this one included) and whether a membership change is still in flight.
    fn leader_view(&self) -> LeaderView {
        let me = self.opts.id;
        let now = self.clock.now();
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let mut synced = vec![me];
        synced.extend(
            cs.voters
                .iter()
                .chain(&cs.learners)
                .copied()
                .filter(|&id| id != me && self.caught_up(id, now)),
        );
        LeaderView {
            // As ZooKeeper: another reconfig is in the log and not applied yet (a new leader
            // cannot tell before it has committed in its term). Raft conf changes still in
            // flight do not count: the group moves towards whichever configuration is newest.
            in_progress: self.props.last_reconfig_index > self.applied
                || !self.raw.raft.commit_to_current_term(),
            synced: sorted(synced),
        }
    }

    /// A reconfig gets the leader's view as it enters the log. True for a reconfig.
    pub(super) fn stamp(&self, txn: &mut Txn) -> bool {
        if let Txn::Reconfig { view, .. } = txn.inner_mut() {
            *view = Some(self.leader_view());
            return true;
        }
        false
    }

    /// Publishes the status if it changed.
    pub(super) fn publish(&mut self) {
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let (mut voters, mut learners) = (cs.voters, cs.learners);
        voters.sort_unstable();
        learners.sort_unstable();
        let id = self.opts.id;
        let is_leader = self.is_leader();
        let role = match self.raw.raft.state {
            StateRole::Leader => RaftRole::Leader,
            StateRole::Candidate | StateRole::PreCandidate => RaftRole::Candidate,
            StateRole::Follower if learners.contains(&id) => RaftRole::Learner,
            StateRole::Follower => RaftRole::Follower,
        };
        let (mut synced_followers, mut synced_learners) = (0, 0);
        if is_leader {
            let now = self.clock.now();
            for (peer, _) in self.raw.raft.prs().iter() {
                if *peer == id || !self.synced(*peer, now) {
                    continue;
                }
                if learners.contains(peer) {
                    synced_learners += 1;
                } else {
                    synced_followers += 1;
                }
            }
        }
        // Removed by a membership change (not in the replicated configuration): clients
        // are told to go elsewhere, as ZooKeeper's removed servers stop serving.
        let removed = self
            .members
            .configured
            .as_ref()
            .is_some_and(|m| !m.voters.contains(&id) && !m.learners.contains(&id));
        if removed != self.members.removed {
            if removed {
                tracing::info!(
                    "membership: this server ({id}) is not in the ensemble's configuration: \
                     not serving clients"
                );
            }
            self.members.removed = removed;
        }
        let outside = self.members.waiting || removed;
        let store = self.raw.store();
        let st = RaftStatus {
            id,
            role,
            is_leader,
            leader_ready: is_leader && self.ready.applied_in_term,
            // The leader it follows does not hear it (`mark_unheard`): its forwarded writes and
            // session touches are lost, and what it reads may be stale for as long.
            serving: self.raw.raft.leader_id != 0 && !outside && !self.unheard(),
            voters,
            learners,
            synced_followers,
            synced_learners,
            snapshots_installed: self.snaps.installed,
            snapshots_skipped: self.snaps.skipped,
            leader_id: if outside { 0 } else { self.raw.raft.leader_id },
            term: self.raw.raft.term,
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied,
            first_index: store.log_start().0 + 1,
            last_index: store.last_index_cached(),
            restored_snapshot_index: self.snaps.restored_index,
            last_snapshot_index: self.snaps.last.0,
            last_snapshot_size: self.snaps.last.1,
            snapshot_files: self.snaps.files,
            log_bytes: store.log_bytes(),
            fsyncs: store.syncs(),
            sync_readies: self.ready.sync_readies,
            running: true,
        };
        self.status.send_if_modified(|s| {
            if *s == st {
                false
            } else {
                *s = st;
                true
            }
        });
    }
}
