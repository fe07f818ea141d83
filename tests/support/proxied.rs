//! An ensemble of real keeperd processes whose quorum links all go through a
//! [`Proxy`](super::proxy::Proxy), so that a test can cut, one way or both, and heal the
//! links between members.
//!
//! Routing through the proxy: member `x` listens on its own real port and reaches every
//! other member `y` at `y`'s proxy port. The ensemble's /zookeeper/config must list the
//! proxy ports too, or every member would redial what it publishes
//! (`transport.set_peers`): so the ensemble is first started with every zoo.cfg listing the
//! proxy ports (the members listen on them, and the leader publishes that list), then
//! stopped and started again behind the proxies with each member's own line on its real
//! port and a zoo.cfg older than the published list (a leader republishes only a newer
//! zoo.cfg, src/server/publish.rs).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::cluster::Cluster;
use super::ports::free_port_triples;
use super::proxy::Proxy;

/// `n` members whose quorum links all go through `proxy`.
pub struct Proxied {
    /// `cluster.ports` holds the proxy ports the members dial; each member's own zoo.cfg
    /// line names its real port.
    pub cluster: Cluster,
    pub proxy: Proxy,
    /// Length of each member's server.log when it started behind the proxy.
    log_start: Vec<usize>,
}

/// Sets `id`'s zoo.cfg modification time an hour back.
fn age_cfg(cluster: &Cluster, id: u64) {
    let path = cluster.nodes[(id - 1) as usize].dir.join("zoo.cfg");
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

impl Proxied {
    /// Starts `cluster` (from [`Cluster::prepare`]; its `extra` goes into every zoo.cfg)
    /// behind a proxy and waits until a leader has every member synced.
    pub async fn start(mut cluster: Cluster) -> Proxied {
        let n = cluster.nodes.len() as u64;
        let ids: Vec<u64> = (1..=n).collect();
        let extra = cluster.extra.clone();
        // Phase 1: every zoo.cfg lists the proxy ports; the leader publishes them.
        let public: String = cluster
            .ports
            .iter()
            .enumerate()
            .map(|(i, (q, e, _))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
            .collect();
        for &id in &ids {
            cluster.write_zoo_cfg(id, &format!("{public}{extra}\n"));
            cluster.node(id).start();
        }
        cluster.wait_leader(Duration::from_secs(20)).await;
        let last = cluster.ports[ids.len() - 1].0;
        for &id in &ids {
            cluster
                .wait_config(id, &format!(":{last}:"), Duration::from_secs(20))
                .await;
        }
        for &id in &ids {
            cluster.node(id).kill9();
        }
        // Phase 2: each member listens on a real port nobody else knows.
        let taken: BTreeSet<u16> = cluster
            .ports
            .iter()
            .flat_map(|&(q, e, c)| [q, e, c])
            .collect();
        let real: Vec<u16> = loop {
            let r: Vec<u16> = free_port_triples(ids.len()).iter().map(|t| t.0).collect();
            if r.iter().all(|p| !taken.contains(p)) {
                break r;
            }
        };
        let mut log_start = vec![];
        for &id in &ids {
            let servers: String = ids
                .iter()
                .map(|&m| {
                    let (q, e, _) = cluster.ports[(m - 1) as usize];
                    let q = if m == id { real[(m - 1) as usize] } else { q };
                    format!("server.{m}=127.0.0.1:{q}:{e}\n")
                })
                .collect();
            cluster.write_zoo_cfg(id, &format!("{servers}{extra}\n"));
            age_cfg(&cluster, id);
            log_start.push(cluster.log(id).len());
        }
        let members: Vec<(u64, u16, u16)> = ids
            .iter()
            .map(|&id| {
                let i = (id - 1) as usize;
                (id, cluster.ports[i].0, real[i])
            })
            .collect();
        let proxy = Proxy::start(&members).await;
        for &id in &ids {
            cluster.node(id).start();
        }
        let e = Proxied {
            cluster,
            proxy,
            log_start,
        };
        let quorum = ids.len().to_string();
        let synced = (ids.len() - 1).to_string();
        e.cluster
            .wait_membership(&quorum, &synced, Duration::from_secs(20))
            .await;
        e
    }

    /// What member `id` logged since it started behind the proxy.
    pub fn recent_log(&self, id: u64) -> String {
        let log = self.cluster.log(id);
        log[self.log_start[(id - 1) as usize].min(log.len())..].to_string()
    }

    /// No member redialled a peer elsewhere than through the proxy, and nobody published
    /// its own zoo.cfg over the proxy list.
    pub fn assert_routed(&self) {
        for id in 1..=self.cluster.nodes.len() as u64 {
            let log = self.recent_log(id);
            assert!(
                !log.contains(" moved to ") && !log.contains("publishing zoo.cfg"),
                "server {id} left the proxy routes:\n{log}"
            );
        }
        assert_eq!(self.proxy.unknown_connections(), 0);
    }

    /// Every member but `id`.
    pub fn others(&self, id: u64) -> Vec<u64> {
        (1..=self.cluster.nodes.len() as u64)
            .filter(|&m| m != id)
            .collect()
    }
}
