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

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use support::{connect_string, connector, start_with, test_config, Rng, TestServer};
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

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn name_of(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |i| i + 1)..]
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.matches('/').count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
}

impl Mode {
    fn is_ephemeral(self) -> bool {
        matches!(self, Mode::Ephemeral | Mode::EphemeralSequential)
    }

    fn is_sequential(self) -> bool {
        matches!(self, Mode::PersistentSequential | Mode::EphemeralSequential)
    }

    fn options(self) -> zk::CreateOptions<'static> {
        let mode = match self {
            Mode::Persistent => zk::CreateMode::Persistent,
            Mode::Ephemeral => zk::CreateMode::Ephemeral,
            Mode::PersistentSequential => zk::CreateMode::PersistentSequential,
            Mode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
        };
        mode.with_acls(zk::Acls::anyone_all())
    }
}

/// A zxid as far as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zx {
    Known(i64),
    /// Set by the write in flight; resolved once its reply is in.
    Pending,
    /// Written by a write whose zxid no reply showed: some zxid above this one.
    After(i64),
}

/// One znode of the model.
#[derive(Clone, Debug)]
struct MNode {
    data: Vec<u8>,
    version: i32,
    /// cversion as clients see it: +1 for every child created and every child deleted.
    cversion: i32,
    /// Children created so far: the next sequential suffix. Deletes do not count.
    creations: i32,
    children: BTreeSet<String>,
    /// The owning session of an ephemeral, 0 for a persistent node.
    owner: i64,
    czxid: Zx,
    mzxid: Zx,
    pzxid: Zx,
    /// Wall-clock stamps the model cannot predict: learned on first sight, then they must
    /// not move (mtime is forgotten by setData).
    ctime: Option<i64>,
    mtime: Option<i64>,
}

impl MNode {
    fn new(data: &[u8], owner: i64) -> MNode {
        MNode {
            data: data.to_vec(),
            version: 0,
            cversion: 0,
            creations: 0,
            children: BTreeSet::new(),
            owner,
            czxid: Zx::Pending,
            mzxid: Zx::Pending,
            pzxid: Zx::Pending,
            ctime: None,
            mtime: None,
        }
    }

    fn resolve(&mut self, zxid: Option<i64>, floor: i64) {
        for zx in [&mut self.czxid, &mut self.mzxid, &mut self.pzxid] {
            if *zx == Zx::Pending {
                *zx = zxid.map_or(Zx::After(floor), Zx::Known);
            }
        }
    }
}

