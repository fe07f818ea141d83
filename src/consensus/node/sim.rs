//! A deterministic in-process ensemble for tests: real `Node`s over real sled storage in
//! temp dirs, but no sockets, no threads and no real time. Messages travel through an
//! in-memory network (`MemNet`) that the test can cut between any two nodes; time is a
//! manual `Clock` moved one tick at a time; each step does what `Node::run` would do for
//! the same event. A scenario that takes seconds over TCP runs here in milliseconds, and
//! every run of it is the same run, apart from raft-rs's randomised election timeouts.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::handle::Local;
use super::{Clock, Node, RaftOptions, RaftStatus};
use crate::consensus::peer::{PeerMsg, Transport};
use crate::consensus::raft_tests::{txn, Recorder};
use crate::consensus::{Proposal, StateMachine};
use crate::tree::Applied;

type Wire = Arc<Mutex<VecDeque<(u64, u64, PeerMsg)>>>;

/// One node's end of the in-memory network: everything sent is queued on the shared wire.
pub(super) struct MemNet {
    me: u64,
    peers: Vec<u64>,
    wire: Wire,
}

impl Transport for MemNet {
    fn send(&mut self, msgs: Vec<Message>) {
        let mut w = self.wire.lock().expect("wire");
        for m in msgs {
            w.push_back((self.me, m.to, PeerMsg::Raft(m)));
        }
    }

    fn send_peer(&mut self, to: u64, msg: PeerMsg) -> bool {
        self.wire
            .lock()
            .expect("wire")
            .push_back((self.me, to, msg));
        true
    }

    fn peer_ids(&self) -> Vec<u64> {
        self.peers.clone()
    }
}

struct SimNode {
    node: Node<Recorder, MemNet>,
    sm: Recorder,
    status: watch::Receiver<RaftStatus>,
}

pub(super) struct Sim {
    clock: Clock,
    wire: Wire,
    members: Vec<u64>,
    dirs: BTreeMap<u64, tempfile::TempDir>,
    nodes: BTreeMap<u64, SimNode>,
    /// Links that drop everything, (from, to).
    cut: HashSet<(u64, u64)>,
    /// Options every node starts with (id and dirs set per node).
    template: RaftOptions,
    /// Logical ticks since the start.
    pub(super) ticks: u64,
}

impl Sim {
    /// A new group of `voters`, every node started (zoo.cfg's members, fixed membership).
    pub(super) fn new(voters: &[u64]) -> Sim {
        Sim::with(voters, |_| {})
    }

    /// As `new`, with options changed by `f` first (e.g. a small snap_count).
    pub(super) fn with(voters: &[u64], f: impl FnOnce(&mut RaftOptions)) -> Sim {
        let mut template = RaftOptions::standalone("unused");
        template.voters = voters.to_vec();
        template.tick = Duration::from_millis(100);
        template.election_ticks = 10;
        // A killed node here is a dropped one in a live process: what it wrote is in the
        // page cache either way, and fdatasync would only make the runs slow.
        template.force_sync = false;
        f(&mut template);
        let mut sim = Sim {
            clock: Clock::manual(),
            wire: Wire::default(),
            members: voters.to_vec(),
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            cut: HashSet::new(),
            template,
            ticks: 0,
        };
        for &id in voters {
            sim.dirs.insert(id, tempfile::tempdir().expect("temp dir"));
            sim.start(id);
        }
        sim
    }

    /// Starts (or restarts) node `id` on its dirs: recovery as at process start.
    pub(super) fn start(&mut self, id: u64) {
        let mut opts = self.template.clone();
        opts.id = id;
        opts.data_dir = self.dirs[&id].path().to_path_buf();
        let net = MemNet {
            me: id,
            peers: self.members.iter().copied().filter(|&p| p != id).collect(),
            wire: self.wire.clone(),
        };
        let sm = Recorder::default();
        let (status_tx, status) = watch::channel(RaftStatus::default());
        let (touch_tx, _) = mpsc::channel(16);
        let mut node = Node::recover(sm.clone(), opts, net, status_tx, touch_tx).expect("recovery");
        node.clock = self.clock.clone();
        self.nodes.insert(id, SimNode { node, sm, status });
    }

    /// Stops node `id` at once, as kill -9 would: its peers see its connections close.
    /// Returns once sled let go of the log's lock (it does so after the drop, on its own
    /// threads), so a restart can open it.
    pub(super) fn kill(&mut self, id: u64) {
        drop(self.nodes.remove(&id));
        let db = crate::consensus::storage::log_db_dir(self.dirs[&id].path());
        assert!(db.join("db").exists(), "no raft log at {}", db.display());
        assert!(
            crate::consensus::storage::wait_unlocked(&db, Duration::from_secs(10)),
            "node {id}'s raft log is still locked after it was dropped"
        );
        let mut w = self.wire.lock().expect("wire");
        w.retain(|(from, to, _)| *from != id && *to != id);
        for &other in self.nodes.keys() {
            w.push_back((id, other, PeerMsg::Closed));
        }
    }

