//! The AdminServer's commands (`GET /commands/<name>`), as pure functions of the same
//! `ServerSnapshot` the four-letter words render: one source of truth, two formats.
//!
//! ```text
//! GET {commandURL}            -> links to every command's primary name, sorted
//! GET {commandURL}/<name>     -> 200, JSON object: the command's fields + "command" + "error"
//!   <name> any of a command's names (monitor, mntr); unknown -> "error": "Unknown command: x"
//!   a command that needs a running server while none serves -> "error": ZK_NOT_SERVING
//! ```
//!
//! Names, aliases, fields and value types are ZooKeeper 3.8.0's (Commands.java), checked
//! against JSON captured from Debian's ZooKeeper 3.8 (`fixtures/admin/`). ZooKeeper 3.8's
//! AdminServer applies neither `4lw.commands.whitelist` nor any authentication: every
//! command answers to anyone who reaches the port (3.9 added auth for its new snapshot and
//! restore commands, which 3.8 does not have). keeperd does the same and says so in
//! docs/monitoring.md: bind the port to a trusted network.

use serde_json::{json, Map, Value};

use super::render::{environment, monitor_values, round4, state, MntrValue};
use super::snapshot::{ConnectionInfo, Need, ServerMode, ServerSnapshot};
use super::ZK_NOT_SERVING;

/// What the server does before it gathers the snapshot for a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// stat_reset / srst.
    ResetServerStats,
    /// connection_stat_reset / crst.
    ResetConnectionStats,
}

/// One AdminServer command.
#[derive(Debug)]
pub struct Command {
    /// The primary name first, then the aliases (CommandBase's names).
    pub names: &'static [&'static str],
    /// Answers ZK_NOT_SERVING while the server is not serving (CommandBase.serverRequired).
    pub server_required: bool,
    pub need: Need,
    pub effect: Effect,
}

impl Command {
    pub fn primary_name(&self) -> &'static str {
        self.names[0]
    }
}

const NOTHING: Need = Need {
    watches_by_session: false,
    watches_by_path: false,
    ephemerals: false,
    digests: false,
    dir_sizes: false,
    env: false,
};

const fn cmd(names: &'static [&'static str], server_required: bool) -> Command {
    Command {
        names,
        server_required,
        need: NOTHING,
        effect: Effect::None,
    }
}

const fn needing(names: &'static [&'static str], need: Need) -> Command {
    Command {
        names,
        server_required: true,
        need,
        effect: Effect::None,
    }
}

const DIRS: Need = Need {
    dir_sizes: true,
    ..NOTHING
};

/// Every command ZooKeeper 3.8.0 registers (Commands' static block), in its order.
pub const COMMANDS: &[Command] = &[
    Command {
        effect: Effect::ResetConnectionStats,
        ..cmd(&["connection_stat_reset", "crst"], true)
    },
    cmd(&["configuration", "conf", "config"], true),
    cmd(&["connections", "cons"], true),
    needing(
        &["hash"],
        Need {
            digests: true,
            ..NOTHING
        },
    ),
    needing(&["dirs"], DIRS),
    needing(
        &["dump"],
        Need {
            ephemerals: true,
            ..NOTHING
        },
    ),
    Command {
        need: Need {
            env: true,
            ..NOTHING
        },
        ..cmd(&["environment", "env", "envi"], false)
    },
    cmd(&["get_trace_mask", "gtmk"], false),
    cmd(&["initial_configuration", "icfg"], true),
    cmd(&["is_read_only", "isro"], true),
    cmd(&["last_snapshot", "lsnp"], true),
    cmd(&["leader", "lead"], true),
    cmd(&["monitor", "mntr"], false),
    cmd(&["observer_connection_stat_reset", "orst"], true),
    cmd(&["ruok"], true),
    cmd(&["set_trace_mask", "stmk"], false),
    needing(&["server_stats", "srvr"], DIRS),
    needing(&["stats", "stat"], DIRS),
    Command {
        effect: Effect::ResetServerStats,
        ..cmd(&["stat_reset", "srst"], true)
    },
    cmd(&["observers", "obsr"], true),
    Command {
        need: Need {
            env: true,
            ..NOTHING
        },
        ..cmd(&["system_properties", "sysp"], false)
    },
    cmd(&["voting_view"], true),
    needing(
        &["watches", "wchc"],
        Need {
            watches_by_session: true,
            ..NOTHING
        },
    ),
    needing(
        &["watches_by_path", "wchp"],
        Need {
            watches_by_path: true,
            ..NOTHING
        },
    ),
    cmd(&["watch_summary", "wchs"], true),
    cmd(&["zabstate"], false),
];

