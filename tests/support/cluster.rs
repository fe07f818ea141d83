//! An ensemble of real keeperd processes ([`Node`]s) on loopback ports, formed from zoo.cfg
//! `server.N` lines: started all at once ([`Cluster::start`]) or member by member with
//! rolling zoo.cfg changes (the membership tests), and the waits for a leader, a
//! membership and a /zookeeper/config.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::connect;
use super::fourlw::{mntr, mode, wait_ready, Ready};
use super::ports::free_port_triples;
use super::process::Node;

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    /// Server `id` is `nodes[id - 1]`.
    pub nodes: Vec<Node>,
    /// (quorum, election, client) ports of each server, in the same order.
    pub ports: Vec<(u16, u16, u16)>,
    /// Lines every zoo.cfg gets besides the common ones (e.g. reconfigEnabled=true).
    pub extra: String,
}

impl Cluster {
    /// Directories `n1`..`nN` (each with `data/myid`) and distinct free ports for `n`
    /// servers, `extra` for their zoo.cfg; no zoo.cfg is written and nothing is started.
    pub fn prepare(n: u64, extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let ports = free_port_triples(n as usize);
        let mut nodes = vec![];
        for (i, (_, _, client)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tmp.path().join(format!("n{id}"));
            let data = dir.join("data");
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
            nodes.push(Node::new(id, &dir, *client));
        }
        Cluster {
            tmp,
            nodes,
            ports,
            extra: extra.to_string(),
        }
    }

    /// Writes zoo.cfg + myid for `n` participants (plus `extra` config lines) and starts all.
    pub fn start(n: u64, extra: &str) -> Cluster {
        Cluster::start_with_observers(n, 0, extra)
    }

    /// `n` participants (ids 1..=n) and `observers` observers (the ids after them).
    pub fn start_with_observers(n: u64, observers: u64, extra: &str) -> Cluster {
        let mut cluster = Cluster::prepare(n + observers, extra);
        let mut servers = String::new();
        for (i, (q, e, _)) in cluster.ports.iter().enumerate() {
            let role = if (i as u64) < n { "" } else { ":observer" };
            servers.push_str(&format!("server.{}=127.0.0.1:{q}:{e}{role}\n", i + 1));
        }
        for id in 1..=n + observers {
            let peer_type = if id > n { "peerType=observer\n" } else { "" };
            cluster.write_zoo_cfg(id, &format!("{servers}{peer_type}{extra}\n"));
        }
        for node in &mut cluster.nodes {
            node.start();
        }
        cluster
    }

