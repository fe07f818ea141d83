//! Everything the four-letter words print, gathered by the server at the moment a word
//! arrives. Listings (connections, watches, ephemerals, sessions) are only read by the words
//! that print them, so a server may leave them empty for the others.

use std::net::SocketAddr;

/// The role this server plays, as `Mode:` / `zk_server_state` print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerMode {
    #[default]
    Standalone,
    Leader,
    Follower,
    Observer,
}

impl ServerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerMode::Standalone => "standalone",
            ServerMode::Leader => "leader",
            ServerMode::Follower => "follower",
            ServerMode::Observer => "observer",
        }
    }
}

/// What `cons` adds for a connection that has a session (`sid` is non-zero).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionStats {
    pub session_id: i64,
    /// Last operation's short name, as ZooKeeper's Request.op2String: GETD, SETD, EXIS, PING,
    /// CREA, DELE, GETC, SESS, ... ("NA" before the first).
    pub last_op: String,
    /// When the connection was established, wall clock ms (`est=`).
    pub established_ms: i64,
    /// Negotiated session timeout, ms (`to=`).
    pub timeout_ms: i32,
    /// Last client xid answered (`lcxid=0x..`).
    pub last_cxid: i64,
    /// Last zxid answered (`lzxid=0x..`; -1 prints as ffffffffffffffff, as in Java).
    pub last_zxid: i64,
    /// When the last response was sent, ms on the server's elapsed clock (`lresp=`).
    pub last_response_ms: i64,
    /// Latencies of this connection's requests, ms.
    pub last_latency: i64,
    pub min_latency: i64,
    pub avg_latency: i64,
    pub max_latency: i64,
}

/// One client connection, for `stat` (brief) and `cons` (full).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionInfo {
    /// Printed as Java's InetSocketAddress: `/127.0.0.1:50000`, `/[0:0:0:0:0:0:0:1]:50000`.
    pub remote: SocketAddr,
    /// NIO interest ops ZooKeeper prints in brackets: 1 (read) for an idle client, 0 for the
    /// 4lw connection itself, 5 while it also waits to write.
    pub interest_ops: u32,
    /// Requests received but not yet answered (`queued=`).
    pub queued: u64,
    /// Packets received / sent on this connection (`recved=`, `sent=`).
    pub received: u64,
    pub sent: u64,
    /// `None` before the handshake completes (or for the 4lw connection): `cons` then prints
    /// only the brief fields.
    pub session: Option<SessionStats>,
}

/// One bucket of ZooKeeper's ExpiryQueue: everything that expires at the same tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionBucket {
    /// Wall clock ms of the expiry tick.
    pub expire_at_ms: i64,
    pub session_ids: Vec<i64>,
}

/// A connection bucket for dump's "Connections dump" (NIO's idle-connection expiry queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionBucket {
    pub expire_at_ms: i64,
    /// (remote address, session id or 0).
    pub connections: Vec<(SocketAddr, i64)>,
}

/// Leader-only figures (`Proposal sizes` in srvr/stat; zk_learners ... in mntr).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaderStats {
    /// Connected learners (followers + observers).
    pub learners: u64,
    /// Followers in sync (forwarding followers).
    pub synced_followers: u64,
    pub synced_non_voting_followers: u64,
    pub pending_syncs: u64,
    /// Time since this server became leader, ms.
    pub leader_uptime_ms: u64,
    /// Bytes of the last / smallest / largest proposal; -1 before the first, as ZooKeeper.
    pub last_proposal_size: i64,
    pub min_proposal_size: i64,
    pub max_proposal_size: i64,
}

/// Figures a quorum member (not standalone) reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumStats {
    /// Voting members in the current configuration (zk_quorum_size).
    pub quorum_size: u64,
    /// QuorumPeer.getDetailedPeerState: "leading - broadcast", "following - broadcast",
    /// "observing - broadcast", "looking", ... (zk_peer_state).
    pub peer_state: String,
    /// Observers in sync with this server (zk_synced_observers; leaders and followers).
    pub synced_observers: u64,
}

