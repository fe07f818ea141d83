//! Model-based test of a durable single keeperd node, in the manner of sled's tests/tree:
//! random operation sequences, restarts of the server included, run both against an
//! in-process keeperd (real TCP, the `zookeeper-client` crate) and against `Model`, a small
//! in-memory statement of ZooKeeper's tree semantics written from ZooKeeper's documented
//! behaviour rather than from src/tree. Every result is compared: paths, data, children,
//! error codes, the failing index of a multi, and every Stat field the model can know.
//!
//! What the model knows exactly: data, version, cversion as clients see it (one step per
//! child created and one per child deleted), numChildren, dataLength, ephemeralOwner,
//! aversion, sequential suffixes (the parent's count of child creations, deletes do not
//! count), and which ephemerals each session owns. zxids and times it learns from the
//! server: each successful write must carry a zxid above every zxid seen before, and from
//! then on the node's czxid / mzxid / pzxid must read back as that write reported, through
//! restarts too. A zxid a client never sees directly (a delete's, a session close's) must,
//! when it shows up as a pzxid, be above everything seen before that write.
//!
//! Paths come from a small space (three levels of the names a, b, c, plus sequential `s-`
//! children and children of existing nodes) so that operations collide often.
//!
//! Knobs: MODEL_SEED (default 1) is the first sequence's seed, sequence k uses
//! MODEL_SEED + k; MODEL_SEQUENCES (default 8); MODEL_OPS (default 300 per sequence). A
//! failing sequence prints its seed, its op history and the mismatch; rerun it alone with
//! `MODEL_SEED=<seed> MODEL_SEQUENCES=1 cargo test --release --test model -- --nocapture`,
//! with e.g. `MODEL_LOG=keeperd=debug,zookeeper_client=debug` for the server's and the
//! client's logs. Odd seeds run with a small snapCount, so that their restarts recover from
//! a snapshot plus a log tail; even seeds replay the whole log.

#[path = "../support/mod.rs"]
mod support;

mod gen;
mod tree;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use gen::Op;
use support::{connect_string, connector, start_with, test_config, Rng, TestServer};
use tree::{compare_stat, MExpect, MOp, Model};
use zookeeper_client as zk;

/// Names at each level of the fixed path space.
const NAMES: [&str; 3] = ["a", "b", "c"];
/// Deepest level of the fixed path space (children of existing nodes may go one deeper).
const MAX_DEPTH: usize = 3;
/// Client sessions open at once, at most.
const SLOTS: usize = 3;
/// Long enough that no session expires while the server restarts (the server's maximum).
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// snapCount for the sequences that exercise recovery from snapshots.
const SMALL_SNAP_COUNT: u64 = 40;
/// Bound on every single client call, connect, close and restart.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on the whole test.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(110);

/// The error codes the model predicts.
const ERRORS: [zk::Error; 5] = [
    zk::Error::NoNode,
    zk::Error::NodeExists,
    zk::Error::BadVersion,
    zk::Error::NotEmpty,
    zk::Error::NoChildrenForEphemerals,
];

/// A comparison's outcome: `Err` carries the mismatch, reported with the op history.
type Check<T = ()> = Result<T, String>;

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> Check<T> {
    tokio::time::timeout(OP_TIMEOUT, f)
        .await
        .map_err(|_| format!("{what}: no answer within {OP_TIMEOUT:?}"))
}

/// A client session of the run. Always detached: dropping the client must not close the
/// session (restarts drop every client); closing is an explicit op.
struct Slot {
    client: zk::Client,
    session: zk::SessionInfo,
    id: i64,
}

async fn connect(
    srv: &TestServer,
    session: Option<zk::SessionInfo>,
    detached: bool,
) -> Check<zk::Client> {
    let mut builder = connector(SESSION_TIMEOUT);
    if let Some(session) = session {
        builder = builder.with_session(session);
    }
    if detached {
        builder = builder.with_detached();
    }
    bounded("connect", builder.connect(&connect_string(srv.local_addr)))
        .await?
        .map_err(|e| format!("connect: {e:?}"))
}

/// Drops `client` and waits until its session task has stopped. Dropping only asks the
/// task to stop: until it notices, a connection it loses (say, to a newer connection of the
/// same session taking over) is reconnected, which would in turn push that newer connection
/// off the session. So nothing may attach to the session before this returns. A detached
/// client ends Closed without closing its session; an attached one ends Closed once the
/// server has answered its closeSession.
async fn retire(client: zk::Client) -> Check {
    let id = client.session_id().0;
    let mut state = client.state_watcher();
    drop(client);
    let end = bounded("closing a client", async {
        let mut s = state.peek_state();
        while !s.is_terminated() {
            s = state.changed().await;
        }
        s
    })
    .await?;
    match end {
        zk::SessionState::Closed => Ok(()),
        s => Err(format!(
            "client of session {id:#x} ended in {s:?}, not Closed"
        )),
    }
}

