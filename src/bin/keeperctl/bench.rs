//! `keeperctl bench`: a load generator speaking the ZooKeeper client protocol to any server
//! (keeperd or Apache ZooKeeper), for docs/performance.md and scripts/bench-vs-zookeeper.
//!
//! Each workload opens its own sessions (spread round-robin over the `-server` hosts), runs
//! for `--seconds`, drains what is in flight and closes them. Closed loop (the default): each
//! session keeps `--window` requests outstanding on its connection, pipelined, and a request's
//! latency runs from when it was written. Open loop (`--rate R`, ops/s over all sessions):
//! requests are due on a fixed schedule and a request's latency runs from when it was due,
//! so a stalled server is charged for the requests it held back (no coordinated omission);
//! the window then only caps what is outstanding.
//!
//! Every reply's xid is matched to its request and its error code checked; a reply that
//! fails counts under its error name and is not in the latency histogram.
//!
//! Output: one JSON line per workload on stdout (as each finishes), and a table on stderr at
//! the end. Everything goes under a fresh `ROOT/<run>` node (printed as "base"): keys made by
//! `create` are `base/k/<session>-<n>`; getData, setData, mix, multi and watch pick among
//! them (or among `--keys` keys preloaded under `base/p` when no create ran first).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use keeperd::proto::request::{CreateRequest, MultiOp, Request, SetDataRequest};
use keeperd::proto::response::{OpResult, Response};
use keeperd::proto::{Acl, EventType, OpCode, ZkError};
use serde_json::json;

use super::bench_conn::Conn;
use super::Failure;

const SESSION_TIMEOUT_MS: i32 = 30_000;
/// After `--seconds`, how long the outstanding requests may take to come back.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How long the watch workload waits for a notification.
const EVENT_LIMIT: Duration = Duration::from_secs(10);
/// Outstanding requests of the (untimed) preload of keys and children.
const SETUP_WINDOW: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    Create,
    SetData,
    GetData,
    /// 90% getData, 10% setData.
    Mix,
    /// multi of create + setData.
    Multi,
    /// exists-watch on one session, setData on another; latency from write ack to event.
    Watch,
    /// connect, create an ephemeral, close.
    Churn,
    /// getChildren of a node with `--children` children.
    Children,
}

const ALL: [Workload; 8] = [
    Workload::Create,
    Workload::SetData,
    Workload::GetData,
    Workload::Mix,
    Workload::Multi,
    Workload::Watch,
    Workload::Churn,
    Workload::Children,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::SetData => "setData",
            Workload::GetData => "getData",
            Workload::Mix => "mix",
            Workload::Multi => "multi",
            Workload::Watch => "watch",
            Workload::Churn => "churn",
            Workload::Children => "children",
        }
    }

    fn parse(s: &str) -> Option<Workload> {
        ALL.into_iter().find(|w| w.name().eq_ignore_ascii_case(s))
    }

    fn needs_keys(self) -> bool {
        matches!(
            self,
            Workload::SetData
                | Workload::GetData
                | Workload::Mix
                | Workload::Multi
                | Workload::Watch
        )
    }
}

struct Options {
    hosts: Vec<String>,
    workloads: Vec<Workload>,
    seconds: f64,
    sessions: usize,
    window: usize,
    /// Open loop at this many ops/s over all sessions; None is closed loop.
    rate: Option<f64>,
    value_size: usize,
    keys: usize,
    children: usize,
    root: String,
}

