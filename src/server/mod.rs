//! The tokio client edge: accepting connections, the session handshake, per-session request
//! ordering, watch delivery, session expiry and container/TTL housekeeping.
//!
//! Shape of one server process:
//! ```text
//! accept loop ── connection task (reader) ──> responder task ──> writer task ──> socket
//!                      │ writes: Proposer::propose      ^ replies in request order
//!                      v                                │
//!               consensus (raft-rs, 1 voter if alone)   │
//!                      │ committed, in log order        │
//!                      v                                │
//!               Applier: tree.apply + watch triggers ───┘ notifications go straight to the
//!                                                          writer, under the state lock
//! ```
//! A session's replies leave in request order because one responder per connection handles
//! its requests in order: a read waits for that session's earlier writes to be applied. A
//! notification is queued while the state lock is held by apply, so a client always sees the
//! event before any reply that reflects the change.
//!
//! Where things are: this file holds startup (`start`, recovery, the consensus options), the
//! accept loop and the connection table's types; `shared` the state every task shares, with
//! its lock order; `connection` (and its `reader`, `responder`, `writer`) one client
//! connection; `applier` the `StateMachine` (the Applier above); `housekeeping` session
//! expiry and container/TTL reaping; `publish` writing zoo.cfg's membership to
//! /zookeeper/config; `dynamic` the dynamic config file; `fourlw` the four-letter words.

mod applier;
mod connection;
mod console;
mod dynamic;
mod fourlw;
mod housekeeping;
pub mod http;
mod publish;
pub mod sasl;
pub mod session;
mod shared;
pub mod stats;
pub mod systemd;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::consensus::peer_auth::QuorumSecret;
use crate::consensus::{self, Proposer, RaftHandle, RaftOptions};
use crate::proto::Id;
use crate::tree::DataTree;
use crate::watch::WatchRegistry;

pub use self::shared::Shared;

use self::applier::Applier;
use self::stats::ConnStats;

/// The replicated tree and this server's watches, behind one lock so that registering a watch
/// during a read and triggering it during apply can never interleave.
pub struct State {
    pub tree: DataTree,
    pub watches: WatchRegistry,
}

/// What goes to a connection's writer task.
#[derive(Debug)]
pub enum Out {
    Frame(Bytes),
    /// Flush what was queued before and close the socket.
    Close,
}

/// A live client connection, as the rest of the server sees it.
pub struct ConnHandle {
    pub conn_id: u64,
    pub remote: SocketAddr,
    pub session_id: i64,
    pub timeout_ms: i32,
    pub stats: Arc<ConnStats>,
    pub out: mpsc::UnboundedSender<Out>,
    /// The client asked for closeSession: its reply must go out before the socket closes.
    pub closing: std::sync::atomic::AtomicBool,
    /// The identities the connection has proven (ip; digest/super after addauth): a watch
    /// event goes out only if they may READ the znode it is about.
    auth: Mutex<Arc<Vec<Id>>>,
    /// Bytes of frames queued for the socket and not written yet. While it is over
    /// `REPLY_BACKLOG_LIMIT` the reader reads no request and the responder answers no read:
    /// a client that does not read its replies is held back by TCP, not by our memory.
    pub backlog: std::sync::atomic::AtomicUsize,
    /// Signalled when the backlog shrinks or a reply goes out.
    pub drained: tokio::sync::Notify,
    /// The server is stopping: read no more requests, answer those already accepted, then
    /// close (a write in flight is answered instead of ending in ConnectionLoss).
    pub quit: tokio::sync::Notify,
}

/// See `ConnHandle::backlog`: a few large replies (1 MB znodes) in flight per connection.
pub const REPLY_BACKLOG_LIMIT: usize = 4 << 20;

/// How long a stopping server waits for its connections to answer what they accepted.
const DRAIN: Duration = Duration::from_secs(2);

impl ConnHandle {
    /// Queues a frame for the socket, counted in the backlog.
    pub fn send_frame(&self, frame: Bytes) -> bool {
        let len = frame.len();
        self.backlog
            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        let sent = self.out.send(Out::Frame(frame)).is_ok();
        if !sent {
            self.backlog
                .fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
        }
        sent
    }

    /// Waits (bounded by nothing but the client) until `ready()` holds, re-checking whenever
    /// something drains and at least every few milliseconds (the global outstanding count
    /// also falls when other connections are answered).
    pub async fn wait_until(&self, ready: impl Fn() -> bool) {
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), notified).await;
        }
    }

    pub fn backlog_over_limit(&self) -> bool {
        self.backlog.load(std::sync::atomic::Ordering::Relaxed) > REPLY_BACKLOG_LIMIT
    }

    /// The identities the connection has proven. A leaf lock; watch delivery takes it under
    /// `state` and `conns` (see the lock order on `Shared`).
    pub fn auth(&self) -> MutexGuard<'_, Arc<Vec<Id>>> {
        self.auth.lock().expect("conn auth lock")
    }
}