/// The quorum part of `conf` (QuorumZooKeeperServer.dumpConf).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuorumConf {
    pub init_limit: u32,
    pub sync_limit: u32,
    /// ZooKeeper prints 3 (FastLeaderElection); keeperd elects through Raft but keeps the value.
    pub election_alg: u32,
    /// Ports joined with `|` when a server has several addresses.
    pub election_port: String,
    pub quorum_port: String,
    /// 0 participant, 1 observer (LearnerType ordinal).
    pub peer_type: u32,
    /// The dynamic config text, printed verbatim after `membership: `: one
    /// `server.N=host:quorum:election:role;clientAddr:port` line each, then `version=<hex>`
    /// with no newline after it (ZooKeeper prints QuorumVerifier.toString() with print).
    pub membership: String,
}

/// `conf`, in ZooKeeper's key order (ZooKeeperServer.dumpConf).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfInfo {
    pub client_port: i32,
    /// -1 when not configured.
    pub secure_client_port: i32,
    /// ZooKeeper prints its snapshot directory here, i.e. `<dataDir>/version-2`.
    pub data_dir: String,
    pub data_dir_size: u64,
    pub data_log_dir: String,
    pub data_log_size: u64,
    pub tick_time: u32,
    pub max_client_cnxns: u32,
    pub min_session_timeout: u32,
    pub max_session_timeout: u32,
    /// -1 = the OS default backlog.
    pub client_port_listen_backlog: i32,
    /// myid (0 in standalone).
    pub server_id: i64,
    pub quorum: Option<QuorumConf>,
}

/// `envi`: the entries of ZooKeeper's Environment.list() that mean something for a native
/// process, under the same key names. The java.* entries are left out (there is no JVM);
/// `java.io.tmpdir` is kept as the temp directory. `zookeeper.version` comes from
/// `ServerSnapshot::version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvInfo {
    pub host_name: String,
    pub tmp_dir: String,
    pub os_name: String,
    pub os_arch: String,
    pub os_version: String,
    pub user_name: String,
    pub user_home: String,
    pub user_dir: String,
    /// os.memory.free/max/total in MB. ZooKeeper reports the JVM heap; keeperd reports what
    /// the server chooses (e.g. available / total RAM / resident set). `None` omits the line.
    pub memory_free_mb: Option<u64>,
    pub memory_max_mb: Option<u64>,
    pub memory_total_mb: Option<u64>,
}

/// Which of the costlier listings a word or command prints; the server gathers only these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    pub watches_by_session: bool,
    pub watches_by_path: bool,
    pub ephemerals: bool,
    pub digests: bool,
    /// Walks the data and log directories.
    pub dir_sizes: bool,
    pub env: bool,
}

/// One member of the current configuration, as the AdminServer's `voting_view` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberView {
    pub id: u64,
    /// `host:port` of the quorum port.
    pub server_address: String,
    /// `host:port` of the election port.
    pub election_address: String,
    /// `host:port` clients use, or empty when the member publishes none.
    pub client_address: String,
    pub observer: bool,
}

/// What an ensemble member knows about the ensemble (AdminServer `leader`, `voting_view`,
/// `zabstate`); `None` in standalone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnsembleView {
    pub my_id: u64,
    /// -1 while no leader is known (ZooKeeper's value during an election).
    pub leader_id: i64,
    /// The leader's quorum host (`|`-joined when it has several), empty while none.
    pub leader_host: String,
    /// This server's own entry.
    pub me: MemberView,
    /// A voting member of the current configuration.
    pub voting: bool,
    pub members: Vec<MemberView>,
}

