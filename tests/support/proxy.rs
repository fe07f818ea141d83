//! A TCP proxy in front of every member's quorum port, for partition tests: each link
//! `a -> b` (what member `a` sends to member `b`) can be cut, delayed and healed on its own.
//!
//! keeperd dials every other member once, and a connection carries only what the dialler
//! sends (docs/replication.md), so the proxy of member `b` tells the links apart by the
//! first frame of each connection, the Hello (`u32 len | u8 version | u8 type 1 | u64 from |
//! u64 to`): one public port per member, whatever the other members' zoo.cfg say.
//!
//! - [`Link::Open`]: bytes are copied as they come.
//! - [`Link::Delay`]: each chunk is written `d` after it was read (order kept).
//! - [`Link::Blackhole`]: a silent partition: the connections stay open, everything read is
//!   thrown away, new connections are accepted and get nothing through. Healing closes them
//!   (their byte streams lost data mid-frame), so the nodes reconnect.
//! - [`Link::Refuse`]: connections are closed at once, new ones closed on accept (a peer
//!   that resets).
//!
//! Every task runs on the test's tokio runtime; dropping the [`Proxy`] stops them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What a link does with what its sender writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Open,
    Delay(Duration),
    Blackhole,
    Refuse,
}

/// The Hello frame: u32 length (18) | version 1 | type 1 | u64 from | u64 to.
const HELLO_LEN: usize = 4 + 18;

#[derive(Default)]
struct State {
    /// Links not `Open`, by (from, to).
    links: HashMap<(u64, u64), Link>,
    /// One watch per link, to tell its running connections that the link changed.
    notify: HashMap<(u64, u64), watch::Sender<Link>>,
    /// Connections that could not be told apart (no Hello within 5 s).
    unknown: u64,
}

impl State {
    fn link(&self, from: u64, to: u64) -> Link {
        self.links.get(&(from, to)).copied().unwrap_or(Link::Open)
    }

    fn watch(&mut self, from: u64, to: u64) -> watch::Receiver<Link> {
        let link = self.link(from, to);
        self.notify
            .entry((from, to))
            .or_insert_with(|| watch::channel(link).0)
            .subscribe()
    }
}

/// The proxies of one ensemble: member `id` is reached at [`Proxy::public`]`(id)`, which
/// forwards to the member's real quorum port.
pub struct Proxy {
    state: Arc<Mutex<State>>,
    public: HashMap<u64, u16>,
    tasks: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on each `(id, public port)` of `members` and forwards to `real` port of the
    /// same id (127.0.0.1 only).
    pub async fn start(members: &[(u64, u16, u16)]) -> Proxy {
        let state = Arc::new(Mutex::new(State::default()));
        let mut tasks = vec![];
        let mut public = HashMap::new();
        for &(id, public_port, real_port) in members {
            let listener = TcpListener::bind(("127.0.0.1", public_port))
                .await
                .unwrap_or_else(|e| panic!("proxy for {id} on {public_port}: {e}"));
            public.insert(id, public_port);
            tasks.push(tokio::spawn(accept_loop(
                listener,
                id,
                real_port,
                state.clone(),
            )));
        }
        Proxy {
            state,
            public,
            tasks,
        }
    }

    /// The port other members dial to reach `id`.
    pub fn public(&self, id: u64) -> u16 {
        self.public[&id]
    }

    /// Sets the link `from -> to` (what `from` sends to `to`).
    pub fn set(&self, from: u64, to: u64, link: Link) {
        let mut s = self.state.lock().unwrap();
        if link == Link::Open {
            s.links.remove(&(from, to));
        } else {
            s.links.insert((from, to), link);
        }
        if let Some(tx) = s.notify.get(&(from, to)) {
            tx.send_replace(link);
        }
    }

    /// Cuts both directions between every member of `side` and every member of `rest`.
    pub fn partition(&self, side: &[u64], rest: &[u64], link: Link) {
        for &a in side {
            for &b in rest {
                self.set(a, b, link);
                self.set(b, a, link);
            }
        }
    }

    /// Every link open again.
    pub fn heal(&self) {
        let keys: Vec<(u64, u64)> = self.state.lock().unwrap().links.keys().copied().collect();
        for (from, to) in keys {
            self.set(from, to, Link::Open);
        }
    }

    /// Connections whose first frame was not a Hello (keeperd always sends one first).
    pub fn unknown_connections(&self) -> u64 {
        self.state.lock().unwrap().unknown
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, to: u64, real_port: u16, state: Arc<Mutex<State>>) {
    // The connection tasks end with this one (an aborted accept loop drops `guard`).
    struct AbortAll(Vec<JoinHandle<()>>);
    impl Drop for AbortAll {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let mut guard = AbortAll(vec![]);
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        guard.0.retain(|t| !t.is_finished());
        guard.0.push(tokio::spawn(connection(
            inbound,
            to,
            real_port,
            state.clone(),
        )));
    }
}

/// One connection to member `to`: reads the Hello, then carries the bytes as the link
/// `from -> to` says, until either side closes or the link is refused or healed from a
/// blackhole.
async fn connection(mut inbound: TcpStream, to: u64, real_port: u16, state: Arc<Mutex<State>>) {
    let _ = inbound.set_nodelay(true);
    let mut hello = [0u8; HELLO_LEN];
    let read = tokio::time::timeout(Duration::from_secs(5), inbound.read_exact(&mut hello)).await;
    if !matches!(read, Ok(Ok(_))) || hello[5] != 1 {
        state.lock().unwrap().unknown += 1;
        return;
    }
    let from = u64::from_be_bytes(hello[6..14].try_into().unwrap());
    let mut link = state.lock().unwrap().watch(from, to);
    let now = *link.borrow_and_update();
    match now {
        Link::Refuse => return,
        Link::Blackhole => {
            blackhole(&mut inbound, &mut link).await;
            return;
        }
        Link::Open | Link::Delay(_) => {}
    }
    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", real_port)).await else {
        return;
    };
    let _ = outbound.set_nodelay(true);
    if outbound.write_all(&hello).await.is_err() {
        return;
    }
    let (mut in_read, in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    // What the sender writes goes through a queue stamped with its arrival time, so that a
    // delay keeps the order of the bytes.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if out_write.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    // The receiver never sends data back; its close must reach the sender.
    let back = async move {
        let mut in_write = in_write;
        let mut buf = [0u8; 512];
        loop {
            match out_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if in_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let forward = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut current = now;
        loop {
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let next = *link.borrow_and_update();
                    match (current, next) {
                        (_, Link::Refuse) => return,
                        // Healed after losing bytes: the stream is broken mid-frame.
                        (Link::Blackhole, Link::Open | Link::Delay(_)) => return,
                        _ => {}
                    }
                    current = next;
                }
                read = in_read.read(&mut buf) => {
                    let n = match read {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let at = match current {
                        Link::Open => Instant::now(),
                        Link::Delay(d) => Instant::now() + d,
                        Link::Blackhole | Link::Refuse => continue,
                    };
                    if tx.send((at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = forward => {}
        _ = back => {}
        _ = writer => {}
    }
}

/// Accepts and discards everything until the link changes (then closes: the caller drops
/// the stream).
async fn blackhole(inbound: &mut TcpStream, link: &mut watch::Receiver<Link>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() || *link.borrow_and_update() != Link::Blackhole {
                    return;
                }
            }
            read = inbound.read(&mut buf) => {
                if matches!(read, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}
