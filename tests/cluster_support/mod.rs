//! Real keeperd processes on loopback ports forming an ensemble from zoo.cfg server.N lines,
//! for the cluster tests: start, kill -9, SIGSTOP/SIGCONT, restart, and four-letter words.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const KEEPERD: &str = env!("CARGO_BIN_EXE_keeperd");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` (quorum, election, client) port triples, all distinct: every port stays bound until
/// all are chosen (a port released at once may be handed out again by the next bind, and
/// two servers sharing one fail to start or make /zookeeper/config invalid).
pub fn free_port_triples(n: usize) -> Vec<(u16, u16, u16)> {
    let listeners: Vec<std::net::TcpListener> = (0..3 * n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    ports.chunks(3).map(|c| (c[0], c[1], c[2])).collect()
}

pub struct Node {
    pub id: u64,
    pub dir: PathBuf,
    pub client_port: u16,
    pub child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(KEEPERD)
            .args(["start-foreground", "zoo.cfg"])
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (what `keeperd stop` sends), then waits up to 10 s for the process to end
    /// before killing it.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let Some(mut c) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Writes zoo.cfg + myid for `n` participants (plus `extra` config lines) and starts all.
    pub fn start(n: u64, extra: &str) -> Cluster {
        Cluster::start_with_observers(n, 0, extra)
    }

    /// `n` participants (ids 1..=n) and `observers` observers (the ids after them).
    pub fn start_with_observers(n: u64, observers: u64, extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let total = n + observers;
        let ports = free_port_triples(total as usize);
        let mut servers = String::new();
        for (i, (q, e, _)) in ports.iter().enumerate() {
            let role = if (i as u64) < n { "" } else { ":observer" };
            servers.push_str(&format!("server.{}=127.0.0.1:{q}:{e}{role}\n", i + 1));
        }
        let mut nodes = vec![];
        for (i, (_, _, client)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = tmp.path().join(format!("n{id}"));
            let data = dir.join("data");
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
            let peer_type = if id > n { "peerType=observer\n" } else { "" };
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                     clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{servers}{peer_type}\
                     {extra}\n",
                    data.display()
                ),
            )
            .unwrap();
            nodes.push(Node {
                id,
                dir,
                client_port: *client,
                child: None,
            });
        }
        for node in &mut nodes {
            node.start();
        }
        Cluster { tmp, nodes }
    }

    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn dump_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("===== node {} =====\n{}", n.id, n.log()))
            .collect()
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
}

/// A standalone server in `dir` (zoo.cfg there, log in `dir/server.log`) on a free client
/// port, its dataDir at `data_dir`, with `extra` zoo.cfg lines; not started.
pub fn standalone(dir: &Path, data_dir: &Path, extra: &str) -> Node {
    let port = free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n{extra}\n",
            data_dir.display()
        ),
    )
    .unwrap();
    Node {
        id: 1,
        dir: dir.to_path_buf(),
        client_port: port,
        child: None,
    }
}

/// Waits until the server on `port` answers ruok; panics with `dir/server.log` after 20 s.
pub async fn wait_serving(port: u16, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if four_letters(port, "ruok").await.as_deref() == Some("imok") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    panic!("server did not come up within 20 s; log:\n{log}");
}

pub async fn four_letters(port: u16, word: &str) -> Option<String> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(word.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()
        .flatten()
}

/// `Mode:` of a serving node (None when not reachable or not serving).
pub async fn mode(port: u16) -> Option<String> {
    let srvr = four_letters(port, "srvr").await?;
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_string)
}

pub async fn mntr(port: u16) -> std::collections::HashMap<String, String> {
    four_letters(port, "mntr")
        .await
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The tree digest a node reports through `hash` (last line's value).
pub async fn digest(port: u16) -> Option<String> {
    let out = four_letters(port, "hash").await?;
    out.lines()
        .last()
        .and_then(|l| l.split(": ").nth(1))
        .map(str::to_string)
}

pub fn data_dir(node: &Node) -> &Path {
    &node.dir
}

/// A client of `addr` with `session_timeout`, retrying for 20 s while the servers start.
pub async fn connect(addr: &str, session_timeout: Duration) -> zookeeper_client::Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match zookeeper_client::Client::connector()
            .with_session_timeout(session_timeout)
            .with_server_version(3, 8, 0)
            .connect(addr)
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
