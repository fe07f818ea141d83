//! The Raft driver: one task owns the `RawNode`, its `SledStorage` and the `StateMachine`.
//!
//! ```text
//!  Proposer ──Proposal──►┐
//!  RaftHandle::step ─Msg─►│  node task (own thread, current-thread runtime)
//!  tick interval ────────►│    RawNode<SledStorage> ── Ready ──► Transport (peer messages)
//!  snapshot writer done ─►│                         └─ apply ──► StateMachine, Proposal.done
//!                         └─► watch<RaftStatus> (4lw, mntr, srvr)
//! ```
//!
//! Each Ready is handled in raft-rs's documented order: send messages; install a received
//! snapshot; apply committed entries; persist entries + hard state (one pwrite to the log's
//! newest segment, one fdatasync: group commit); send persisted messages (votes, append responses:
//! the ones that acknowledge); advance, then handle the LightReady (commit index, messages,
//! committed entries). A proposal's `done` fires only when its entry is applied, which raft-rs
//! allows only for entries this node has persisted, so with force_sync nothing is
//! acknowledged before it is fdatasynced.
//!
//! The node runs on a dedicated OS thread with a current-thread tokio runtime: persisting
//! blocks on fdatasync (and applying on the tree), and that must not stall the client edge's
//! worker threads. There is still exactly one task and no lock around the RawNode.
//!
//! In an ensemble (docs/replication.md) the transport is `transport::PeerNetwork`: a
//! proposal on a node that does not lead is forwarded to the leader with this node's entry
//! context and answered here when the entry is applied; proposals wait (in order) up to
//! `hold_timeout` for a leader; `read_barrier` is Raft ReadIndex; touches are routed to the
//! leader. Answers whose outcome this node can no longer know (term change) are dropped.
//!
//! Start-up recovery happens on that thread before `spawn_raft` returns: storage is opened
//! (torn tail cut), the newest good snapshot restored, and every stored entry re-applied, so
//! the server never serves a partially replayed tree.
//!
//! The node is split by concern; each file owns the fields of its part of `Node`:
//!
//! | file | owns | does |
//! |---|---|---|
//! | `handle.rs` | | `spawn_raft`, `RaftHandle`, `RaftStatus` |
//! | `options.rs` | | `RaftOptions` (zoo.cfg), `Seed` (ZooKeeper's data taken over) |
//! | `recovery.rs` | | start-up: storage, snapshot, replay; `recover_offline` |
//! | `mod.rs` | `ticks`, `applied` | the event loop, routing of what arrives, per-tick chores |
//! | `ready.rs` | `ReadyState` | each Ready in raft-rs's order, applying entries |
//! | `proposals.rs` | `Proposals` | proposing here, holding, forwarding to the leader |
//! | `reads.rs` | `Reads` | read barriers (ReadIndex) |
//! | `snapshots.rs` | `Snapshots` | taking, writing, installing snapshots; compaction, purge |
//! | `failover.rs` | `Liveness` | who was heard when, start-up and leader-gone campaigns, handover |
//! | `membership.rs` | `Membership` | probes, bootstrap, joining, carrying out `plan` |
//! | `plan.rs` | | the membership decision as a pure function |
//! | `status.rs` | | `RaftStatus` as published; synced/caught-up; a reconfig's `LeaderView` |
//!
//! Time comes from `Clock` (the real one, or a manual one in tests), so everything but the
//! event loop in `run` can be driven step by step (`node::sim`, `node::sim_tests`).

mod failover;
mod handle;
mod membership;
mod options;
pub(crate) mod plan;
mod proposals;
mod reads;
mod ready;
mod recovery;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod sim_tests;
mod snapshots;
mod status;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use raft::prelude::{Message, MessageType};
use raft::{RawNode, StateRole};
use tokio::sync::{mpsc, watch, Notify};

use super::peer::{PeerMsg, PeerReport, Touches, Transport};
use super::storage::{SledStorage, SnapshotFile};
use super::validate;
use super::ConsensusError;
use super::{Proposal, StateMachine};

pub use handle::{spawn_raft, spawn_raft_with, RaftHandle, RaftRole, RaftStatus};
pub use options::{RaftOptions, Seed};
pub use recovery::{read_log_offline, recover_offline};

use handle::Local;

/// Where the node reads the time. Real in production; tests hold a manual one and move it.
#[derive(Clone, Default)]
pub(crate) struct Clock {
    manual: Option<Arc<Mutex<Instant>>>,
}

