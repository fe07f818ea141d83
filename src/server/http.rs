//! The HTTP ports: ZooKeeper's AdminServer (`admin.serverAddress:admin.serverPort`, commands
//! under `admin.commandURL`, plus the `/livez` and `/readyz` probes and the web console
//! under `/console`) and the Prometheus
//! endpoint (`metricsProvider.httpHost:metricsProvider.httpPort`, `/metrics`).
//!
//! Both answer from `fourlw::snapshot`, the snapshot the four-letter words render, through
//! the pure functions of `admin::commands` and `admin::metrics`. They must never slow or
//! stop the client port: each runs its own accept loop, a gathering runs on the blocking
//! pool (it may walk the data directory), at most `MAX_CONNECTIONS` connections are served
//! at once (more are closed on accept), a connection that sends no complete request head
//! within admin.idleTimeout is closed, and a port that cannot be bound is logged and left
//! off (ZooKeeper's quorum servers do the same; its standalone server would exit).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::console;
use super::fourlw;
use super::Shared;
use crate::admin::commands;
use crate::admin::metrics::{self, Figure, Kind, SummaryFigures};
use crate::admin::Need;
use crate::proto::Id;
use crate::summary::{Summary, FSYNC_TIME, SNAPSHOT_TIME};

/// Connections served at once per port; monitoring needs few, and a flood must not take
/// file descriptors the client port needs.
const MAX_CONNECTIONS: usize = 32;

/// The HTTP ports that are up.
#[derive(Default)]
pub struct HttpPorts {
    pub admin: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl HttpPorts {
    pub(super) fn stop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// What one port's requests need.
struct Site {
    shared: Arc<Shared>,
    kind: SiteKind,
    /// When the last `snapshot` command was served (admin.snapshot.intervalInMS).
    snapshot_taken: std::sync::Mutex<Option<std::time::Instant>>,
}

enum SiteKind {
    Admin {
        /// The client port as bound (the console asks this server's srvr there).
        client: SocketAddr,
        command_url: String,
        /// zoo.cfg as read at start (`initial_configuration`).
        initial_config: String,
    },
    Metrics,
}

/// Starts the AdminServer and the metrics endpoint if zoo.cfg asks for them.
pub(super) async fn start(shared: &Arc<Shared>, client: SocketAddr) -> HttpPorts {
    let cfg = shared.config();
    let idle = Duration::from_millis(cfg.admin_idle_timeout_ms as u64);
    let mut ports = HttpPorts::default();
    if cfg.admin_enable_server {
        let initial_config = cfg
            .source
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let site = Site {
            shared: shared.clone(),
            snapshot_taken: std::sync::Mutex::new(None),
            kind: SiteKind::Admin {
                client,
                command_url: cfg.admin_command_url.clone(),
                initial_config,
            },
        };
        let addr = (cfg.admin_server_address.as_str(), cfg.admin_server_port);
        if let Some((bound, task)) = bind("AdminServer", addr, site, idle).await {
            info!(
                "AdminServer on http://{bound}{} (probes /livez, /readyz)",
                cfg.admin_command_url
            );
            ports.admin = Some(bound);
            ports.tasks.push(task);
        }
    }
    if cfg.prometheus() {
        let site = Site {
            shared: shared.clone(),
            snapshot_taken: std::sync::Mutex::new(None),
            kind: SiteKind::Metrics,
        };
        let addr = (cfg.metrics_http_host.as_str(), cfg.metrics_http_port);
        if let Some((bound, task)) = bind("Prometheus /metrics", addr, site, idle).await {
            info!("Prometheus metrics on http://{bound}/metrics");
            ports.metrics = Some(bound);
            ports.tasks.push(task);
        }
    }
    ports
}

async fn bind(
    what: &str,
    addr: (&str, u16),
    site: Site,
    idle: Duration,
) -> Option<(SocketAddr, JoinHandle<()>)> {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!(
                "{what}: cannot listen on {}:{}: {e}; serving clients without it",
                addr.0, addr.1
            );
            return None;
        }
    };
    let bound = listener.local_addr().ok()?;
    Some((
        bound,
        tokio::spawn(accept_loop(listener, Arc::new(site), idle)),
    ))
}