    /// Cuts both directions between `a` and `b` (messages are dropped, connections stay).
    pub(super) fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Drops what `from` sends to `to`; the other way still works.
    pub(super) fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    /// Isolates `id` from every other node.
    pub(super) fn isolate(&mut self, id: u64) {
        for &other in &self.members.clone() {
            if other != id {
                self.cut(id, other);
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.cut.clear();
    }

    /// One logical tick on every running node, then every message delivered (and the
    /// replies they cause) until the network is quiet.
    pub(super) fn tick(&mut self) {
        self.tick_observed(&mut |_| {});
    }

    /// `tick`, calling `seen` after every event a node handles (each tick, each message),
    /// so a test sees the states a node passes through within one tick.
    pub(super) fn tick_observed(&mut self, seen: &mut dyn FnMut(&Sim)) {
        self.ticks += 1;
        self.clock.advance(self.template.tick);
        let now = self.clock.now();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = &mut self.nodes.get_mut(&id).expect("running node").node;
            if node.live.campaign_at.is_some_and(|at| at <= now) {
                node.campaign_now();
            }
            node.tick().expect("tick");
            after_event(node);
            seen(self);
        }
        self.deliver(seen);
    }

    /// Ticks until `f` holds, at most `limit` ticks; returns the ticks it took.
    pub(super) fn tick_until(&mut self, limit: u64, mut f: impl FnMut(&Sim) -> bool) -> u64 {
        for t in 0..limit {
            if f(self) {
                return t;
            }
            self.tick();
        }
        panic!(
            "not reached within {limit} ticks; status: {:?}",
            self.nodes
                .keys()
                .map(|&id| (id, self.status(id)))
                .collect::<Vec<_>>()
        );
    }

    fn deliver(&mut self, seen: &mut dyn FnMut(&Sim)) {
        loop {
            let next = self.wire.lock().expect("wire").pop_front();
            let Some((from, to, msg)) = next else {
                return;
            };
            if self.cut.contains(&(from, to)) {
                continue;
            }
            if let Some(n) = self.nodes.get_mut(&to) {
                n.node.peer_msg(from, msg);
                after_event(&mut n.node);
                seen(self);
            }
        }
    }

    pub(super) fn status(&self, id: u64) -> RaftStatus {
        self.nodes[&id].status.borrow().clone()
    }

    /// The node every running node agrees leads (None: no agreement, or nobody).
    pub(super) fn leader(&self) -> Option<u64> {
        let mut leaders = self.nodes.values().map(|n| n.status.borrow().leader_id);
        let first = leaders.next()?;
        (first != 0 && leaders.all(|l| l == first)).then_some(first)
    }

    /// Proposes txn `i` on node `id`; the receiver yields its outcome once applied there.
    pub(super) fn propose(&mut self, id: u64, i: i64) -> oneshot::Receiver<Applied> {
        let (done, rx) = oneshot::channel();
        let n = self.nodes.get_mut(&id).expect("running node");
        n.node.propose(&mut vec![Proposal {
            txn: txn(i),
            done: Some(done),
            before: None,
        }]);
        after_event(&mut n.node);
        self.deliver(&mut |_| {});
        rx
    }

    /// Asks node `id` for a read barrier.
    pub(super) fn read_barrier(&mut self, id: u64) -> oneshot::Receiver<()> {
        let (done, rx) = oneshot::channel();
        let n = self.nodes.get_mut(&id).expect("running node");
        n.node.local(Local::ReadBarrier(done));
        after_event(&mut n.node);
        self.deliver(&mut |_| {});
        rx
    }

    /// What node `id`'s state machine applied: (zxid, txn bytes) in order.
    pub(super) fn applied(&self, id: u64) -> Vec<(i64, Vec<u8>)> {
        self.nodes[&id].sm.get()
    }

    pub(super) fn running(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }
}

/// What `Node::run` does after every event: handle the Ready, snapshot if due (written at
/// once here instead of on a thread), publish the status.
fn after_event<S: StateMachine>(node: &mut Node<S, MemNet>) {
    node.on_ready().expect("ready");
    if let Some(job) = node.maybe_snapshot(false).expect("snapshot") {
        let (index, r) = job.blocking_recv().expect("snapshot writer");
        node.snapshot_written(index, r).expect("snapshot written");
        node.on_ready().expect("ready");
    }
    node.publish();
}
