//! Linearizability of real keeperd ensembles under faults, checked from the clients' side:
//! several `zookeeper-client` sessions spread over the members read, write and
//! compare-and-set a few znodes (registers) while a nemesis kills (-9) and restarts members,
//! pauses them (SIGSTOP/SIGCONT), cuts links through the quorum proxy (both ways, one way),
//! restarts a member while another is still catching up (two out at once) and fills one
//! member's disk. Every operation is recorded with its invocation and completion times and
//! its outcome (unknown after ConnectionLoss or a timeout); [`checker`] then decides whether
//! some order of the operations, each taking effect between its invocation and completion,
//! explains every answer (per key, Wing-Gong-Lowe).
//!
//! Judged: setData (unconditional and with a version), create and delete (on znodes that
//! come and go), sync + getData (the data, or NoNode), and with
//! `keeperd.linearizableReads=true` plain getData too (without it ZooKeeper's reads are only
//! sequentially consistent, and a plain read on a lagging follower is allowed to be stale).
//!
//! `nemesis_short_run` is the CI run (3 members, ~35 s of faults). Longer runs:
//! `scripts/nemesis SEED SECONDS [MEMBERS] [LINEARIZABLE_READS]` (the ignored
//! `nemesis_run_from_env`); docs/reliability.md has the runs and how to read a failure.

mod checker;
#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use checker::{Call, Op, Outcome, Reg, Verdict, ABSENT};
use support::proxied::Proxied;
use support::proxy::Link;
use support::tmpfs::Tmpfs;
use support::*;
use zookeeper_client as zk;

/// The registers: /lin/k0 .. /lin/k{KEYS-1}, created with data "0" (version 0).
const KEYS: usize = 4;
/// Znodes that come and go: /lin/n0 .. /lin/n{NODE_KEYS-1}, absent at first, created,
/// deleted and written (keys KEYS .. KEYS + NODE_KEYS of the history).
const NODE_KEYS: usize = 2;
/// A client gives up on an operation after this long (its outcome is then unknown).
const OP_LIMIT: Duration = Duration::from_secs(5);
/// tickTime=200, syncLimit=5 (the partition tests' timing): a 1 s election timeout.
const SESSION: Duration = Duration::from_secs(4);

/// What one run does.
#[derive(Clone, Debug)]
struct Plan {
    seed: u64,
    members: u64,
    clients: usize,
    faults_for: Duration,
    linearizable_reads: bool,
}

/// The history, shared by the clients.
struct Recorder {
    t0: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    fn micros(&self, at: Instant) -> u64 {
        at.duration_since(self.t0).as_micros() as u64
    }

    fn record(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }
}

fn key_path(key: usize) -> String {
    if key < KEYS {
        format!("/lin/k{key}")
    } else {
        format!("/lin/n{}", key - KEYS)
    }
}

/// What key `key` holds before the run.
fn initial(key: usize) -> Reg {
    if key < KEYS {
        Reg::at(0, 0)
    } else {
        ABSENT
    }
}

fn parse_value(data: &[u8]) -> u64 {
    // Anything the harness did not write shows up as a value nobody wrote.
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX - 1)
}

/// `fut` within [`OP_LIMIT`]; a timeout is reported as ConnectionLoss (unknown outcome).
async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    tokio::time::timeout(OP_LIMIT, fut)
        .await
        .unwrap_or(Err(zk::Error::ConnectionLoss))
}

/// A read: sync + getData, or (`plain`) getData alone.
async fn read(c: &zk::Client, path: &str, plain: bool) -> Result<Reg, zk::Error> {
    if !plain {
        bounded(c.sync(path)).await?;
    }
    let (data, stat) = bounded(c.get_data(path)).await?;
    Ok(Reg::at(parse_value(&data), stat.version))
}

/// A read's outcome: what it saw, NoNode, or Err (it tells nothing).
async fn read_outcome(c: &zk::Client, path: &str, plain: bool) -> Result<Outcome, zk::Error> {
    match read(c, path, plain).await {
        Ok(reg) => Ok(Outcome::Read(reg)),
        Err(zk::Error::NoNode) => Ok(Outcome::NoNode),
        Err(e) => Err(e),
    }
}