/// One op of a multi.
#[derive(Clone, Debug)]
enum MOp {
    Create {
        path: String,
        data: String,
        mode: Mode,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    SetData {
        path: String,
        data: String,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// What a successful op of a multi answers: the affected node as it was right after the op.
#[derive(Debug)]
enum MExpect {
    Create { path: String, node: Box<MNode> },
    Delete,
    SetData { node: Box<MNode> },
    Check,
}

/// ZooKeeper's tree as a client can observe it.
#[derive(Clone, Debug)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    /// The largest zxid any reply has shown; every later write's zxid must exceed it.
    last_zxid: i64,
}

impl Model {
    fn new() -> Model {
        // The root of a fresh ZooKeeper tree holds /zookeeper, linked without counting a
        // child creation, so clients see cversion 2 * 0 - 1 = -1 (DataNode.copyStat).
        // /zookeeper itself is never touched by the generator and not modelled beyond its
        // name in the root's children.
        let root = MNode {
            cversion: -1,
            children: ["zookeeper".to_owned()].into(),
            czxid: Zx::Known(0),
            mzxid: Zx::Known(0),
            pzxid: Zx::Known(0),
            ctime: Some(0),
            mtime: Some(0),
            ..MNode::new(b"", 0)
        };
        Model {
            nodes: [("/".to_owned(), root)].into(),
            last_zxid: 0,
        }
    }

    fn node(&self, path: &str) -> Result<&MNode, zk::Error> {
        self.nodes.get(path).ok_or(zk::Error::NoNode)
    }

    fn node_mut(&mut self, path: &str) -> Result<&mut MNode, zk::Error> {
        self.nodes.get_mut(path).ok_or(zk::Error::NoNode)
    }

    /// Returns the created path (with the sequential suffix).
    fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: Mode,
        session: i64,
    ) -> Result<String, zk::Error> {
        let parent_path = parent_of(path).to_owned();
        let parent = self.node(&parent_path)?;
        let path = if mode.is_sequential() {
            format!("{path}{:010}", parent.creations)
        } else {
            path.to_owned()
        };
        let name = name_of(&path).to_owned();
        if parent.children.contains(&name) {
            return Err(zk::Error::NodeExists);
        }
        if parent.owner != 0 {
            return Err(zk::Error::NoChildrenForEphemerals);
        }
        let parent = self.node_mut(&parent_path)?;
        parent.creations += 1;
        parent.cversion += 1;
        parent.pzxid = Zx::Pending;
        parent.children.insert(name);
        let owner = if mode.is_ephemeral() { session } else { 0 };
        self.nodes.insert(path.clone(), MNode::new(data, owner));
        Ok(path)
    }

    fn delete(&mut self, path: &str, version: Option<i32>) -> Result<(), zk::Error> {
        self.node(parent_of(path))?;
        let node = self.node(path)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(zk::Error::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(zk::Error::NotEmpty);
        }
        self.unlink(path);
        Ok(())
    }

    fn unlink(&mut self, path: &str) {
        self.nodes.remove(path);
        if let Some(parent) = self.nodes.get_mut(parent_of(path)) {
            parent.children.remove(name_of(path));
            parent.cversion += 1;
            parent.pzxid = Zx::Pending;
        }
    }

    fn set_data(&mut self, path: &str, data: &[u8], version: Option<i32>) -> Result<(), zk::Error> {
        let node = self.node_mut(path)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(zk::Error::BadVersion);
        }
        node.data = data.to_vec();
        node.version += 1;
        node.mzxid = Zx::Pending;
        node.mtime = None;
        Ok(())
    }

    fn check(&self, path: &str, version: i32) -> Result<(), zk::Error> {
        let node = self.node(path)?;
        if version != -1 && version != node.version {
            return Err(zk::Error::BadVersion);
        }
        Ok(())
    }

    /// All or nothing; on failure the index of the first failing op and its error.
    fn multi(&mut self, ops: &[MOp], session: i64) -> Result<Vec<MExpect>, (usize, zk::Error)> {
        let mut next = self.clone();
        let mut out = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                MOp::Create { path, data, mode } => next
                    .create(path, data.as_bytes(), *mode, session)
                    .map(|path| MExpect::Create {
                        node: Box::new(next.nodes[&path].clone()),
                        path,
                    }),
                MOp::Delete { path, version } => {
                    next.delete(path, *version).map(|()| MExpect::Delete)
                }
                MOp::SetData {
                    path,
                    data,
                    version,
                } => next
                    .set_data(path, data.as_bytes(), *version)
                    .map(|()| MExpect::SetData {
                        node: Box::new(next.nodes[path].clone()),
                    }),
                MOp::Check { path, version } => next.check(path, *version).map(|()| MExpect::Check),
            };
            out.push(r.map_err(|e| (i, e))?);
        }
        *self = next;
        Ok(out)
    }

    fn close_session(&mut self, session: i64) {
        let owned: Vec<String> = self.ephemerals(session);
        for path in owned {
            self.unlink(&path);
        }
    }

    fn ephemerals(&self, session: i64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.owner == session)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A write succeeded at `zxid` (None: its reply showed no zxid).
    fn learn_write(&mut self, zxid: Option<i64>) -> Check {
        if let Some(z) = zxid {
            if z <= self.last_zxid {
                return Err(format!(
                    "write zxid {z:#x} is not above the last zxid seen, {:#x}",
                    self.last_zxid
                ));
            }
        }
        let floor = self.last_zxid;
        for node in self.nodes.values_mut() {
            node.resolve(zxid, floor);
        }
        if let Some(z) = zxid {
            self.last_zxid = z;
        }
        Ok(())
    }

    /// Compares a Stat from the server with the model's node at `path`, pinning what the
    /// model learns from it.
    fn check_stat(&mut self, path: &str, stat: &zk::Stat) -> Check {
        let node = self
            .nodes
            .get_mut(path)
            .ok_or_else(|| format!("{path}: not in the model"))?;
        compare_stat(path, node, stat)?;
        self.last_zxid = self
            .last_zxid
            .max(stat.czxid)
            .max(stat.mzxid)
            .max(stat.pzxid);
        Ok(())
    }
}

