//! `Shared`: everything the tasks of one server share (the state lock, the connection table,
//! session liveness, counters, the consensus handle), and the helpers that use it.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::config::Config;
use crate::consensus::RaftHandle;
use crate::proto::response::encode_notification;
use crate::proto::{Acl, WatcherEvent};
use crate::tree::{DataTree, TreeOptions};
use crate::watch::WatchRegistry;

use super::session::{Liveness, SessionIdGen};
use super::stats::ServerStats;
use super::{now_ms, Conns, State};

/// Everything the tasks of one server share. The fields are private: each lock has one
/// accessor below, which is where its poison policy (panic: a task that panicked while
/// holding it left its data half-changed) is written.
///
/// # Lock order
///
/// A task may hold a lock while taking another only in this order:
///
/// ```text
/// state ──> conns ──> ConnHandle::auth
///   └─────> liveness
/// ```
///
/// - `state` (the tree and the watches): while it is held, `conns` may be taken (apply
///   routes watch events and closes expired sessions' connections; taking over and
///   releasing a session drop its watches), then, under both, one connection's `auth`
///   (`deliver`); and, after `conns` is released, `liveness` (apply tracks created and
///   forgets closed sessions; recovery and snapshot installs re-track every session).
/// - `conns` (the connection table): only a connection's `auth` lock, never `state` (it
///   would invert the order above) nor anything else.
/// - `liveness`, `ids`, `expiring`, `touched`, `leader_since`, and `ConnHandle::auth`: leaves;
///   nothing else is taken while one of them is held.
///
/// No lock is held across an `.await`, and none while proposing or waiting on the consensus
/// node (the applier runs on the consensus node's side and takes `state` itself). Sending
/// to a connection's writer (`Out`) never blocks, so it is allowed under any of them.
pub struct Shared {
    config: Config,
    state: RwLock<State>,
    /// Threads waiting for `state`'s write lock (`state_mut`): a snapshot being written
    /// gives the read lock up early for them (`wants_state_mut`).
    waiting_writers: AtomicUsize,
    conns: Mutex<Conns>,
    liveness: Mutex<Liveness>,
    ids: Mutex<SessionIdGen>,
    stats: ServerStats,
    /// Mixed into session passwords (see `session::password`).
    secret: Vec<u8>,
    /// Sessions whose closeSession has been proposed by expiry and not yet applied.
    expiring: Mutex<HashSet<i64>>,
    /// The consensus node, once recovery has finished.
    raft: OnceLock<RaftHandle>,
    /// Sessions heard from since the last report to the leader (ensemble only).
    touched: Mutex<HashSet<i64>>,
    /// When this server last became the leader (mntr zk_leader_uptime).
    leader_since: Mutex<Option<Instant>>,
    /// Ensemble: /zookeeper/config holds a membership (the first leader writes it as it
    /// starts). Clients are served only from then on, so nobody reads it empty.
    config_published: AtomicBool,
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
    pub(super) fn new(config: Config, secret: Vec<u8>) -> Shared {
        let tree = DataTree::new(TreeOptions::from_config(&config));
        let server_id = config.my_id.unwrap_or(0);
        Shared {
            state: RwLock::new(State {
                tree,
                watches: WatchRegistry::new(),
            }),
            waiting_writers: AtomicUsize::new(0),
            conns: Mutex::new(Conns::default()),
            liveness: Mutex::new(Liveness::default()),
            ids: Mutex::new(SessionIdGen::new(server_id, now_ms())),
            stats: ServerStats::default(),
            secret,
            expiring: Mutex::new(HashSet::new()),
            raft: OnceLock::new(),
            touched: Mutex::new(HashSet::new()),
            leader_since: Mutex::new(None),
            config_published: Default::default(),
            fd_budget: client_fd_budget(),
            config,
        }
    }

    /// This server's id in the consensus group (myid; 1 for a standalone server).
    pub fn node_id(&self) -> u64 {
        super::node_id(self.config())
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// Mixed into session passwords (see `session::password`).
    pub(super) fn secret(&self) -> &[u8] {
        &self.secret
    }

    /// The consensus node, once recovery has finished.
    pub fn raft(&self) -> Option<&RaftHandle> {
        self.raft.get()
    }

    /// Sets the consensus node once recovery has finished (later calls are ignored).
    pub(super) fn set_raft(&self, raft: RaftHandle) {
        let _ = self.raft.set(raft);
    }

    /// Client connections allowed at once (see `client_fd_budget`).
    pub(super) fn fd_budget(&self) -> usize {
        self.fd_budget
    }

    /// /zookeeper/config holds a membership: an ensemble member may serve clients.
    pub(super) fn mark_config_published(&self) {
        self.config_published.store(true, Relaxed);
    }

    // The locks, one accessor each (the order they may be taken in is on `Shared`).

    /// The tree and the watches, to read. See the lock order on `Shared`.
    pub(super) fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().expect("state lock")
    }