/// Does `call` on `path` through `c`: its outcome, or the error that left it unknown.
async fn change(c: &zk::Client, path: &str, call: Call) -> Result<Outcome, zk::Error> {
    let written = |r: Result<zk::Stat, zk::Error>| {
        r.map(|stat| Outcome::Written {
            version: stat.version,
        })
    };
    let result = match call {
        Call::Read => unreachable!("reads are not changes"),
        Call::Write { value } => {
            written(bounded(c.set_data(path, value.to_string().as_bytes(), None)).await)
        }
        Call::Cas { expect, value } => {
            written(bounded(c.set_data(path, value.to_string().as_bytes(), Some(expect))).await)
        }
        Call::Create { value } => {
            let created = bounded(c.create(path, value.to_string().as_bytes(), &open())).await;
            written(created.map(|(stat, _)| stat))
        }
        Call::Delete => bounded(c.delete(path, None))
            .await
            .map(|()| Outcome::Deleted),
    };
    match result {
        Err(zk::Error::BadVersion) if matches!(call, Call::Cas { .. }) => Ok(Outcome::BadVersion),
        Err(zk::Error::NodeExists) if matches!(call, Call::Create { .. }) => {
            Ok(Outcome::NodeExists)
        }
        Err(zk::Error::NoNode) if !matches!(call, Call::Create { .. }) => Ok(Outcome::NoNode),
        other => other,
    }
}

