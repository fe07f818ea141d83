//! `Shared`: everything the tasks of one server share (the state lock, the connection table,
//! session liveness, counters, the consensus handle), and the helpers that use it.

use std::collections::HashSet;
use std::sync::{Mutex, RwLock};
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
    pub(super) expiring: Mutex<HashSet<i64>>,
    /// The consensus node, once recovery has finished.
    pub raft: std::sync::OnceLock<RaftHandle>,
    /// Sessions heard from since the last report to the leader (ensemble only).
    pub(super) touched: Mutex<HashSet<i64>>,
    /// When this server last became the leader (mntr zk_leader_uptime).
    pub leader_since: Mutex<Option<Instant>>,
    /// Ensemble: /zookeeper/config holds a membership (the first leader writes it as it
    /// starts). Clients are served only from then on, so nobody reads it empty.
    pub(super) config_published: std::sync::atomic::AtomicBool,
    /// Client connections allowed at once: the open-files limit less `FD_RESERVE`, so that
    /// clients can never take the descriptors the log, snapshots and peers need.
    pub(super) fd_budget: usize,
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
    pub(super) fn track_sessions(&self, tree: &DataTree) {
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
    pub(super) fn expires_sessions(&self) -> bool {
        !self.config.is_distributed() || self.raft.get().is_some_and(|r| r.is_leader())
    }
}