/// Connections by session and by connection id.
#[derive(Default)]
pub struct Conns {
    /// Every accepted client connection (including ones still in the handshake).
    pub all: HashMap<u64, Arc<ConnHandle>>,
    /// The connection currently holding each session.
    pub by_session: HashMap<i64, u64>,
    /// Connections per client IP, for maxClientCnxns.
    pub per_ip: HashMap<IpAddr, u32>,
    /// Client connections admitted and not yet released (all addresses).
    pub total: usize,
}

/// Wall-clock milliseconds since the epoch (stamped into txns by the proposer).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A server started by [`start`]: where it listens, and how to stop it.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    /// The secure client port (`secureClientPort`), when configured.
    pub secure_addr: Option<SocketAddr>,
    pub shared: Arc<Shared>,
    pub raft: RaftHandle,
    /// The AdminServer and /metrics ports, where zoo.cfg enables them.
    pub http: http::HttpPorts,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        self.http.stop();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
        self.raft.shutdown();
        self.raft.stopped().await;
    }
}

/// The consensus options this server's zoo.cfg asks for. In an ensemble the voters are the
/// participant server.N lines, observers are Raft learners (the membership the leader
/// reconciles the group towards; every server.N line is a peer address, member or not),
/// and time follows ZooKeeper's
/// settings: one Raft tick is tickTime/2 (a heartbeat each, like ZooKeeper's pings) and a
/// follower that hears nothing for syncLimit x tickTime starts an election (see
/// docs/replication.md).
/// This server's id in the consensus group: myid, 1 for a standalone server.
pub fn node_id(config: &Config) -> u64 {
    config.my_id.filter(|&id| id != 0).unwrap_or(1)
}

fn raft_options(
    config: &Config,
    quorum_secret: Option<QuorumSecret>,
    quorum_tls: Option<crate::tls::quorum::QuorumTls>,
) -> RaftOptions {
    let id = node_id(config);
    let base = RaftOptions {
        id,
        voters: vec![id],
        data_dir: config.data_dir.clone(),
        log_dir: config.data_log_dir.clone(),
        snap_count: config.snap_count,
        snap_retain_count: config.autopurge_snap_retain_count as usize,
        purge_interval_hours: config.autopurge_purge_interval_hours as u64,
        force_sync: config.force_sync,
        ..RaftOptions::standalone(config.data_dir.clone())
    };
    if !config.is_distributed() {
        return base;
    }
    use crate::config::PeerType;
    let ids = |t: PeerType| -> Vec<u64> {
        config
            .servers
            .iter()
            .filter(|s| s.peer_type == t)
            .map(|s| s.id)
            .collect()
    };
    let peer_listen = config
        .my_server()
        .filter(|_| config.quorum_listen_on_all_ips)
        .map(|s| SocketAddr::from(([0, 0, 0, 0], s.quorum_port)));
    RaftOptions {
        voters: ids(PeerType::Participant),
        learners: ids(PeerType::Observer),
        peers: config
            .servers
            .iter()
            .map(|s| (s.id, format!("{}:{}", s.host, s.quorum_port)))
            .collect(),
        peer_listen,
        tick: Duration::from_millis((config.tick_time_ms as u64 / 2).max(1)),
        heartbeat_ticks: 1,
        election_ticks: (2 * config.sync_limit as usize).max(3),
        // Membership follows zoo.cfg: an empty new server waits to be added, the leader
        // grows/shrinks the group to its zoo.cfg one change at a time (docs/operations.md).
        follow_config: true,
        quorum_secret,
        quorum_tls,
        ..base
    }
}

/// The client port's listening socket. `backlog` is clientPortListenBacklog, the kernel's
/// queue of connections not yet accepted; -1 (unset, as in ZooKeeper) leaves it at 1024.
fn listen(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(
        u32::try_from(backlog)
            .ok()
            .filter(|&b| b > 0)
            .unwrap_or(1024),
    )
}

