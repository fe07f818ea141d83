//! Finding a leader quickly: the start-up campaign, campaigning soon after the leader's
//! connection closed (instead of after a whole election timeout), and a stopping leader
//! handing over to the most caught-up voter. Also what the node knows of its peers' liveness:
//! when each was last heard from, and the leader telling a member it does not hear that it
//! must not serve (`mark_unheard`, `note_heartbeat`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use raft::prelude::{Message, MessageType};
use raft::StateRole;

use super::{sorted, Node};
use crate::consensus::peer::Transport;
use crate::consensus::StateMachine;

/// Between the campaigns of the voters that saw the leader's connection close, by rank.
const LEADER_GONE_STAGGER: Duration = Duration::from_millis(150);

#[derive(Default)]
pub(super) struct Liveness {
    /// When each peer last sent a Raft message: "synced" means heard from recently.
    pub(super) heard: HashMap<u64, Instant>,
    /// When to campaign after the leader's connection closed (`leader_gone`).
    pub(super) campaign_at: Option<Instant>,
    /// Peer messages `validate::check` refused.
    pub(super) refused_msgs: u64,
    /// (leader, term) whose last heartbeat said it has not heard from this node within an
    /// election timeout: while that leader leads in that term, this node does not serve.
    pub(super) unheard_by: Option<(u64, u64)>,
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// A fresh ensemble would otherwise wait a whole election timeout (syncLimit x tickTime,
    /// 10 s with ZooKeeper's defaults) before anyone campaigns, where ZooKeeper elects in a
    /// moment. While no leader is known in the first ticks, voters campaign staggered by
    /// their rank in the voter list (rank r at tick 2 + 2r). Pre-vote keeps this harmless
    /// when a leader exists that this node has not heard from yet.
    pub(super) fn startup_campaign(&mut self) {
        if self.raw.raft.leader_id != 0 || self.is_leader() {
            return;
        }
        let voters = sorted(self.raw.raft.prs().conf().to_conf_state().voters);
        let Some(rank) = voters.iter().position(|&v| v == self.opts.id) else {
            return;
        };
        if self.ticks == 2 + 2 * rank as u64 {
            tracing::info!("no leader yet: campaigning at start-up (rank {rank})");
            if let Err(e) = self.raw.campaign() {
                tracing::warn!("start-up campaign failed: {e}");
            }
        }
    }

    /// Peer `from`'s connection to this node closed. If it was the leader this node follows,
    /// the leader is most likely gone (a crash, kill -9, a stop): instead of waiting an
    /// election timeout (syncLimit x tickTime, 10 s with ZooKeeper's defaults) the node
    /// forgets it (no more lease) and campaigns within moments, staggered by its rank among
    /// the other voters so that one candidate usually wins the first round. Safe when the
    /// leader is in fact alive: the campaign starts with pre-vote, which the voters still
    /// hearing from the leader refuse (check-quorum lease), and the leader's next heartbeat
    /// brings this node back. A hung leader whose connections stay open is still found by
    /// the election timeout.
    pub(super) fn leader_gone(&mut self, from: u64) {
        if self.members.waiting || from != self.raw.raft.leader_id || self.is_leader() {
            return;
        }
        let voters = sorted(self.raw.raft.prs().conf().to_conf_state().voters);
        let others: Vec<u64> = voters.into_iter().filter(|&v| v != from).collect();
        let Some(rank) = others.iter().position(|&v| v == self.opts.id) else {
            return; // a learner does not campaign
        };
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, raft::INVALID_ID);
        let delay = LEADER_GONE_STAGGER * rank as u32;
        tracing::info!(
            "leader {from}'s connection closed: campaigning (pre-vote) in {delay:?} unless a \
             leader appears"
        );
        self.live.campaign_at = Some(self.clock.now() + delay);
    }

    /// The campaign `leader_gone` scheduled is due: campaign if still no leader is known.
    pub(super) fn campaign_now(&mut self) {
        self.live.campaign_at = None;
        if self.raw.raft.leader_id == 0 && self.raw.raft.state != StateRole::Leader {
            tracing::info!("no leader since its connection closed: campaigning");
            if let Err(e) = self.raw.campaign() {
                tracing::warn!("campaign failed: {e}");
            }
        }
    }

    /// A leader asked to stop hands leadership to the voter that has the most of the log,
    /// so the ensemble has a leader again without waiting for an election timeout. Returns
    /// until when to wait for it (None: nothing to hand over).
    pub(super) fn hand_over(&mut self) -> Option<Instant> {
        if !self.is_leader() {
            return None;
        }
        let me = self.opts.id;
        let now = self.clock.now();
        let voters = self.raw.raft.prs().conf().to_conf_state().voters;
        let best = voters
            .iter()
            .filter(|&&v| v != me)
            .filter_map(|&v| self.raw.raft.prs().get(v).map(|p| (p.matched, v)))
            .filter(|(_, v)| {
                self.live
                    .heard
                    .get(v)
                    .is_some_and(|t| now.duration_since(*t) < self.opts.election_timeout())
            })
            .max()?;
        tracing::info!(
            "stopping as leader: handing leadership to {} (it has the log up to {})",
            best.1,
            best.0
        );
        self.raw.transfer_leader(best.1);
        Some(now + self.opts.election_timeout().min(Duration::from_secs(3)))
    }

    /// On the leader, before its messages go out: a heartbeat to a member not heard from
    /// within an election timeout (syncLimit x tickTime, ZooKeeper's limit for a silent
    /// follower) carries `reject = true`, which raft-rs ignores on a heartbeat. The member
    /// still follows (its election timer is reset, raft-rs goes on replicating to it), but it
    /// learns that what it sends is lost: its acknowledgements, forwarded writes and session
    /// touches. It stops serving until a heartbeat comes without the mark, which the leader
    /// sends as soon as it hears from it again.
    pub(super) fn mark_unheard(&self, msgs: &mut [Message]) {
        if !self.is_leader() {
            return;
        }
        let now = self.clock.now();
        let limit = self.opts.election_timeout();
        for m in msgs
            .iter_mut()
            .filter(|m| m.get_msg_type() == MessageType::MsgHeartbeat)
        {
            m.reject = self
                .live
                .heard
                .get(&m.to)
                .is_none_or(|t| now.duration_since(*t) > limit);
        }
    }

    /// On a member, after raft-rs took a heartbeat of term `hb_term` from `from` (marked
    /// `unheard` or not): whether the leader it follows hears it (see `mark_unheard`).
    pub(super) fn note_heartbeat(&mut self, from: u64, hb_term: u64, unheard: bool) {
        let (leader, term) = (self.raw.raft.leader_id, self.raw.raft.term);
        if from != leader || hb_term != term || self.is_leader() {
            return;
        }
        let was = self.unheard();
        self.live.unheard_by = unheard.then_some((leader, term));
        if self.unheard() != was {
            if unheard {
                tracing::warn!(
                    "leader {leader} has not heard from this server within {:?}: what it \
                     sends is lost; not serving clients until the leader hears it again",
                    self.opts.election_timeout()
                );
            } else {
                tracing::info!("leader {leader} hears this server again: serving clients");
            }
        }
    }

    /// The leader this node follows does not hear it (`note_heartbeat`).
    pub(super) fn unheard(&self) -> bool {
        self.raw.raft.leader_id != 0
            && self.live.unheard_by == Some((self.raw.raft.leader_id, self.raw.raft.term))
    }
}