async fn accept_loop(listener: TcpListener, site: Arc<Site>, idle: Duration) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let site = site.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(route(&site, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .max_buf_size(64 << 10)
                .serve_connection(TokioIo::new(stream), service);
            // A connection lives at most a few idle periods even if it keeps trickling.
            let _ = tokio::time::timeout(idle * 4, conn).await;
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn route(site: &Site, req: Request<Incoming>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match *req.method() {
        Method::GET | Method::HEAD => {}
        Method::POST
            if req.uri().path() == "/console/api/edit"
                && matches!(site.kind, SiteKind::Admin { .. }) =>
        {
            return console_edit(site, authorization, req).await;
        }
        // Jetty's AdminServer constrains TRACE to authenticated users: 403.
        Method::TRACE => return reply(StatusCode::FORBIDDEN, TEXT, String::new()),
        _ => return reply(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into()),
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let shared = site.shared.clone();
    match &site.kind {
        SiteKind::Metrics if path == "/metrics" => {
            let page = blocking(move || metrics_page(&shared)).await;
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                page,
            )
        }
        SiteKind::Metrics => reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
        SiteKind::Admin { .. } if path == "/livez" => {
            let live = shared.raft().is_some_and(|r| r.status().running);
            probe(live, "live", "the consensus node has stopped")
        }
        SiteKind::Admin { .. } if path == "/readyz" => {
            let live = shared.raft().is_some_and(|r| r.status().running);
            probe(live && shared.serving(), "serving", "not serving")
        }
        SiteKind::Admin { .. } if path == "/console" || path == "/console/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            console::PAGE.to_string(),
        ),
        SiteKind::Admin { .. } if path.starts_with("/console/api/") => {
            let ids = match login(&shared, authorization.as_deref()) {
                Ok(login) => login.map(|l| l.ids).unwrap_or_default(),
                Err(e) => return reply(StatusCode::UNAUTHORIZED, TEXT, e),
            };
            let param = |name: &str| {
                query_params(&query)
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
            };
            let answer = match &path["/console/api/".len()..] {
                "znode" => {
                    let znode_path = param("path").unwrap_or_else(|| "/".to_string());
                    blocking(move || console::znode(&shared, &znode_path, &ids).to_string()).await
                }
                "kafka" => {
                    let root = param("root");
                    blocking(move || console::kafka(&shared, root.as_deref(), &ids).to_string())
                        .await
                }
                "sessions" => blocking(move || console::sessions(&shared).to_string()).await,
                "search" => {
                    let prefix = param("prefix").unwrap_or_else(|| "/".to_string());
                    blocking(move || console::search(&shared, &prefix, &ids).to_string()).await
                }
                "live" => console::live(&shared).to_string(),
                "ensemble" => {
                    let SiteKind::Admin { client, .. } = &site.kind else {
                        unreachable!("matched as Admin above")
                    };
                    let me = *client;
                    blocking(move || console::ensemble(&shared, me).to_string()).await
                }
                _ => return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
            };
            reply(StatusCode::OK, "application/json", answer)
        }
        SiteKind::Admin { command_url, .. }
            if path.strip_prefix(command_url.as_str()) == Some("/snapshot") =>
        {
            snapshot_command(site, authorization).await
        }
        SiteKind::Admin {
            command_url,
            initial_config,
            ..
        } => {
            let Some(rest) = path.strip_prefix(command_url.as_str()) else {
                return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
            };
            match rest {
                "" | "/" => reply(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    commands::listing(command_url),
                ),
                _ if !rest.starts_with('/') => {
                    reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into())
                }
                _ => {
                    let name = percent_decode(&rest[1..]);
                    let params = query_params(&query);
                    let initial = initial_config.clone();
                    let answer =
                        blocking(move || run_command(&shared, &name, &params, initial)).await;
                    reply(StatusCode::OK, "application/json", answer)
                }
            }
        }
    }
}

