//! The AdminServer's JSON against ZooKeeper 3.8.0's, captured from Debian's server with
//! `admin.enableServer=true` (`fixtures/admin/*.json`: standalone, one kazoo session that
//! created /a and the ephemeral /a/e and watched both; `fixtures/admin/quorum/*.json`: a
//! one-member ensemble, `standaloneEnabled=false`). Paths in the captures were rewritten to
//! /var/lib/zookeeper.
//!
//! Values differ between two servers; what must agree is the shape: the same field names at
//! every level and the same JSON types (integer, double, string, boolean, null, list,
//! object). For the environment, the system properties and monitor, ZooKeeper lists JVM
//! entries and counters keeperd does not have: there keeperd's fields must be a subset of
//! ZooKeeper's, with the same types.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::Value;

use super::commands::{self, lookup, COMMANDS};
use super::*;
use crate::watch::WatchSummary;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/src/admin/fixtures/admin/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Differences in shape between ZooKeeper's `zk` and keeperd's `ours`, as `path: ...` lines.
/// With `subset`, fields only ZooKeeper has are allowed (at the top level).
fn shape_diff(path: &str, zk: &Value, ours: &Value, subset: bool, out: &mut Vec<String>) {
    // ZooKeeper answers `error` as null or a string, whichever the run gave.
    if kind(zk) != kind(ours) && !path.ends_with(".error") {
        out.push(format!(
            "{path}: ZooKeeper {} keeperd {}",
            kind(zk),
            kind(ours)
        ));
        return;
    }
    match (zk, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let ka: BTreeSet<&String> = a.keys().collect();
            let kb: BTreeSet<&String> = b.keys().collect();
            // Objects keyed by data (session ids, paths, expiry times, member ids) are
            // compared by their values' shape only.
            let keyed_by_data = [
                "expiry_time_to_session_ids",
                "session_id_to_ephemeral_paths",
                "session_id_to_watched_paths",
                "path_to_session_ids",
                "current_config",
            ]
            .iter()
            .any(|k| path.ends_with(k));
            if keyed_by_data {
                if let (Some(x), Some(y)) = (a.values().next(), b.values().next()) {
                    shape_diff(&format!("{path}.*"), x, y, false, out);
                }
                return;
            }
            for k in kb.difference(&ka) {
                out.push(format!("{path}.{k}: only keeperd has it"));
            }
            if !subset {
                for k in ka.difference(&kb) {
                    out.push(format!("{path}.{k}: keeperd lacks it"));
                }
            }
            for k in ka.intersection(&kb) {
                shape_diff(&format!("{path}.{k}"), &a[*k], &b[*k], false, out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                shape_diff(&format!("{path}[]"), x, y, false, out);
            }
        }
        _ => {}
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

const SID: i64 = 72058979536928768;

/// A standalone server in the state the capture was taken in.
fn standalone() -> ServerSnapshot {
    ServerSnapshot {
        serving: true,
        version: "3.8.0-keeperd-test".into(),
        latency_avg: 6.3333,
        latency_max: 14,
        latency_min: 1,
        zxid: 3,
        node_count: 7,
        connections: vec![ConnectionInfo {
            remote: addr("127.0.0.1:36590"),
            interest_ops: 1,
            queued: 0,
            received: 6,
            sent: 6,
            session: Some(SessionStats {
                session_id: SID,
                last_op: "GETC".into(),
                established_ms: 1796569041033,
                timeout_ms: 10000,
                ..SessionStats::default()
            }),
        }],
        watch_count: 3,
        watch_summary: WatchSummary {
            connections: 1,
            paths: 2,
            total: 2,
        },
        watches_by_session: vec![(SID, vec!["/a".into(), "/a/e".into()])],
        watches_by_path: vec![("/a".into(), vec![SID]), ("/a/e".into(), vec![SID])],
        ephemerals_count: 1,
        ephemerals: vec![(SID, vec!["/a/e".into()])],
        session_buckets: vec![SessionBucket {
            expire_at_ms: 21162000,
            session_ids: vec![SID],
        }],
        global_sessions: 1,
        approximate_data_size: 56,
        open_file_descriptor_count: Some(45),
        max_file_descriptor_count: Some(20000),
        uptime_ms: 13032,
        data_dir_size: 67109337,
        log_dir_size: 67109337,
        last_client_response_size: 25,
        min_client_response_size: 22,
        max_client_response_size: 93,
        conf: ConfInfo {
            client_port: 12181,
            secure_client_port: -1,
            data_dir: "/var/lib/zookeeper/data/version-2".into(),
            data_log_dir: "/var/lib/zookeeper/data/version-2".into(),
            tick_time: 2000,
            max_client_cnxns: 60,
            min_session_timeout: 4000,
            max_session_timeout: 40000,
            client_port_listen_backlog: -1,
            ..ConfInfo::default()
        },
        env: EnvInfo {
            host_name: "localhost".into(),
            tmp_dir: "/tmp".into(),
            os_name: "Linux".into(),
            os_arch: "amd64".into(),
            os_version: "6.1".into(),
            user_name: "root".into(),
            user_home: "/root".into(),
            user_dir: "/var/lib/zookeeper".into(),
            memory_free_mb: Some(182),
            memory_max_mb: Some(247),
            memory_total_mb: Some(247),
        },
        trace_mask: 306,
        digests: vec![(3, 1234567)],
        extra_gauges: vec![("snap_count", 1), ("log_bytes", 358)],
        initial_config: "tickTime=2000\n".into(),
        last_snapshot: Some((0, 1796569031)),
        ..ServerSnapshot::default()
    }
}

/// The leader of a one-member ensemble.
fn leader() -> ServerSnapshot {
    let me = MemberView {
        id: 1,
        server_address: "127.0.0.1:12888".into(),
        election_address: "127.0.0.1:13888".into(),
        client_address: "127.0.0.1:12182".into(),
        observer: false,
    };
    ServerSnapshot {
        mode: ServerMode::Leader,
        zxid: 0x1_0000_0000,
        leader: Some(LeaderStats {
            learners: 0,
            synced_followers: 0,
            last_proposal_size: -1,
            min_proposal_size: -1,
            max_proposal_size: -1,
            ..LeaderStats::default()
        }),
        quorum: Some(QuorumStats {
            quorum_size: 1,
            peer_state: "leading - broadcast".into(),
            synced_observers: 0,
        }),
        ensemble: Some(EnsembleView {
            my_id: 1,
            leader_id: 1,
            leader_host: "127.0.0.1".into(),
            me: me.clone(),
            voting: true,
            members: vec![me],
        }),
        ..standalone()
    }
}

fn run(name: &str, s: &ServerSnapshot) -> Value {
    commands::run(name, &[], s)
}

fn check(fixture_name: &str, command: &str, s: &ServerSnapshot, subset: bool) -> Vec<String> {
    let zk = fixture(fixture_name);
    let ours = run(command, s);
    let mut diffs = vec![];
    shape_diff(command, &zk, &ours, subset, &mut diffs);
    diffs
}

#[test]
fn every_command_has_zookeepers_shape_standalone() {
    let s = standalone();
    let mut diffs = vec![];
    for c in COMMANDS {
        let name = c.primary_name();
        let subset = matches!(name, "environment" | "system_properties" | "monitor");
        let mut d = check(name, name, &s, subset);
        if name == "monitor" {
            // keeperd's own figures (mntr prints them after ZooKeeper's keys).
            d.retain(|l| !l.contains("snap_count") && !l.contains("log_bytes"));
        }
        diffs.extend(d);
    }
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
}

#[test]
fn quorum_commands_have_zookeepers_shape() {
    let s = leader();
    let mut diffs = vec![];
    for name in [
        "leader",
        "voting_view",
        "zabstate",
        "observers",
        "server_stats",
        "configuration",
    ] {
        diffs.extend(check(&format!("quorum/{name}"), name, &s, false));
    }
    let mut d = check("quorum/monitor", "monitor", &s, true);
    d.retain(|l| !l.contains("snap_count") && !l.contains("log_bytes"));
    diffs.extend(d);
    assert!(diffs.is_empty(), "shape differences:\n{}", diffs.join("\n"));
}

#[test]
fn monitor_has_every_gauge_zookeeper_registers() {
    // dumpMonitorValues and the gauges of ZooKeeperServer.registerMetrics (3.8.0); the
    // ServerMetrics counters after them in the capture keeperd does not keep.
    let zk = fixture("monitor");
    let ours = run("monitor", &standalone());
    for k in [
        "version",
        "server_state",
        "avg_latency",
        "max_latency",
        "min_latency",
        "packets_received",
        "packets_sent",
        "num_alive_connections",
        "outstanding_requests",
        "uptime",
        "znode_count",
        "watch_count",
        "ephemerals_count",
        "approximate_data_size",
        "global_sessions",
        "local_sessions",
        "open_file_descriptor_count",
        "max_file_descriptor_count",
        "connection_drop_probability",
        "last_client_response_size",
        "max_client_response_size",
        "min_client_response_size",
        "outstanding_tls_handshake",
        "auth_failed_count",
        "non_mtls_remote_conn_count",
        "non_mtls_local_conn_count",
    ] {
        assert!(zk.get(k).is_some(), "ZooKeeper's capture lacks {k}");
        assert!(ours.get(k).is_some(), "monitor lacks {k}");
    }
}

#[test]
fn names_aliases_and_errors() {
    let s = standalone();
    // Every alias answers as its primary name.
    for c in COMMANDS {
        for alias in c.names {
            assert_eq!(lookup(alias).unwrap().primary_name(), c.primary_name());
            assert_eq!(run(alias, &s)["command"], c.primary_name(), "{alias}");
        }
    }
    assert_eq!(run("nosuch", &s), fixture("nosuch"));
    assert_eq!(run("leader", &s), fixture("leader"));
    assert_eq!(run("set_trace_mask", &s), fixture("set_trace_mask"));
    let mask = vec![("traceMask".to_string(), "306".to_string())];
    assert_eq!(commands::run("stmk", &mask, &s)["tracemask"], 306);
    let bad = vec![("traceMask".to_string(), "x".to_string())];
    assert_eq!(
        commands::run("stmk", &bad, &s)["error"],
        "setTraceMask requires long traceMask argument, got x"
    );
    // Not serving: ZooKeeper's message under the name asked for, except for the commands
    // that do not need a running server.
    let down = ServerSnapshot {
        serving: false,
        ..standalone()
    };
    let answer = run("srvr", &down);
    assert_eq!(answer["command"], "srvr");
    assert_eq!(answer["error"], ZK_NOT_SERVING);
    for name in ["monitor", "environment", "get_trace_mask", "zabstate"] {
        assert_eq!(run(name, &down)["error"], Value::Null, "{name}");
    }
}

#[test]
fn listing_is_zookeepers_page() {
    // ZooKeeper's /commands page, byte for byte (captured with curl).
    let expected: String = {
        let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.primary_name()).collect();
        names.sort_unstable();
        names
            .iter()
            .map(|n| format!("<a href=\"/commands/{n}\">{n}</a>\n<br/>\n"))
            .collect()
    };
    assert_eq!(commands::listing("/commands"), expected);
    assert_eq!(expected.len(), 1424, "ZooKeeper's page is 1424 bytes");
    assert_eq!(COMMANDS.len(), 26);
}

#[test]
fn monitor_json_and_mntr_text_agree() {
    let s = leader();
    let json = run("mntr", &s);
    let text = render(FourLetterWord::Mntr, &s);
    let mut lines = 0;
    for line in text.lines() {
        let (key, value) = line.split_once('\t').unwrap();
        let field = &json[key.strip_prefix("zk_").unwrap()];
        let as_text = match field {
            Value::String(t) => t.clone(),
            Value::Number(n) if n.is_f64() => java_double(n.as_f64().unwrap()),
            other => other.to_string(),
        };
        assert_eq!(as_text, value, "{key}");
        lines += 1;
    }
    // + command and error
    assert_eq!(json.as_object().unwrap().len(), lines + 2);
}
