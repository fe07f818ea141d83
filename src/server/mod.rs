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

mod connection;
mod dynamic;
mod fourlw;
pub mod session;
pub mod stats;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::config::{Config, Membership};
use crate::consensus::peer_auth::QuorumSecret;
use crate::consensus::{self, GroupMembers, Proposer, RaftHandle, RaftOptions, StateMachine};
use crate::proto::response::encode_notification;
use crate::proto::{Acl, EventType, Id, WatcherEvent};
use crate::tree::{Applied, DataTree, TreeOptions, Txn};
use crate::watch::WatchRegistry;

use self::session::{Liveness, SessionIdGen};
use self::stats::{ConnStats, ServerStats};

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
    pub auth: Mutex<Arc<Vec<Id>>>,
    /// Bytes of frames queued for the socket and not written yet. While it is over
    /// `REPLY_BACKLOG_LIMIT` the reader reads no request and the responder answers no read:
    /// a client that does not read its replies is held back by TCP, not by our memory.
    pub backlog: std::sync::atomic::AtomicUsize,
    /// Signalled when the backlog shrinks or a reply goes out.
    pub drained: tokio::sync::Notify,
}

/// See `ConnHandle::backlog`: a few large replies (1 MB znodes) in flight per connection.
pub const REPLY_BACKLOG_LIMIT: usize = 4 << 20;

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

/// Everything the tasks of one server share.
pub struct Shared {
    pub config: Config,
    pub state: RwLock<State>,
    pub conns: Mutex<Conns>,
    pub liveness: Mutex<Liveness>,
    pub ids: Mutex<SessionIdGen>,
    pub stats: ServerStats,
    /// Mixed into session passwords (see `session::password`).
    pub secret: Vec<u8>,
    /// Sessions whose closeSession has been proposed by expiry and not yet applied.
    expiring: Mutex<HashSet<i64>>,
    /// The consensus node, once recovery has finished.
    pub raft: std::sync::OnceLock<RaftHandle>,
    /// Sessions heard from since the last report to the leader (ensemble only).
    touched: Mutex<HashSet<i64>>,
    /// When this server last became the leader (mntr zk_leader_uptime).
    pub leader_since: Mutex<Option<Instant>>,
    /// Ensemble: /zookeeper/config holds a membership (the first leader writes it as it
    /// starts). Clients are served only from then on, so nobody reads it empty.
    config_published: std::sync::atomic::AtomicBool,
    /// Client connections allowed at once: the open-files limit less `FD_RESERVE`, so that
    /// clients can never take the descriptors the log, snapshots and peers need.
    fd_budget: usize,
}

/// Descriptors kept for everything but client connections: the raft log (sled's files),
/// snapshot writes, the dataDir, peer connections, the listener, logs.
const FD_RESERVE: usize = 256;

/// Raises the soft open-files limit to the hard one, as ZooKeeper's service setups do with
/// `ulimit -n`, and returns how many client connections may be open at once.
fn client_fd_budget() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit fill or read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return usize::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    let soft = usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX);
    soft.saturating_sub(FD_RESERVE).max(16)
}

impl Shared {
    fn new(config: Config, secret: Vec<u8>) -> Shared {
        let tree = DataTree::new(TreeOptions {
            skip_acl: config.skip_acl,
        });
        let server_id = config.my_id.unwrap_or(0);
        Shared {
            state: RwLock::new(State {
                tree,
                watches: WatchRegistry::new(),
            }),
            conns: Mutex::new(Conns::default()),
            liveness: Mutex::new(Liveness::default()),
            ids: Mutex::new(SessionIdGen::new(server_id, now_ms())),
            stats: ServerStats::default(),
            secret,
            expiring: Mutex::new(HashSet::new()),
            raft: std::sync::OnceLock::new(),
            touched: Mutex::new(HashSet::new()),
            leader_since: Mutex::new(None),
            config_published: Default::default(),
            fd_budget: client_fd_budget(),
            config,
        }
    }