/// Everything the four-letter words print.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerSnapshot {
    /// False while the server cannot serve (no quorum, still loading): most words then answer
    /// `ZK_NOT_SERVING`.
    pub serving: bool,
    /// Serving read-only clients only (ReadOnlyZooKeeperServer): isro `ro`, Mode `read-only`.
    pub read_only: bool,
    /// Full version, see `version_string()`.
    pub version: String,
    pub mode: ServerMode,

    /// Request latency over the server, ms (`Latency min/avg/max`, zk_*_latency).
    pub latency_min: i64,
    /// Printed rounded to 4 decimals, in Java's double format (`0.0`, `2.9231`).
    pub latency_avg: f64,
    pub latency_max: i64,
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Requests in flight server-wide (`Outstanding:`).
    pub outstanding: u64,
    /// Last applied zxid.
    pub zxid: i64,
    pub node_count: u64,
    /// Live connections, including the one asking (ZooKeeper counts it). `Connections:` and
    /// zk_num_alive_connections print its length.
    pub connections: Vec<ConnectionInfo>,

    /// mntr zk_watch_count (`WatchRegistry::watch_count`).
    pub watch_count: u64,
    /// wchs (`WatchRegistry::summary`).
    pub watch_summary: crate::watch::WatchSummary,
    /// wchc (`WatchRegistry::by_session`).
    pub watches_by_session: Vec<(i64, Vec<String>)>,
    /// wchp (`WatchRegistry::by_path`).
    pub watches_by_path: Vec<(String, Vec<i64>)>,

    pub ephemerals_count: u64,
    /// dump: ephemeral paths by owner (`DataTree::ephemerals_by_session`).
    pub ephemerals: Vec<(i64, Vec<String>)>,
    /// dump: the session expiry queue, buckets in ascending time.
    pub session_buckets: Vec<SessionBucket>,
    /// dump: the connection expiry queue, buckets in ascending time.
    pub connection_buckets: Vec<ConnectionBucket>,
    pub global_sessions: u64,
    pub local_sessions: u64,
    pub approximate_data_size: u64,
    /// Unix only in ZooKeeper; `None` omits the mntr line.
    pub open_file_descriptor_count: Option<u64>,
    pub max_file_descriptor_count: Option<u64>,
    /// Server uptime, ms (zk_uptime).
    pub uptime_ms: u64,
    /// dirs: bytes in the snapshot and log directories.
    pub data_dir_size: u64,
    pub log_dir_size: u64,

    /// Client response sizes in bytes; -1 before the first response, as ZooKeeper.
    pub last_client_response_size: i64,
    pub min_client_response_size: i64,
    pub max_client_response_size: i64,
    pub auth_failed_count: u64,
    pub non_mtls_remote_conn_count: u64,
    pub non_mtls_local_conn_count: u64,
    pub outstanding_tls_handshake: u64,
    /// Fault-injection knob in ZooKeeper (always 0.0 unless set); kept for the key set.
    pub connection_drop_probability: f64,

    pub conf: ConfInfo,
    pub env: EnvInfo,
    /// Printed only when `mode` is `Leader`.
    pub leader: Option<LeaderStats>,
    /// Printed only when `mode` is not `Standalone`.
    pub quorum: Option<QuorumStats>,
    /// gtmk/stmk: the trace mask (ZooKeeper's default is 306). For stmk the server stores
    /// the new mask first, then renders.
    pub trace_mask: i64,
    /// hash: recent (zxid, tree digest) pairs, oldest first.
    pub digests: Vec<(i64, u64)>,
    /// keeperd's own numeric gauges, printed by mntr after ZooKeeper's keys (snapshot and
    /// log sizes, fsyncs). Names without the `zk_` prefix.
    pub extra_gauges: Vec<(&'static str, u64)>,
    /// The zoo.cfg text the server started from (AdminServer `initial_configuration`).
    pub initial_config: String,
    /// The newest snapshot: (zxid, wall-clock seconds it was written), for `last_snapshot`.
    pub last_snapshot: Option<(i64, i64)>,
    /// Ensemble members only.
    pub ensemble: Option<EnsembleView>,
}
