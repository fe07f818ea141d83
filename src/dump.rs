//! `keeperd dump-snapshot` and `keeperd dump-log`: what zkSnapShotToolkit.sh and
//! zkTxnLogToolkit.sh print, for ZooKeeper's files and for keeperd's own.
//!
//! ```text
//! dump-snapshot text := "ZNode Details (count=N):" ("----" node-block)* "----"
//!                       "Session Details (sid, timeout, ephemeralCount):" session-line*
//!                       "----" "Last zxid: 0x.."              (ZooKeeper's SnapshotFormatter)
//! node-block         := path, then cZxid ctime mZxid mtime pZxid cversion dataVersion
//!                       aclVersion ephemeralOwner dataLength, one "  key = value" per line
//! dump-log line      := zxid=0x.. time=RFC3339 session=0x.. cxid=0x.. TYPE PATH [details]
//! --json             := one JSON object per node / session / log entry, one per line
//! ```
//!
//! Differences from ZooKeeper's tools: nodes are listed depth first with children sorted
//! (ZooKeeper follows Java HashSet order, which depends on hashing), sessions by id, and
//! the log line is keeperd's own `key=value` format (zkTxnLogToolkit prints Java records'
//! toString). keeperd's state is dumped from its snapshot plus the log replayed to the last
//! committed entry (what the server would serve after a restart).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;

use crate::admin::java_date;
use crate::proto::request::{MultiOp, Request};
use crate::tree::Txn;
use crate::zkfiles::{LogEntry, ZkSnapshot, ZkTxn};

fn hex14(v: i64) -> String {
    // SnapshotFormatter: "0x%014x".
    format!("0x{:014x}", v as u64)
}

/// ZooKeeper's SnapshotFormatter text for `snap` (nodes in sorted depth-first order).
pub fn snapshot_text(snap: &ZkSnapshot, last_zxid: i64) -> String {
    let mut out = String::new();
    // ZooKeeper counts the root twice (its DataTree maps both "" and "/" to it).
    let _ = writeln!(out, "ZNode Details (count={}):", snap.nodes.len() + 1);
    let mut nodes: Vec<_> = snap.nodes.iter().collect();
    nodes.sort_by(|a, b| path_order(&a.path, &b.path));
    for n in &nodes {
        let s = &n.stat;
        let _ = writeln!(out, "----");
        let _ = writeln!(out, "{}", n.path);
        let _ = writeln!(out, "  cZxid = {}", hex14(s.czxid));
        let _ = writeln!(out, "  ctime = {}", java_date(s.ctime));
        let _ = writeln!(out, "  mZxid = {}", hex14(s.mzxid));
        let _ = writeln!(out, "  mtime = {}", java_date(s.mtime));
        let _ = writeln!(out, "  pZxid = {}", hex14(s.pzxid));
        let _ = writeln!(out, "  cversion = {}", s.cversion);
        let _ = writeln!(out, "  dataVersion = {}", s.version);
        let _ = writeln!(out, "  aclVersion = {}", s.aversion);
        let _ = writeln!(out, "  ephemeralOwner = {}", hex14(s.ephemeral_owner));
        let len = n.data.as_ref().map_or(0, |d| d.len());
        let _ = writeln!(out, "  dataLength = {len}");
    }
    let _ = writeln!(out, "----");
    let _ = writeln!(out, "Session Details (sid, timeout, ephemeralCount):");
    let owners = ephemeral_counts(snap);
    let mut sessions = snap.sessions.clone();
    sessions.sort();
    for (id, timeout) in sessions {
        let count = owners.get(&id).copied().unwrap_or(0);
        let _ = writeln!(out, "{:#x}, {timeout}, {count}", id as u64);
    }
    let _ = writeln!(out, "----");
    let _ = writeln!(out, "Last zxid: {:#x}", last_zxid as u64);
    out
}

/// Depth-first order: a parent before its children, siblings sorted.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |p: &'_ str| -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    parts(a).cmp(&parts(b))
}

fn ephemeral_counts(snap: &ZkSnapshot) -> BTreeMap<i64, usize> {
    let mut owners = BTreeMap::new();
    for n in &snap.nodes {
        let owner = n.stat.client_ephemeral_owner();
        if owner != 0 {
            *owners.entry(owner).or_insert(0) += 1;
        }
    }
    owners
}

fn data_json(data: Option<&[u8]>) -> serde_json::Value {
    use base64::Engine;
    match data {
        None => serde_json::Value::Null,
        Some(d) => match std::str::from_utf8(d) {
            Ok(text) => json!({ "text": text }),
            Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(d) }),
        },
    }
}

