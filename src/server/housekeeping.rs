//! Housekeeping of a running server: session expiry (the leader proposes closeSession for
//! sessions not heard from within their timeout), routing followers' session liveness to the
//! leader, and reaping empty containers and expired TTL nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use crate::consensus::Proposer;
use crate::tree::Txn;

use super::{now_ms, Out, Shared};

/// Proposes closeSession for sessions not heard from within their timeout, and closes their
/// connections once it is applied. (In an ensemble only the leader runs this.)
pub(super) async fn expire_sessions(shared: Arc<Shared>, proposer: Proposer) {
    let tick = Duration::from_millis((shared.config().tick_time_ms as u64 / 2).clamp(10, 1000));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = !shared.config().is_distributed();
    loop {
        interval.tick().await;
        if !shared.expires_sessions() {
            was_leader = false;
            *shared.leader_since() = None;
            continue;
        }
        if !was_leader {
            *shared.leader_since() = Some(Instant::now());
            // A new leader has not heard the other servers' clients yet: like ZooKeeper, it
            // gives every session a full timeout from now.
            was_leader = true;
            shared.liveness().touch_all(Instant::now());
            continue;
        }
        let expired = shared.liveness().expired(Instant::now());
        for session_id in expired {
            if !shared.expiring().insert(session_id) {
                continue;
            }
            info!(
                session = format_args!("0x{:x}", session_id),
                "session expired"
            );
            let Ok(rx) = proposer.propose(Txn::CloseSession { session_id }) else {
                return;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _ = rx.await;
                shared.expiring().remove(&session_id);
                let conns = shared.conns();
                if let Some(h) = conns
                    .by_session
                    .get(&session_id)
                    .and_then(|id| conns.all.get(id))
                {
                    let _ = h.out.send(Out::Close);
                }
            });
        }
    }
}

/// Ensemble: followers report the sessions their clients were heard from to the leader every
/// tickTime/2; the leader feeds reports (its own included) into its expiry clock.
pub(super) async fn route_touches(shared: Arc<Shared>) {
    if !shared.config().is_distributed() {
        return;
    }
    let Some(raft) = shared.raft().cloned() else {
        return;
    };
    let mut inbound = raft.take_touches();
    let every = Duration::from_millis((shared.config().tick_time_ms as u64 / 2).clamp(10, 1000));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let batch: Vec<i64> = shared.touched().drain().collect();
                if !batch.is_empty() && !raft.is_leader() {
                    raft.touch_leader(batch);
                }
            }
            Some(t) = async {
                match inbound.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if raft.is_leader() {
                    let now = Instant::now();
                    let mut live = shared.liveness();
                    for s in t.sessions {
                        live.touch(s, now);
                    }
                }
            }
        }
    }
}

/// Ensemble: closes every client connection once this member has not been serving (no
/// leader known, or a leader that does not hear it: `RaftStatus::serving`) for tickTime, and
/// again every tickTime while that lasts. ZooKeeper's follower closes its clients the moment
/// it loses its leader; keeperd usually has a new leader within tens of milliseconds
/// (docs/replication.md), so a failover alone does not cut clients off, while a member cut
/// off from its leader (which would answer reads from a replica that no longer moves, for
/// sessions the leader may already have expired) sends its clients to another server.
pub(super) async fn close_when_not_serving(shared: Arc<Shared>) {
    if !shared.config().is_distributed() {
        return;
    }
    let grace = Duration::from_millis(shared.config().tick_time_ms as u64);
    let mut interval = tokio::time::interval(
        (grace / 8).clamp(Duration::from_millis(5), Duration::from_millis(250)),
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since: Option<Instant> = None;
    loop {
        interval.tick().await;
        if shared.serving() {
            since = None;
            continue;
        }
        let now = Instant::now();
        let start = *since.get_or_insert(now);
        if now.duration_since(start) < grace {
            continue;
        }
        since = Some(now);
        let conns = shared.conns();
        if conns.all.is_empty() {
            continue;
        }
        info!(
            connections = conns.all.len(),
            "not serving for {grace:?} (no leader, or the leader does not hear this server): \
             closing client connections"
        );
        for h in conns.all.values() {
            let _ = h.out.send(Out::Close);
        }
    }
}

/// Periodically proposes deleting empty containers and expired TTL nodes
/// (znode.container.checkIntervalMs, default 60 s, like ZooKeeper's ContainerManager).
pub(super) async fn reap_nodes(shared: Arc<Shared>, proposer: Proposer) {
    let every = shared
        .config()
        .extra
        .get("znode.container.checkIntervalMs")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(60_000)
        .max(10);
    let mut interval = tokio::time::interval(Duration::from_millis(every));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        if !shared.expires_sessions() {
            continue;
        }
        let now = now_ms();
        let paths = shared.state().tree.reap_candidates(now);
        if paths.is_empty() {
            continue;
        }
        debug!(count = paths.len(), "reaping containers / TTL nodes");
        let Ok(rx) = proposer.propose(Txn::Reap {
            time_ms: now,
            paths,
        }) else {
            return;
        };
        let _ = rx.await;
    }
}