/// Compares a model outcome with a server outcome whose success values were already
/// checked by the caller.
fn same_error<A: std::fmt::Debug, B: std::fmt::Debug>(
    expected: &Result<A, zk::Error>,
    got: &Result<B, zk::Error>,
) -> Check<String> {
    match (expected, got) {
        (Err(e), Err(g)) if e == g => Ok(format!("{e:?}")),
        _ => Err(format!("expected {expected:?}, got {got:?}")),
    }
}

struct Run {
    rng: Rng,
    srv: Option<TestServer>,
    slots: Vec<Option<Slot>>,
    model: Model,
    history: Vec<String>,
    restarts: usize,
    /// While set, generation picks existing nodes and current versions.
    likely: bool,
}

impl Run {
    fn srv(&self) -> &TestServer {
        self.srv.as_ref().expect("server is running")
    }

    fn slot(&self, slot: usize) -> Check<&Slot> {
        self.slots[slot]
            .as_ref()
            .ok_or_else(|| format!("slot {slot} has no session"))
    }

    // ---- execution: the server's answer against the model's (generation: gen.rs) ----

    /// Runs one op on both sides; returns a short outcome for the history.
    async fn apply(&mut self, op: &Op) -> Check<String> {
        match op {
            Op::Create {
                slot,
                path,
                data,
                mode,
            } => {
                let s = self.slot(*slot)?;
                let (client, session) = (s.client.clone(), s.id);
                let expected = self.model.create(path, data.as_bytes(), *mode, session);
                let got = bounded(
                    "create",
                    client.create(path, data.as_bytes(), &mode.options()),
                )
                .await?;
                match (&expected, &got) {
                    (Ok(want), Ok((stat, seq))) => {
                        let created = if mode.is_sequential() {
                            format!("{path}{seq}")
                        } else {
                            path.clone()
                        };
                        if &created != want {
                            return Err(format!("created {created}, model expected {want}"));
                        }
                        if stat.ctime != stat.mtime {
                            return Err(format!("new node with ctime != mtime: {stat:?}"));
                        }
                        self.model.learn_write(Some(stat.czxid))?;
                        self.model.check_stat(want, stat)?;
                        Ok(format!("created {want}"))
                    }
                    _ => same_error(&expected, &got),
                }
            }
            Op::Delete {
                slot,
                path,
                version,
            } => {
                let client = self.slot(*slot)?.client.clone();
                let expected = self.model.delete(path, *version);
                let got = bounded("delete", client.delete(path, *version)).await?;
                match (&expected, &got) {
                    (Ok(()), Ok(())) => {
                        self.model.learn_write(None)?;
                        Ok("deleted".to_owned())
                    }
                    _ => same_error(&expected, &got),
                }
            }
            Op::SetData {
                slot,
                path,
                data,
                version,
            } => {
                let client = self.slot(*slot)?.client.clone();
                let expected = self.model.set_data(path, data.as_bytes(), *version);
                let got =
                    bounded("setData", client.set_data(path, data.as_bytes(), *version)).await?;
                match (&expected, &got) {
                    (Ok(()), Ok(stat)) => {
                        self.model.learn_write(Some(stat.mzxid))?;
                        self.model.check_stat(path, stat)?;
                        Ok(format!("version {}", stat.version))
                    }
                    _ => same_error(&expected, &got),
                }
            }
            Op::GetData { slot, path } => {
                let client = self.slot(*slot)?.client.clone();
                let got = bounded("getData", client.get_data(path)).await?;
                let expected = self.model.node(path).map(|n| n.data.clone());
                match (&expected, &got) {
                    (Ok(want), Ok((data, stat))) => {
                        if data != want {
                            return Err(format!(
                                "{path}: data {:?}, model expected {:?}",
                                String::from_utf8_lossy(data),
                                String::from_utf8_lossy(want)
                            ));
                        }
                        self.model.check_stat(path, stat)?;
                        Ok(format!("{:?}", String::from_utf8_lossy(data)))
                    }
                    _ => same_error(&expected, &got),
                }
            }
            Op::Exists { slot, path } => {
                let client = self.slot(*slot)?.client.clone();
                let got = bounded("exists", client.check_stat(path))
                    .await?
                    .map_err(|e| format!("exists {path}: {e:?}"))?;
                let expected = self.model.nodes.contains_key(path.as_str());
                match got {
                    Some(stat) if expected => {
                        self.model.check_stat(path, &stat)?;
                        Ok("exists".to_owned())
                    }
                    None if !expected => Ok("absent".to_owned()),
                    got => Err(format!(
                        "{path}: exists answered {got:?}, model expected present = {expected}"
                    )),
                }
            }
            Op::GetChildren { slot, path } => {
                let client = self.slot(*slot)?.client.clone();
                let got = bounded("getChildren", client.get_children(path)).await?;
                let expected = self
                    .model
                    .node(path)
                    .map(|n| n.children.iter().cloned().collect::<Vec<_>>());
                match (&expected, &got) {
                    (Ok(want), Ok((children, stat))) => {
                        let mut children = children.clone();
                        children.sort();
                        if &children != want {
                            return Err(format!(
                                "{path}: children {children:?}, model expected {want:?}"
                            ));
                        }
                        self.model.check_stat(path, stat)?;
                        Ok(format!("{children:?}"))
                    }
                    _ => same_error(&expected, &got),
                }
            }
            Op::Multi { slot, ops } => self.apply_multi(*slot, ops).await,
            Op::CloseSession { slot } => {
                let Some(s) = self.slots[*slot].take() else {
                    return Err(format!("slot {slot} has no session"));
                };
                let Slot {
                    client,
                    session,
                    id,
                } = s;
                retire(client).await?;
                // A detached client cannot close its session; a second, attached connection
                // to the same session can: dropping it sends closeSession, and it ends Closed
                // once the server has answered (i.e. applied) it.
                let closer = connect(self.srv(), Some(session), false).await?;
                if closer.session_id().0 != id {
                    return Err(format!(
                        "reattached to session {:#x}, not {id:#x}",
                        closer.session_id().0
                    ));
                }
                retire(closer).await?;
                let gone = self.model.ephemerals(id);
                self.model.close_session(id);
                self.model.learn_write(None)?;
                Ok(format!("closed {id:#x}, ephemerals gone: {gone:?}"))
            }
            Op::OpenSession { slot } => {
                let client = connect(self.srv(), None, true).await?;
                let id = client.session_id().0;
                self.slots[*slot] = Some(Slot {
                    session: client.session().clone(),
                    client,
                    id,
                });
                Ok(format!("session {id:#x}"))
            }
            Op::Restart => {
                // Drop every (detached) client: the sessions stay, as across a real restart.
                let mut sessions = Vec::new();
                for i in 0..SLOTS {
                    if let Some(s) = self.slots[i].take() {
                        retire(s.client).await?;
                        sessions.push((i, s.session, s.id));
                    }
                }
                let srv = self.srv.take().expect("server is running");
                let started = Instant::now();
                self.srv = Some(bounded("restart", srv.restart()).await?);
                let took = started.elapsed();
                for (i, session, id) in sessions {
                    let client = connect(self.srv(), Some(session.clone()), true).await?;
                    if client.session_id().0 != id {
                        return Err(format!(
                            "slot {i}: reconnected as session {:#x}, not {id:#x}",
                            client.session_id().0
                        ));
                    }
                    self.slots[i] = Some(Slot {
                        client,
                        session,
                        id,
                    });
                }
                self.restarts += 1;
                self.verify_all().await?;
                Ok(format!("restarted in {took:?}, full tree verified"))
            }
        }
    }