impl Clock {
    /// A clock that stands still until `advance`d.
    #[cfg(test)]
    pub(crate) fn manual() -> Clock {
        Clock {
            manual: Some(Arc::new(Mutex::new(Instant::now()))),
        }
    }

    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        if let Some(m) = &self.manual {
            *m.lock().expect("manual clock") += by;
        }
    }

    pub(crate) fn now(&self) -> Instant {
        match &self.manual {
            Some(m) => *m.lock().expect("manual clock"),
            None => Instant::now(),
        }
    }
}

/// The Raft node: raft-rs's `RawNode` over sled, the state machine it applies to, and the
/// parts (one per file) that track what raft-rs leaves to its user.
pub(crate) struct Node<S, T> {
    raw: RawNode<SledStorage>,
    sm: S,
    transport: T,
    opts: RaftOptions,
    clock: Clock,
    status: watch::Sender<RaftStatus>,
    /// Where touches for this node go (the server's `take_touches` receiver).
    touches: mpsc::Sender<Touches>,
    /// The last log index given to the state machine.
    applied: u64,
    /// Ticks since start (or since bootstrap), for the start-up election
    /// (`failover::startup_campaign`) and the probe rhythm.
    ticks: u64,
    ready: ready::ReadyState,
    props: proposals::Proposals,
    reads: reads::Reads,
    snaps: snapshots::Snapshots,
    live: failover::Liveness,
    members: membership::Membership,
}

enum Event {
    Shutdown,
    /// The staggered campaign after the leader's connection closed (`leader_gone`).
    Campaign,
    Proposals,
    ProposersGone,
    Peer(u64, PeerMsg),
    Local(Local),
    Tick,
    Purge,
    SnapshotWritten(u64, Result<SnapshotFile, ConsensusError>),
}

/// Peer frames handled in one go before the loop looks at its other sources again.
const PEER_BATCH: usize = 1024;

