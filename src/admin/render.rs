//! The text of each word. Line structure, separators and key order follow ZooKeeper 3.8.0's
//! output as captured from a running server (see the fixtures in `tests.rs`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::snapshot::{ConnectionInfo, ServerMode, ServerSnapshot};
use super::{FourLetterWord, ZK_NOT_SERVING};

/// The complete reply to `word`. The connection is closed after it is written.
pub fn render(word: FourLetterWord, s: &ServerSnapshot) -> String {
    use FourLetterWord as W;
    if !s.serving && !word.answers_when_not_serving() {
        return match word {
            // IsroCommand prints "null" when there is no running server.
            W::Isro => "null".to_string(),
            // HashCommand uses print, not println.
            W::Hash => ZK_NOT_SERVING.to_string(),
            _ => format!("{ZK_NOT_SERVING}\n"),
        };
    }
    let mut out = String::new();
    match word {
        W::Ruok => out.push_str("imok"),
        W::Isro => out.push_str(if s.read_only { "ro" } else { "rw" }),
        W::Gtmk | W::Stmk => {
            let _ = write!(out, "{}", s.trace_mask);
        }
        W::Crst => out.push_str("Connection stats reset.\n"),
        W::Srst => out.push_str("Server stats reset.\n"),
        W::Srvr => stat(&mut out, s, false),
        W::Stat => stat(&mut out, s, true),
        W::Cons => {
            for c in &s.connections {
                connection(&mut out, c, false);
                out.push('\n');
            }
            out.push('\n');
        }
        W::Wchs => {
            let w = &s.watch_summary;
            let _ = writeln!(
                out,
                "{} connections watching {} paths\nTotal watches:{}",
                w.connections, w.paths, w.total
            );
        }
        W::Wchc => {
            for (session, paths) in &s.watches_by_session {
                let _ = writeln!(out, "0x{session:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
        }
        W::Wchp => {
            for (path, sessions) in &s.watches_by_path {
                let _ = writeln!(out, "{path}");
                for session in sessions {
                    let _ = writeln!(out, "\t0x{session:x}");
                }
            }
            out.push('\n');
        }
        W::Dump => dump(&mut out, s),
        W::Dirs => {
            let _ = writeln!(out, "datadir_size: {}", s.data_dir_size);
            let _ = writeln!(out, "logdir_size: {}", s.log_dir_size);
        }
        W::Conf => conf(&mut out, s),
        W::Envi => envi(&mut out, s),
        W::Mntr => mntr(&mut out, s),
        W::Hash => {
            for (zxid, digest) in &s.digests {
                let _ = writeln!(out, "{zxid:x}: {digest}");
            }
        }
    }
    out
}

pub(super) fn state(s: &ServerSnapshot) -> &'static str {
    if s.read_only {
        "read-only"
    } else {
        s.mode.as_str()
    }
}

/// srvr, and stat when `clients` (StatCommand + ServerStats.toString).
fn stat(out: &mut String, s: &ServerSnapshot, clients: bool) {
    let _ = writeln!(out, "Zookeeper version: {}", s.version);
    if s.read_only {
        out.push_str("READ-ONLY mode; serving only read-only clients\n");
    }
    if clients {
        out.push_str("Clients:\n");
        for c in &s.connections {
            connection(out, c, true);
            out.push('\n');
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        s.latency_min,
        java_double(round4(s.latency_avg)),
        s.latency_max
    );
    let _ = writeln!(out, "Received: {}", s.packets_received);
    let _ = writeln!(out, "Sent: {}", s.packets_sent);
    let _ = writeln!(out, "Connections: {}", s.connections.len());
    let _ = writeln!(out, "Outstanding: {}", s.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", s.zxid);
    let _ = writeln!(out, "Mode: {}", state(s));
    let _ = writeln!(out, "Node count: {}", s.node_count);
    if let (ServerMode::Leader, Some(l)) = (s.mode, &s.leader) {
        let _ = writeln!(
            out,
            "Proposal sizes last/min/max: {}/{}/{}",
            l.last_proposal_size, l.min_proposal_size, l.max_proposal_size
        );
    }
}

/// ServerCnxn.dumpConnectionInfo, without the line end.
fn connection(out: &mut String, c: &ConnectionInfo, brief: bool) {
    let ops = if c.interest_ops == 0 {
        "0".to_string()
    } else {
        format!("{:x}", c.interest_ops)
    };
    let _ = write!(
        out,
        " {}[{}](queued={},recved={},sent={}",
        java_socket_addr(&c.remote),
        ops,
        c.queued,
        c.received,
        c.sent
    );
    if !brief {
        if let Some(st) = c.session.as_ref().filter(|st| st.session_id != 0) {
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                st.session_id,
                st.last_op,
                st.established_ms,
                st.timeout_ms,
                st.last_cxid,
                st.last_zxid,
                st.last_response_ms,
                st.last_latency,
                st.min_latency,
                st.avg_latency,
                st.max_latency
            );
        }
    }
    out.push(')');
}

/// DumpCommand: session expiry queue, ephemerals, connection expiry queue. ZooKeeper walks
/// hash sets here; keeperd prints sessions and paths sorted.
fn dump(out: &mut String, s: &ServerSnapshot) {
    out.push_str("SessionTracker dump:\n");
    let sessions: usize = s.session_buckets.iter().map(|b| b.session_ids.len()).sum();
    let _ = writeln!(
        out,
        "Session Sets ({})/({}):",
        s.session_buckets.len(),
        sessions
    );
    for b in &s.session_buckets {
        let _ = writeln!(
            out,
            "{} expire at {}:",
            b.session_ids.len(),
            java_date(b.expire_at_ms)
        );
        for id in &b.session_ids {
            let _ = writeln!(out, "\t0x{id:x}");
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", s.ephemerals.len());
    for (id, paths) in &s.ephemerals {
        let _ = writeln!(out, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(out, "\t{p}");
        }
    }
    out.push_str("Connections dump:\n");
    let conns: usize = s
        .connection_buckets
        .iter()
        .map(|b| b.connections.len())
        .sum();
    let _ = writeln!(
        out,
        "Connections Sets ({})/({}):",
        s.connection_buckets.len(),
        conns
    );
    for b in &s.connection_buckets {
        let _ = writeln!(
            out,
            "{} expire at {}:",
            b.connections.len(),
            java_date(b.expire_at_ms)
        );
        for (addr, id) in &b.connections {
            let _ = writeln!(out, "\tip: {} sessionId: 0x{id:x}", java_socket_addr(addr));
        }
    }
}

/// ZooKeeperServer.dumpConf (+ QuorumZooKeeperServer.dumpConf).
fn conf(out: &mut String, s: &ServerSnapshot) {
    let c = &s.conf;
    let _ = writeln!(out, "clientPort={}", c.client_port);
    let _ = writeln!(out, "secureClientPort={}", c.secure_client_port);
    let _ = writeln!(out, "dataDir={}", c.data_dir);
    let _ = writeln!(out, "dataDirSize={}", c.data_dir_size);
    let _ = writeln!(out, "dataLogDir={}", c.data_log_dir);
    let _ = writeln!(out, "dataLogSize={}", c.data_log_size);
    let _ = writeln!(out, "tickTime={}", c.tick_time);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout);
    let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout);
    let _ = writeln!(
        out,
        "clientPortListenBacklog={}",
        c.client_port_listen_backlog
    );
    let _ = writeln!(out, "serverId={}", c.server_id);
    if let Some(q) = &c.quorum {
        let _ = writeln!(out, "initLimit={}", q.init_limit);
        let _ = writeln!(out, "syncLimit={}", q.sync_limit);
        let _ = writeln!(out, "electionAlg={}", q.election_alg);
        let _ = writeln!(out, "electionPort={}", q.election_port);
        let _ = writeln!(out, "quorumPort={}", q.quorum_port);
        let _ = writeln!(out, "peerType={}", q.peer_type);
        out.push_str("membership: \n");
        out.push_str(&q.membership);
    }
}

/// EnvCommand, in Environment.list()'s order, without the JVM-only entries.
fn envi(out: &mut String, s: &ServerSnapshot) {
    out.push_str("Environment:\n");
    for (key, value) in environment(s) {
        let _ = writeln!(out, "{key}={value}");
    }
}

/// Environment.list() as envi prints it and the AdminServer's `environment` answers it.
pub(super) fn environment(s: &ServerSnapshot) -> Vec<(&'static str, String)> {
    let e = &s.env;
    let mut v = vec![
        ("zookeeper.version", s.version.clone()),
        ("host.name", e.host_name.clone()),
        ("java.io.tmpdir", e.tmp_dir.clone()),
        ("os.name", e.os_name.clone()),
        ("os.arch", e.os_arch.clone()),
        ("os.version", e.os_version.clone()),
        ("user.name", e.user_name.clone()),
        ("user.home", e.user_home.clone()),
        ("user.dir", e.user_dir.clone()),
    ];
    for (key, mb) in [
        ("os.memory.free", e.memory_free_mb),
        ("os.memory.max", e.memory_max_mb),
        ("os.memory.total", e.memory_total_mb),
    ] {
        if let Some(mb) = mb {
            v.push((key, format!("{mb}MB")));
        }
    }
    v
}

/// One mntr value: text, integers, or doubles (printed in Java's Double.toString form).
#[derive(Debug, Clone, PartialEq)]
pub enum MntrValue {
    Text(String),
    I(i64),
    U(u64),
    F(f64),
}

use MntrValue as V;

/// MonitorCommand: `zk_version`, `zk_server_state` (and `zk_peer_state` on quorum members)
/// from dumpMonitorValues, then the registered gauges.
///
/// ZooKeeper prints the gauges in the iteration order of the metrics provider's
/// ConcurrentHashMap (64 buckets at this size): by `spread(String.hashCode()) & 63`, ties in
/// registration order. The standalone order below is exactly what 3.8.0 printed; the
/// leader/quorum keys are placed by the same bucket computation (bucket in the comments).
///
/// ZooKeeper 3.8 then prints a few hundred ServerMetrics counters and summaries
/// (zk_proposal_count, zk_avg_fsynctime, zk_p99_readlatency, ...). keeperd does not measure
/// those and prints none rather than zeros that would read as real measurements.
///
/// The list is the one source of mntr's lines, the AdminServer's `monitor` fields and the
/// Prometheus gauges: keys without the `zk_` prefix, in mntr's order.
pub fn monitor_values(s: &ServerSnapshot) -> Vec<(&'static str, MntrValue)> {
    let leader = match (s.mode, &s.leader) {
        (ServerMode::Leader, Some(l)) => Some(l),
        _ => None,
    };
    let quorum = match (s.mode, &s.quorum) {
        (ServerMode::Standalone, _) => None,
        (_, q) => q.as_ref(),
    };
    let synced_observers = match (s.mode, quorum) {
        (ServerMode::Leader | ServerMode::Follower, Some(q)) => Some(q.synced_observers),
        _ => None,
    };

    let mut lines: Vec<(&'static str, V)> = Vec::with_capacity(48);
    lines.push(("version", V::Text(s.version.clone())));
    lines.push(("server_state", V::Text(state(s).to_string())));
    if let Some(q) = quorum {
        lines.push(("peer_state", V::Text(q.peer_state.clone())));
    }
    let mut push = |key: &'static str, v: Option<V>| {
        if let Some(v) = v {
            lines.push((key, v));
        }
    };
    let conns = s.connections.len() as u64;
    push("ephemerals_count", Some(V::U(s.ephemerals_count))); // 0
    push("num_alive_connections", Some(V::U(conns))); // 2
    push("avg_latency", Some(V::F(round4(s.latency_avg)))); // 2
    push(
        "min_proposal_size",
        leader.map(|l| V::I(l.min_proposal_size)),
    ); // 3
    push("outstanding_requests", Some(V::U(s.outstanding))); // 4
    push("znode_count", Some(V::U(s.node_count))); // 10
    push("global_sessions", Some(V::U(s.global_sessions))); // 11
    push(
        "non_mtls_remote_conn_count",
        Some(V::U(s.non_mtls_remote_conn_count)),
    ); // 12
    push(
        "last_client_response_size",
        Some(V::I(s.last_client_response_size)),
    ); // 16
    push("packets_sent", Some(V::U(s.packets_sent))); // 20
    push("packets_received", Some(V::U(s.packets_received))); // 22
    push(
        "max_proposal_size",
        leader.map(|l| V::I(l.max_proposal_size)),
    ); // 22
    push(
        "max_client_response_size",
        Some(V::I(s.max_client_response_size)),
    ); // 23
    push("synced_followers", leader.map(|l| V::U(l.synced_followers))); // 23
    push(
        "connection_drop_probability",
        Some(V::F(s.connection_drop_probability)),
    ); // 25
    push("watch_count", Some(V::U(s.watch_count))); // 26
    push(
        "synced_non_voting_followers",
        leader.map(|l| V::U(l.synced_non_voting_followers)),
    ); // 27
    push("synced_observers", synced_observers.map(V::U)); // 28
    push("auth_failed_count", Some(V::U(s.auth_failed_count))); // 32
    push("min_latency", Some(V::I(s.latency_min))); // 33
    push(
        "max_file_descriptor_count",
        s.max_file_descriptor_count.map(V::U),
    ); // 34
    push("approximate_data_size", Some(V::U(s.approximate_data_size))); // 36
    push(
        "open_file_descriptor_count",
        s.open_file_descriptor_count.map(V::U),
    ); // 42
    push(
        "last_proposal_size",
        leader.map(|l| V::I(l.last_proposal_size)),
    ); // 43
    push("pending_syncs", leader.map(|l| V::U(l.pending_syncs))); // 44
    push("leader_uptime", leader.map(|l| V::U(l.leader_uptime_ms))); // 44
    push("local_sessions", Some(V::U(s.local_sessions))); // 45
    push("uptime", Some(V::U(s.uptime_ms))); // 47
    push("max_latency", Some(V::I(s.latency_max))); // 51
    push(
        "outstanding_tls_handshake",
        Some(V::U(s.outstanding_tls_handshake)),
    ); // 53
    push("learners", leader.map(|l| V::U(l.learners))); // 54
    push(
        "min_client_response_size",
        Some(V::I(s.min_client_response_size)),
    ); // 60
    push(
        "non_mtls_local_conn_count",
        Some(V::U(s.non_mtls_local_conn_count)),
    ); // 60
    push("quorum_size", quorum.map(|q| V::U(q.quorum_size))); // 62

    for (key, v) in &s.extra_gauges {
        lines.push((key, V::U(*v)));
    }
    lines
}

fn mntr(out: &mut String, s: &ServerSnapshot) {
    for (key, v) in monitor_values(s) {
        let _ = match v {
            V::Text(t) => writeln!(out, "zk_{key}\t{t}"),
            V::I(i) => writeln!(out, "zk_{key}\t{i}"),
            V::U(u) => writeln!(out, "zk_{key}\t{u}"),
            V::F(f) => writeln!(out, "zk_{key}\t{}", java_double(f)),
        };
    }
}

/// ZooKeeper rounds average latencies to 4 decimals before printing them.
pub(super) fn round4(x: f64) -> f64 {
    (x * 10000.0).round() / 10000.0
}

/// Java's Double.toString: `0.0`, `2.9231`, `1.0E7`, `5.0E-4`, `NaN`, `Infinity`.
pub fn java_double(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let a = x.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        // Rust's Debug is the shortest round-trip form with a ".0" on whole numbers, which
        // is Java's form in this range.
        return format!("{x:?}");
    }
    let sci = format!("{x:e}");
    match sci.split_once('e') {
        Some((mantissa, exp)) if mantissa.contains('.') => format!("{mantissa}E{exp}"),
        Some((mantissa, exp)) => format!("{mantissa}.0E{exp}"),
        None => sci,
    }
}

/// Java's InetSocketAddress.toString for an unresolved-hostname socket: `/1.2.3.4:5`,
/// `/[0:0:0:0:0:0:0:1]:5` (Java 14+ brackets IPv6; it never compresses zeros, and it turns
/// IPv4-mapped IPv6 addresses into IPv4).
pub(super) fn java_socket_addr(a: &SocketAddr) -> String {
    match a.ip() {
        IpAddr::V4(ip) => format!("/{ip}:{}", a.port()),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => format!("/{v4}:{}", a.port()),
            None => {
                let segs: Vec<String> = ip.segments().iter().map(|s| format!("{s:x}")).collect();
                format!("/[{}]:{}", segs.join(":"), a.port())
            }
        },
    }
}

/// Java's Date.toString in UTC: `Mon Nov 23 14:20:05 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic Gregorian
/// (Howard Hinnant's algorithm).
/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