/// The command registered under `name` (any of its names; case-sensitive, as ZooKeeper's
/// HashMap lookup).
pub fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// Primary names, sorted (the order of the `/commands` listing).
pub fn primary_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMANDS.iter().map(Command::primary_name).collect();
    names.sort_unstable();
    names
}

/// The `/commands` page: ZooKeeper's list of links, one per primary name.
pub fn listing(command_url: &str) -> String {
    primary_names()
        .into_iter()
        .map(|n| format!("<a href=\"{command_url}/{n}\">{n}</a>\n<br/>\n"))
        .collect()
}

/// The JSON answer to `GET {commandURL}/{asked}` with query parameters `params`.
/// `snapshot` must have been gathered with the command's `need` (and after its `effect`).
pub fn run(asked: &str, params: &[(String, String)], s: &ServerSnapshot) -> Value {
    let Some(command) = lookup(asked) else {
        return response(asked, Some(format!("Unknown command: {asked}")), Map::new());
    };
    if command.server_required && !s.serving {
        return response(asked, Some(ZK_NOT_SERVING.to_string()), Map::new());
    }
    let mut m = Map::new();
    let mut error = None;
    match command.primary_name() {
        "configuration" => configuration(&mut m, s),
        "connections" => {
            m.insert("connections".into(), connections(s, false));
            m.insert("secure_connections".into(), json!([]));
        }
        "hash" => {
            let digests: Vec<Value> = s
                .digests
                .iter()
                .map(|(zxid, digest)| {
                    json!({"zxid": zxid, "digest_version": DIGEST_VERSION, "digest": digest})
                })
                .collect();
            m.insert("digests".into(), Value::Array(digests));
        }
        "dirs" => {
            m.insert("datadir_size".into(), json!(s.data_dir_size));
            m.insert("logdir_size".into(), json!(s.log_dir_size));
        }
        "dump" => {
            let expiry: Map<String, Value> = s
                .session_buckets
                .iter()
                .map(|b| (b.expire_at_ms.to_string(), json!(b.session_ids)))
                .collect();
            let ephemerals: Map<String, Value> = s
                .ephemerals
                .iter()
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            m.insert("expiry_time_to_session_ids".into(), Value::Object(expiry));
            m.insert(
                "session_id_to_ephemeral_paths".into(),
                Value::Object(ephemerals),
            );
        }
        "environment" => {
            for (k, v) in environment(s) {
                m.insert(k.into(), json!(v));
            }
        }
        "get_trace_mask" => {
            m.insert("tracemask".into(), json!(s.trace_mask));
        }
        "initial_configuration" => {
            m.insert("initial_configuration".into(), json!(s.initial_config));
        }
        "is_read_only" => {
            m.insert("read_only".into(), json!(s.read_only));
        }
        "last_snapshot" => {
            let (zxid, ts) = s.last_snapshot.unwrap_or((-1, -1));
            m.insert("zxid".into(), json!(format!("{zxid:x}")));
            m.insert("timestamp".into(), json!(ts));
        }
        "leader" => match &s.ensemble {
            Some(e) => {
                m.insert("is_leader".into(), json!(s.mode == ServerMode::Leader));
                m.insert("leader_id".into(), json!(e.leader_id));
                m.insert("leader_ip".into(), json!(e.leader_host));
            }
            None => error = Some("server is not initialized".to_string()),
        },
        "monitor" => {
            for (k, v) in monitor_values(s) {
                m.insert(k.into(), mntr_json(v));
            }
        }
        "observers" => {
            let synced = s.quorum.as_ref().map_or(0, |q| q.synced_observers);
            m.insert("synced_observers".into(), json!(synced));
            m.insert("observers".into(), json!([]));
        }
        "set_trace_mask" => match params.iter().find(|(k, _)| k == "traceMask") {
            None => error = Some("setTraceMask requires long traceMask argument".to_string()),
            Some((_, v)) => match v.parse::<i64>() {
                Ok(mask) => {
                    m.insert("tracemask".into(), json!(mask));
                }
                Err(_) => {
                    error = Some(format!(
                        "setTraceMask requires long traceMask argument, got {v}"
                    ))
                }
            },
        },
        "server_stats" => server_stats(&mut m, s),
        "stats" => {
            server_stats(&mut m, s);
            m.insert("connections".into(), connections(s, true));
            m.insert("secure_connections".into(), json!([]));
        }
        "system_properties" => {
            let mut props = environment(s);
            // Java system properties: the JVM's (here the OS's) and the user's; not the
            // Environment-only entries.
            props.retain(|(k, _)| {
                !k.starts_with("os.memory.") && !matches!(*k, "host.name" | "zookeeper.version")
            });
            props.extend([
                ("file.separator", "/".to_string()),
                ("line.separator", "\n".to_string()),
                ("path.separator", ":".to_string()),
            ]);
            props.sort_by(|a, b| a.0.cmp(b.0));
            for (k, v) in props {
                m.insert(k.into(), json!(v));
            }
        }
        "voting_view" => {
            let view: Map<String, Value> = s
                .ensemble
                .iter()
                .flat_map(|e| e.members.iter())
                .filter(|mv| !mv.observer)
                .map(|mv| {
                    (
                        mv.id.to_string(),
                        json!({
                            "server_addresses": [mv.server_address],
                            "election_addresses": [mv.election_address],
                            "client_address": mv.client_address,
                            "learner_type": "participant",
                        }),
                    )
                })
                .collect();
            m.insert("current_config".into(), Value::Object(view));
        }
        "watches" => {
            let w: Map<String, Value> = s
                .watches_by_session
                .iter()
                .map(|(id, paths)| (id.to_string(), json!(paths)))
                .collect();
            m.insert("session_id_to_watched_paths".into(), Value::Object(w));
        }
        "watches_by_path" => {
            let w: Map<String, Value> = s
                .watches_by_path
                .iter()
                .map(|(path, ids)| (path.clone(), json!(ids)))
                .collect();
            m.insert("path_to_session_ids".into(), Value::Object(w));
        }
        "watch_summary" => {
            let w = &s.watch_summary;
            m.insert("num_connections".into(), json!(w.connections));
            m.insert("num_paths".into(), json!(w.paths));
            m.insert("num_total_watches".into(), json!(w.total));
        }
        "zabstate" => match &s.ensemble {
            Some(e) => {
                m.insert("myid".into(), json!(e.my_id));
                m.insert("is_leader".into(), json!(s.mode == ServerMode::Leader));
                m.insert(
                    "quorum_address".into(),
                    multiple_addresses(&e.me.server_address),
                );
                m.insert(
                    "election_address".into(),
                    multiple_addresses(&e.me.election_address),
                );
                m.insert("client_address".into(), json!(e.me.client_address));
                m.insert("voting".into(), json!(e.voting));
                m.insert("last_zxid".into(), json!(format!("0x{:x}", s.zxid)));
                m.insert("zab_epoch".into(), json!(s.zxid >> 32));
                m.insert("zab_counter".into(), json!(s.zxid & 0xffff_ffff));
                let zab = if s.serving { "broadcast" } else { "election" };
                m.insert("zabstate".into(), json!(zab));
            }
            None => {
                m.insert("voting".into(), json!(false));
                m.insert("zabstate".into(), json!(""));
            }
        },
        // connection_stat_reset, stat_reset (their effect ran before the snapshot),
        // observer_connection_stat_reset (keeperd keeps no observer connection stats), ruok.
        _ => {}
    }
    response(command.primary_name(), error, m)
}