    /// The tree and the watches, to change. See the lock order on `Shared`.
    pub(super) fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.waiting_writers.fetch_add(1, Relaxed);
        let guard = self.state.write().expect("state lock");
        self.waiting_writers.fetch_sub(1, Relaxed);
        guard
    }

    /// Someone waits in `state_mut`: a long holder of the read lock (the snapshot writer)
    /// lets go, so applying entries does not wait for it (docs/performance.md, Finding 10).
    pub(super) fn wants_state_mut(&self) -> bool {
        self.waiting_writers.load(Relaxed) > 0
    }

    /// The connection table. Under `state` if both are needed; only a connection's `auth`
    /// may be taken while it is held.
    pub(super) fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().expect("conns lock")
    }

    /// The sessions' expiry clock. A leaf lock (may be taken under `state`, not `conns`).
    pub(super) fn liveness(&self) -> MutexGuard<'_, Liveness> {
        self.liveness.lock().expect("liveness lock")
    }

    /// The session id generator. A leaf lock.
    pub(super) fn ids(&self) -> MutexGuard<'_, SessionIdGen> {
        self.ids.lock().expect("ids lock")
    }

    /// Sessions whose expiry is being proposed. A leaf lock.
    pub(super) fn expiring(&self) -> MutexGuard<'_, HashSet<i64>> {
        self.expiring.lock().expect("expiring lock")
    }

    /// Sessions heard from since the last report to the leader. A leaf lock.
    pub(super) fn touched(&self) -> MutexGuard<'_, HashSet<i64>> {
        self.touched.lock().expect("touched lock")
    }

    /// When this server last became the leader. A leaf lock.
    pub(super) fn leader_since(&self) -> MutexGuard<'_, Option<Instant>> {
        self.leader_since.lock().expect("leader_since lock")
    }

    /// Queues a notification on the connection holding `session_id`, if any, and if the
    /// identities of that connection may READ the znode the event is about (`acl`: the
    /// znode's ACL, as it was for NodeDeleted, the parent's for NodeChildrenChanged), as the
    /// fixed ZooKeeper does (CVE-2024-23944): a watch never reveals what a read would not.
    /// Called with the state lock held (see the module docs).
    pub(super) fn deliver(
        &self,
        conns: &Conns,
        session_id: i64,
        event: &WatcherEvent,
        acl: &[Acl],
    ) {
        let Some(conn) = conns
            .by_session
            .get(&session_id)
            .and_then(|id| conns.all.get(id))
        else {
            return;
        };
        let auth = conn.auth().clone();
        if !crate::tree::may_read(acl, &auth, &TreeOptions::from_config(&self.config)) {
            return;
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
        self.liveness().touch(session_id, Instant::now());
        if self.config.is_distributed() {
            self.touched().insert(session_id);
        }
    }

    /// Gives every session of `tree` a full timeout from now (after recovery or a snapshot
    /// install, as ZooKeeper does for sessions it has just loaded).
    pub(super) fn track_sessions(&self, tree: &DataTree) {
        let mut live = self.liveness();
        let now = Instant::now();
        for s in tree.sessions() {
            let timeout = Duration::from_millis(s.timeout_ms.max(0) as u64);
            live.track(s.session_id, timeout, now);
        }
    }

    pub fn last_zxid(&self) -> i64 {
        self.state().tree.last_zxid()
    }

    /// This server's role as srvr/mntr print it.
    pub fn mode(&self) -> crate::admin::ServerMode {
        use crate::admin::ServerMode;
        if !self.config.is_distributed() {
            return ServerMode::Standalone;
        }
        match self.raft() {
            Some(r) if r.is_leader() => ServerMode::Leader,
            _ if self.config.peer_type == crate::config::PeerType::Observer => ServerMode::Observer,
            _ => ServerMode::Follower,
        }
    }

    /// Whether clients can be served: a standalone server always, an ensemble member only
    /// while it knows a leader that hears it and /zookeeper/config has been written
    /// (ZooKeeper's "not currently serving requests" otherwise).
    pub fn serving(&self) -> bool {
        !self.config.is_distributed()
            || (self.raft().is_some_and(|r| r.serving()) && self.config_published.load(Relaxed))
    }

    /// Only the leader expires sessions (through the log); followers forward liveness. A
    /// new leader waits until it has applied everything committed before its term: until
    /// then its tree may lack sessions, znodes and the published membership.
    pub(super) fn expires_sessions(&self) -> bool {
        !self.config.is_distributed() || self.raft().is_some_and(|r| r.is_leader_ready())
    }
}