/// A digest login from `Authorization: digest user:password`: the credentials and the
/// identities `addauth digest user:password` gives a client, plus `super` when it is
/// superDigest's user.
struct Login {
    user_password: String,
    ids: Vec<Id>,
}

impl Login {
    /// The user name (for logs).
    fn user(&self) -> &str {
        self.user_password.split(':').next().unwrap_or("")
    }
}

/// `Ok(None)` without the header, `Err` (the reason) for any other form than digest.
fn login(shared: &Shared, auth: Option<&str>) -> Result<Option<Login>, String> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let Some(user_password) = auth.trim().strip_prefix("digest ").map(str::trim) else {
        return Err("Authorization must be: digest user:password\n".into());
    };
    let Some(id) = super::connection::digest_id(user_password) else {
        return Err("not user:password\n".into());
    };
    let mut ids = vec![Id::new("digest", id.clone())];
    if shared.config().super_digest.as_deref() == Some(id.as_str()) {
        ids.push(Id::new("super", ""));
    }
    Ok(Some(Login {
        user_password: user_password.to_string(),
        ids,
    }))
}

/// 401 asking for `Authorization: digest user:password`.
fn needs_login(why: &str) -> Response<Full<Bytes>> {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        why.to_string(),
    );
    r.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("digest"),
    );
    r
}

/// The largest console edit accepted (the znode's data plus a little JSON).
const MAX_EDIT_BODY: usize = 1 << 20;

/// `POST /console/api/edit` (the console's create/set/delete): the body is JSON
/// `{"op": "create"|"set"|"delete", "path": ..., "data": text, "version": n, "acl":
/// "open"|"creator"}`, and `Authorization: digest user:password` is required. The edit is
/// made by a ZooKeeper client session on this server's own client port that authenticated
/// with those credentials: the ACLs, the write path and the answers are exactly a client's,
/// and the console holds no authority of its own. The answer is JSON `{"error": null |
/// "...", "path": created path}`. Browsers cannot send this cross-site without a CORS
/// preflight (the JSON content type and the Authorization header), which is never granted.
async fn console_edit(
    site: &Site,
    auth: Option<String>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let SiteKind::Admin { client, .. } = &site.kind else {
        return reply(StatusCode::NOT_FOUND, TEXT, "not found\n".into());
    };
    let user_password = match login(&site.shared, auth.as_deref()) {
        Ok(Some(login)) => login.user_password,
        Ok(None) => return needs_login("editing needs Authorization: digest user:password\n"),
        Err(e) => return reply(StatusCode::UNAUTHORIZED, TEXT, e),
    };
    let json_body = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            TEXT,
            "the body must be application/json\n".into(),
        );
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_EDIT_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                TEXT,
                format!("at most {MAX_EDIT_BODY} bytes\n"),
            )
        }
    };
    let edit: console::Edit = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return reply(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
    };
    let mut target = *client;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let answer = console::edit(target, &user_password, edit).await;
    reply(StatusCode::OK, "application/json", answer.to_string())
}