fn parse_args(server: &str, args: &[String]) -> Result<Options, Failure> {
    let hosts: Vec<String> = server
        .split(',')
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() || hosts.iter().any(|h| h.contains('/')) {
        return Err(Failure::usage(
            "bench: -server must be host:port[,host:port...] (no chroot)",
        ));
    }
    let mut o = Options {
        hosts,
        workloads: ALL.to_vec(),
        seconds: 6.0,
        sessions: 8,
        window: 16,
        rate: None,
        value_size: 128,
        keys: 10_000,
        children: 10_000,
        root: "/keeperctl-bench".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| Failure::usage(format!("bench: {flag} needs a value")))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, Failure> {
            v.parse()
                .map_err(|_| Failure::usage(format!("bench: bad value for {flag}: {v}")))
        }
        match flag.trim_start_matches('-') {
            "workloads" | "workload" | "w" => {
                let v = value()?;
                if v != "all" {
                    o.workloads = v
                        .split(',')
                        .map(|s| {
                            Workload::parse(s).ok_or_else(|| {
                                Failure::usage(format!("bench: unknown workload {s}"))
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
            }
            "seconds" | "duration" => o.seconds = num(flag, value()?)?,
            "sessions" => o.sessions = num(flag, value()?)?,
            "window" => o.window = num(flag, value()?)?,
            "rate" => {
                let r: f64 = num(flag, value()?)?;
                o.rate = (r > 0.0).then_some(r);
            }
            "value-size" => o.value_size = num(flag, value()?)?,
            "keys" => o.keys = num(flag, value()?)?,
            "children" => o.children = num(flag, value()?)?,
            "root" => o.root = value()?.trim_end_matches('/').to_string(),
            _ => return Err(Failure::usage(format!("bench: unknown option {flag}"))),
        }
    }
    if o.sessions == 0 || o.window == 0 || o.seconds <= 0.0 || o.keys == 0 {
        return Err(Failure::usage(
            "bench: --sessions, --window, --seconds and --keys must be positive",
        ));
    }
    if !o.root.starts_with('/') || o.root.len() < 2 {
        return Err(Failure::usage(
            "bench: --root must be an absolute path below /",
        ));
    }
    Ok(o)
}

/// `keeperctl [-server hosts] bench ...`
pub fn bench_command(server: &str, args: &[String]) -> Result<(), Failure> {
    let options = parse_args(server, args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::op(format!("cannot start runtime: {e}")))?;
    let outcomes = runtime
        .block_on(run(options))
        .map_err(|e| Failure::op(format!("bench: {e}")))?;
    eprint!("{}", table(&outcomes));
    Ok(())
}

/// What one workload measured.
struct Outcome {
    workload: Workload,
    hist: Histogram<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    seconds: f64,
    /// Acknowledged setData operations (alone, in the mix, in multi, in watch): each
    /// advanced one key's version by one.
    set_data_acked: u64,
    /// Created znodes acknowledged (create, multi): their paths for the later workloads.
    created: Vec<String>,
    /// watch: notifications that arrived before the write's own reply.
    events_before_ack: u64,
}

impl Outcome {
    fn new(workload: Workload) -> Outcome {
        Outcome {
            workload,
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
            ok: 0,
            errors: BTreeMap::new(),
            seconds: 0.0,
            set_data_acked: 0,
            created: Vec::new(),
            events_before_ack: 0,
        }
    }

    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }

    fn code(&mut self, err: i32) {
        match ZkError::from_code(err) {
            Some(e) => self.error(format!("{e:?}")),
            None => self.error(format!("error {err}")),
        }
    }

    fn record(&mut self, latency: Duration) {
        self.hist.saturating_record(latency.as_micros() as u64);
        self.ok += 1;
    }

    fn merge(&mut self, other: Outcome) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ok += other.ok;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.set_data_acked += other.set_data_acked;
        self.created.extend(other.created);
        self.events_before_ack += other.events_before_ack;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn ms(&self, q: f64) -> f64 {
        if self.ok == 0 {
            return 0.0;
        }
        let us = if q >= 1.0 {
            self.hist.max()
        } else {
            self.hist.value_at_quantile(q)
        };
        us as f64 / 1000.0
    }

    fn json(&self, o: &Options, base: &str) -> serde_json::Value {
        json!({
            "workload": self.workload.name(),
            "server": o.hosts.join(","),
            "base": base,
            "mode": if o.rate.is_some() { "open" } else { "closed" },
            "rate": o.rate,
            "sessions": o.sessions,
            "window": o.window,
            "value_size": o.value_size,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "ok": self.ok,
            "ops_per_sec": (self.ok as f64 / self.seconds.max(1e-9)).round(),
            "error_count": self.error_count(),
            "errors": self.errors,
            "latency_ms": {
                "p50": self.ms(0.5),
                "p99": self.ms(0.99),
                "p999": self.ms(0.999),
                "max": self.ms(1.0),
                "mean": if self.ok == 0 { 0.0 } else { (self.hist.mean() / 10.0).round() / 100.0 },
            },
            "set_data_acked": self.set_data_acked,
            "created": self.created.len(),
            "events_before_ack": self.events_before_ack,
            "children": if self.workload == Workload::Children { Some(o.children) } else { None },
        })
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<10} {:>12} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "workload", "ops/s", "ok", "errors", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for o in outcomes {
        s += &format!(
            "{:<10} {:>12.0} {:>10} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            o.workload.name(),
            o.ok as f64 / o.seconds.max(1e-9),
            o.ok,
            o.error_count(),
            o.ms(0.5),
            o.ms(0.99),
            o.ms(0.999),
            o.ms(1.0),
        );
        for (e, n) in &o.errors {
            s += &format!("  {e}: {n}\n");
        }
    }
    s
}

/// State shared by the workloads of one run.
struct Run {
    o: Options,
    base: String,
    value: Bytes,
    /// Keys with `--value-size` bytes, for the workloads that read and write existing keys.
    keys: Arc<Vec<String>>,
}

async fn run(o: Options) -> Result<Vec<Outcome>, String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let base = format!("{}/r{stamp:x}-{}", o.root, std::process::id());
    let mut r = Arc::new(Run {
        value: Bytes::from(vec![b'v'; o.value_size]),
        base,
        keys: Arc::new(Vec::new()),
        o,
    });
    // Ancestors of the root, the run's base and one parent per kind of key.
    let mut parents = Vec::new();
    let mut at = String::new();
    for part in r.o.root.split('/').filter(|p| !p.is_empty()) {
        at = format!("{at}/{part}");
        parents.push(at.clone());
    }
    parents.push(r.base.clone());
    for sub in ["k", "p", "m", "e", "c"] {
        parents.push(format!("{}/{sub}", r.base));
    }
    for p in parents {
        create_many(&r.o.hosts[0], std::iter::once(p), Bytes::new()).await?;
    }
    let mut outcomes = Vec::new();
    for w in r.o.workloads.clone() {
        if w.needs_keys() && r.keys.is_empty() {
            let paths: Vec<String> = (0..r.o.keys).map(|i| format!("{}/p/{i}", r.base)).collect();
            create_many(&r.o.hosts[0], paths.iter().cloned(), r.value.clone()).await?;
            Arc::get_mut(&mut r).expect("no workload running").keys = Arc::new(paths);
        }
        let outcome = match w {
            // sessions/2 watcher + writer pairs (at least one).
            Workload::Watch => in_parallel(&r, w, (r.o.sessions / 2).max(1), watch_pair).await,
            Workload::Churn => in_parallel(&r, w, r.o.sessions, churn_loop).await,
            _ => {
                if w == Workload::Children {
                    let paths = (0..r.o.children).map(|i| format!("{}/c/c{i:06}", r.base));
                    create_many(&r.o.hosts[0], paths, Bytes::new()).await?;
                }
                let session =
                    move |r, s, started, stop_at| windowed_session(r, w, s, started, stop_at);
                in_parallel(&r, w, r.o.sessions, session).await
            }
        };
        println!("{}", outcome.json(&r.o, &r.base));
        if w == Workload::Create && !outcome.created.is_empty() {
            Arc::get_mut(&mut r).expect("no workload running").keys =
                Arc::new(outcome.created.clone());
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Creates `paths` (untimed set-up) with a window of requests in flight on one session;
/// a path that exists already is fine.
async fn create_many(
    host: &str,
    paths: impl Iterator<Item = String>,
    data: Bytes,
) -> Result<(), String> {
    let mut conn = Conn::connect(host, SESSION_TIMEOUT_MS).await?;
    let mut paths = paths.peekable();
    while paths.peek().is_some() || conn.in_flight() > 0 {
        while conn.in_flight() < SETUP_WINDOW {
            let Some(path) = paths.next() else { break };
            conn.send(&create_request(path, data.clone(), 0));
        }
        conn.flush().await?;
        let reply = tokio::time::timeout(super::bench_conn::CALL_TIMEOUT, conn.next_reply())
            .await
            .map_err(|_| "set-up create: no reply within 30 s".to_string())??;
        if reply.err != 0 && reply.err != ZkError::NodeExists.code() {
            return Err(format!("set-up create failed: error {}", reply.err));
        }
    }
    conn.close().await
}

fn create_request(path: String, data: Bytes, flags: i32) -> Request {
    Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path,
            data: Some(data),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        },
    }
}

fn set_data_request(path: String, data: Bytes) -> Request {
    Request::SetData(SetDataRequest {
        path,
        data: Some(data),
        version: -1,
    })
}

/// xorshift64*: cheap and good enough to pick keys.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What an outstanding request was, to check and count its reply.
enum Sent {
    Create(String),
    SetData,
    GetData,
    Multi(String),
    Children,
}

/// One session's request stream for a windowed workload.
struct Gen {
    r: Arc<Run>,
    workload: Workload,
    session: usize,
    seq: u64,
    rng: Rng,
}

impl Gen {
    fn key(&mut self) -> String {
        self.r.keys[self.rng.below(self.r.keys.len())].clone()
    }

    fn next(&mut self) -> (Request, Sent) {
        self.seq += 1;
        let value = self.r.value.clone();
        match self.workload {
            Workload::Create => {
                let path = format!("{}/k/{}-{}", self.r.base, self.session, self.seq);
                (create_request(path.clone(), value, 0), Sent::Create(path))
            }
            Workload::SetData => (set_data_request(self.key(), value), Sent::SetData),
            Workload::GetData => (self.get_data(), Sent::GetData),
            Workload::Mix if self.rng.below(10) == 0 => {
                (set_data_request(self.key(), value), Sent::SetData)
            }
            Workload::Mix => (self.get_data(), Sent::GetData),
            Workload::Multi => {
                let path = format!("{}/m/{}-{}", self.r.base, self.session, self.seq);
                let ops = vec![
                    MultiOp::Create {
                        op: OpCode::Create,
                        req: CreateRequest {
                            path: path.clone(),
                            data: Some(value.clone()),
                            acl: Acl::open_unsafe(),
                            flags: 0,
                            ttl: -1,
                        },
                    },
                    MultiOp::SetData(SetDataRequest {
                        path: self.key(),
                        data: Some(value),
                        version: -1,
                    }),
                ];
                (Request::Multi(ops), Sent::Multi(path))
            }
            Workload::Children => (
                Request::GetChildren {
                    path: format!("{}/c", self.r.base),
                    watch: false,
                    with_stat: false,
                },
                Sent::Children,
            ),
            Workload::Watch | Workload::Churn => unreachable!("not a windowed workload"),
        }
    }

    fn get_data(&mut self) -> Request {
        Request::GetData {
            path: self.key(),
            watch: false,
        }
    }
}

/// Checks a successful reply against what was sent and counts it.
fn account(out: &mut Outcome, r: &Run, sent: Sent, body: Response, latency: Duration) {
    let good = match (sent, body) {
        (Sent::Create(path), Response::Create { path: p }) if p == path => {
            out.created.push(path);
            true
        }
        (Sent::SetData, Response::Stat(_)) => {
            out.set_data_acked += 1;
            true
        }
        (Sent::GetData, Response::GetData { data, .. }) => {
            data.map_or(0, |d| d.len()) == r.o.value_size
        }
        (Sent::Multi(path), Response::Multi(results)) => match results.as_slice() {
            [OpResult::Create { path: p }, OpResult::SetData { .. }] if *p == path => {
                out.created.push(path);
                out.set_data_acked += 1;
                true
            }
            _ => {
                let err = results.iter().find_map(|x| match x {
                    OpResult::Error { err } if *err != 0 => Some(*err),
                    _ => None,
                });
                match err {
                    Some(e) => out.code(e),
                    None => out.error("unexpected multi result"),
                }
                return;
            }
        },
        (Sent::Children, Response::GetChildren { children }) => children.len() == r.o.children,
        _ => false,
    };
    if good {
        out.record(latency);
    } else {
        out.error("unexpected reply");
    }
}

/// Runs `n` copies of a workload's loop at once (`f(run, index, started, stop_at)`), as
/// tasks on all the runtime's threads, and merges their outcomes; a task that panicked
/// counts as an error.
async fn in_parallel<F, Fut>(r: &Arc<Run>, w: Workload, n: usize, f: F) -> Outcome
where
    F: Fn(Arc<Run>, usize, Instant, Instant) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let started = Instant::now();
    let stop_at = started + Duration::from_secs_f64(r.o.seconds);
    let handles: Vec<_> = (0..n)
        .map(|i| tokio::spawn(f(r.clone(), i, started, stop_at)))
        .collect();
    let mut total = Outcome::new(w);
    for h in handles {
        match h.await {
            Ok(o) => total.merge(o),
            Err(e) => total.error(format!("task: {e}")),
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

async fn windowed_session(
    r: Arc<Run>,
    w: Workload,
    session: usize,
    started: Instant,
    stop_at: Instant,
) -> Outcome {
    let mut out = Outcome::new(w);
    let host = &r.o.hosts[session % r.o.hosts.len()];
    let mut conn = match Conn::connect(host, SESSION_TIMEOUT_MS).await {
        Ok(c) => c,
        Err(e) => {
            out.error(format!("connect: {e}"));
            return out;
        }
    };
    let mut gen = Gen {
        r: r.clone(),
        workload: w,
        session,
        seq: 0,
        rng: Rng::new(session as u64 + 1 + started.elapsed().as_nanos() as u64),
    };
    // Open loop: this session's share of the rate, its sends staggered across sessions.
    let per_session = r.o.rate.map(|rate| rate / r.o.sessions as f64);
    let offset = session as f64 / r.o.sessions as f64;
    let due =
        |n: u64| started + Duration::from_secs_f64((n as f64 + offset) / per_session.unwrap());
    let mut sent_count: u64 = 0;
    let mut origins: std::collections::VecDeque<(Instant, Sent)> = Default::default();
    let result: Result<(), String> = async {
        loop {
            let now = Instant::now();
            let stopping = now >= stop_at;
            if !stopping {
                while conn.in_flight() < r.o.window {
                    let origin = match per_session {
                        None => now,
                        Some(_) => {
                            let d = due(sent_count);
                            if d > now || d >= stop_at {
                                break;
                            }
                            d
                        }
                    };
                    let (req, sent) = gen.next();
                    conn.send(&req);
                    origins.push_back((origin, sent));
                    sent_count += 1;
                }
            }
            conn.flush().await?;
            if stopping && conn.in_flight() == 0 {
                return Ok(());
            }
            let wake = if stopping {
                stop_at + DRAIN_LIMIT
            } else if per_session.is_some() && conn.in_flight() < r.o.window {
                due(sent_count).min(stop_at)
            } else {
                stop_at
            };
            tokio::select! {
                res = conn.fill() => res?,
                _ = tokio::time::sleep_until(wake.into()) => {
                    if stopping {
                        return Err("requests still outstanding 30 s after the end".into());
                    }
                }
            }
            let now = Instant::now();
            while let Some(reply) = conn.take_reply()? {
                let (origin, sent) = origins.pop_front().expect("one origin per request");
                if reply.err != 0 {
                    out.code(reply.err);
                } else {
                    account(&mut out, &r, sent, reply.body, now - origin);
                }
            }
        }
    }
    .await;
    match result {
        Ok(()) => {
            if let Err(e) = conn.close().await {
                out.error(format!("close: {e}"));
            }
        }
        Err(e) => {
            out.error(format!("session: {e}"));
            if !origins.is_empty() {
                *out.errors.entry("lost (no reply)".into()).or_default() += origins.len() as u64;
            }
        }
    }
    out
}

/// One of sessions/2 pairs (at least one): the watcher sets an exists watch on the pair's key, the
/// writer sets its data; the latency is from the writer's reply to the watcher's event.
async fn watch_pair(r: Arc<Run>, pair: usize, _started: Instant, stop_at: Instant) -> Outcome {
    let mut out = Outcome::new(Workload::Watch);
    let n = r.o.hosts.len();
    let conns = async {
        let watcher = Conn::connect(&r.o.hosts[(2 * pair) % n], SESSION_TIMEOUT_MS).await?;
        let writer = Conn::connect(&r.o.hosts[(2 * pair + 1) % n], SESSION_TIMEOUT_MS).await?;
        Ok::<_, String>((watcher, writer))
    };
    let (mut watcher, mut writer) = match conns.await {
        Ok(c) => c,
        Err(e) => {
            out.error(format!("connect: {e}"));
            return out;
        }
    };
    let key = r.keys[pair % r.keys.len()].clone();
    let result: Result<(), String> = async {
        while Instant::now() < stop_at {
            let armed = watcher
                .call(&Request::Exists {
                    path: key.clone(),
                    watch: true,
                })
                .await?;
            if armed.err != 0 {
                out.code(armed.err);
                continue;
            }
            let write = async {
                let reply = writer
                    .call(&set_data_request(key.clone(), r.value.clone()))
                    .await;
                (reply, Instant::now())
            };
            let ((reply, acked), event) = tokio::join!(write, watcher.next_event(EVENT_LIMIT));
            let reply = reply?;
            if reply.err != 0 {
                out.code(reply.err);
                continue;
            }
            out.set_data_acked += 1;
            let (event, at) = event?;
            if event.event_type != EventType::NodeDataChanged || event.path != key {
                out.error("unexpected event");
                continue;
            }
            if at < acked {
                out.events_before_ack += 1;
            }
            out.record(at.saturating_duration_since(acked));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        out.error(format!("session: {e}"));
    }
    for c in [watcher, writer] {
        if let Err(e) = c.close().await {
            out.error(format!("close: {e}"));
        }
    }
    out
}

/// One of `--sessions` loops of: open a session, create an ephemeral, close the session (waiting
/// for the reply). One cycle is one op; its latency is the whole cycle.
async fn churn_loop(r: Arc<Run>, s: usize, _started: Instant, stop_at: Instant) -> Outcome {
    let mut out = Outcome::new(Workload::Churn);
    let host = &r.o.hosts[s % r.o.hosts.len()];
    let mut n = 0u64;
    while Instant::now() < stop_at {
        n += 1;
        let t0 = Instant::now();
        let cycle = async {
            let mut conn = Conn::connect(host, SESSION_TIMEOUT_MS).await?;
            let path = format!("{}/e/{s}-{n}", r.base);
            let reply = conn.call(&create_request(path, r.value.clone(), 1)).await?;
            conn.close().await?;
            Ok::<i32, String>(reply.err)
        };
        match cycle.await {
            Ok(0) => out.record(t0.elapsed()),
            Ok(err) => out.code(err),
            Err(e) => {
                out.error(format!("session: {e}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    out
}