/// Binds the client port of `config` (0 picks a free port) and starts serving in the
/// background.
pub async fn start(config: Config) -> std::io::Result<RunningServer> {
    let ip = config
        .client_port_address
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let listener = listen(
        SocketAddr::new(ip, config.client_port),
        config.client_port_listen_backlog,
    )?;
    let local_addr = listener.local_addr()?;
    // secureClientPort: TLS, then the same client protocol (checked when zoo.cfg was
    // parsed; built again here, where it is used).
    let secure = match (config.secure_client_socket_addr(), &config.client_tls) {
        (Some(addr), Some(opts)) => {
            let tls = crate::tls::client_port_config(opts).map_err(std::io::Error::other)?;
            let listener = listen(addr, config.client_port_listen_backlog)?;
            Some((listener, tokio_rustls::TlsAcceptor::from(tls)))
        }
        _ => None,
    };
    let secure_addr = match &secure {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    info!("{}", config.four_letter_whitelist.describe());
    let (tx, rx) = oneshot::channel::<()>();
    // Checked when zoo.cfg was parsed; read once more here, where it is used (peers, and
    // the session passwords).
    let quorum = match &config.quorum_secret_file {
        Some(path) => Some(QuorumSecret::from_file(path).map_err(std::io::Error::other)?),
        None => None,
    };
    // sslQuorum: checked when zoo.cfg was parsed; built again here, where it is used.
    let quorum_tls = match &config.quorum_tls {
        Some(opts) => Some(
            crate::tls::quorum::QuorumTls::new(opts, config.quorum_tls_require_server_id)
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let mut opts = raft_options(&config, quorum.clone(), quorum_tls);
    // ZooKeeper's dataDir with no keeperd state yet: its data becomes the first state.
    let seed_config = config.clone();
    opts.seed = tokio::task::spawn_blocking(move || crate::import::startup_seed(&seed_config))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let secret =
        session::session_secret(quorum.as_ref(), config.is_distributed(), &config.data_dir)?;
    let shared = Arc::new(Shared::new(config, secret));
    // Recovery (snapshot + log replay) blocks until the tree is complete: clients are
    // accepted only afterwards, so nobody sees a half-replayed tree.
    let applier = Applier::new(shared.clone());
    let started = Instant::now();
    let (proposer, raft) =
        tokio::task::spawn_blocking(move || consensus::spawn_raft(applier, opts))
            .await
            .map_err(std::io::Error::other)?
            .map_err(|e| std::io::Error::other(e.to_string()))?;
    {
        // Restored sessions get a full timeout from now to reconnect, as in ZooKeeper.
        let state = shared.state();
        shared.track_sessions(&state.tree);
        info!(
            znodes = state.tree.node_count(),
            sessions = state.tree.sessions().len(),
            zxid = format_args!("0x{:x}", state.tree.last_zxid()),
            ms = started.elapsed().as_millis() as u64,
            "data loaded"
        );
    }
    // Recovery (and above all an import from ZooKeeper's files) frees far more than it
    // keeps; glibc holds freed heap pages unless asked to give them back. (The keeperd
    // binary allocates with jemalloc, whose background thread returns them itself; this is
    // for the library under glibc malloc, e.g. the in-process test servers.)
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
    shared.set_raft(raft.clone());
    let task = tokio::spawn(serve(shared.clone(), listener, secure, proposer, async {
        let _ = rx.await;
    }));
    let http = http::start(&shared, local_addr).await;
    Ok(RunningServer {
        local_addr,
        secure_addr,
        shared,
        raft,
        http,
        shutdown: Some(tx),
        task,
    })
}

/// Binds the client port from `config` and serves until SIGINT/SIGTERM.
pub async fn run_until_signal(config: Config) -> std::io::Result<()> {
    let server = start(config).await?;
    info!(addr = %server.local_addr, "serving clients");
    let notifier = systemd::announce(server.shared.clone());
    if let Some(addr) = server.secure_addr {
        info!(%addr, "serving clients over TLS (secureClientPort)");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let raft = server.raft.clone();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
        _ = term.recv() => info!("SIGTERM: shutting down"),
        // Fail-stop: a server whose consensus node stopped (a storage error, a panic) can
        // neither write nor know that its reads are current. It must not go on answering
        // ruok and reads; exiting lets systemd restart it and clients move to another one.
        _ = raft.stopped() => {
            tracing::error!(
                "the consensus node stopped (see the error above): exiting so that this \
                 server is restarted instead of serving without replication"
            );
            stop_notifying(notifier);
            server.shutdown().await;
            return Err(std::io::Error::other("the consensus node stopped"));
        }
    }
    stop_notifying(notifier);
    server.shutdown().await;
    Ok(())
}

/// Tells systemd that the server is stopping and ends the status/watchdog task.
fn stop_notifying(notifier: Option<tokio::task::JoinHandle<()>>) {
    if let Some(task) = notifier {
        task.abort();
        systemd::notify("STOPPING=1\nSTATUS=stopping");
    }
}

/// Serves clients on `listener`, writing through `proposer`, until `shutdown` completes.
/// How long a client on the secure port may take to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts on the secure client port, or waits forever when there is none.
async fn accept_secure(
    secure: &Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match secure {
        Some((listener, _)) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Completes a secure client's TLS handshake, then serves it like any other. A client that
/// fails the handshake (no certificate under clientAuth=need, one the trust store does not
/// vouch for, no common protocol) is closed before any ZooKeeper frame is read.
async fn serve_tls(
    shared: Arc<Shared>,
    proposer: Proposer,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    conn_id: u64,
) {
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            info!(%remote, error = %e, "TLS handshake failed on the secure client port");
            return;
        }
        Err(_) => {
            info!(%remote, "no TLS handshake in time on the secure client port");
            return;
        }
    };
    let ids = match crate::tls::peer_leaf(stream.get_ref().1) {
        Some(leaf) => {
            let ids =
                crate::tls::client_identities(&leaf, shared.config().x509_super_user.as_deref());
            if let Some(id) = ids.last() {
                info!(%remote, subject = %id.id, "client authenticated by its certificate (x509)");
            }
            ids
        }
        None => Vec::new(),
    };
    connection::run(shared, proposer, stream, remote, conn_id, ids).await;
}

/// Serves clients on `listener` (and on the secure client port with its TLS acceptor),
/// writing through `proposer`, until `shutdown` completes.
async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    secure: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    proposer: Proposer,
    shutdown: impl Future<Output = ()>,
) {
    let expiry = tokio::spawn(housekeeping::expire_sessions(
        shared.clone(),
        proposer.clone(),
    ));
    let touches = tokio::spawn(housekeeping::route_touches(shared.clone()));
    let config_node = tokio::spawn(publish::publish_config(shared.clone(), proposer.clone()));
    let reaper = tokio::spawn(housekeeping::reap_nodes(shared.clone(), proposer.clone()));
    let closer = tokio::spawn(housekeeping::close_when_not_serving(shared.clone()));
    let mut next_conn_id: u64 = 1;
    let mut refused_for_fds: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = async {
                tokio::select! {
                    a = listener.accept() => (a, None),
                    a = accept_secure(&secure) => (a, secure.as_ref().map(|(_, t)| t.clone())),
                }
            } => {
                let (accepted, tls) = accepted;
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of fds and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn_id = next_conn_id;
                next_conn_id += 1;
                match admit(&shared, remote.ip()) {
                    Ok(()) => {}
                    Err("maxClientCnxns") => {
                        warn!(%remote, limit = shared.config().max_client_cnxns,
                            "too many connections from this address (maxClientCnxns), closing");
                        continue;
                    }
                    Err(_) => {
                        refused_for_fds += 1;
                        // Logged at 1, 2, 4, ...: a flood of connections does not flood the log.
                        if refused_for_fds.is_power_of_two() {
                            warn!(%remote, budget = shared.fd_budget(),
                                refused = refused_for_fds,
                                "client connections would use the file descriptors the log \
                                 and snapshots need: refusing new ones (raise LimitNOFILE / \
                                 ulimit -n)");
                        }
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let proposer = proposer.clone();
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let conn = connection::run(
                                shared.clone(), proposer, stream, remote, conn_id, Vec::new());
                            conn.await
                        }
                        Some(acceptor) => {
                            serve_tls(shared.clone(), proposer, acceptor, stream, remote, conn_id)
                                .await
                        }
                    }
                    release(&shared, remote.ip());
                });
            }
        }
    }
    // Every connection stops reading, answers what it had accepted (writes in flight commit
    // and are answered: a rolling restart cuts no write off) and closes; the consensus node
    // still runs meanwhile. Whatever is not done within DRAIN is closed unanswered. The
    // sessions stay in the tree (a restart or another server may take them over).
    let handles: Vec<Arc<ConnHandle>> = shared.conns().all.values().cloned().collect();
    for h in &handles {
        h.quit.notify_one();
    }
    let deadline = tokio::time::Instant::now() + DRAIN;
    while !shared.conns().all.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let left: Vec<Arc<ConnHandle>> = shared.conns().all.values().cloned().collect();
    for h in left {
        let _ = h.out.send(Out::Close);
    }
    expiry.abort();
    reaper.abort();
    touches.abort();
    closer.abort();
    config_node.abort();
    drop(proposer);
    let _ = expiry.await;
    let _ = reaper.await;
    debug!("server stopped");
}

/// maxClientCnxns per address, and the descriptor budget over all of them.
fn admit(shared: &Shared, ip: IpAddr) -> Result<(), &'static str> {
    let limit = shared.config().max_client_cnxns;
    let mut conns = shared.conns();
    if conns.total >= shared.fd_budget() {
        return Err("open files");
    }
    let n = conns.per_ip.entry(ip).or_insert(0);
    if limit != 0 && *n >= limit {
        return Err("maxClientCnxns");
    }
    *n += 1;
    conns.total += 1;
    Ok(())
}

fn release(shared: &Shared, ip: IpAddr) {
    let mut conns = shared.conns();
    conns.total = conns.total.saturating_sub(1);
    if let Some(n) = conns.per_ip.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            conns.per_ip.remove(&ip);
        }
    }
}