    /// Queues a notification on the connection holding `session_id`, if any, and if the
    /// identities of that connection may READ the znode the event is about (`acl`: the
    /// znode's ACL, as it was for NodeDeleted, the parent's for NodeChildrenChanged), as the
    /// fixed ZooKeeper does (CVE-2024-23944): a watch never reveals what a read would not.
    /// Called with the state lock held (see the module docs).
    fn deliver(&self, conns: &Conns, session_id: i64, event: &WatcherEvent, acl: &[Acl]) {
        let Some(conn) = conns
            .by_session
            .get(&session_id)
            .and_then(|id| conns.all.get(id))
        else {
            return;
        };
        if !self.config.skip_acl {
            let auth = conn.auth.lock().expect("conn auth lock").clone();
            if !crate::tree::may_read(acl, &auth) {
                return;
            }
        }
        let mut buf = BytesMut::with_capacity(64);
        encode_notification(&mut buf, event);
        if conn.send_frame(buf.freeze()) {
            conn.stats
                .sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.stats
                .packets_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// A client of `session_id` was heard from (any packet).
    pub fn touch(&self, session_id: i64) {
        self.liveness
            .lock()
            .expect("liveness lock")
            .touch(session_id, Instant::now());
        if self.config.is_distributed() {
            self.touched
                .lock()
                .expect("touched lock")
                .insert(session_id);
        }
    }

    /// Gives every session of `tree` a full timeout from now (after recovery or a snapshot
    /// install, as ZooKeeper does for sessions it has just loaded).
    fn track_sessions(&self, tree: &DataTree) {
        let mut live = self.liveness.lock().expect("liveness lock");
        let now = Instant::now();
        for s in tree.sessions() {
            let timeout = Duration::from_millis(s.timeout_ms.max(0) as u64);
            live.track(s.session_id, timeout, now);
        }
    }

    pub fn last_zxid(&self) -> i64 {
        self.state.read().expect("state lock").tree.last_zxid()
    }

    /// This server's role as srvr/mntr print it.
    pub fn mode(&self) -> crate::admin::ServerMode {
        use crate::admin::ServerMode;
        if !self.config.is_distributed() {
            return ServerMode::Standalone;
        }
        match self.raft.get() {
            Some(r) if r.is_leader() => ServerMode::Leader,
            _ if self.config.peer_type == crate::config::PeerType::Observer => ServerMode::Observer,
            _ => ServerMode::Follower,
        }
    }

    /// Whether clients can be served: a standalone server always, an ensemble member only
    /// while it knows a leader and /zookeeper/config has been written (ZooKeeper's "not
    /// currently serving requests" otherwise).
    pub fn serving(&self) -> bool {
        !self.config.is_distributed()
            || (self.raft.get().is_some_and(|r| r.leader_id() != 0)
                && self
                    .config_published
                    .load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Only the leader expires sessions (through the log); followers forward liveness.
    fn expires_sessions(&self) -> bool {
        !self.config.is_distributed() || self.raft.get().is_some_and(|r| r.is_leader())
    }
}

/// Applies committed txns to the tree and routes the watch events they trigger.
struct Applier {
    shared: Arc<Shared>,
    /// /zookeeper/config may have changed since the node last asked (`take_membership`).
    config_dirty: bool,
    /// The membership version the dynamic config file holds (reconfigEnabled=true).
    written_version: u64,
}

impl Applier {
    fn new(shared: Arc<Shared>) -> Applier {
        let written_version = shared.config.config_version;
        Applier {
            shared,
            config_dirty: true,
            written_version,
        }
    }
}

impl StateMachine for Applier {
    fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied {
        let shared = &self.shared;
        let mut state = shared.state.write().expect("state lock");
        let applied = state.tree.apply(zxid, txn);
        let conns = shared.conns.lock().expect("conns lock");
        for trigger in &applied.triggers {
            let acl = match trigger.event {
                EventType::NodeDeleted => applied.deleted_acl(&trigger.path),
                _ => state.tree.acl_of(&trigger.path),
            }
            .unwrap_or_default();
            for (session_id, event) in state.watches.trigger(trigger) {
                shared.deliver(&conns, session_id, &event, &acl);
            }
        }
        if matches!(txn, Txn::SetConfig { .. } | Txn::Reconfig { .. }) {
            self.config_dirty = true;
        }
        if let Txn::CloseSession { session_id } = txn {
            // Expired (possibly by a leader elsewhere): a client still connected here is
            // disconnected, and finds its session expired when it reconnects.
            if let Some(h) = conns
                .by_session
                .get(session_id)
                .and_then(|id| conns.all.get(id))
            {
                if !h.closing.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = h.out.send(Out::Close);
                }
            }
        }
        drop(conns);
        match txn {
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => shared.liveness.lock().expect("liveness lock").track(
                *session_id,
                Duration::from_millis((*timeout_ms).max(0) as u64),
                Instant::now(),
            ),
            Txn::CloseSession { session_id } => {
                state.watches.remove_session(*session_id);
                shared
                    .liveness
                    .lock()
                    .expect("liveness lock")
                    .forget(*session_id);
            }
            _ => {}
        }
        applied
    }

    fn snapshot(&self) -> Vec<u8> {
        self.shared
            .state
            .read()
            .expect("state lock")
            .tree
            .snapshot_bytes()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error> {
        let tree = DataTree::from_snapshot_bytes(
            data,
            TreeOptions {
                skip_acl: self.shared.config.skip_acl,
            },
        )?;
        let mut state = self.shared.state.write().expect("state lock");
        state.tree = tree;
        // The tree jumped: watches cannot tell what changed. Connected clients are closed,
        // reconnect, and re-send their watches with their last zxid (setWatches), which
        // fires exactly what they missed — what ZooKeeper does when a follower resyncs.
        let conns = self.shared.conns.lock().expect("conns lock");
        for h in conns.all.values() {
            let _ = h.out.send(Out::Close);
        }
        drop(conns);
        self.shared.track_sessions(&state.tree);
        self.config_dirty = true;
        Ok(())
    }

    fn take_membership(&mut self) -> Option<GroupMembers> {
        if !std::mem::take(&mut self.config_dirty) {
            return None;
        }
        let (text, _) = self.shared.state.read().expect("state lock").tree.config();
        match Membership::parse(&text) {
            Ok(m) if !m.servers.is_empty() => {
                self.shared
                    .config_published
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // reconfigEnabled: a restart must come back with the membership it last
                // knew, as ZooKeeper's dynamic file does.
                let config = &self.shared.config;
                if config.reconfig_enabled
                    && m.version != self.written_version
                    && dynamic::write_dynamic_config(config, &m).is_some()
                {
                    self.written_version = m.version;
                }
                Some(GroupMembers {
                    voters: m.voters(),
                    learners: m.observers(),
                    peers: m.peer_addresses(),
                })
            }
            Ok(_) => None,
            Err(e) => {
                warn!("/zookeeper/config does not parse ({e}); membership unchanged");
                None
            }
        }
    }
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
    pub shared: Arc<Shared>,
    pub raft: RaftHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(mut self) {
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
fn raft_options(config: &Config, quorum_secret: Option<QuorumSecret>) -> RaftOptions {
    let id = config.my_id.filter(|&id| id != 0).unwrap_or(1);
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
        ..base
    }
}

/// Binds the client port of `config` (0 picks a free port) and starts serving in the
/// background.
pub async fn start(config: Config) -> std::io::Result<RunningServer> {
    let ip = config
        .client_port_address
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let listener = TcpListener::bind(SocketAddr::new(ip, config.client_port)).await?;
    let local_addr = listener.local_addr()?;
    info!("{}", config.four_letter_whitelist.describe());
    let (tx, rx) = oneshot::channel::<()>();
    // Checked when zoo.cfg was parsed; read once more here, where it is used (peers, and
    // the session passwords).
    let quorum = match &config.quorum_secret_file {
        Some(path) => Some(QuorumSecret::from_file(path).map_err(std::io::Error::other)?),
        None => None,
    };
    let mut opts = raft_options(&config, quorum.clone());
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
        let state = shared.state.read().expect("state lock");
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
    // keeps; glibc holds freed heap pages unless asked to give them back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
    let _ = shared.raft.set(raft.clone());
    let task = tokio::spawn(serve(shared.clone(), listener, proposer, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        local_addr,
        shared,
        raft,
        shutdown: Some(tx),
        task,
    })
}

/// Binds the client port from `config` and serves until SIGINT/SIGTERM.
pub async fn run_until_signal(config: Config) -> std::io::Result<()> {
    let server = start(config).await?;
    info!(addr = %server.local_addr, "serving clients");
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
            server.shutdown().await;
            return Err(std::io::Error::other("the consensus node stopped"));
        }
    }
    server.shutdown().await;
    Ok(())
}

/// Serves clients on `listener`, writing through `proposer`, until `shutdown` completes.
async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    proposer: Proposer,
    shutdown: impl Future<Output = ()>,
) {
    let expiry = tokio::spawn(expire_sessions(shared.clone(), proposer.clone()));
    let touches = tokio::spawn(route_touches(shared.clone()));
    let config_node = tokio::spawn(publish_config(shared.clone(), proposer.clone()));
    let reaper = tokio::spawn(reap_nodes(shared.clone(), proposer.clone()));
    let mut next_conn_id: u64 = 1;
    let mut refused_for_fds: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
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
                        warn!(%remote, limit = shared.config.max_client_cnxns,
                            "too many connections from this address (maxClientCnxns), closing");
                        continue;
                    }
                    Err(_) => {
                        refused_for_fds += 1;
                        // Logged at 1, 2, 4, ...: a flood of connections does not flood the log.
                        if refused_for_fds.is_power_of_two() {
                            warn!(%remote, budget = shared.fd_budget,
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
                    connection::run(shared.clone(), proposer, stream, remote, conn_id).await;
                    release(&shared, remote.ip());
                });
            }
        }
    }
    // Close every connection; their sessions stay in the tree (a restart or another server
    // may take them over).
    let handles: Vec<Arc<ConnHandle>> = shared
        .conns
        .lock()
        .expect("conns lock")
        .all
        .values()
        .cloned()
        .collect();
    for h in handles {
        let _ = h.out.send(Out::Close);
    }
    expiry.abort();
    reaper.abort();
    touches.abort();
    config_node.abort();
    drop(proposer);
    let _ = expiry.await;
    let _ = reaper.await;
    debug!("server stopped");
}

