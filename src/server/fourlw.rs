//! Four-letter words on the client port: gathers a `ServerSnapshot` from the live server and
//! lets `admin::render` format it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

use crate::admin::commands::Effect;
use crate::admin::{
    self, ConfInfo, ConnectionInfo, EnsembleView, EnvInfo, FourLetterWord, LeaderStats, MemberView,
    Need, QuorumConf, QuorumStats, ServerMode, ServerSnapshot, SessionStats,
};

use super::Shared;
use crate::config::dir_size;
use crate::proto::OpCode;

pub fn parse(first4: &[u8]) -> Option<FourLetterWord> {
    FourLetterWord::parse(first4)
}

/// The whole reply for `word` (the caller writes it and closes the connection).
pub fn answer(shared: &Shared, word: FourLetterWord, asking: SocketAddr) -> String {
    if !shared.config().four_letter_whitelist.allows(word.name()) {
        return admin::not_in_whitelist(word);
    }
    apply_effect(
        shared,
        match word {
            FourLetterWord::Srst => Effect::ResetServerStats,
            FourLetterWord::Crst => Effect::ResetConnectionStats,
            _ => Effect::None,
        },
    );
    admin::render(word, &snapshot(shared, word.need(), Some(asking)))
}

/// The resets srst/crst (and the AdminServer's stat_reset/connection_stat_reset) make.
pub(super) fn apply_effect(shared: &Shared, effect: Effect) {
    match effect {
        Effect::ResetServerStats => shared.stats().reset(),
        Effect::ResetConnectionStats => {
            for c in shared.conns().all.values() {
                c.stats.reset();
            }
        }
        Effect::None => {}
    }
}

/// What the words and the AdminServer's commands print, gathered now. `asking` is the
/// connection a four-letter word arrived on (ZooKeeper lists and counts it); an HTTP
/// request has none.
pub(super) fn snapshot(shared: &Shared, need: Need, asking: Option<SocketAddr>) -> ServerSnapshot {
    let cfg = shared.config();
    let stats = shared.stats();
    let (lat_min, lat_avg, lat_max) = stats.latency.get();
    let mut snap = ServerSnapshot {
        serving: shared.serving(),
        version: admin::version_string(),
        mode: shared.mode(),
        latency_min: lat_min as i64,
        latency_avg: lat_avg,
        latency_max: lat_max as i64,
        packets_received: stats.packets_received.load(Relaxed),
        packets_sent: stats.packets_sent.load(Relaxed),
        outstanding: stats.outstanding.load(Relaxed).max(0) as u64,
        uptime_ms: stats.started.elapsed().as_millis() as u64,
        last_client_response_size: -1,
        min_client_response_size: -1,
        max_client_response_size: -1,
        trace_mask: 306,
        ..ServerSnapshot::default()
    };
    {
        let state = shared.state();
        let tree = &state.tree;
        snap.zxid = tree.last_zxid();
        snap.node_count = tree.node_count() as u64;
        snap.approximate_data_size = tree.approximate_data_size();
        snap.ephemerals_count = tree.ephemerals_count() as u64;
        snap.global_sessions = tree.sessions().len() as u64;
        snap.watch_count = state.watches.watch_count() as u64;
        snap.watch_summary = state.watches.summary();
        if need.watches_by_session {
            snap.watches_by_session = state.watches.by_session();
        }
        if need.watches_by_path {
            snap.watches_by_path = state.watches.by_path();
        }
        if need.ephemerals {
            snap.ephemerals = tree.ephemerals_by_session();
        }
        if need.digests {
            snap.digests = vec![(tree.last_zxid(), tree.digest())];
        }
    }
    snap.connections = connections(shared, asking);
    if need.dir_sizes {
        snap.data_dir_size = dir_size(&cfg.data_dir);
        snap.log_dir_size = cfg
            .data_log_dir
            .as_deref()
            .map(dir_size)
            .unwrap_or(snap.data_dir_size);
    }
    snap.open_file_descriptor_count = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    snap.max_file_descriptor_count = max_fds();
    snap.conf = ConfInfo {
        client_port: cfg.client_port as i32,
        secure_client_port: cfg.secure_client_port.map(i32::from).unwrap_or(-1),
        data_dir: cfg.data_dir.join("version-2").display().to_string(),
        data_dir_size: snap.data_dir_size,
        data_log_dir: cfg
            .data_log_dir
            .as_deref()
            .unwrap_or(&cfg.data_dir)
            .join("version-2")
            .display()
            .to_string(),
        data_log_size: snap.log_dir_size,
        tick_time: cfg.tick_time_ms,
        max_client_cnxns: cfg.max_client_cnxns,
        min_session_timeout: cfg.min_session_timeout_ms,
        max_session_timeout: cfg.max_session_timeout_ms,
        client_port_listen_backlog: cfg.client_port_listen_backlog,
        server_id: cfg.my_id.unwrap_or(0) as i64,
        quorum: None,
    };
    if need.env {
        snap.env = env_info();
    }
    if cfg.is_distributed() {
        add_quorum(shared, &mut snap);
    }
    if let Some(st) = shared.raft().map(|r| r.status()) {
        snap.extra_gauges = vec![
            ("snap_count", st.snapshot_files),
            ("last_snapshot_size", st.last_snapshot_size),
            ("last_snapshot_index", st.last_snapshot_index),
            ("log_bytes", st.log_bytes),
            ("log_first_index", st.first_index),
            ("log_last_index", st.last_index),
            ("fsync_count", st.fsyncs),
        ];
        if snap.mode == ServerMode::Leader && cfg.is_distributed() {
            // ZooKeeper 3.4/3.5's key, still read by many monitoring checks.
            let followers = st.voters.len().saturating_sub(1) as u64;
            snap.extra_gauges.insert(0, ("followers", followers));
        }
    }
    snap
}