/// One client: a session on `hosts` (its home member first), random operations on random
/// keys until `stop`, each recorded. A session that expires or closes is replaced.
async fn client(id: usize, hosts: String, plan: Plan, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut rng = Rng::new(plan.seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9));
    let mut session: Option<zk::Client> = None;
    // The last version this client saw of each key: what its compare-and-sets expect.
    let mut versions = [0i32; KEYS + NODE_KEYS];
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = session.as_ref() else {
            match tokio::time::timeout(OP_LIMIT, try_connect(&hosts, SESSION)).await {
                Ok(Ok(c)) => session = Some(c),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            continue;
        };
        let key = rng.below(KEYS + NODE_KEYS);
        let path = key_path(key);
        counter += 1;
        // Distinct, never 0 (the initial value) nor the checker's reserved values.
        let value = (id as u64 + 1) * 1_000_000_000 + counter;
        let invoked = Instant::now();
        let cas = Call::Cas {
            expect: versions[key],
            value,
        };
        // Registers: 40% reads, 30% writes, 30% compare-and-sets. Znodes that come and go:
        // 40% reads, 20% creates, 20% deletes, 10% writes, 10% compare-and-sets.
        let call = match (key < KEYS, rng.below(10)) {
            (_, 0..=3) => Call::Read,
            (true, 4..=6) | (false, 8) => Call::Write { value },
            (true, _) | (false, 9) => cas,
            (false, 4..=5) => Call::Create { value },
            (false, _) => Call::Delete,
        };
        let result = if call == Call::Read {
            let plain = plan.linearizable_reads && rng.below(2) == 0;
            read_outcome(c, &path, plain).await
        } else {
            change(c, &path, call).await
        };
        let completed = Instant::now();
        match result {
            Ok(Outcome::Read(reg)) => versions[key] = reg.version,
            Ok(Outcome::Written { version }) => versions[key] = version,
            _ => {}
        }
        let outcome = match result {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                if matches!(
                    e,
                    zk::Error::SessionExpired | zk::Error::ClientClosed | zk::Error::AuthFailed
                ) {
                    session = None;
                }
                // A failed read tells nothing; a write may or may not have happened.
                (call != Call::Read).then_some(Outcome::Unknown)
            }
        };
        if let Some(outcome) = outcome {
            let known = outcome != Outcome::Unknown;
            rec.record(Op {
                client: id,
                key,
                call,
                outcome,
                invoked: rec.micros(invoked),
                completed: known.then(|| rec.micros(completed)),
            });
            if !known {
                // Let the session find another server.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A fault the nemesis injects.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    Pause,
    Isolate,
    /// Lose what the member sends (it still hears the others).
    MuteOut,
    /// Lose what the member receives (its messages still arrive).
    MuteIn,
    /// Restart one member and kill another while the first catches up.
    TwoOut,
    DiskFull,
}

const FAULTS: [Fault; 7] = [
    Fault::Kill,
    Fault::Pause,
    Fault::Isolate,
    Fault::MuteOut,
    Fault::MuteIn,
    Fault::TwoOut,
    Fault::DiskFull,
];

struct Nemesis {
    e: Proxied,
    rng: Rng,
    /// The member whose dataDir is a small tmpfs (None: not root, no disk-full fault).
    disk: Option<(u64, Tmpfs)>,
    /// What was done, with times since the run started.
    log: Vec<String>,
    t0: Instant,
}

impl Nemesis {
    fn note(&mut self, what: String) {
        let line = format!("{:7.3} s  {what}", self.t0.elapsed().as_secs_f64());
        eprintln!("nemesis: {line}");
        self.log.push(line);
    }

    fn members(&self) -> Vec<u64> {
        (1..=self.e.cluster.nodes.len() as u64).collect()
    }

    async fn pause_for(&mut self, lo_ms: u64, hi_ms: u64) {
        let ms = lo_ms + self.rng.below((hi_ms - lo_ms) as usize + 1) as u64;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// The leader half the time (when one is known), else any member.
    async fn target(&mut self) -> u64 {
        let members = self.members();
        if self.rng.below(2) == 0 {
            if let Some(l) = self.e.cluster.leader_among(&members).await {
                return l;
            }
        }
        members[self.rng.below(members.len())]
    }

    async fn inject(&mut self, fault: Fault) {
        let id = self.target().await;
        match fault {
            Fault::Kill => {
                self.note(format!("kill -9 {id}"));
                self.e.cluster.node(id).kill9();
                self.pause_for(300, 2500).await;
                self.note(format!("restart {id}"));
                self.e.cluster.node(id).start();
            }
            Fault::Pause => {
                self.note(format!("SIGSTOP {id}"));
                self.e.cluster.node(id).pause();
                self.pause_for(300, 2500).await;
                self.note(format!("SIGCONT {id}"));
                self.e.cluster.node(id).resume();
            }
            Fault::Isolate | Fault::MuteOut | Fault::MuteIn => {
                let others = self.e.others(id);
                for &o in &others {
                    if !matches!(fault, Fault::MuteIn) {
                        self.e.proxy.set(id, o, Link::Blackhole);
                    }
                    if !matches!(fault, Fault::MuteOut) {
                        self.e.proxy.set(o, id, Link::Blackhole);
                    }
                }
                self.note(format!("{fault:?} {id}"));
                self.pause_for(500, 3000).await;
                self.note("heal".to_string());
                self.e.proxy.heal();
            }
            Fault::TwoOut => {
                let second = *self.rng.pick(&self.e.others(id)).expect("two members");
                self.note(format!("kill -9 {id}"));
                self.e.cluster.node(id).kill9();
                self.pause_for(1000, 3000).await;
                self.note(format!(
                    "restart {id}, and kill -9 {second} while it catches up"
                ));
                self.e.cluster.node(id).start();
                self.pause_for(0, 300).await;
                self.e.cluster.node(second).kill9();
                self.pause_for(500, 2000).await;
                self.note(format!("restart {second}"));
                self.e.cluster.node(second).start();
            }
            Fault::DiskFull => {
                let Some((victim, disk)) = self.disk.take() else {
                    return;
                };
                let filled = disk.fill("filler");
                self.note(format!(
                    "disk of {victim} full ({} KiB filler)",
                    filled / 1024
                ));
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut exited = None;
                while Instant::now() < deadline {
                    let child = self.e.cluster.node(victim).child.as_mut();
                    if let Some(status) = child.and_then(|c| c.try_wait().ok().flatten()) {
                        exited = Some(status);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                let _ = std::fs::remove_file(disk.dir.join("filler"));
                self.note(format!(
                    "{victim} {}; filler removed, restart",
                    exited.map_or("still running after 10 s".to_string(), |s| format!(
                        "exited ({s})"
                    ))
                ));
                self.e.cluster.node(victim).kill9();
                self.e.cluster.node(victim).start();
                self.disk = Some((victim, disk));
            }
        }
    }

    /// Every member up, every link open.
    async fn recover(&mut self) {
        self.e.proxy.heal();
        for id in self.members() {
            let node = self.e.cluster.node(id);
            node.resume();
            if node
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            {
                node.kill9();
            }
            if node.child.is_none() {
                node.start();
            }
        }
        self.note("recovered: all up, all links open".to_string());
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// Runs `plan` and checks the history; panics with the checker's report if it is not
/// linearizable.
async fn run(plan: Plan) {
    eprintln!("nemesis run {plan:?}");
    let extra = format!(
        "keeperd.linearizableReads={}\nsnapCount=2000\n",
        plan.linearizable_reads
    );
    let cluster = Cluster::prepare(plan.members, &extra);
    // The last member's dataDir on a small tmpfs, to fill it later.
    let victim = plan.members;
    let disk = Tmpfs::mount_on(&cluster.data_dir(victim), "48m").map(|t| {
        std::fs::write(t.dir.join("myid"), format!("{victim}\n")).unwrap();
        (victim, t)
    });
    if disk.is_none() {
        eprintln!("no disk-full fault: mounting a tmpfs needs root");
    }
    let e = Proxied::start(cluster).await;
    let all: Vec<u64> = (1..=plan.members).collect();
    {
        let c = connect(&e.cluster.connect_string(), SESSION).await;
        c.create("/lin", b"", &open()).await.unwrap();
        for k in 0..KEYS {
            c.create(&key_path(k), b"0", &open()).await.unwrap();
        }
    }
    let t0 = Instant::now();
    let rec = Arc::new(Recorder {
        t0,
        ops: Mutex::new(vec![]),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = vec![];
    for id in 0..plan.clients {
        // Home member first, the rest after: sessions spread over the members.
        let home = all[id % all.len()];
        let mut order = vec![home];
        order.extend(all.iter().filter(|&&m| m != home));
        let hosts = e.cluster.hosts(&order);
        clients.push(tokio::spawn(client(
            id,
            hosts,
            plan.clone(),
            rec.clone(),
            stop.clone(),
        )));
    }
    let mut nemesis = Nemesis {
        e,
        rng: Rng::new(plan.seed),
        disk,
        log: vec![],
        t0,
    };
    // Faults one after another, with calm between them, until the time is up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while t0.elapsed() < plan.faults_for {
        let fault = FAULTS[nemesis.rng.below(FAULTS.len())];
        nemesis.inject(fault).await;
        nemesis.pause_for(500, 1500).await;
    }
    nemesis.recover().await;
    // Calm: the ensemble settles and the clients go on for a while.
    nemesis.e.cluster.wait_leader(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("a client ends")
            .unwrap();
    }
    // One last sync + read of every key, from every member: every acknowledged write
    // must still be there.
    for &m in &all {
        let c = connect(&nemesis.e.cluster.hosts(&[m]), SESSION).await;
        for key in 0..KEYS + NODE_KEYS {
            let invoked = Instant::now();
            let outcome = read_outcome(&c, &key_path(key), false)
                .await
                .expect("final read");
            rec.record(Op {
                client: usize::MAX,
                key,
                call: Call::Read,
                outcome,
                invoked: rec.micros(invoked),
                completed: Some(rec.micros(Instant::now())),
            });
        }
    }
    nemesis.e.assert_routed();

    let ops = rec.ops.lock().unwrap().clone();
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|o| f(o)).count();
    let summary = format!(
        "{} operations: {} reads, {} writes/CAS/creates acknowledged, {} deletes, {} CAS \
         BadVersion, {} NoNode, {} NodeExists, {} unknown outcomes; faults:\n  {}",
        ops.len(),
        count(&|o| o.call == Call::Read),
        count(&|o| matches!(o.outcome, Outcome::Written { .. })),
        count(&|o| o.outcome == Outcome::Deleted),
        count(&|o| o.outcome == Outcome::BadVersion),
        count(&|o| o.outcome == Outcome::NoNode),
        count(&|o| o.outcome == Outcome::NodeExists),
        count(&|o| o.outcome == Outcome::Unknown),
        nemesis.log.join("\n  ")
    );
    eprintln!("{summary}");
    let started = Instant::now();
    let verdicts = tokio::task::spawn_blocking(move || checker::check(initial, &ops))
        .await
        .unwrap();
    let report = checker::report(&verdicts);
    eprintln!("checked in {:?}:\n{report}", started.elapsed());
    assert!(
        verdicts
            .values()
            .all(|v| matches!(v, Verdict::Linearizable)),
        "seed {}: the history is not linearizable (or the check gave up):\n{report}\n{summary}",
        plan.seed
    );
    assert!(
        count_acked(&rec) > 50,
        "too few acknowledged writes to judge anything\n{summary}"
    );
}

fn count_acked(rec: &Recorder) -> usize {
    let ops = rec.ops.lock().unwrap();
    ops.iter()
        .filter(|o| matches!(o.outcome, Outcome::Written { .. }))
        .count()
}

fn seed() -> u64 {
    env_number("NEMESIS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64
    })
}

/// The CI run: 3 members, linearizable reads on, ~35 s of faults of every kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_short_run() {
    let plan = Plan {
        seed: seed(),
        members: 3,
        clients: 6,
        faults_for: Duration::from_secs(35),
        linearizable_reads: true,
    };
    tokio::time::timeout(Duration::from_secs(150), run(plan))
        .await
        .expect("the nemesis run exceeded its bound");
}

/// `scripts/nemesis`: NEMESIS_SEED, NEMESIS_SECS, NEMESIS_MEMBERS, NEMESIS_LINEARIZABLE_READS
/// (0 or 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long; run by scripts/nemesis"]
async fn nemesis_run_from_env() {
    let members = env_number("NEMESIS_MEMBERS").unwrap_or(3);
    let secs = env_number("NEMESIS_SECS").unwrap_or(120);
    let plan = Plan {
        seed: seed(),
        members,
        clients: 2 * members as usize,
        faults_for: Duration::from_secs(secs),
        linearizable_reads: env_number("NEMESIS_LINEARIZABLE_READS").unwrap_or(1) != 0,
    };
    tokio::time::timeout(Duration::from_secs(secs + 300), run(plan))
        .await
        .expect("the nemesis run exceeded its bound");
}