    async fn apply_multi(&mut self, slot: usize, ops: &[MOp]) -> Check<String> {
        let s = self.slot(slot)?;
        let (client, session) = (s.client.clone(), s.id);
        let expected = self.model.multi(ops, session);
        let mut writer = client.new_multi_writer();
        for op in ops {
            match op {
                MOp::Create { path, data, mode } => {
                    writer.add_create(path, data.as_bytes(), &mode.options())
                }
                MOp::Delete { path, version } => writer.add_delete(path, *version),
                MOp::SetData {
                    path,
                    data,
                    version,
                } => writer.add_set_data(path, data.as_bytes(), *version),
                MOp::Check { path, version } => writer.add_check_version(path, *version),
            }
            .map_err(|e| format!("building the multi: {e:?}"))?;
        }
        let got = bounded("multi", writer.commit()).await?;
        match (expected, got) {
            (Ok(want), Ok(results)) => {
                if want.len() != results.len() {
                    return Err(format!(
                        "{} results, model expected {}: {results:?}",
                        results.len(),
                        want.len()
                    ));
                }
                // All ops of a multi are one txn with one zxid.
                let mut zxid = None;
                for r in &results {
                    let z = match r {
                        // ZooKeeper 3.8.0 answers a create inside a multi with an invalid
                        // Stat (ZOOKEEPER-4667); keeperd fills it in. Both are accepted.
                        zk::MultiWriteResult::Create { stat, .. } if stat.is_invalid() => None,
                        zk::MultiWriteResult::Create { stat, .. } => Some(stat.czxid),
                        zk::MultiWriteResult::SetData { stat } => Some(stat.mzxid),
                        _ => None,
                    };
                    if let Some(z) = z {
                        if zxid.is_some_and(|zxid| zxid != z) {
                            return Err(format!(
                                "ops of one multi at different zxids: {results:?}"
                            ));
                        }
                        zxid = Some(z);
                    }
                }
                let floor = self.model.last_zxid;
                self.model.learn_write(zxid)?;
                let mut summary = Vec::new();
                for (i, (w, r)) in want.into_iter().zip(&results).enumerate() {
                    match (w, r) {
                        (MExpect::Check, zk::MultiWriteResult::Check)
                        | (MExpect::Delete, zk::MultiWriteResult::Delete) => {}
                        (
                            MExpect::Create { path, mut node },
                            zk::MultiWriteResult::Create { path: got, stat },
                        ) => {
                            if &path != got {
                                return Err(format!(
                                    "op {i}: created {got}, model expected {path}"
                                ));
                            }
                            if !stat.is_invalid() {
                                node.resolve(zxid, floor);
                                compare_stat(&path, &mut node, stat)
                                    .map_err(|e| format!("op {i}: {e}"))?;
                            }
                            summary.push(path);
                        }
                        (MExpect::SetData { mut node }, zk::MultiWriteResult::SetData { stat }) => {
                            node.resolve(zxid, floor);
                            compare_stat("setData", &mut node, stat)
                                .map_err(|e| format!("op {i}: {e}"))?;
                        }
                        (w, r) => {
                            return Err(format!("op {i}: answered {r:?}, model expected {w:?}"))
                        }
                    }
                }
                Ok(format!("committed {summary:?}"))
            }
            (Err((index, err)), Err(zk::MultiWriteError::OperationFailed { index: i, source }))
                if index == i && err == source =>
            {
                Ok(format!("op {index} failed: {err:?}"))
            }
            (expected, got) => Err(format!("expected {expected:?}, got {got:?}")),
        }
    }