/// How Jackson serialises ZooKeeper's MultipleAddresses bean (zabstate's addresses): every
/// getter of a one-address `host:port`.
fn multiple_addresses(addr: &str) -> Value {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    let port_num: u64 = port.parse().unwrap_or(0);
    json!({
        "empty": addr.is_empty(),
        "all_addresses": [addr],
        "all_reachable_addresses": [addr],
        "one": addr,
        "reachable_address": addr,
        "wildcard_addresses": [format!("0.0.0.0:{port}")],
        "all_ports": [port_num],
        "all_host_strings": [host],
        "all_reachable_addresses_or_all": [addr],
        "reachable_or_one": addr,
    })
}

/// ZooKeeper's DigestCalculator.DIGEST_VERSION in 3.8.
const DIGEST_VERSION: i32 = 2;

/// CommandResponse.toMap: the fields, then `command` and `error` (a field named `error`
/// set by the command itself wins, as in ZooKeeper where it is put into the same map).
fn response(command: &str, error: Option<String>, mut fields: Map<String, Value>) -> Value {
    fields.insert("command".into(), json!(command));
    fields.insert("error".into(), error.map_or(Value::Null, Value::String));
    Value::Object(fields)
}

fn mntr_json(v: MntrValue) -> Value {
    match v {
        MntrValue::Text(t) => json!(t),
        MntrValue::I(i) => json!(i),
        MntrValue::U(u) => json!(u),
        MntrValue::F(f) => json!(f),
    }
}

