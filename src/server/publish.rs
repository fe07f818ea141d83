//! Publishing zoo.cfg's membership: the leader of an ensemble writes its server list to
//! /zookeeper/config through the log, unless the ensemble's configuration changed after
//! zoo.cfg was last edited.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tracing::info;

use crate::config::Config;
use crate::consensus::Proposer;
use crate::tree::Txn;

use super::{now_ms, Shared};

/// Ensemble: the leader writes its zoo.cfg's membership to /zookeeper/config, in ZooKeeper's
/// dynamic-config format (`server.N=host:quorum:election:role;clientAddr:clientPort` lines,
/// then `version=<hex>`), through the log so every server serves the same bytes; the Raft
/// group then follows /zookeeper/config (see `consensus::node` reconcile).
///
/// Only a zoo.cfg edited after the last membership change counts. A published list is
/// stamped with its zoo.cfg's modification time (the txn's time, so /zookeeper/config's
/// mtime), a reconfig with the leader's clock; a leader publishes only a zoo.cfg modified
/// later than that. So during a rolling restart a leader still running with the old server
/// list does not undo what a leader with the new list did (its file is older), an edit made
/// before the ensemble's first publish still wins over it, and a reconfig is not undone by
/// a zoo.cfg that predates it.
pub(super) async fn publish_config(shared: Arc<Shared>, proposer: Proposer) {
    if !shared.config().is_distributed() {
        return;
    }
    let want = shared.config().membership_lines().join("\n");
    let edited = config_mtime_ms(shared.config());
    let every = Duration::from_millis((shared.config().tick_time_ms as u64).clamp(10, 100));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told = false;
    loop {
        interval.tick().await;
        if !shared.expires_sessions() {
            continue;
        }
        let (current, stat) = shared.state().tree.config();
        if current == want {
            continue;
        }
        if !current.is_empty() && stat.mtime >= edited {
            if !told {
                info!(
                    "membership: zoo.cfg lists other servers than the ensemble's configuration \
                     (/zookeeper/config), but was edited before its last change: keeping the \
                     ensemble's"
                );
                told = true;
            }
            continue;
        }
        info!("membership: publishing zoo.cfg's server list to /zookeeper/config");
        let Ok(rx) = proposer.propose(Txn::SetConfig {
            // The file's age, not now: what the next leader compares its own zoo.cfg with.
            time_ms: if edited == i64::MAX { now_ms() } else { edited },
            data: want.clone().into_bytes(),
        }) else {
            return;
        };
        // Wait for it (or for the leadership to go) before looking again.
        let _ = rx.await;
    }
}

/// When zoo.cfg (or its dynamic file, whichever is newer) was last modified, in ms since
/// the epoch; i64::MAX without a file (a config built in memory always counts as new).
fn config_mtime_ms(config: &Config) -> i64 {
    let files = config
        .source
        .iter()
        .chain(config.dynamic_config_file.iter());
    let newest = files
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max();
    match (&config.source, newest) {
        (None, _) => i64::MAX,
        (Some(_), None) => 0,
        (Some(_), Some(t)) => t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    }
}