/// `snapshot` (ZooKeeper 3.9's online backup): the whole tree as one ZooKeeper snapshot
/// file (its format, checksum and digest trailer), taken under the state lock so it is
/// consistent at `last_zxid` (a response header). Needs `Authorization: digest
/// user:password` naming the super user or a user granted every permission on `/` (each
/// bit checked, stricter than ZooKeeper 3.9, where any one granted bit passes); at most one
/// per admin.snapshot.intervalInMS (429 otherwise).
async fn snapshot_command(site: &Site, auth: Option<String>) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let cfg = site.shared.config();
    if !cfg.admin_snapshot_enabled {
        return reply(
            StatusCode::FORBIDDEN,
            TEXT,
            "the snapshot command is off (admin.snapshot.enabled=false)\n".into(),
        );
    }
    let login = match login(&site.shared, auth.as_deref()) {
        Ok(Some(login)) => login,
        Ok(None) => {
            return needs_login("snapshot needs Authorization: digest user:password\n");
        }
        Err(e) => return reply(StatusCode::UNAUTHORIZED, TEXT, e),
    };
    let interval = Duration::from_millis(cfg.admin_snapshot_interval_ms);
    {
        let mut taken = site
            .snapshot_taken
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if taken.is_some_and(|t| t.elapsed() < interval) {
            return reply(
                StatusCode::TOO_MANY_REQUESTS,
                TEXT,
                format!(
                    "one snapshot per {} ms (admin.snapshot.intervalInMS)\n",
                    interval.as_millis()
                ),
            );
        }
        // Counted when authorised, below; a refused caller does not use up the interval.
        let shared = site.shared.clone();
        let permitted = {
            let state = shared.state();
            state
                .tree
                .permits_all("/", crate::proto::perms::ALL, &login.ids)
        };
        if !permitted {
            warn!(user = %login.user(), "snapshot refused: not super and no ALL on /");
            return reply(
                StatusCode::FORBIDDEN,
                TEXT,
                "snapshot needs the super user or ALL permission on /\n".into(),
            );
        }
        *taken = Some(std::time::Instant::now());
    }
    let shared = site.shared.clone();
    let taken = tokio::task::spawn_blocking(move || {
        let (snap, zxid) = {
            let state = shared.state();
            (state.tree.to_zk_snapshot(), state.tree.last_zxid())
        };
        (crate::zkfiles::snapshot::write(&snap), zxid)
    })
    .await;
    let Ok((bytes, zxid)) = taken else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            "snapshot failed\n".into(),
        );
    };
    info!(
        zxid = format_args!("0x{zxid:x}"),
        bytes = bytes.len(),
        "snapshot served over the AdminServer"
    );
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("0x{zxid:x}")) {
        r.headers_mut().insert("last_zxid", v);
    }
    r
}

fn probe(ok: bool, yes: &str, no: &str) -> Response<Full<Bytes>> {
    let (status, body) = if ok {
        (StatusCode::OK, yes)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, no)
    };
    reply(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

/// Runs `f` on the blocking pool (a gathering may walk directories or hold the state lock
/// while it copies watch lists); a panic there answers an empty body instead of taking the
/// connection task down.
async fn blocking(f: impl FnOnce() -> String + Send + 'static) -> String {
    tokio::task::spawn_blocking(f).await.unwrap_or_default()
}

/// One AdminServer command: its effect (the resets), then the snapshot it needs, then the
/// JSON.
fn run_command(
    shared: &Shared,
    name: &str,
    params: &[(String, String)],
    initial_config: String,
) -> String {
    let command = commands::lookup(name);
    let serving = shared.serving();
    if let Some(c) = command.filter(|c| serving || !c.server_required) {
        fourlw::apply_effect(shared, c.effect);
    }
    let need = command.map_or(Need::default(), |c| c.need);
    let mut snap = fourlw::snapshot(shared, need, None);
    snap.initial_config = initial_config;
    if command.is_some_and(|c| c.primary_name() == "last_snapshot") {
        snap.last_snapshot = last_snapshot(&shared.config().data_dir);
    }
    let json = commands::run(name, params, &snap);
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// The newest snapshot file: (zxid from its name, its modification time in seconds).
fn last_snapshot(data_dir: &std::path::Path) -> Option<(i64, i64)> {
    use crate::consensus::storage::{snapshot_dir, SNAP_PREFIX};
    let dir = std::fs::read_dir(snapshot_dir(data_dir)).ok()?;
    dir.flatten()
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_str()?
                .strip_prefix(SNAP_PREFIX)?
                .to_string();
            let zxid = u64::from_str_radix(&name, 16).ok()? as i64;
            let secs = e
                .metadata()
                .ok()?
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
            Some((zxid, secs))
        })
        .max()
}