    /// Reads every node of the model back (data, children, Stat), counts the whole tree, and
    /// lists each session's ephemerals.
    async fn verify_all(&mut self) -> Check {
        let clients: Vec<(zk::Client, i64)> = self
            .slots
            .iter()
            .flatten()
            .map(|s| (s.client.clone(), s.id))
            .collect();
        let client = match clients.first() {
            Some((client, _)) => client.clone(),
            // No session open: read through a throwaway one (it owns no ephemerals).
            None => connect(self.srv(), None, false).await?,
        };
        let paths: Vec<String> = self.model.nodes.keys().cloned().collect();
        for path in &paths {
            let (data, stat) = bounded("getData", client.get_data(path))
                .await?
                .map_err(|e| format!("verify {path}: getData {e:?}"))?;
            if data != self.model.nodes[path].data {
                return Err(format!(
                    "verify {path}: data {data:?} differs from the model"
                ));
            }
            self.model.check_stat(path, &stat)?;
            let (mut children, stat) = bounded("getChildren", client.get_children(path))
                .await?
                .map_err(|e| format!("verify {path}: getChildren {e:?}"))?;
            children.sort();
            let want: Vec<String> = self.model.nodes[path].children.iter().cloned().collect();
            if children != want {
                return Err(format!(
                    "verify {path}: children {children:?}, model expected {want:?}"
                ));
            }
            self.model.check_stat(path, &stat)?;
        }
        // No node the model does not know of: the model's nodes plus /zookeeper,
        // /zookeeper/quota and /zookeeper/config, minus the root.
        let count = bounded("getAllChildrenNumber", client.count_descendants_number("/"))
            .await?
            .map_err(|e| format!("verify: getAllChildrenNumber {e:?}"))?;
        if count != self.model.nodes.len() + 2 {
            return Err(format!(
                "verify: {count} nodes below /, model expected {}",
                self.model.nodes.len() + 2
            ));
        }
        for (client, id) in &clients {
            let mut got = bounded("getEphemerals", client.list_ephemerals("/"))
                .await?
                .map_err(|e| format!("verify: getEphemerals {e:?}"))?;
            got.sort();
            let want = self.model.ephemerals(*id);
            if got != want {
                return Err(format!(
                    "verify: session {id:#x} owns {got:?}, model expected {want:?}"
                ));
            }
        }
        Ok(())
    }
}