fn compare_stat(path: &str, node: &mut MNode, stat: &zk::Stat) -> Check {
    let expect = (
        node.version,
        node.cversion,
        0,
        node.owner,
        node.data.len() as i32,
        node.children.len() as i32,
    );
    let got = (
        stat.version,
        stat.cversion,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    );
    if expect != got {
        return Err(format!(
            "{path}: (version, cversion, aversion, ephemeralOwner, dataLength, numChildren) \
             expected {expect:?}, got {got:?}; stat {stat:?}"
        ));
    }
    for (field, zx, got) in [
        ("czxid", &mut node.czxid, stat.czxid),
        ("mzxid", &mut node.mzxid, stat.mzxid),
        ("pzxid", &mut node.pzxid, stat.pzxid),
    ] {
        match *zx {
            Zx::Known(v) if v == got => {}
            Zx::After(floor) if got > floor => *zx = Zx::Known(got),
            _ => {
                return Err(format!(
                    "{path}: {field} expected {zx:?}, got {got:#x}; stat {stat:?}"
                ))
            }
        }
    }
    for (field, t, got) in [
        ("ctime", &mut node.ctime, stat.ctime),
        ("mtime", &mut node.mtime, stat.mtime),
    ] {
        match *t {
            Some(v) if v != got => {
                return Err(format!(
                    "{path}: {field} expected {v}, got {got}; stat {stat:?}"
                ))
            }
            Some(_) => {}
            None => *t = Some(got),
        }
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        slot: usize,
        path: String,
        data: String,
        mode: Mode,
    },
    Delete {
        slot: usize,
        path: String,
        version: Option<i32>,
    },
    SetData {
        slot: usize,
        path: String,
        data: String,
        version: Option<i32>,
    },
    GetData {
        slot: usize,
        path: String,
    },
    Exists {
        slot: usize,
        path: String,
    },
    GetChildren {
        slot: usize,
        path: String,
    },
    Multi {
        slot: usize,
        ops: Vec<MOp>,
    },
    CloseSession {
        slot: usize,
    },
    OpenSession {
        slot: usize,
    },
    Restart,
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

    // ---- generation: depends only on the rng and the model, so a seed replays exactly ----

    fn gen_data(&mut self) -> String {
        let n = self.rng.below(6);
        (0..n)
            .map(|_| char::from(b'a' + self.rng.below(26) as u8))
            .collect()
    }

    fn fixed_path(&mut self, max_depth: usize) -> String {
        let depth = 1 + self.rng.below(max_depth);
        let mut path = String::new();
        for _ in 0..depth {
            path.push('/');
            path.push_str(NAMES[self.rng.below(NAMES.len())]);
        }
        path
    }

    /// An existing node other than the root, at most `max_depth` deep.
    fn existing(&mut self, max_depth: usize) -> Option<String> {
        let candidates: Vec<&String> = self
            .model
            .nodes
            .keys()
            .filter(|p| p.as_str() != "/" && depth(p) <= max_depth)
            .collect();
        let picked = self.rng.pick(&candidates).map(|p| p.to_string());
        picked
    }

    /// A path to read, write or delete: often an existing node, sometimes the root.
    fn target(&mut self, allow_root: bool) -> String {
        let roll = if self.likely { 0 } else { self.rng.below(10) };
        match roll {
            0..=5 => match self.existing(MAX_DEPTH + 1) {
                Some(p) => p,
                None => self.fixed_path(MAX_DEPTH),
            },
            6 if allow_root => "/".to_owned(),
            _ => self.fixed_path(MAX_DEPTH),
        }
    }

    fn gen_mode(&mut self) -> Mode {
        match self.rng.below(20) {
            0..=7 => Mode::Persistent,
            8..=12 => Mode::Ephemeral,
            13..=16 => Mode::PersistentSequential,
            _ => Mode::EphemeralSequential,
        }
    }

    /// The path argument of a create (for a sequential node, the prefix).
    fn create_path(&mut self, mode: Mode) -> String {
        let name = NAMES[self.rng.below(NAMES.len())];
        let roll = if self.likely { 1 } else { self.rng.below(8) };
        let parent = match roll {
            0 => Some("/".to_owned()),
            1..=4 => self.existing(MAX_DEPTH - 1),
            _ => None,
        };
        match (mode.is_sequential(), parent) {
            (true, Some(parent)) => join(&parent, "s-"),
            (true, None) => {
                let parent = self.fixed_path(MAX_DEPTH - 1);
                join(&parent, "s-")
            }
            (false, Some(parent)) => join(&parent, name),
            (false, None) => self.fixed_path(MAX_DEPTH),
        }
    }

    /// -1, the node's current version, a version off by one, or any small number.
    fn gen_version(&mut self, path: &str) -> Option<i32> {
        let current = self.model.nodes.get(path).map_or(0, |n| n.version);
        let roll = if self.likely { 3 } else { self.rng.below(10) };
        match roll {
            0..=2 => None,
            3..=7 => Some(current),
            8 => Some(current + 1),
            _ => Some(self.rng.below(3) as i32),
        }
    }

    fn gen_mop(&mut self) -> MOp {
        match self.rng.below(4) {
            0 => {
                let mode = self.gen_mode();
                MOp::Create {
                    path: self.create_path(mode),
                    data: self.gen_data(),
                    mode,
                }
            }
            1 => {
                let path = self.target(false);
                MOp::Delete {
                    version: self.gen_version(&path),
                    path,
                }
            }
            2 => {
                let path = self.target(true);
                MOp::SetData {
                    version: self.gen_version(&path),
                    data: self.gen_data(),
                    path,
                }
            }
            _ => {
                let path = self.target(true);
                MOp::Check {
                    version: self.gen_version(&path).unwrap_or(-1),
                    path,
                }
            }
        }
    }

    fn gen_op(&mut self) -> Op {
        let open: Vec<usize> = (0..SLOTS).filter(|&i| self.slots[i].is_some()).collect();
        let closed: Vec<usize> = (0..SLOTS).filter(|&i| self.slots[i].is_none()).collect();
        let Some(&slot) = self.rng.pick(&open) else {
            return Op::OpenSession { slot: closed[0] };
        };
        match self.rng.below(100) {
            0..=24 => {
                let mode = self.gen_mode();
                Op::Create {
                    slot,
                    path: self.create_path(mode),
                    data: self.gen_data(),
                    mode,
                }
            }
            25..=38 => {
                let path = self.target(false);
                Op::Delete {
                    slot,
                    version: self.gen_version(&path),
                    path,
                }
            }
            39..=50 => {
                let path = self.target(true);
                Op::SetData {
                    slot,
                    version: self.gen_version(&path),
                    data: self.gen_data(),
                    path,
                }
            }
            51..=58 => Op::GetData {
                slot,
                path: self.target(true),
            },
            59..=65 => Op::Exists {
                slot,
                path: self.target(true),
            },
            66..=73 => Op::GetChildren {
                slot,
                path: self.target(true),
            },
            74..=91 => {
                let n = 1 + self.rng.below(4);
                // Half the multis pick ops likely to succeed, or few would commit.
                self.likely = self.rng.below(2) == 0;
                let ops = (0..n).map(|_| self.gen_mop()).collect();
                self.likely = false;
                Op::Multi { slot, ops }
            }
            92..=95 => Op::CloseSession { slot },
            _ => match self.rng.pick(&closed) {
                Some(&slot) => Op::OpenSession { slot },
                None => Op::GetChildren {
                    slot,
                    path: self.target(true),
                },
            },
        }
    }

    // ---- execution: the server's answer against the model's ----

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