/// One JSON object per line: every node (path, stat, data as text or base64, ACL), every
/// session, then the last zxid.
pub fn snapshot_json(snap: &ZkSnapshot, last_zxid: i64) -> String {
    let acls: BTreeMap<i64, &Vec<crate::proto::Acl>> =
        snap.acls.iter().map(|(k, v)| (*k, v)).collect();
    let mut nodes: Vec<_> = snap.nodes.iter().collect();
    nodes.sort_by(|a, b| path_order(&a.path, &b.path));
    let mut out = String::new();
    for n in nodes {
        let s = &n.stat;
        let acl: Vec<_> = acls
            .get(&n.acl)
            .map(|l| {
                l.iter()
                    .map(|a| json!({"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id}))
                    .collect()
            })
            .unwrap_or_default();
        let line = json!({
            "node": n.path,
            "czxid": hex14(s.czxid), "mzxid": hex14(s.mzxid), "pzxid": hex14(s.pzxid),
            "ctime": s.ctime, "mtime": s.mtime,
            "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
            "ephemeralOwner": hex14(s.ephemeral_owner),
            "dataLength": n.data.as_ref().map_or(0, |d| d.len()),
            "data": data_json(n.data.as_deref()),
            "acl": acl,
        });
        let _ = writeln!(out, "{line}");
    }
    let owners = ephemeral_counts(snap);
    let mut sessions = snap.sessions.clone();
    sessions.sort();
    for (id, timeout) in sessions {
        let line = json!({
            "session": format!("{:#x}", id as u64),
            "timeout": timeout,
            "ephemerals": owners.get(&id).copied().unwrap_or(0),
        });
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "{}",
        json!({ "lastZxid": format!("{:#x}", last_zxid as u64) })
    );
    out
}

/// ZooKeeper's name of a txn type (Request.op2String).
pub fn zk_type_name(kind: i32) -> &'static str {
    match kind {
        1 => "create",
        2 => "delete",
        5 => "setData",
        7 => "setACL",
        13 => "check",
        14 => "multi",
        15 => "create2",
        16 => "reconfig",
        19 => "createContainer",
        20 => "deleteContainer",
        21 => "createTtl",
        -10 => "createSession",
        -11 => "closeSession",
        -1 => "error",
        _ => "unknown",
    }
}

fn zk_txn_detail(txn: &ZkTxn) -> String {
    match txn {
        ZkTxn::CreateSession { timeout_ms } => format!("timeout={timeout_ms}"),
        ZkTxn::CloseSession { paths } => match paths {
            Some(p) if !p.is_empty() => format!("ephemerals={}", p.join(",")),
            _ => String::new(),
        },
        ZkTxn::Create {
            path,
            data,
            ephemeral,
            ..
        } => format!(
            "{path} dataLength={}{}",
            data.as_ref().map_or(0, |d| d.len()),
            if *ephemeral { " ephemeral" } else { "" }
        ),
        ZkTxn::CreateContainer { path, data, .. } => {
            format!("{path} dataLength={}", data.as_ref().map_or(0, |d| d.len()))
        }
        ZkTxn::CreateTtl {
            path, data, ttl, ..
        } => format!(
            "{path} dataLength={} ttl={ttl}",
            data.as_ref().map_or(0, |d| d.len())
        ),
        ZkTxn::Delete { path } => path.clone(),
        ZkTxn::SetData {
            path,
            data,
            version,
        } => format!(
            "{path} dataLength={} version={version}",
            data.as_ref().map_or(0, |d| d.len())
        ),
        ZkTxn::SetAcl { path, version, .. } => format!("{path} version={version}"),
        ZkTxn::Check { path, version } => format!("{path} version={version}"),
        ZkTxn::Multi(ops) => ops
            .iter()
            .map(|(kind, t)| format!("{} {}", zk_type_name(*kind), zk_txn_detail(t)))
            .collect::<Vec<_>>()
            .join("; "),
        ZkTxn::Error { err } => format!("err={err}"),
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::admin::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// One line (or JSON object) per record of a ZooKeeper transaction log.
pub fn zk_log_line(e: &LogEntry, as_json: bool) -> String {
    let h = &e.header;
    let kind = zk_type_name(h.kind);
    let detail = zk_txn_detail(&e.txn);
    if as_json {
        json!({
            "zxid": format!("{:#x}", h.zxid as u64), "time": rfc3339(h.time),
            "session": format!("{:#x}", h.client_id as u64), "cxid": format!("{:#x}", h.cxid as u32),
            "type": kind, "detail": detail,
        })
        .to_string()
    } else {
        format!(
            "zxid={:#x} time={} session={:#x} cxid={:#x} {kind} {detail}",
            h.zxid as u64,
            rfc3339(h.time),
            h.client_id as u64,
            h.cxid as u32
        )
        .trim_end()
        .to_string()
    }
}

fn request_detail(req: &Request) -> (&'static str, String) {
    fn len(d: &Option<bytes::Bytes>) -> usize {
        d.as_ref().map_or(0, |d| d.len())
    }
    fn op(m: &MultiOp) -> String {
        match m {
            MultiOp::Create { req, .. } => {
                format!("create {} dataLength={}", req.path, len(&req.data))
            }
            MultiOp::Delete(r) => format!("delete {}", r.path),
            MultiOp::SetData(r) => format!("setData {} dataLength={}", r.path, len(&r.data)),
            MultiOp::Check(r) => format!("check {} version={}", r.path, r.version),
        }
    }
    match req {
        Request::Create { op, req } => {
            let name = zk_type_name(op.code());
            let mut d = format!("{} dataLength={}", req.path, len(&req.data));
            if req.flags & 1 == 1 {
                d.push_str(" ephemeral");
            }
            if req.flags & 2 == 2 {
                d.push_str(" sequential");
            }
            if req.ttl > 0 {
                let _ = write!(d, " ttl={}", req.ttl);
            }
            (name, d)
        }
        Request::Delete(r) => ("delete", format!("{} version={}", r.path, r.version)),
        Request::SetData(r) => (
            "setData",
            format!(
                "{} dataLength={} version={}",
                r.path,
                len(&r.data),
                r.version
            ),
        ),
        Request::SetAcl(r) => ("setACL", format!("{} version={}", r.path, r.version)),
        Request::Check(r) => ("check", format!("{} version={}", r.path, r.version)),
        Request::Multi(ops) => ("multi", ops.iter().map(op).collect::<Vec<_>>().join("; ")),
        other => ("other", format!("{other:?}")),
    }
}

/// One line (or JSON object) per entry of keeperd's log.
pub fn keeperd_log_line(index: u64, term: u64, zxid: i64, txn: &Txn, as_json: bool) -> String {
    // A client write keeps its kind; who submitted it shows in the sessionAuth lines.
    let (session, time, kind, detail): (i64, Option<i64>, &str, String) = match txn.inner() {
        Txn::SessionAuth {
            session_id,
            server,
            ids,
        } => (
            *session_id,
            None,
            "sessionAuth",
            format!(
                "server={server} ids={}",
                ids.iter()
                    .map(|i| format!("{}:{}", i.scheme, i.id))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
        Txn::Owned { .. } => (0, None, "owned", String::new()),
        Txn::CreateSession {
            session_id,
            timeout_ms,
        } => (
            *session_id,
            None,
            "createSession",
            format!("timeout={timeout_ms}"),
        ),
        Txn::CloseSession { session_id } => (*session_id, None, "closeSession", String::new()),
        Txn::Client {
            session_id,
            time_ms,
            request,
            ..
        } => {
            let (kind, detail) = request_detail(request);
            (*session_id, Some(*time_ms), kind, detail)
        }
        Txn::Reap { time_ms, paths } => (0, Some(*time_ms), "reap", paths.join(",")),
        Txn::SetConfig { time_ms, data } => (
            0,
            Some(*time_ms),
            "setConfig",
            String::from_utf8_lossy(data).replace('\n', " "),
        ),
        Txn::Reconfig {
            session_id,
            time_ms,
            ..
        } => (*session_id, Some(*time_ms), "reconfig", String::new()),
    };
    if as_json {
        json!({
            "index": index, "term": term, "zxid": format!("{:#x}", zxid as u64),
            "time": time.map(rfc3339), "session": format!("{:#x}", session as u64),
            "type": kind, "detail": detail,
        })
        .to_string()
    } else {
        let time = time
            .map(|t| format!(" time={}", rfc3339(t)))
            .unwrap_or_default();
        format!(
            "index={index} term={term} zxid={:#x}{time} session={:#x} {kind} {detail}",
            zxid as u64, session as u64
        )
        .trim_end()
        .to_string()
    }
}

/// What to dump: one of ZooKeeper's files, or the dataDir of a zoo.cfg (keeperd's state
/// when it has one, else ZooKeeper's files there).
pub enum Source<'a> {
    File(&'a std::path::Path),
    Config(&'a crate::config::Config),
}

fn zk_err(e: crate::proto::Error) -> String {
    e.to_string()
}

/// The last zxid of a ZooKeeper snapshot as SnapshotFormatter prints it: the greatest of
/// the file name's zxid and every node's czxid, mzxid and pzxid (a fuzzy snapshot holds
/// changes made while it was written). Checked against ZooKeeper 3.8 on every fixture.
fn snapshot_last_zxid(snap: &ZkSnapshot, path: &std::path::Path) -> i64 {
    let from_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| crate::zkfiles::dir::zxid_of(n, "snapshot", &["", ".gz", ".snappy"]))
        .unwrap_or(0);
    from_name.max(snap.max_stat_zxid())
}

fn has_keeperd_state(config: &crate::config::Config) -> Result<bool, String> {
    crate::consensus::storage::has_state(config.effective_data_log_dir(), &config.data_dir)
        .map_err(|e| e.to_string())
}

/// `keeperd dump-snapshot`: the text (or JSON lines) of a snapshot.
pub fn dump_snapshot(source: Source<'_>, as_json: bool) -> Result<String, String> {
    let (snap, last) = match source {
        Source::File(path) => {
            let snap = crate::zkfiles::dir::read_snapshot(path).map_err(zk_err)?;
            let last = snapshot_last_zxid(&snap, path);
            (snap, last)
        }
        Source::Config(config) if has_keeperd_state(config)? => {
            let tree = crate::import::recover(config)
                .map_err(|e| format!("{e} (dump a keeperd dataDir with its server stopped)"))?;
            (tree.to_zk_snapshot(), tree.last_zxid())
        }
        Source::Config(config) => {
            let files =
                crate::zkfiles::dir::list(&config.data_dir, config.effective_data_log_dir())
                    .map_err(zk_err)?;
            let Some((_, path)) = files.snapshots.first() else {
                return Err(format!(
                    "no keeperd state and no ZooKeeper snapshot in {}",
                    config.data_dir.display()
                ));
            };
            let snap = crate::zkfiles::dir::read_snapshot(path).map_err(zk_err)?;
            let last = snapshot_last_zxid(&snap, path);
            (snap, last)
        }
    };
    Ok(if as_json {
        snapshot_json(&snap, last)
    } else {
        snapshot_text(&snap, last)
    })
}

/// `keeperd dump-log`: one line per entry, written to `out` as they are read.
pub fn dump_log(
    source: Source<'_>,
    as_json: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), String> {
    let write_zk = |path: &std::path::Path, out: &mut dyn std::io::Write| -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let log = crate::zkfiles::txnlog::read(&bytes).map_err(zk_err)?;
        for e in &log.entries {
            writeln!(out, "{}", zk_log_line(e, as_json)).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    match source {
        Source::File(path) => write_zk(path, out),
        Source::Config(config) if has_keeperd_state(config)? => {
            let mut failed = None;
            let mut visit = |e: &raft::eraftpb::Entry, committed: bool| {
                if failed.is_some() {
                    return;
                }
                let zxid = crate::consensus::zxid(e.term, e.index);
                let line = if e.get_entry_type() != raft::eraftpb::EntryType::EntryNormal {
                    format!("index={} term={} membership change", e.index, e.term)
                } else if e.data.is_empty() {
                    format!("index={} term={} leader's empty entry", e.index, e.term)
                } else {
                    match Txn::decode(&e.data) {
                        Ok(txn) => keeperd_log_line(e.index, e.term, zxid, &txn, as_json),
                        Err(err) => format!("index={} term={} undecodable: {err}", e.index, e.term),
                    }
                };
                let mark = if committed || as_json {
                    ""
                } else {
                    " (not committed)"
                };
                if let Err(err) = writeln!(out, "{line}{mark}") {
                    failed = Some(err.to_string());
                }
            };
            crate::consensus::read_log_offline(
                &config.data_dir,
                config.data_log_dir.as_deref(),
                &mut visit,
            )
            .map_err(|e| format!("{e} (dump a keeperd dataDir with its server stopped)"))?;
            failed.map_or(Ok(()), Err)
        }
        Source::Config(config) => {
            let files =
                crate::zkfiles::dir::list(&config.data_dir, config.effective_data_log_dir())
                    .map_err(zk_err)?;
            if files.logs.is_empty() {
                return Err(format!(
                    "no keeperd state and no ZooKeeper log in {}",
                    config.txn_log_dir().display()
                ));
            }
            for (_, path) in &files.logs {
                write_zk(path, out)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_572_018_388), "2026-12-06T15:46:58.388Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn depth_first_sorted_order() {
        let mut paths = vec!["/b", "/a/z", "/", "/a", "/a/b", "/ab"];
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(paths, vec!["/", "/a", "/a/b", "/a/z", "/ab", "/b"]);
    }
}