/// One sequence: `ops` random ops with a restart every 30 to 50 ops, then a full check.
async fn run_sequence(seed: u64, ops: usize) -> Result<String, String> {
    let started = Instant::now();
    // Odd seeds snapshot every few dozen entries, so restarts recover from a snapshot plus a
    // log tail; even seeds keep the default and replay the whole log.
    let mut config = test_config();
    if seed % 2 == 1 {
        config.snap_count = SMALL_SNAP_COUNT;
    }
    let snap_count = config.snap_count;
    let mut run = Run {
        rng: Rng::new(seed),
        srv: Some(start_with(config).await),
        slots: (0..SLOTS).map(|_| None).collect(),
        model: Model::new(),
        history: Vec::new(),
        restarts: 0,
        likely: false,
    };
    // Per op kind: (succeeded, answered with an error), to show what a seed exercised.
    let mut kinds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut next_restart = 30 + run.rng.below(21);
    for i in 0..ops {
        let op = if i == next_restart {
            next_restart += 30 + run.rng.below(21);
            Op::Restart
        } else {
            run.gen_op()
        };
        let line = format!("#{i} {op:?}");
        match run.apply(&op).await {
            Ok(outcome) => {
                let kind = line[line.find(' ').map_or(0, |i| i + 1)..]
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("?")
                    .to_owned();
                let error = ERRORS
                    .iter()
                    .map(|e| format!("{e:?}"))
                    .find(|e| outcome == *e || outcome.ends_with(&format!(" failed: {e}")));
                let failed = error.is_some();
                if let Some(e) = error {
                    *errors.entry(e).or_insert(0) += 1;
                }
                let tally = kinds.entry(kind).or_insert((0, 0));
                if failed {
                    tally.1 += 1;
                } else {
                    tally.0 += 1;
                }
                run.history.push(format!("{line} => {outcome}"));
            }
            Err(mismatch) => {
                run.history.push(format!("{line} => MISMATCH"));
                return Err(report(seed, &run.history, &mismatch));
            }
        }
    }
    if let Err(mismatch) = run.verify_all().await {
        return Err(report(
            seed,
            &run.history,
            &format!("final check: {mismatch}"),
        ));
    }
    let tallies: Vec<String> = kinds
        .iter()
        .map(|(k, (ok, err))| format!("{k} {ok}/{err}"))
        .collect();
    let summary = format!(
        "seed {seed} (snapCount {snap_count}): {ops} ops in {:?}, {} restarts, {} znodes at the end, last zxid {:#x}; \
         ok/error by op: {}; errors: {errors:?}",
        started.elapsed(),
        run.restarts,
        run.model.nodes.len(),
        run.model.last_zxid,
        tallies.join(", ")
    );
    if let Some(srv) = run.srv.take() {
        drop(run.slots);
        bounded("shutdown", srv.shutdown()).await?;
    }
    Ok(summary)
}

fn report(seed: u64, history: &[String], mismatch: &str) -> String {
    format!(
        "model mismatch with seed {seed} (rerun: MODEL_SEED={seed} MODEL_SEQUENCES=1 \
         cargo test --release --test model -- --nocapture)\nop history:\n{}\nmismatch: {mismatch}",
        history.join("\n")
    )
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_sequences_agree_with_the_model() {
    if std::env::var("MODEL_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("MODEL_LOG"))
            .with_test_writer()
            .try_init();
    }
    let base = env_number("MODEL_SEED", 1);
    let sequences = env_number("MODEL_SEQUENCES", 8);
    let ops = env_number("MODEL_OPS", 300) as usize;
    println!(
        "model: MODEL_SEED={base}, {sequences} sequences (seeds {base}..{}) of {ops} ops",
        base + sequences
    );
    let deadline = tokio::time::Instant::now() + TOTAL_TIMEOUT;
    let tasks: Vec<(u64, _)> = (0..sequences)
        .map(|k| {
            let seed = base.wrapping_add(k);
            (seed, tokio::spawn(run_sequence(seed, ops)))
        })
        .collect();
    let mut failures = Vec::new();
    for (seed, task) in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(summary))) => println!("model: {summary}"),
            Ok(Ok(Err(report))) => failures.push(report),
            Ok(Err(panic)) => failures.push(format!("seed {seed}: the run panicked: {panic}")),
            Err(_) => failures.push(format!(
                "seed {seed}: not finished within {TOTAL_TIMEOUT:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