/// Ensemble figures: quorum size and peer state on every member, the leader's follower
/// counts, and the membership for `conf`.
fn add_quorum(shared: &Shared, snap: &mut ServerSnapshot) {
    let cfg = shared.config();
    let Some(status) = shared.raft().map(|r| r.status()) else {
        return;
    };
    let peer_state = match snap.mode {
        _ if !status.serving => "looking",
        ServerMode::Leader => "leading - broadcast",
        ServerMode::Observer => "observing - broadcast",
        _ => "following - broadcast",
    };
    snap.quorum = Some(QuorumStats {
        quorum_size: status.voters.len() as u64,
        peer_state: peer_state.to_string(),
        synced_observers: status.synced_learners,
    });
    if snap.mode == ServerMode::Leader {
        let peers = (status.voters.len() + status.learners.len()).saturating_sub(1) as u64;
        snap.leader = Some(LeaderStats {
            learners: peers,
            synced_followers: status.synced_followers,
            synced_non_voting_followers: 0,
            pending_syncs: 0,
            leader_uptime_ms: shared
                .leader_since()
                .map(|t| t.elapsed().as_millis() as u64)
                .unwrap_or(0),
            last_proposal_size: -1,
            min_proposal_size: -1,
            max_proposal_size: -1,
        });
    }
    let me = cfg.my_server();
    let member = |s: &crate::config::ServerSpec| MemberView {
        id: s.id,
        server_address: format!("{}:{}", s.host, s.quorum_port),
        election_address: format!("{}:{}", s.host, s.election_port),
        client_address: match (&s.client_addr, s.client_port) {
            (Some(a), Some(p)) => format!("{a}:{p}"),
            (None, Some(p)) => format!("0.0.0.0:{p}"),
            _ => String::new(),
        },
        observer: s.peer_type == crate::config::PeerType::Observer,
    };
    let servers = live_servers(shared);
    let leader = servers.iter().find(|s| s.id == status.leader_id);
    snap.ensemble = Some(EnsembleView {
        my_id: status.id,
        leader_id: if status.leader_id == 0 {
            -1
        } else {
            status.leader_id as i64
        },
        leader_host: leader.map(|s| s.host.clone()).unwrap_or_default(),
        me: me.map(member).unwrap_or_default(),
        voting: status.voters.contains(&status.id),
        members: servers
            .iter()
            .filter(|s| status.voters.contains(&s.id) || status.learners.contains(&s.id))
            .map(member)
            .collect(),
    });
    snap.conf.quorum = Some(QuorumConf {
        init_limit: cfg.init_limit,
        sync_limit: cfg.sync_limit,
        election_alg: 3,
        election_port: me.map(|s| s.election_port.to_string()).unwrap_or_default(),
        quorum_port: me.map(|s| s.quorum_port.to_string()).unwrap_or_default(),
        peer_type: u32::from(cfg.peer_type == crate::config::PeerType::Observer),
        membership: current_membership(shared).unwrap_or_else(|| cfg.membership_lines().join("\n")),
    });
}