/// ZooKeeperServerConf.toMap.
fn configuration(m: &mut Map<String, Value>, s: &ServerSnapshot) {
    let c = &s.conf;
    m.insert("client_port".into(), json!(c.client_port));
    m.insert("data_dir".into(), json!(c.data_dir));
    m.insert("data_log_dir".into(), json!(c.data_log_dir));
    m.insert("tick_time".into(), json!(c.tick_time));
    m.insert("max_client_cnxns".into(), json!(c.max_client_cnxns));
    m.insert("min_session_timeout".into(), json!(c.min_session_timeout));
    m.insert("max_session_timeout".into(), json!(c.max_session_timeout));
    m.insert("server_id".into(), json!(c.server_id));
    m.insert(
        "client_port_listen_backlog".into(),
        json!(c.client_port_listen_backlog),
    );
}

/// SrvrCommand: the ServerStats bean, the response sizes, the leader's proposal sizes.
fn server_stats(m: &mut Map<String, Value>, s: &ServerSnapshot) {
    let response_sizes = json!({
        "last_buffer_size": s.last_client_response_size,
        "min_buffer_size": s.min_client_response_size,
        "max_buffer_size": s.max_client_response_size,
    });
    m.insert("version".into(), json!(s.version));
    m.insert("read_only".into(), json!(s.read_only));
    m.insert(
        "server_stats".into(),
        json!({
            "packets_sent": s.packets_sent,
            "packets_received": s.packets_received,
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": response_sizes,
            "data_dir_size": s.data_dir_size,
            "log_dir_size": s.log_dir_size,
            "provider_null": false,
            "server_state": state(s),
            "last_processed_zxid": s.zxid,
            "outstanding_requests": s.outstanding,
            "avg_latency": round4(s.latency_avg),
            "max_latency": s.latency_max,
            "min_latency": s.latency_min,
            "num_alive_client_connections": client_connections(s).count(),
            "uptime": s.uptime_ms,
            "auth_failed_count": s.auth_failed_count,
            "non_mtlsremote_conn_count": s.non_mtls_remote_conn_count,
            "non_mtlslocal_conn_count": s.non_mtls_local_conn_count,
        }),
    );
    m.insert("client_response".into(), response_sizes);
    if let (ServerMode::Leader, Some(l)) = (s.mode, &s.leader) {
        m.insert(
            "proposal_stats".into(),
            json!({
                "last_buffer_size": l.last_proposal_size,
                "min_buffer_size": l.min_proposal_size,
                "max_buffer_size": l.max_proposal_size,
            }),
        );
    }
    m.insert("node_count".into(), json!(s.node_count));
}

/// Client connections: the snapshot also lists the connection a four-letter word arrived
/// on (interest ops 0, no session), which an HTTP request does not have.
fn client_connections(s: &ServerSnapshot) -> impl Iterator<Item = &ConnectionInfo> {
    s.connections.iter().filter(|c| c.session.is_some())
}

/// ServerCnxn.getConnectionInfo(brief).
fn connections(s: &ServerSnapshot, brief: bool) -> Value {
    let list: Vec<Value> = client_connections(s)
        .map(|c| {
            let mut m = Map::new();
            m.insert(
                "remote_socket_address".into(),
                json!(format!(
                    "{}:{}",
                    java_host_address(&c.remote),
                    c.remote.port()
                )),
            );
            m.insert("interest_ops".into(), json!(c.interest_ops));
            m.insert("outstanding_requests".into(), json!(c.queued));
            m.insert("packets_received".into(), json!(c.received));
            m.insert("packets_sent".into(), json!(c.sent));
            if let (false, Some(st)) = (brief, &c.session) {
                m.insert("session_id".into(), json!(st.session_id));
                m.insert("last_operation".into(), json!(st.last_op));
                m.insert("established".into(), json!(st.established_ms));
                m.insert("session_timeout".into(), json!(st.timeout_ms));
                m.insert("last_cxid".into(), json!(st.last_cxid));
                m.insert("last_zxid".into(), json!(st.last_zxid));
                m.insert("last_response_time".into(), json!(st.last_response_ms));
                m.insert("last_latency".into(), json!(st.last_latency));
                m.insert("min_latency".into(), json!(st.min_latency));
                m.insert("avg_latency".into(), json!(st.avg_latency));
                m.insert("max_latency".into(), json!(st.max_latency));
            }
            Value::Object(m)
        })
        .collect();
    Value::Array(list)
}

/// InetAddress.getHostAddress: dotted IPv4 (also for IPv4-mapped IPv6), or eight
/// uncompressed hex groups.
fn java_host_address(a: &std::net::SocketAddr) -> String {
    let full = super::render::java_socket_addr(a);
    let host = full.trim_start_matches('/');
    let host = &host[..host.rfind(':').unwrap_or(host.len())];
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}