impl<S: StateMachine, T: Transport> Node<S, T> {
    /// The event loop: until shutdown (after a leader's handover) or an error that must stop
    /// the node (it never continues past a storage or apply failure: fail-stop).
    async fn run(
        mut self,
        mut proposals: mpsc::UnboundedReceiver<Proposal>,
        mut peers: mpsc::Receiver<(u64, PeerMsg)>,
        mut local: mpsc::Receiver<Local>,
        shutdown: Arc<Notify>,
    ) -> Result<(), ConsensusError> {
        let mut ticker = tokio::time::interval(self.opts.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut purge = (self.opts.purge_interval_hours > 0).then(|| {
            let every = Duration::from_secs(self.opts.purge_interval_hours * 3600);
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut batch = Vec::with_capacity(self.opts.max_batch);
        let mut snap_job: Option<snapshots::SnapJob> = None;
        // Leadership being handed over before stopping: until then.
        let mut handover: Option<Instant> = None;
        let result = loop {
            if let Some(deadline) = handover {
                // Done once another server leads (this node heard from it, so it has this
                // node's vote): stopping any earlier could lose the vote it needs.
                let to = self.raw.raft.leader_id;
                if to != self.opts.id && to != 0 {
                    tracing::info!("handed leadership to {to}; stopping");
                    break Ok(());
                }
                if self.clock.now() > deadline {
                    tracing::warn!("leadership handover did not complete in time; stopping");
                    break Ok(());
                }
            }
            let event = tokio::select! {
                biased;
                _ = shutdown.notified() => Event::Shutdown,
                _ = wait_until(self.live.campaign_at) => Event::Campaign,
                (index, r) = snapshots::wait_job(&mut snap_job) => Event::SnapshotWritten(index, r),
                n = proposals.recv_many(&mut batch, self.opts.max_batch), if handover.is_none() => {
                    if n == 0 { Event::ProposersGone } else { Event::Proposals }
                }
                Some((from, m)) = peers.recv() => Event::Peer(from, m),
                Some(m) = local.recv() => Event::Local(m),
                _ = ticker.tick() => Event::Tick,
                _ = wait_tick(&mut purge) => Event::Purge,
            };
            let step = match event {
                Event::Shutdown | Event::ProposersGone if handover.is_none() => {
                    match self.hand_over() {
                        Some(deadline) => {
                            handover = Some(deadline);
                            Ok(())
                        }
                        None => break Ok(()),
                    }
                }
                Event::Shutdown | Event::ProposersGone => break Ok(()),
                Event::Campaign => {
                    self.campaign_now();
                    Ok(())
                }
                Event::Proposals => {
                    self.propose(&mut batch);
                    Ok(())
                }
                Event::Peer(from, m) => {
                    self.peer_msg(from, m);
                    for _ in 0..PEER_BATCH {
                        match peers.try_recv() {
                            Ok((from, m)) => self.peer_msg(from, m),
                            Err(_) => break,
                        }
                    }
                    Ok(())
                }
                Event::Local(m) => {
                    self.local(m);
                    Ok(())
                }
                Event::Tick => self.tick(),
                Event::Purge => self.compact_and_purge(true),
                Event::SnapshotWritten(index, r) => {
                    snap_job = None;
                    self.snapshot_written(index, r)
                }
            };
            if let Err(e) = step.and_then(|_| self.on_ready()) {
                break Err(e);
            }
            if let Some(job) = self.maybe_snapshot(snap_job.is_some())? {
                snap_job = Some(job);
            }
            self.publish();
        };
        // Let a snapshot being written finish, so nothing of ours touches the dirs after
        // `stopped`.
        if let Some(job) = snap_job.take() {
            if let Ok((index, r)) = job.await {
                self.snapshot_written(index, r)?;
            }
        }
        self.publish();
        self.status.send_modify(|s| s.running = false);
        result
    }

    /// A frame from peer `from` (the transport checked who sent it).
    fn peer_msg(&mut self, from: u64, m: PeerMsg) {
        match m {
            PeerMsg::Raft(msg) => self.raft_msg(from, msg),
            PeerMsg::Probe(p) => self.on_probe(from, p),
            PeerMsg::Closed => self.leader_gone(from),
            PeerMsg::Forward(f) => self.propose_forwarded(from, f),
            PeerMsg::Touch(sessions) => {
                let _ = self.touches.try_send(Touches { from, sessions });
            }
        }
    }

    /// A Raft message from `from`, checked (`validate`) before raft-rs sees it.
    fn raft_msg(&mut self, from: u64, msg: Message) {
        self.live.heard.insert(from, self.clock.now());
        if self.members.waiting
            && msg.get_msg_type() == MessageType::MsgAppend
            && msg.index == 0
            && self.raw.store().is_empty()
        {
            // Entries from index 1 would be applied on an empty membership (the group's
            // initial configuration is not in the log): a joining server takes its state
            // and membership from a snapshot only.
            if self.members.dropped_appends == 0 {
                tracing::info!(
                    "membership: leader {from} sends entries from the start of its log; \
                     waiting for its snapshot instead"
                );
            }
            self.members.dropped_appends += 1;
            return;
        }
        let view = validate::LocalView {
            term: self.raw.raft.term,
            leader: self.raw.raft.leader_id,
            is_leader: self.is_leader(),
            last_index: self.raw.raft.raft_log.last_index(),
        };
        if let Err(why) = validate::check(&msg, &view) {
            self.live.refused_msgs += 1;
            // Logged at 1, 2, 4, 8, ...: a flood does not flood the log.
            if self.live.refused_msgs.is_power_of_two() {
                tracing::warn!(
                    "raft: dropped a message from peer {from}: {why} ({} dropped so far)",
                    self.live.refused_msgs
                );
            }
            return;
        }
        let heartbeat =
            (msg.get_msg_type() == MessageType::MsgHeartbeat).then_some((msg.term, msg.reject));
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!("raft: dropped a peer message: {e}");
        } else if let Some((term, reject)) = heartbeat {
            self.note_heartbeat(from, term, reject);
        }
    }

    /// A request from this process.
    fn local(&mut self, m: Local) {
        match m {
            Local::ReadBarrier(done) => self.read_barrier(done),
            Local::TouchLeader(sessions) => {
                let leader = self.raw.raft.leader_id;
                if leader == self.opts.id {
                    let _ = self.touches.try_send(Touches {
                        from: leader,
                        sessions,
                    });
                } else if leader != 0 {
                    self.transport.send_peer(leader, PeerMsg::Touch(sessions));
                }
            }
        }
    }

    /// One logical tick: raft-rs's clock, membership (probing while waiting to join, the
    /// start-up campaign and `reconcile` otherwise), transport reports, and giving up on
    /// what waited too long.
    fn tick(&mut self) -> Result<(), ConsensusError> {
        self.raw.tick();
        self.ticks += 1;
        if self.members.waiting {
            self.waiting_tick()?;
        } else {
            self.startup_campaign();
            self.reconcile();
        }
        for r in self.transport.take_reports() {
            match r {
                PeerReport::Unreachable(id) => self.raw.report_unreachable(id),
                PeerReport::SnapshotFailed(id) => {
                    self.raw.report_snapshot(id, raft::SnapshotStatus::Failure)
                }
            }
        }
        let now = self.clock.now();
        self.expire_proposals(now);
        self.expire_reads(now);
        Ok(())
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn wait_tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sorted and without duplicates (membership lists are compared and logged this way).
fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}