fn connections(shared: &Shared, asking: Option<SocketAddr>) -> Vec<ConnectionInfo> {
    let conns = shared.conns();
    let mut out: Vec<ConnectionInfo> = conns
        .all
        .values()
        .map(|c| {
            let s = &c.stats;
            let (min, avg, max) = s.latency.get();
            ConnectionInfo {
                remote: c.remote,
                interest_ops: 1,
                queued: s.queued.load(Relaxed).max(0) as u64,
                received: s.received.load(Relaxed),
                sent: s.sent.load(Relaxed),
                session: Some(SessionStats {
                    session_id: c.session_id,
                    last_op: i32::try_from(s.last_op.load(Relaxed))
                        .ok()
                        .and_then(OpCode::from_i32)
                        .map_or("NA", OpCode::short_name)
                        .to_string(),
                    established_ms: s.established_ms,
                    timeout_ms: c.timeout_ms,
                    last_cxid: s.last_cxid.load(Relaxed),
                    last_zxid: s.last_zxid.load(Relaxed),
                    last_response_ms: s.last_response_ms.load(Relaxed),
                    last_latency: s.last_latency_ms.load(Relaxed) as i64,
                    min_latency: min as i64,
                    avg_latency: avg as i64,
                    max_latency: max as i64,
                }),
            }
        })
        .collect();
    out.sort_by_key(|c| c.remote);
    // ZooKeeper counts the connection asking as well.
    if let Some(remote) = asking {
        out.push(ConnectionInfo {
            remote,
            interest_ops: 0,
            queued: 0,
            received: 1,
            sent: 0,
            session: None,
        });
    }
    out
}

fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

fn env_info() -> EnvInfo {
    let uname = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    EnvInfo {
        host_name: host,
        tmp_dir: std::env::temp_dir().display().to_string(),
        os_name: "Linux".into(),
        os_arch: std::env::consts::ARCH.into(),
        os_version: uname,
        user_name: std::env::var("USER").unwrap_or_default(),
        user_home: std::env::var("HOME").unwrap_or_default(),
        user_dir: std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        memory_free_mb: None,
        memory_max_mb: None,
        memory_total_mb: None,
    }
}

/// The ensemble's servers as /zookeeper/config lists them now (it follows reconfig and
/// published zoo.cfg changes), else zoo.cfg's `server.N` lines.
pub(super) fn live_servers(shared: &Shared) -> Vec<crate::config::ServerSpec> {
    current_membership(shared)
        .and_then(|text| crate::config::Membership::parse(&text).ok())
        .filter(|m| !m.servers.is_empty())
        .map(|m| m.servers.into_values().collect())
        .unwrap_or_else(|| shared.config().servers.clone())
}

/// The ensemble's configuration as /zookeeper/config holds it now (it follows reconfig and
/// published zoo.cfg changes); None before the first leader wrote it.
fn current_membership(shared: &Shared) -> Option<String> {
    let (text, _) = shared.state().tree.config();
    (!text.is_empty()).then_some(text)
}