    /// Writes server `id`'s zoo.cfg: the settings of every ensemble test, then `tail`.
    pub fn write_zoo_cfg(&self, id: u64, tail: &str) {
        let node = &self.nodes[(id - 1) as usize];
        std::fs::write(
            node.dir.join("zoo.cfg"),
            format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n{tail}",
                self.data_dir(id).display(),
                node.client_port,
            ),
        )
        .unwrap();
    }

    /// Writes server `id`'s zoo.cfg listing `members` (all participants) and `extra`.
    pub fn write_members_cfg(&self, id: u64, members: &[u64]) {
        let mut servers = String::new();
        for &m in members {
            let (q, e, _) = self.ports[(m - 1) as usize];
            servers.push_str(&format!("server.{m}=127.0.0.1:{q}:{e}\n"));
        }
        self.write_zoo_cfg(id, &format!("{servers}{}", self.extra));
    }

    /// Starts `ids`, each with a zoo.cfg listing `ids`; returns the leader they elect.
    pub async fn start_members(&mut self, ids: &[u64]) -> u64 {
        for &id in ids {
            self.write_members_cfg(id, ids);
            self.node(id).start();
        }
        self.wait_leader(Duration::from_secs(20)).await
    }

    /// Restarts `id` with a zoo.cfg listing `members` and waits until it serves.
    pub async fn restart_with(&mut self, id: u64, members: &[u64]) {
        self.node(id).stop();
        self.write_members_cfg(id, members);
        self.node(id).start();
        self.wait_serving(id, Duration::from_secs(20)).await;
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.nodes[(id - 1) as usize].dir.join("data")
    }

    pub fn port(&self, id: u64) -> u16 {
        self.nodes[(id - 1) as usize].client_port
    }

    pub fn log(&self, id: u64) -> String {
        self.nodes[(id - 1) as usize].log()
    }

    /// A connect string for every server.
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A connect string for servers `ids`.
    pub fn hosts(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|&id| self.nodes[(id - 1) as usize].addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `server.N=127.0.0.1:quorum:election;127.0.0.1:client`, what `reconfig -add` sends.
    pub fn reconfig_line(&self, id: u64) -> String {
        let (q, e, c) = self.ports[(id - 1) as usize];
        format!("server.{id}=127.0.0.1:{q}:{e};127.0.0.1:{c}")
    }

    pub fn dump_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== node {} =====\n{}", n.id, n.log()))
            .collect()
    }

    /// Waits until server `id` serves (`srvr` names a mode); panics with every log after
    /// `limit`.
    pub async fn wait_serving(&self, id: u64, limit: Duration) {
        wait_ready(self.port(id), Ready::Serving, limit, || {
            format!("server {id}:\n{}", self.dump_logs())
        })
        .await;
    }

    /// Waits until every running node serves and exactly one says `Mode: leader`.
    pub async fn wait_leader(&self, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let mut leaders = vec![];
            let mut serving = 0;
            let mut running = 0;
            for n in self.nodes.iter().filter(|n| n.child.is_some()) {
                running += 1;
                if let Some(mode) = mode(n.client_port).await {
                    serving += 1;
                    if mode == "leader" {
                        leaders.push(n.id);
                    }
                }
            }
            if leaders.len() == 1 && serving == running {
                return leaders[0];
            }
            if Instant::now() > deadline {
                panic!(
                    "no single leader within {limit:?} (leaders {leaders:?}, {serving}/{running} \
                     serving)\n{}",
                    self.dump_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server among `ids` whose mntr says `zk_server_state leader`, if any.
    pub async fn leader_among(&self, ids: &[u64]) -> Option<u64> {
        for &id in ids {
            let m = mntr(self.port(id)).await;
            if m.get("zk_server_state").map(String::as_str) == Some("leader") {
                return Some(id);
            }
        }
        None
    }

    /// Waits until one of `ids` leads (mntr `zk_server_state`) with `quorum` voters and
    /// `synced` synced followers; servers outside `ids` (down, removed, or still joining)
    /// are not looked at. Returns the leader.
    pub async fn wait_leader_among(
        &self,
        ids: &[u64],
        quorum: &str,
        synced: &str,
        limit: Duration,
    ) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let mut seen = vec![];
            for &id in ids {
                let m = mntr(self.port(id)).await;
                let get = |k: &str| m.get(k).cloned().unwrap_or_default();
                if get("zk_server_state") == "leader"
                    && get("zk_quorum_size") == quorum
                    && get("zk_synced_followers") == synced
                {
                    return id;
                }
                seen.push(format!(
                    "{id}: {} quorum {} synced {}",
                    get("zk_server_state"),
                    get("zk_quorum_size"),
                    get("zk_synced_followers")
                ));
            }
            if Instant::now() > deadline {
                panic!(
                    "no leader among {ids:?} with quorum {quorum} and {synced} synced followers \
                     within {limit:?}: {seen:?}\n{}",
                    self.dump_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the leader's mntr says `quorum` voters and `synced` synced followers;
    /// returns the leader.
    pub async fn wait_membership(&self, quorum: &str, synced: &str, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let leader = self.wait_leader(limit).await;
            let m = mntr(self.port(leader)).await;
            if m.get("zk_quorum_size").map(String::as_str) == Some(quorum)
                && m.get("zk_synced_followers").map(String::as_str) == Some(synced)
            {
                return leader;
            }
            if Instant::now() > deadline {
                panic!(
                    "leader {leader}: want quorum {quorum} synced {synced}, mntr {m:?}\n{}",
                    self.dump_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// /zookeeper/config as server `id` serves it, after a sync (through a session of
    /// 15 s).
    pub async fn config_of(&self, id: u64) -> String {
        let c = connect(
            &self.nodes[(id - 1) as usize].addr(),
            Duration::from_secs(15),
        )
        .await;
        c.sync("/zookeeper/config").await.unwrap();
        let (data, _) = c.get_data("/zookeeper/config").await.unwrap();
        String::from_utf8(data).unwrap()
    }

    /// Waits until server `id`'s /zookeeper/config contains `what`.
    pub async fn wait_config(&self, id: u64, what: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let config = self.config_of(id).await;
            if config.contains(what) {
                return config;
            }
            if Instant::now() > deadline {
                panic!(
                    "server {id}: /zookeeper/config lacks {what:?}: {config:?}\n{}",
                    self.dump_logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