fn summary(name: &'static str, s: &Summary, quantiles: &[f64]) -> SummaryFigures {
    SummaryFigures {
        name,
        quantiles: quantiles.iter().map(|&q| (q, s.quantile(q))).collect(),
        count: s.count(),
        sum: s.sum(),
    }
}

fn metrics_page(shared: &Shared) -> String {
    let snap = fourlw::snapshot(shared, Need::default(), None);
    let st = shared.stats();
    let summaries = [
        summary(
            "readlatency",
            &st.read_latency,
            &metrics::ADVANCED_QUANTILES,
        ),
        summary(
            "updatelatency",
            &st.update_latency,
            &metrics::ADVANCED_QUANTILES,
        ),
        summary("fsynctime", &FSYNC_TIME, &metrics::BASIC_QUANTILES),
        summary("snapshottime", &SNAPSHOT_TIME, &metrics::BASIC_QUANTILES),
    ];
    let own = shared
        .raft()
        .map(|r| raft_figures(&r.status()))
        .unwrap_or_default();
    metrics::prometheus_text(&snap, &summaries, &own)
}

fn raft_figures(st: &crate::consensus::RaftStatus) -> Vec<Figure> {
    let g = |name, help, value| Figure {
        name,
        help,
        kind: Kind::Gauge,
        value,
    };
    let c = |name, help, value| Figure {
        name,
        help,
        kind: Kind::Counter,
        value,
    };
    vec![
        g("raft_term", "Current Raft term", st.term),
        g(
            "raft_leader_id",
            "Leader's server id (0: none known)",
            st.leader_id,
        ),
        g("raft_is_leader", "1 on the leader", u64::from(st.is_leader)),
        g(
            "raft_commit_index",
            "Highest log index known committed",
            st.commit_index,
        ),
        g(
            "raft_applied_index",
            "Highest log index applied to the tree",
            st.applied_index,
        ),
        g(
            "raft_voters",
            "Voting members in the configuration",
            st.voters.len() as u64,
        ),
        g(
            "raft_learners",
            "Non-voting members (observers)",
            st.learners.len() as u64,
        ),
        g(
            "log_first_index",
            "First index still in the log",
            st.first_index,
        ),
        g("log_last_index", "Last index in the log", st.last_index),
        g("log_bytes", "Bytes of entries in the log", st.log_bytes),
        g(
            "snapshot_last_index",
            "Log index of the newest snapshot",
            st.last_snapshot_index,
        ),
        g(
            "snapshot_last_size_bytes",
            "Size of the newest snapshot file",
            st.last_snapshot_size,
        ),
        g("snapshot_files", "Snapshot files kept", st.snapshot_files),
        c(
            "snapshots_installed_total",
            "Snapshots received from a leader",
            st.snapshots_installed,
        ),
        c(
            "snapshots_skipped_total",
            "Snapshots skipped: due while the previous one was still being written",
            st.snapshots_skipped,
        ),
        c("fsyncs_total", "fdatasync rounds of the log", st.fsyncs),
        c(
            "sync_readies_total",
            "Raft readies made durable",
            st.sync_readies,
        ),
    ]
}

/// `a=1&b=x%20y` -> [(a, 1), (b, x y)].
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// %XX escapes and `+` (as a form's space); a malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_escapes() {
        assert_eq!(
            query_params("traceMask=306&x=a%20b+c&bad=%zz&end=%4"),
            vec![
                ("traceMask".to_string(), "306".to_string()),
                ("x".to_string(), "a b c".to_string()),
                ("bad".to_string(), "%zz".to_string()),
                ("end".to_string(), "%4".to_string()),
            ]
        );
        assert_eq!(percent_decode("mntr"), "mntr");
        assert_eq!(percent_decode("%"), "%");
    }
}
