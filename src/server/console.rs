//! The web console on the AdminServer's port: one page (`console.html`, compiled into the
//! binary: no external assets) and the JSON endpoints it reads besides the AdminServer's
//! commands:
//!
//! ```text
//! GET  /console                        the page
//! GET  /console/api/znode?path=/a      a znode: data (base64), Stat, children, ACL; or "error"
//! GET  /console/api/ensemble           every member's srvr, asked over its client port
//! GET  /console/api/live               cumulative latency histograms (reads, writes, fsync)
//! GET  /console/api/sessions           sessions, their ephemerals, watches and connections
//! GET  /console/api/kafka?root=/k      the Kafka cluster registered under a chroot
//! POST /console/api/edit               create / set / delete (JSON body)
//! ```
//!
//! Reads use the identities of the request's `Authorization: digest user:password` (none
//! without it), checked against each znode's ACL as a client's would be. Edits are made by
//! a client session on the server's own client port that authenticated with that login, so
//! the console has no authority of its own (docs/monitoring.md).

use base64::Engine;
use serde_json::{json, Value};

use super::Shared;
use crate::proto::{Acl, Id, Stat};
use crate::tree::DataTree;

pub const PAGE: &str = include_str!("console.html");

/// How long the ensemble view waits for one member's srvr.
const MEMBER_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);

fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid,
        "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeral_owner": s.ephemeral_owner,
        "data_length": s.data_length, "num_children": s.num_children,
    })
}

fn acl_json(acl: &[Acl]) -> Value {
    let perms = |p: i32| {
        [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')]
            .iter()
            .filter(|(bit, _)| p & bit != 0)
            .map(|(_, c)| *c)
            .collect::<String>()
    };
    acl.iter()
        .map(|a| json!({"scheme": a.id.scheme, "id": a.id.id, "perms": perms(a.perms)}))
        .collect()
}

/// `/console/api/znode?path=...`, read with the identities of the console's login (none
/// when nobody logged in).
pub fn znode(shared: &Shared, path: &str, ids: &[Id]) -> Value {
    let valid = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path.len() <= 4096;
    if !valid {
        return json!({"path": path, "error": "not a znode path"});
    }
    let state = shared.state();
    let tree = &state.tree;
    let (data, stat) = match tree.get_data(path, ids) {
        Ok(x) => x,
        Err(e) => return json!({"path": path, "error": e.to_string()}),
    };
    let mut children = tree
        .get_children(path, ids)
        .map(|(c, _)| c)
        .unwrap_or_default();
    children.sort();
    let acl = tree
        .get_acl(path, ids)
        .map(|(a, _)| acl_json(&a))
        .unwrap_or(Value::Null);
    json!({
        "path": path,
        "error": null,
        "data": data.map(|d| base64::engine::general_purpose::STANDARD.encode(&d)),
        "stat": stat_json(&stat),
        "children": children,
        "acl": acl,
    })
}

/// `/console/api/ensemble`: every member's `srvr` (standalone: this server's). Members
/// come from /zookeeper/config (it follows reconfig), else zoo.cfg; a member's client
/// address from its `;host:port` part, else clientPort on its quorum host. `me` is this
/// server's bound client address.
pub fn ensemble(shared: &Shared, me: std::net::SocketAddr) -> Value {
    let cfg = shared.config();
    let local_host = if me.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        me.ip().to_string()
    };
    let servers = super::fourlw::live_servers(shared);
    let my_id = cfg.my_id.unwrap_or(0);
    let mut members: Vec<(u64, String, u16)> = servers
        .iter()
        .map(|s| {
            if s.id == my_id {
                return (s.id, local_host.clone(), me.port());
            }
            let host = s.client_addr.clone().filter(|a| a != "0.0.0.0");
            let host = host.unwrap_or_else(|| s.host.clone());
            (s.id, host, s.client_port.unwrap_or(cfg.client_port))
        })
        .collect();
    if members.is_empty() {
        members.push((my_id, local_host, me.port()));
    }
    let asked: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = members
            .iter()
            .map(|(id, host, port)| {
                scope.spawn(move || {
                    let answer =
                        crate::admin::four_letter_word(host, *port, "srvr", MEMBER_TIMEOUT);
                    member(*id, &format!("{host}:{port}"), answer.ok())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Value::Null))
            .collect()
    });
    let (config_text, _) = shared.state().tree.config();
    let version = config_text
        .lines()
        .find_map(|l| l.strip_prefix("version="))
        .map(str::to_string);
    json!({"members": asked, "membership_version": version})
}

