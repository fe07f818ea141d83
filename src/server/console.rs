//! The web console on the AdminServer's port: one page (`console.html`, compiled into the
//! binary: no external assets) and the two JSON endpoints it reads besides the AdminServer's
//! commands:
//!
//! ```text
//! GET /console                       the page
//! GET /console/api/znode?path=/a     a znode as an unauthenticated client may read it:
//!                                    data (base64), Stat, children, ACL; or "error"
//! GET /console/api/ensemble          every member's srvr, asked over its client port
//!                                    (reachable or not, mode, zxid, connections, latency)
//! ```
//!
//! The console only reads, and only what the znode's ACL lets anyone read: it has no
//! identity of its own, so a node readable only by digest users shows "NoAuth".

use base64::Engine;
use serde_json::{json, Value};

use super::Shared;
use crate::proto::{Acl, Stat};

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

/// `/console/api/znode?path=...`.
pub fn znode(shared: &Shared, path: &str) -> Value {
    let valid = path.starts_with('/')
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path.len() <= 4096;
    if !valid {
        return json!({"path": path, "error": "not a znode path"});
    }
    let state = shared.state();
    let tree = &state.tree;
    let anyone = [];
    let (data, stat) = match tree.get_data(path, &anyone) {
        Ok(x) => x,
        Err(e) => return json!({"path": path, "error": e.to_string()}),
    };
    let mut children = tree
        .get_children(path, &anyone)
        .map(|(c, _)| c)
        .unwrap_or_default();
    children.sort();
    let acl = tree
        .get_acl(path, &anyone)
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