/// maxClientCnxns per address, and the descriptor budget over all of them.
fn admit(shared: &Shared, ip: IpAddr) -> Result<(), &'static str> {
    let limit = shared.config.max_client_cnxns;
    let mut conns = shared.conns.lock().expect("conns lock");
    if conns.total >= shared.fd_budget {
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
    let mut conns = shared.conns.lock().expect("conns lock");
    conns.total = conns.total.saturating_sub(1);
    if let Some(n) = conns.per_ip.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            conns.per_ip.remove(&ip);
        }
    }
}

/// Proposes closeSession for sessions not heard from within their timeout, and closes their
/// connections once it is applied. (In an ensemble only the leader runs this.)
async fn expire_sessions(shared: Arc<Shared>, proposer: Proposer) {
    let tick = Duration::from_millis((shared.config.tick_time_ms as u64 / 2).clamp(10, 1000));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = !shared.config.is_distributed();
    loop {
        interval.tick().await;
        if !shared.expires_sessions() {
            was_leader = false;
            *shared.leader_since.lock().expect("leader_since lock") = None;
            continue;
        }
        if !was_leader {
            *shared.leader_since.lock().expect("leader_since lock") = Some(Instant::now());
            // A new leader has not heard the other servers' clients yet: like ZooKeeper, it
            // gives every session a full timeout from now.
            was_leader = true;
            shared
                .liveness
                .lock()
                .expect("liveness lock")
                .touch_all(Instant::now());
            continue;
        }
        let expired = shared
            .liveness
            .lock()
            .expect("liveness lock")
            .expired(Instant::now());
        for session_id in expired {
            if !shared
                .expiring
                .lock()
                .expect("expiring lock")
                .insert(session_id)
            {
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
                shared
                    .expiring
                    .lock()
                    .expect("expiring lock")
                    .remove(&session_id);
                let conns = shared.conns.lock().expect("conns lock");
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
async fn route_touches(shared: Arc<Shared>) {
    if !shared.config.is_distributed() {
        return;
    }
    let Some(raft) = shared.raft.get().cloned() else {
        return;
    };
    let mut inbound = raft.take_touches();
    let every = Duration::from_millis((shared.config.tick_time_ms as u64 / 2).clamp(10, 1000));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let batch: Vec<i64> = shared
                    .touched
                    .lock()
                    .expect("touched lock")
                    .drain()
                    .collect();
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
                    let mut live = shared.liveness.lock().expect("liveness lock");
                    for s in t.sessions {
                        live.touch(s, now);
                    }
                }
            }
        }
    }
}

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
async fn publish_config(shared: Arc<Shared>, proposer: Proposer) {
    if !shared.config.is_distributed() {
        return;
    }
    let want = shared.config.membership_lines().join("\n");
    let edited = config_mtime_ms(&shared.config);
    let every = Duration::from_millis((shared.config.tick_time_ms as u64).clamp(10, 100));
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut told = false;
    loop {
        interval.tick().await;
        if !shared.expires_sessions() {
            continue;
        }
        let (current, stat) = shared.state.read().expect("state lock").tree.config();
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

/// Periodically proposes deleting empty containers and expired TTL nodes
/// (znode.container.checkIntervalMs, default 60 s, like ZooKeeper's ContainerManager).
async fn reap_nodes(shared: Arc<Shared>, proposer: Proposer) {
    let every = shared
        .config
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
        let paths = shared
            .state
            .read()
            .expect("state lock")
            .tree
            .reap_candidates(now);
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