fn member(id: u64, address: &str, srvr: Option<String>) -> Value {
    let Some(text) = srvr.filter(|t| t.contains("Mode: ")) else {
        return json!({"id": id, "address": address, "reachable": false});
    };
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let zxid = field("Zxid: ")
        .and_then(|z| i64::from_str_radix(z.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    json!({
        "id": id,
        "address": address,
        "reachable": true,
        "mode": field("Mode: "),
        "zxid": zxid,
        "connections": field("Connections: ").and_then(|c| c.parse::<u64>().ok()),
        "latency": field("Latency min/avg/max: "),
        "znodes": field("Node count: ").and_then(|c| c.parse::<u64>().ok()),
    })
}

/// How many sessions, and paths per session, `/console/api/sessions` lists (the counts
/// are always whole).
const MAX_SESSIONS: usize = 1000;
const MAX_PATHS: usize = 100;

fn hex_id(id: i64) -> String {
    format!("0x{:x}", id as u64)
}

/// The first `MAX_PATHS` of `paths` and how many there are in all.
fn some_paths(mut paths: Vec<String>) -> Value {
    paths.sort();
    let total = paths.len();
    paths.truncate(MAX_PATHS);
    json!({"total": total, "paths": paths})
}

/// `/console/api/sessions`: every session of the ensemble (the tree's, replicated), with
/// its ephemerals; the watches and connection details this server holds for the sessions
/// connected to it. Ids are hex strings: JavaScript numbers lose the low bits of a session
/// id.
pub fn sessions(shared: &Shared) -> Value {
    let need = crate::admin::Need {
        watches_by_session: true,
        ephemerals: true,
        ..Default::default()
    };
    let snap = super::fourlw::snapshot(shared, need, None);
    let mut sessions = shared.state().tree.sessions();
    sessions.sort_by_key(|s| s.session_id);
    let total = sessions.len();
    let ephemerals: std::collections::HashMap<i64, Vec<String>> =
        snap.ephemerals.into_iter().collect();
    let mut watches: std::collections::HashMap<i64, Vec<String>> =
        snap.watches_by_session.into_iter().collect();
    let conns: std::collections::HashMap<i64, &crate::admin::ConnectionInfo> = snap
        .connections
        .iter()
        .filter_map(|c| c.session.as_ref().map(|s| (s.session_id, c)))
        .collect();
    let listed: Vec<Value> = sessions
        .iter()
        .take(MAX_SESSIONS)
        .map(|s| {
            let connection = conns.get(&s.session_id).map(|c| {
                let st = c.session.as_ref();
                json!({
                    "remote": c.remote.to_string(),
                    "received": c.received,
                    "sent": c.sent,
                    "queued": c.queued,
                    "last_op": st.map(|x| x.last_op.clone()),
                    "established_ms": st.map(|x| x.established_ms),
                    "latency_ms": st.map(|x| [x.min_latency, x.avg_latency, x.max_latency]),
                })
            });
            json!({
                "id": hex_id(s.session_id),
                "timeout_ms": s.timeout_ms,
                "ephemerals": some_paths(ephemerals.get(&s.session_id).cloned().unwrap_or_default()),
                "watches": some_paths(watches.remove(&s.session_id).unwrap_or_default()),
                "connection": connection,
            })
        })
        .collect();
    json!({
        "total": total,
        "sessions": listed,
        "connected_here": snap.connections.len(),
        "watch_count": snap.watch_count,
    })
}

/// `/console/api/live`: the cumulative latency distributions (ms buckets) of reads,
/// writes and fsyncs; the page diffs successive answers for requests/s and p50/p99 over
/// each interval.
pub fn live(shared: &Shared) -> Value {
    let stats = shared.stats();
    json!({
        "read": stats.read_latency.nonzero_buckets(),
        "update": stats.update_latency.nonzero_buckets(),
        "fsync": crate::summary::FSYNC_TIME.nonzero_buckets(),
    })
}

/// How far below `/` the Kafka view looks for chroots, and how many znodes it visits.
const KAFKA_SEARCH_DEPTH: usize = 3;
const KAFKA_SEARCH_NODES: usize = 5000;
/// Topics listed in full (partitions and their state); the rest are named only.
const MAX_TOPICS: usize = 500;

fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

fn children_of(tree: &DataTree, path: &str, ids: &[Id]) -> Vec<String> {
    let mut c = tree
        .get_children(path, ids)
        .map(|(c, _)| c)
        .unwrap_or_default();
    c.sort_by(|a, b| match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    c
}

/// A znode's data as JSON (Kafka writes JSON everywhere); `None` when missing, unreadable
/// or not JSON.
fn json_at(tree: &DataTree, path: &str, ids: &[Id]) -> Option<Value> {
    let (data, _) = tree.get_data(path, ids).ok()?;
    serde_json::from_slice(&data?).ok()
}

/// Chroots that hold a Kafka cluster: znodes with `brokers/ids` below them, breadth first
/// from `/` (`/zookeeper` skipped).
fn kafka_roots(tree: &DataTree, ids: &[Id]) -> Vec<String> {
    let mut roots = Vec::new();
    let mut level = vec!["/".to_string()];
    let mut visited = 0;
    for _ in 0..=KAFKA_SEARCH_DEPTH {
        let mut next = Vec::new();
        for node in level {
            if tree.exists(&join(&node, "brokers/ids")).is_some() {
                roots.push(node.clone());
            }
            for c in children_of(tree, &node, ids) {
                visited += 1;
                if visited > KAFKA_SEARCH_NODES {
                    return roots;
                }
                if !(node == "/" && c == "zookeeper") && c != "brokers" {
                    next.push(join(&node, &c));
                }
            }
        }
        level = next;
    }
    roots
}

fn kafka_broker(tree: &DataTree, root: &str, id: &str, ids: &[Id]) -> Value {
    let path = join(root, &format!("brokers/ids/{id}"));
    let reg = json_at(tree, &path, ids).unwrap_or(Value::Null);
    let mut endpoints: Vec<String> = reg["endpoints"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if endpoints.is_empty() {
        if let (Some(h), Some(p)) = (reg["host"].as_str(), reg["port"].as_i64()) {
            endpoints.push(format!("PLAINTEXT://{h}:{p}"));
        }
    }
    let owner = tree.exists(&path).map(|s| hex_id(s.ephemeral_owner));
    json!({
        "id": id,
        "endpoints": endpoints,
        "rack": reg["rack"],
        "version": reg["version"],
        "timestamp": reg["timestamp"],
        "session": owner,
    })
}

fn kafka_topic(tree: &DataTree, root: &str, name: &str, ids: &[Id]) -> Value {
    let topic = join(root, &format!("brokers/topics/{name}"));
    let assignment = json_at(tree, &topic, ids).unwrap_or(Value::Null);
    let mut partitions: Vec<(i64, Value)> = assignment["partitions"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(p, replicas)| Some((p.parse::<i64>().ok()?, replicas.clone())))
                .collect()
        })
        .unwrap_or_default();
    partitions.sort_by_key(|(p, _)| *p);
    let partitions: Vec<Value> = partitions
        .into_iter()
        .map(|(p, replicas)| {
            let state =
                json_at(tree, &format!("{topic}/partitions/{p}/state"), ids).unwrap_or(Value::Null);
            json!({
                "partition": p,
                "replicas": replicas,
                "leader": state["leader"],
                "isr": state["isr"],
                "leader_epoch": state["leader_epoch"],
                "adding": assignment["adding_replicas"][p.to_string()],
                "removing": assignment["removing_replicas"][p.to_string()],
            })
        })
        .collect();
    json!({"name": name, "partitions": partitions})
}

/// `/console/api/kafka?root=/kafka01`: the Kafka cluster registered under a chroot (the
/// first one found when `root` is not given): brokers and their endpoints, the controller,
/// topics with their partitions' replicas, leader and ISR, topics being deleted and
/// pending reassignments (Kafka's own znodes, read with the console login's identities).
pub fn kafka(shared: &Shared, root: Option<&str>, ids: &[Id]) -> Value {
    let state = shared.state();
    let tree = &state.tree;
    let roots = kafka_roots(tree, ids);
    let root = match root.filter(|r| !r.is_empty()) {
        Some(r) => r.to_string(),
        None => match roots.first() {
            Some(r) => r.clone(),
            None => return json!({"roots": roots, "root": null}),
        },
    };
    if tree.exists(&join(&root, "brokers/ids")).is_none() {
        return json!({"roots": roots, "root": root, "error": "no brokers/ids under this root"});
    }
    let brokers: Vec<Value> = children_of(tree, &join(&root, "brokers/ids"), ids)
        .iter()
        .map(|id| kafka_broker(tree, &root, id, ids))
        .collect();
    let topic_names = children_of(tree, &join(&root, "brokers/topics"), ids);
    let topics: Vec<Value> = topic_names
        .iter()
        .take(MAX_TOPICS)
        .map(|t| kafka_topic(tree, &root, t, ids))
        .collect();
    let controller = json_at(tree, &join(&root, "controller"), ids);
    let reassign = json_at(tree, &join(&root, "admin/reassign_partitions"), ids);
    json!({
        "roots": roots,
        "root": root,
        "cluster_id": json_at(tree, &join(&root, "cluster/id"), ids).map(|c| c["id"].clone()),
        "controller": controller.map(|c| c["brokerid"].clone()),
        "controller_epoch": json_at(tree, &join(&root, "controller_epoch"), ids),
        "brokers": brokers,
        "topic_count": topic_names.len(),
        "topics": topics,
        "deleting": children_of(tree, &join(&root, "admin/delete_topics"), ids),
        "reassignments": reassign.map(|r| r["partitions"].clone()),
    })
}

/// A console edit (`POST /console/api/edit`).
#[derive(Debug, serde::Deserialize)]
pub struct Edit {
    pub op: String,
    pub path: String,
    /// The new data as text (create, set); absent = empty.
    #[serde(default)]
    pub data: Option<String>,
    /// The expected version (set, delete); -1 or absent = any.
    #[serde(default)]
    pub version: Option<i32>,
    /// create: "open" (world:anyone, all permissions, zkCli's default) or "creator" (the
    /// logged-in user alone, ZooKeeper's CREATOR_ALL_ACL).
    #[serde(default)]
    pub acl: Option<String>,
}

/// How long an edit may take in all (connect, authenticate, the write).
const EDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Makes `edit` as a ZooKeeper client of `server` authenticated as digest `user_password`,
/// in a session of its own that ends with the edit.
pub async fn edit(server: std::net::SocketAddr, user_password: &str, edit: Edit) -> Value {
    match tokio::time::timeout(EDIT_TIMEOUT, edit_as_client(server, user_password, &edit)).await {
        Ok(Ok(path)) => json!({"error": null, "path": path}),
        Ok(Err(e)) => json!({"error": e, "path": edit.path}),
        Err(_) => json!({"error": "timed out", "path": edit.path}),
    }
}

async fn edit_as_client(
    server: std::net::SocketAddr,
    user_password: &str,
    edit: &Edit,
) -> Result<String, String> {
    use zookeeper_client as zk;
    let name = |e: zk::Error| format!("{e:?}");
    let client = zk::Client::connector()
        .with_session_timeout(EDIT_TIMEOUT)
        .with_connection_timeout(std::time::Duration::from_secs(2))
        .with_fail_eagerly()
        .with_auth("digest", user_password.as_bytes())
        .connect(&server.to_string())
        .await
        .map_err(name)?;
    let path = edit.path.as_str();
    let version = edit.version.filter(|v| *v >= 0);
    let data = edit.data.as_deref().unwrap_or("").as_bytes();
    match edit.op.as_str() {
        "create" => {
            let acls = match edit.acl.as_deref() {
                None | Some("open") => zk::Acls::anyone_all(),
                Some("creator") => zk::Acls::creator_all(),
                Some(other) => return Err(format!("unknown acl {other:?}: open or creator")),
            };
            let options = zk::CreateMode::Persistent.with_acls(acls);
            client.create(path, data, &options).await.map_err(name)?;
            Ok(path.to_string())
        }
        "set" => {
            client.set_data(path, data, version).await.map_err(name)?;
            Ok(path.to_string())
        }
        "delete" => {
            client.delete(path, version).await.map_err(name)?;
            Ok(path.to_string())
        }
        other => Err(format!("unknown op {other:?}: create, set or delete")),
    }
}
