//! The Raft driver: one task owns the `RawNode`, its `SledStorage` and the `StateMachine`.
//!
//! ```text
//!  Proposer ──Proposal──►┐
//!  RaftHandle::step ─Msg─►│  node task (own thread, current-thread runtime)
//!  tick interval ────────►│    RawNode<SledStorage> ── Ready ──► Transport (peer messages)
//!  snapshot writer done ─►│                         └─ apply ──► StateMachine, Proposal.done
//!                         └─► watch<RaftStatus> (4lw, mntr, srvr)
//! ```
//!
//! Each Ready is handled in raft-rs's documented order: send messages; install a received
//! snapshot; apply committed entries; persist entries + hard state (one sled transaction, one
//! flush, one fdatasync: group commit); send persisted messages (votes, append responses:
//! the ones that acknowledge); advance, then handle the LightReady (commit index, messages,
//! committed entries). A proposal's `done` fires only when its entry is applied, which raft-rs
//! allows only for entries this node has persisted, so with force_sync nothing is
//! acknowledged before it is fdatasynced.
//!
//! The node runs on a dedicated OS thread with a current-thread tokio runtime: persisting
//! blocks on fdatasync (and applying on the tree), and that must not stall the client edge's
//! worker threads. There is still exactly one task and no lock around the RawNode.
//!
//! In an ensemble (docs/replication.md) the transport is `transport::PeerNetwork`: a
//! proposal on a node that does not lead is forwarded to the leader with this node's entry
//! context and answered here when the entry is applied; proposals wait (in order) up to
//! `hold_timeout` for a leader; `read_barrier` is Raft ReadIndex; touches are routed to the
//! leader. Answers whose outcome this node can no longer know (term change) are dropped.
//!
//! Start-up recovery happens on that thread before `spawn_raft` returns: storage is opened
//! (torn tail cut), the newest good snapshot restored, and every stored entry re-applied, so
//! the server never serves a partially replayed tree.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole, Storage};
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::logger::raft_logger;
use super::storage::{SledStorage, SnapshotFile};
use super::transport::{Forward, PeerMsg, PeerNetwork, PeerReport, Probe, Touches};
use super::{zxid, GroupMembers, NotAccepting, Proposal, Proposer, StateMachine};
use crate::proto::Error;
use crate::tree::{Applied, LeaderView, Txn};

fn fault(msg: impl std::fmt::Display) -> Error {
    Error::Other(msg.to_string())
}

/// What the consensus layer needs from zoo.cfg and myid.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// myid (1 for standalone). Never 0: raft-rs reserves it.
    pub id: u64,
    /// The voters of a fresh group (server.N lines); only read when the store is empty.
    pub voters: Vec<u64>,
    /// The learners (observers, `server.N=...:observer`) of a fresh group; only read when
    /// the store is empty. Every member must start with the same voters and learners.
    pub learners: Vec<u64>,
    /// Quorum addresses (`host:quorumPort`) of the members, by id; this node's own entry is
    /// where it listens unless `peer_listen` says otherwise. Empty = no peer network
    /// (standalone): `spawn_raft` then runs with `NoPeers`.
    pub peers: Vec<(u64, String)>,
    /// Where the peer network listens (quorumListenOnAllIPs: 0.0.0.0:port); None = this
    /// node's own entry in `peers`.
    pub peer_listen: Option<SocketAddr>,
    /// dataDir: snapshots go to `data_dir/keeperd/snapshots`.
    pub data_dir: PathBuf,
    /// dataLogDir: the log goes to `log_dir/keeperd/raftlog`; None = data_dir.
    pub log_dir: Option<PathBuf>,
    /// snapCount: a snapshot after roughly this many applied entries (randomised in
    /// (snapCount/2, snapCount] per snapshot, as ZooKeeper does).
    pub snap_count: u64,
    /// autopurge.snapRetainCount: snapshots kept (values below 3 count as 3).
    pub snap_retain_count: usize,
    /// autopurge.purgeInterval in hours; 0 = snapshot files are never deleted.
    pub purge_interval_hours: u64,
    /// forceSync: fdatasync the log before acknowledging.
    pub force_sync: bool,
    /// One Raft logical tick.
    pub tick: Duration,
    /// Ticks without a leader before a follower campaigns.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Most proposals taken from the queue into one Ready (the group-commit batch).
    pub max_batch: usize,
    /// Membership follows zoo.cfg (docs/operations.md): a node with an empty
    /// log does not bootstrap from `voters`/`learners` at once but probes its peers and
    /// bootstraps only when every voter of its zoo.cfg has an empty log and the same list;
    /// otherwise it waits to be added by the existing leader (it learns the group from the
    /// leader's snapshot). As leader, a node adds/promotes/removes servers, one conf change
    /// at a time, until the group's membership is its zoo.cfg's. False: a fresh log takes
    /// `voters`/`learners` as its group at once and membership is never changed.
    pub follow_config: bool,
    /// A state to start from instead of an empty one (ZooKeeper's data taken over); only
    /// read while the store is empty. See `Seed`.
    pub seed: Option<Seed>,
    /// keeperd.quorum.secretFile: peers authenticate each other with it (`peer_auth`).
    pub quorum_secret: Option<super::peer_auth::QuorumSecret>,
}

/// A state machine snapshot that becomes a new group's first state: the tree imported from a
/// ZooKeeper dataDir. It enters the log as a snapshot at index 1 with term `epoch + 1` of
/// ZooKeeper's last zxid, so every zxid keeperd gives out is above ZooKeeper's.
///
/// Standalone, it is installed at once. In an ensemble every server with an empty log tells
/// the others the zxid of what it imported (`Probe::Fresh`); once every voter of zoo.cfg has
/// answered, the one with the highest zxid (then the highest id), as ZooKeeper's election
/// would choose, starts a one-voter group from its seed and adds the others one at a time;
/// they drop their own import and take its snapshot, so one group never holds two imported
/// states.
#[derive(Clone)]
pub struct Seed {
    /// `StateMachine::snapshot` bytes of the imported state.
    pub data: Arc<Vec<u8>>,
    /// ZooKeeper's last zxid in it.
    pub zxid: i64,
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Seed {{ zxid: {:#x}, {} bytes }}",
            self.zxid,
            self.data.len()
        )
    }
}

impl Seed {
    /// The snapshot the seed enters the log as, with `conf` as the group. Consumes the seed
    /// (its bytes move into the snapshot unless someone else still holds them).
    fn into_snapshot(self, conf: ConfState) -> Snapshot {
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = 1;
        meta.term = ((self.zxid as u64) >> 32) + 1;
        meta.set_conf_state(conf);
        snap.data = Arc::try_unwrap(self.data)
            .unwrap_or_else(|shared| shared.as_ref().clone())
            .into();
        snap
    }
}

impl RaftOptions {
    /// Standalone defaults (myid 1, ZooKeeper's snapCount 100000, forceSync on).
    pub fn standalone(data_dir: impl Into<PathBuf>) -> RaftOptions {
        RaftOptions {
            id: 1,
            voters: vec![1],
            learners: vec![],
            peers: vec![],
            peer_listen: None,
            data_dir: data_dir.into(),
            log_dir: None,
            snap_count: 100_000,
            snap_retain_count: 3,
            purge_interval_hours: 0,
            force_sync: true,
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 1,
            max_batch: 1024,
            follow_config: false,
            seed: None,
            quorum_secret: None,
        }
    }

    fn retain(&self) -> usize {
        self.snap_retain_count.max(3)
    }

    /// The shortest election timeout (raft-rs randomises it in [this, 2 x this)).
    pub fn election_timeout(&self) -> Duration {
        self.tick * self.election_ticks as u32
    }

    /// How long a proposal waits for a leader to be known, and a read barrier for its
    /// answer, before giving up (the server answers ConnectionLoss).
    pub fn hold_timeout(&self) -> Duration {
        self.election_timeout() * 2
    }

    /// How long a proposal forwarded to the leader may stay unanswered (lost on the way,
    /// dropped by a leader that just lost office) before its `done` is dropped.
    pub fn forward_timeout(&self) -> Duration {
        (self.election_timeout() * 4).max(Duration::from_secs(5))
    }
}

/// Sends Raft messages to peers. The ensemble implements it over the quorum port
/// (`transport::PeerNetwork`); it must not block (queue and return) and may drop messages:
/// Raft retransmits.
pub trait Transport: Send + 'static {
    fn send(&mut self, msgs: Vec<Message>);

    /// Queues a proposal for the leader `to`. False = not queued (no route, queue full): the
    /// node keeps it and tries again later.
    fn forward(&mut self, _to: u64, _fwd: &Forward) -> bool {
        false
    }

    /// Queues session touches for the leader `to`; best effort.
    fn touch(&mut self, _to: u64, _sessions: Vec<i64>) -> bool {
        false
    }

    /// Queues a start-up membership probe for `to`; best effort.
    fn probe(&mut self, _to: u64, _probe: &Probe) -> bool {
        false
    }

    /// The peers this transport can reach (zoo.cfg's servers but this one).
    fn peer_ids(&self) -> Vec<u64> {
        vec![]
    }

    /// The servers of the replicated membership and where they listen: peers to add (a
    /// server that joined by reconfig is in no zoo.cfg here).
    fn set_peers(&mut self, _peers: &[(u64, String)]) {}

    /// What the transport learnt since the last call (broken connections, lost snapshots);
    /// polled every tick and passed on to raft-rs.
    fn take_reports(&mut self) -> Vec<PeerReport> {
        vec![]
    }
}

/// The transport of a one-voter group: there is nobody to talk to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            tracing::warn!(
                "no transport: dropping raft {:?} to {}",
                m.get_msg_type(),
                m.to
            );
        }
    }
}

/// This node's part in the group (ZooKeeper's Mode: leader, follower, observer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RaftRole {
    Leader,
    #[default]
    Follower,
    /// A non-voting member: ZooKeeper's observer.
    Learner,
    /// Campaigning (pre-vote or vote): no leader is known.
    Candidate,
}

/// What the four-letter words and the server need to know about this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    pub role: RaftRole,
    pub is_leader: bool,
    /// A leader is known (this node or another): the ensemble can serve writes.
    pub serving: bool,
    /// The current membership (sorted); the quorum is a majority of `voters`.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// On the leader: followers / learners that answered within an election timeout and
    /// are replicating (zk_synced_followers, zk_synced_observers). 0 elsewhere.
    pub synced_followers: u64,
    pub synced_learners: u64,
    /// Snapshots received from a leader and installed since start.
    pub snapshots_installed: u64,
    /// 0 while no leader is known.
    pub leader_id: u64,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    /// First index still in the log (log_start + 1).
    pub first_index: u64,
    pub last_index: u64,
    /// The snapshot recovery restored (0 = none: replayed from the start of the log).
    pub restored_snapshot_index: u64,
    /// The newest snapshot written or restored, and its file size.
    pub last_snapshot_index: u64,
    pub last_snapshot_size: u64,
    /// Snapshot files in the snapshot directory.
    pub snapshot_files: u64,
    /// Bytes of entries in the log (what mntr can show as the log size).
    pub log_bytes: u64,
    /// fdatasync rounds on the log (each one flush + fdatasync of the db file).
    pub fsyncs: u64,
    /// Readies that had to be made durable (entries or a term/vote change).
    pub sync_readies: u64,
    /// False once the node task has ended.
    pub running: bool,
}

impl RaftStatus {
    /// Votes needed to elect a leader or commit (a majority of the voters; mntr's
    /// zk_quorum_size is the number of voters, as ZooKeeper reports it).
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// What reaches the node task besides proposals.
pub(crate) enum Inbound {
    /// A frame from a peer (after the transport checked who sent it).
    Peer(u64, PeerMsg),
    /// `RaftHandle::read_barrier`.
    ReadBarrier(oneshot::Sender<()>),
    /// `RaftHandle::touch_leader`.
    TouchLeader(Vec<i64>),
}

/// Inbound frames and local requests queued for the node before new ones are refused.
const INBOUND_QUEUE: usize = 8192;
/// Touch batches queued for the server before new ones are dropped.
const TOUCH_QUEUE: usize = 1024;

/// A cheap handle on a running node: status, inbound peer messages, read barriers, session
/// touches, shutdown.
#[derive(Clone)]
pub struct RaftHandle {
    status: watch::Receiver<RaftStatus>,
    stopped: watch::Receiver<bool>,
    inbound: mpsc::Sender<Inbound>,
    shutdown: Arc<Notify>,
    /// Touches for this node as leader; taken once by the server.
    touches: Arc<Mutex<Option<mpsc::Receiver<Touches>>>>,
}

impl RaftHandle {
    /// A copy of the latest status.
    pub fn status(&self) -> RaftStatus {
        self.status.borrow().clone()
    }
    pub fn is_leader(&self) -> bool {
        self.status.borrow().is_leader
    }
    pub fn leader_id(&self) -> u64 {
        self.status.borrow().leader_id
    }
    pub fn term(&self) -> u64 {
        self.status.borrow().term
    }
    pub fn applied_index(&self) -> u64 {
        self.status.borrow().applied_index
    }
    /// A receiver that sees every status change (wait for leadership, an index, ...).
    pub fn watch(&self) -> watch::Receiver<RaftStatus> {
        self.status.clone()
    }
    /// Hands a message from a peer to the node without waiting; dropped (Ok) when the
    /// node's queue is full, as a lost message would be.
    pub fn step(&self, msg: Message) -> Result<(), NotAccepting> {
        match self
            .inbound
            .try_send(Inbound::Peer(msg.from, PeerMsg::Raft(msg)))
        {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotAccepting),
            _ => Ok(()),
        }
    }

    /// Hands a frame from peer `from` to the node, waiting for room in its queue (the
    /// transport's inbound side: backpressure reaches the peer's TCP connection).
    pub async fn deliver(&self, from: u64, msg: PeerMsg) -> Result<(), NotAccepting> {
        self.inbound
            .send(Inbound::Peer(from, msg))
            .await
            .map_err(|_| NotAccepting)
    }

    /// Resolves once this node has applied everything the leader had committed when the
    /// call was made (Raft ReadIndex; for `sync`). Err when no answer came within
    /// `RaftOptions::hold_timeout` (no leader, no quorum) or the node stopped.
    pub fn read_barrier(&self) -> impl std::future::Future<Output = Result<(), NotAccepting>> {
        let inbound = self.inbound.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            inbound
                .send(Inbound::ReadBarrier(tx))
                .await
                .map_err(|_| NotAccepting)?;
            rx.await.map_err(|_| NotAccepting)
        }
    }

    /// Sends sessions this server heard from to the leader's expiry clock (to this node's
    /// own `take_touches` receiver when it is the leader). Best effort: dropped while no
    /// leader is known or a queue is full.
    pub fn touch_leader(&self, sessions: Vec<i64>) {
        if !sessions.is_empty() {
            let _ = self.inbound.try_send(Inbound::TouchLeader(sessions));
        }
    }

    /// The touches that reach this node: from peers, and its own `touch_leader` calls while
    /// it leads. A follower receives touches too when a peer still thought it led; the
    /// server can ignore them unless `is_leader()`. Only the first call gets the receiver.
    pub fn take_touches(&self) -> Option<mpsc::Receiver<Touches>> {
        self.touches.lock().ok()?.take()
    }
    /// Asks the node to stop after the Ready in progress.
    pub fn shutdown(&self) {
        self.shutdown.notify_one();
    }
    /// Resolves once the node task has ended and its storage is closed (the dirs can be
    /// reopened).
    pub async fn stopped(&self) {
        let mut rx = self.stopped.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Starts a Raft node. With no `opts.peers` it has no network (standalone); otherwise it
/// starts the peer network (`transport::PeerNetwork`) on `opts.peer_listen` or its own
/// `peers` entry, runs the node over it and feeds it the inbound frames. In that case it
/// must be called from a tokio runtime context (e.g. inside `spawn_blocking`).
/// Rebuilds the state machine from this server's own files without joining any group (the
/// server is stopped: the store's lock says so): the newest snapshot that verifies and that
/// the log can roll forward, then every entry up to the commit index the store recorded.
/// Returns the (index, term) of the last entry applied. For `keeperd export-zk`.
pub fn recover_offline<S: StateMachine>(
    sm: &mut S,
    data_dir: &std::path::Path,
    log_dir: Option<&std::path::Path>,
) -> Result<(u64, u64), Error> {
    let (store, _) = SledStorage::open(log_dir.unwrap_or(data_dir), data_dir, false, &[])?;
    if store.is_empty() && store.snapshots().list()?.is_empty() {
        return Err(fault(format!(
            "{} holds no keeperd state",
            store.path().display()
        )));
    }
    let (log_start, _) = store.log_start();
    let mut at = (0, 0);
    for f in store.snapshots().list()? {
        let snap = match store.snapshots().read(&f) {
            Ok(s) => s,
            Err(why) => {
                tracing::warn!("snapshot {} is unusable ({why})", f.path.display());
                continue;
            }
        };
        let meta = snap.get_metadata();
        if meta.index < log_start {
            break;
        }
        sm.restore(&snap.data)?;
        at = (meta.index, meta.term);
        break;
    }
    if at.0 < log_start {
        return Err(fault(format!(
            "raft log {} starts after index {log_start} but no usable snapshot covers it",
            store.path().display()
        )));
    }
    let commit = store.hard_state().commit.min(store.last_index_cached());
    let mut next = at.0 + 1;
    while next <= commit {
        let high = (next + 4096).min(commit + 1);
        for e in store.read_entries(next, high)? {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                let txn = Txn::decode(&e.data).map_err(|err| {
                    fault(format!(
                        "log entry {} (term {}) is not a txn: {err}",
                        e.index, e.term
                    ))
                })?;
                sm.apply(zxid(e.term, e.index), &txn);
            }
            at = (e.index, e.term);
        }
        next = high;
    }
    Ok(at)
}

pub fn spawn_raft<S: StateMachine>(
    sm: S,
    opts: RaftOptions,
) -> Result<(Proposer, RaftHandle), Error> {
    if opts.peers.iter().all(|(id, _)| *id == opts.id) {
        return spawn_raft_with(sm, opts, NoPeers);
    }
    let listen = match opts.peer_listen {
        Some(a) => a,
        None => {
            let (_, own) = opts
                .peers
                .iter()
                .find(|(id, _)| *id == opts.id)
                .ok_or_else(|| fault(format!("raft: no quorum address for myid {}", opts.id)))?;
            std::net::ToSocketAddrs::to_socket_addrs(own.as_str())
                .map_err(|e| fault(format!("raft: quorum address {own}: {e}")))?
                .next()
                .ok_or_else(|| fault(format!("raft: quorum address {own} resolves to nothing")))?
        }
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(fault("raft: the peer network needs a tokio runtime"));
    }
    let (net, inbound) = PeerNetwork::start(
        opts.id,
        listen,
        opts.peers.clone(),
        opts.quorum_secret.clone(),
    )
    .map_err(|e| {
        fault(format!(
            "raft: cannot listen on quorum address {listen}: {e}"
        ))
    })?;
    let (proposer, handle) = spawn_raft_with(sm, opts, net)?;
    inbound.attach(handle.clone());
    Ok((proposer, handle))
}

/// Recovers from disk, replays the log into `sm`, and starts the node task. Returns once
/// every stored entry is applied (as a single voter: once this node leads and has committed
/// its term's first entry). Blocks the calling thread for the recovery.
pub fn spawn_raft_with<S: StateMachine, T: Transport>(
    sm: S,
    opts: RaftOptions,
    transport: T,
) -> Result<(Proposer, RaftHandle), Error> {
    if opts.id == 0 {
        return Err(fault("raft: myid must not be 0"));
    }
    if opts.voters.is_empty() {
        return Err(fault("raft: no voters"));
    }
    if opts.learners.iter().any(|l| opts.voters.contains(l)) {
        return Err(fault("raft: a server cannot be both a voter and a learner"));
    }
    if !opts.voters.contains(&opts.id) && !opts.learners.contains(&opts.id) {
        return Err(fault(format!(
            "raft: myid {} is neither a voter nor a learner",
            opts.id
        )));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Proposal>();
    let (peer_tx, peer_rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let (touch_tx, touch_rx) = mpsc::channel::<Touches>(TOUCH_QUEUE);
    let (status_tx, status_rx) = watch::channel(RaftStatus::default());
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let shutdown = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    let notify = shutdown.clone();
    let id = opts.id;
    std::thread::Builder::new()
        .name(format!("raft-{id}"))
        .spawn(move || {
            // Declared first, dropped last: `stopped` turns true however the thread ends.
            let _stopped = StoppedGuard(stopped_tx);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(fault(format!("raft runtime: {e}"))));
                    return;
                }
            };
            let node = match Node::recover(sm, opts, transport, status_tx, touch_tx) {
                Ok(node) => node,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let db_dir = node.raw.store().path().to_path_buf();
            if let Err(e) = rt.block_on(node.run(rx, peer_rx, notify)) {
                tracing::error!("raft node {id} stopped on an error: {e}");
            }
            // `run` consumed the node: storage is dropped; wait for sled to let go of it.
            if !super::storage::wait_unlocked(&db_dir, Duration::from_secs(5)) {
                tracing::warn!(
                    "raft log {} is still locked after shutdown",
                    db_dir.display()
                );
            }
        })
        .map_err(|e| fault(format!("spawning the raft thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((
            Proposer { tx },
            RaftHandle {
                status: status_rx,
                stopped: stopped_rx,
                inbound: peer_tx,
                shutdown,
                touches: Arc::new(Mutex::new(Some(touch_rx))),
            },
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(fault("raft node thread died during recovery")),
    }
}

struct StoppedGuard(watch::Sender<bool>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.send_modify(|s| *s = true);
    }
}

/// The entry context of a proposal this node waits on: who proposed it, in which run of the
/// process (so a restart never mistakes an old entry for a new proposal), and its number.
const CONTEXT_LEN: usize = 24;

/// A snapshot being written: its index, then the file (or why it failed).
type SnapJob = oneshot::Receiver<(u64, Result<SnapshotFile, Error>)>;

enum Event {
    Shutdown,
    /// The staggered campaign after the leader's connection closed (`leader_gone`).
    Campaign,
    Proposals,
    ProposersGone,
    Inbound(Inbound),
    Tick,
    Purge,
    SnapshotWritten(u64, Result<SnapshotFile, Error>),
}

/// A proposal of this run whose entry is not applied yet.
struct Pending {
    done: oneshot::Sender<Applied>,
    /// Sent to another node (the leader) rather than proposed here.
    forwarded: bool,
    since: Instant,
}

/// A read barrier waiting for its ReadState, then for `applied` to reach its index.
struct ReadWait {
    done: oneshot::Sender<()>,
    since: Instant,
    /// When the ReadIndex request was last (re)issued: raft-rs drops it silently while no
    /// leader is known or the leader has not committed in its term yet.
    tried: Instant,
    index: Option<u64>,
}

struct Node<S, T> {
    raw: RawNode<SledStorage>,
    sm: S,
    transport: T,
    opts: RaftOptions,
    status: watch::Sender<RaftStatus>,
    /// Proposals of this run waiting for their entry to be applied, by sequence number.
    pending: HashMap<u64, Pending>,
    /// Proposals neither in the log nor sent to a leader yet (no leader known, or the
    /// leader's queue is full), oldest first, with when they arrived.
    held: VecDeque<(Instant, Proposal)>,
    /// Read barriers by their own sequence number (their ReadIndex context).
    reads: HashMap<u64, ReadWait>,
    next_read: u64,
    /// Where touches for this node go (the server's `take_touches` receiver).
    touches: mpsc::Sender<Touches>,
    /// When each peer last sent a Raft message: "synced" means heard from recently.
    heard: HashMap<u64, Instant>,
    /// Term, leader and "leader has committed in its term" as of the last Ready round:
    /// changes drop pending answers or re-issue read barriers.
    last_term: u64,
    last_leader: u64,
    committed_in_term: bool,
    snapshots_installed: u64,
    next_seq: u64,
    incarnation: u64,
    applied: u64,
    /// Entries applied since the last snapshot, and the randomised count that triggers one.
    since_snapshot: u64,
    snapshot_threshold: u64,
    last_snapshot: (u64, u64),
    restored_snapshot_index: u64,
    snapshot_files: u64,
    sync_readies: u64,
    was_leader: bool,
    /// Ticks since start (or since bootstrap), for the start-up election (see `on_tick`).
    ticks: u64,
    /// Empty log, no membership: probing peers (follow_config) until this node either
    /// bootstraps a fresh group or is added to an existing one by its leader's snapshot.
    waiting: bool,
    /// Peers that said their log is empty, with the members they would bootstrap with.
    /// ... and the zxid of the ZooKeeper data each would start from (0: none).
    fresh_peers: HashMap<u64, (Vec<u64>, Vec<u64>, i64)>,
    /// Peers that said they belong to a group with a log.
    member_peers: HashSet<u64>,
    /// Peers that probed us (empty log) recently: a leader sends them a snapshot.
    probing_peers: HashMap<u64, Instant>,
    /// Index of the last conf change applied (a joining server needs a snapshot at least
    /// this new to learn the membership).
    last_conf_index: u64,
    /// Appends from index 1 ignored while waiting (logged once).
    dropped_appends: u64,
    /// Peer messages `validate::check` refused.
    refused_msgs: u64,
    /// When to campaign after the leader's connection closed (`leader_gone`).
    campaign_at: Option<Instant>,
    /// The last membership step logged by the reconciler (not repeated every tick).
    membership_note: String,
    /// Take a snapshot at the next chance, whatever snapCount says (for a joining server).
    force_snapshot: bool,
    /// The applied index when a snapshot was last forced.
    forced_snapshot_at: u64,
    /// The membership the replicated state asks for (None: zoo.cfg's, `opts`).
    target: Option<GroupMembers>,
    /// Not in `target` (logged once per change).
    removed: bool,
    /// Log index of the last reconfig this node appended as leader (ReconfigInProgress
    /// while it is not applied).
    last_reconfig_index: u64,
}

/// No log entries and never compacted.
fn store_is_empty_log(store: &SledStorage) -> bool {
    store.log_start().0 == 0 && store.last_index_cached() == 0
}

/// Between the campaigns of the voters that saw the leader's connection close, by rank.
const LEADER_GONE_STAGGER: Duration = Duration::from_millis(150);

/// How far (in entries) a learner may trail the leader's last index to be promoted.
const CATCH_UP_SLACK: u64 = 128;

/// A peer the leader is streaming entries to: raft-rs's Replicate state, or Probe with
/// everything matched. (After a snapshot a peer stays in Probe until an append moves it
/// on; in an idle ensemble no append comes, though the peer has everything.)
fn replicating(p: &raft::Progress, last: u64) -> bool {
    p.matched > 0
        && (p.state == ProgressState::Replicate
            || (p.state == ProgressState::Probe && p.matched >= last))
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v.dedup();
    v
}

fn next_threshold(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::thread_rng().gen_range(0..half)
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    fn recover(
        mut sm: S,
        mut opts: RaftOptions,
        transport: T,
        status: watch::Sender<RaftStatus>,
        touches: mpsc::Sender<Touches>,
    ) -> Result<Self, Error> {
        let log_root = opts
            .log_dir
            .clone()
            .unwrap_or_else(|| opts.data_dir.clone());
        let (mut store, _report) =
            SledStorage::open(&log_root, &opts.data_dir, opts.force_sync, &[])?;
        // No membership and no log: this node never was part of a group (or was wiped).
        let empty = store.is_empty();
        // Standalone: the imported state is the group's first state. Taken out of the
        // options either way: a store with state of its own ignores it, and it is large.
        let standalone_seed = match opts.follow_config {
            true => None,
            false => opts.seed.take(),
        };
        if let Some(seed) = standalone_seed.filter(|_| empty) {
            let zxid = seed.zxid;
            let snap = seed.into_snapshot(ConfState {
                voters: opts.voters.clone(),
                learners: opts.learners.clone(),
                ..Default::default()
            });
            let meta = snap.get_metadata();
            store.snapshots().write(meta, &snap.data)?;
            store.install_snapshot(meta)?;
            tracing::info!(
                "new group from the imported state (zxid {zxid:#x}): snapshot at index 1, \
                 term {}",
                meta.term
            );
        } else if empty && !opts.follow_config {
            tracing::info!(
                "raft log {} is empty: new group with voters {:?}, learners {:?}",
                store.path().display(),
                opts.voters,
                opts.learners
            );
            store.set_conf_state(ConfState {
                voters: opts.voters.clone(),
                learners: opts.learners.clone(),
                ..Default::default()
            })?;
        } else if empty {
            tracing::info!(
                "membership: raft log {} is empty: not bootstrapping from zoo.cfg; probing \
                 servers {:?} (a new ensemble starts only when every voter in zoo.cfg has an \
                 empty log and the same server list; otherwise this server waits to be added \
                 by the existing leader)",
                store.path().display(),
                opts.voters
            );
        }

        // The newest snapshot that verifies and that the log can roll forward.
        let files = store.snapshots().list()?;
        let (log_start, _) = store.log_start();
        let mut restored: Option<(SnapshotMetadata, u64)> = None;
        let mut unusable = vec![];
        for f in &files {
            let snap = match store.snapshots().read(f) {
                Ok(s) => s,
                Err(why) => {
                    tracing::warn!(
                        "snapshot {} is unusable ({why}); falling back to an older snapshot",
                        f.path.display()
                    );
                    unusable.push(f.path.display().to_string());
                    continue;
                }
            };
            let meta = snap.get_metadata().clone();
            if meta.index < log_start {
                tracing::warn!(
                    "snapshot {} (index {}) is older than the log start {log_start}: \
                     it and older ones cannot be rolled forward",
                    f.path.display(),
                    meta.index
                );
                break;
            }
            let last = store.last_index_cached();
            if meta.index <= last {
                match store.term(meta.index) {
                    Ok(t) if t == meta.term => {}
                    other => {
                        tracing::warn!(
                            "snapshot {} (index {} term {}) disagrees with the log (term \
                             {other:?}); falling back to an older snapshot",
                            f.path.display(),
                            meta.index,
                            meta.term
                        );
                        unusable.push(f.path.display().to_string());
                        continue;
                    }
                }
            }
            if let Err(e) = sm.restore(&snap.data) {
                tracing::warn!(
                    "snapshot {} does not restore ({e}); falling back to an older snapshot",
                    f.path.display()
                );
                unusable.push(f.path.display().to_string());
                continue;
            }
            if meta.index > last {
                tracing::warn!(
                    "raft log {} ends at {last}, before snapshot {} (index {}): restarting \
                     the log from the snapshot",
                    store.path().display(),
                    f.path.display(),
                    meta.index
                );
                store.install_snapshot(&meta)?;
            } else if meta.index > store.hard_state().commit {
                store.set_commit(meta.index)?;
            }
            tracing::info!(
                "restored snapshot {} (index {}, term {}, {} bytes)",
                f.path.display(),
                meta.index,
                meta.term,
                f.size
            );
            restored = Some((meta, f.size));
            break;
        }
        if restored.is_none() && store.log_start().0 > 0 {
            return Err(fault(format!(
                "raft log {} starts after index {} but no usable snapshot in {} covers it \
                 ({}); refusing to start with a partial state",
                store.path().display(),
                store.log_start().0,
                store.snapshots().dir().display(),
                if unusable.is_empty() {
                    "no snapshot files".to_string()
                } else {
                    format!("unusable: {}", unusable.join(", "))
                }
            )));
        }
        let restored_index = restored.as_ref().map_or(0, |(m, _)| m.index);
        let last_snapshot = restored
            .as_ref()
            .map_or((0, 0), |(m, size)| (m.index, *size));

        let single_voter = store.conf_state().voters == [opts.id];
        let known_committed = store.hard_state().commit.min(store.last_index_cached());

        let cfg = raft::Config {
            id: opts.id,
            election_tick: opts.election_ticks,
            heartbeat_tick: opts.heartbeat_ticks,
            applied: restored_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        cfg.validate()
            .map_err(|e| fault(format!("raft config: {e}")))?;
        let raw = RawNode::new(&cfg, store, &raft_logger(opts.id))
            .map_err(|e| fault(format!("raft: {e}")))?;
        let snapshot_files = files.len() as u64;
        let mut node = Node {
            raw,
            sm,
            transport,
            status,
            pending: HashMap::new(),
            held: VecDeque::new(),
            reads: HashMap::new(),
            next_read: 1,
            touches,
            heard: HashMap::new(),
            last_term: 0,
            last_leader: 0,
            committed_in_term: false,
            snapshots_installed: 0,
            next_seq: 1,
            incarnation: rand::thread_rng().gen(),
            applied: restored_index,
            since_snapshot: 0,
            snapshot_threshold: next_threshold(opts.snap_count),
            last_snapshot,
            restored_snapshot_index: restored_index,
            snapshot_files,
            sync_readies: 0,
            was_leader: false,
            ticks: 0,
            waiting: empty && opts.follow_config,
            fresh_peers: HashMap::new(),
            member_peers: HashSet::new(),
            probing_peers: HashMap::new(),
            last_conf_index: 0,
            dropped_appends: 0,
            refused_msgs: 0,
            campaign_at: None,
            membership_note: String::new(),
            force_snapshot: false,
            forced_snapshot_at: 0,
            target: None,
            removed: false,
            last_reconfig_index: 0,
            opts,
        };
        node.refresh_membership();
        // What must be applied before serving: as the only voter, the whole log including
        // this term's first (empty) entry, which commits everything before it; otherwise
        // what is known committed.
        let target = if single_voter {
            node.raw
                .campaign()
                .map_err(|e| fault(format!("raft campaign: {e}")))?;
            node.raw.raft.raft_log.last_index()
        } else {
            known_committed
        };
        while node.applied < target {
            if !node.raw.has_ready() {
                if single_voter {
                    return Err(fault(format!(
                        "raft recovery stalled at index {} of {target}",
                        node.applied
                    )));
                }
                break;
            }
            node.on_ready()?;
        }
        tracing::info!(
            "raft node {} recovered: applied through index {} (snapshot {}, log {}..={}), \
             term {}, leader {}",
            node.opts.id,
            node.applied,
            restored_index,
            node.raw.store().log_start().0 + 1,
            node.raw.store().last_index_cached(),
            node.raw.raft.term,
            node.raw.raft.leader_id
        );
        node.publish();
        Ok(node)
    }

    async fn run(
        mut self,
        mut proposals: mpsc::UnboundedReceiver<Proposal>,
        mut inbound: mpsc::Receiver<Inbound>,
        shutdown: Arc<Notify>,
    ) -> Result<(), Error> {
        let mut ticker = tokio::time::interval(self.opts.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut purge = (self.opts.purge_interval_hours > 0).then(|| {
            let every = Duration::from_secs(self.opts.purge_interval_hours * 3600);
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut batch = Vec::with_capacity(self.opts.max_batch);
        let mut snap_job: Option<SnapJob> = None;
        // Leadership being handed over before stopping: until then.
        let mut handover: Option<Instant> = None;
        let result = loop {
            if let Some(deadline) = handover {
                // Done once another server leads (this node heard from it, so it has this
                // node's vote): stopping any earlier could lose the vote it needs.
                let to = self.raw.raft.leader_id;
                if to != self.opts.id && to != 0 {
                    tracing::info!("handed leadership to {to}; stopping");
                    break Ok(());
                }
                if Instant::now() > deadline {
                    tracing::warn!("leadership handover did not complete in time; stopping");
                    break Ok(());
                }
            }
            let event = tokio::select! {
                biased;
                _ = shutdown.notified() => Event::Shutdown,
                _ = wait_until(self.campaign_at) => Event::Campaign,
                (index, r) = wait_job(&mut snap_job) => Event::SnapshotWritten(index, r),
                n = proposals.recv_many(&mut batch, self.opts.max_batch), if handover.is_none() => {
                    if n == 0 { Event::ProposersGone } else { Event::Proposals }
                }
                Some(m) = inbound.recv() => Event::Inbound(m),
                _ = ticker.tick() => Event::Tick,
                _ = wait_tick(&mut purge) => Event::Purge,
            };
            let step = match event {
                Event::Shutdown | Event::ProposersGone if handover.is_none() => {
                    match self.hand_over() {
                        Some(deadline) => {
                            handover = Some(deadline);
                            Ok(())
                        }
                        None => break Ok(()),
                    }
                }
                Event::Shutdown | Event::ProposersGone => break Ok(()),
                Event::Campaign => {
                    self.campaign_at = None;
                    if self.raw.raft.leader_id == 0 && self.raw.raft.state != StateRole::Leader {
                        tracing::info!("no leader since its connection closed: campaigning");
                        if let Err(e) = self.raw.campaign() {
                            tracing::warn!("campaign failed: {e}");
                        }
                    }
                    Ok(())
                }
                Event::Proposals => {
                    self.propose(&mut batch);
                    Ok(())
                }
                Event::Inbound(m) => {
                    self.inbound(m);
                    for _ in 0..1024 {
                        match inbound.try_recv() {
                            Ok(m) => self.inbound(m),
                            Err(_) => break,
                        }
                    }
                    Ok(())
                }
                Event::Tick => {
                    self.raw.tick();
                    self.on_tick()
                }
                Event::Purge => self.compact_and_purge(true),
                Event::SnapshotWritten(index, r) => {
                    snap_job = None;
                    self.snapshot_written(index, r)
                }
            };
            if let Err(e) = step.and_then(|_| self.on_ready()) {
                break Err(e);
            }
            if snap_job.is_none() {
                snap_job = self.maybe_snapshot()?;
            }
            self.publish();
        };
        // Let a snapshot being written finish, so nothing of ours touches the dirs after
        // `stopped`.
        if let Some(job) = snap_job.take() {
            if let Ok((index, r)) = job.await {
                self.snapshot_written(index, r)?;
            }
        }
        self.publish();
        self.status.send_modify(|s| s.running = false);
        result
    }

    fn step(&mut self, m: Message) {
        if let Err(e) = self.raw.step(m) {
            tracing::debug!("raft: dropped a peer message: {e}");
        }
    }

    fn inbound(&mut self, m: Inbound) {
        match m {
            Inbound::Peer(from, PeerMsg::Raft(msg)) => {
                self.heard.insert(from, Instant::now());
                if self.waiting
                    && msg.get_msg_type() == MessageType::MsgAppend
                    && msg.index == 0
                    && self.raw.store().is_empty()
                {
                    // Entries from index 1 would be applied on an empty membership (the
                    // group's initial configuration is not in the log): a joining server
                    // takes its state and membership from a snapshot only.
                    if self.dropped_appends == 0 {
                        tracing::info!(
                            "membership: leader {from} sends entries from the start of its \
                             log; waiting for its snapshot instead"
                        );
                    }
                    self.dropped_appends += 1;
                    return;
                }
                let view = super::validate::LocalView {
                    term: self.raw.raft.term,
                    leader: self.raw.raft.leader_id,
                    is_leader: self.raw.raft.state == StateRole::Leader,
                    last_index: self.raw.raft.raft_log.last_index(),
                };
                if let Err(why) = super::validate::check(&msg, &view) {
                    self.refused_msgs += 1;
                    // Logged at 1, 2, 4, 8, ...: a flood does not flood the log.
                    if self.refused_msgs.is_power_of_two() {
                        tracing::warn!(
                            "raft: dropped a message from peer {from}: {why} ({} dropped so \
                             far)",
                            self.refused_msgs
                        );
                    }
                    return;
                }
                self.step(msg);
            }
            Inbound::Peer(from, PeerMsg::Probe(p)) => self.on_probe(from, p),
            Inbound::Peer(from, PeerMsg::Closed) => self.leader_gone(from),
            Inbound::Peer(from, PeerMsg::Forward(f)) => self.propose_forwarded(from, f),
            Inbound::Peer(from, PeerMsg::Touch(sessions)) => {
                let _ = self.touches.try_send(Touches { from, sessions });
            }
            Inbound::ReadBarrier(done) => {
                let seq = self.next_read;
                self.next_read += 1;
                let now = Instant::now();
                self.reads.insert(
                    seq,
                    ReadWait {
                        done,
                        since: now,
                        tried: now,
                        index: None,
                    },
                );
                self.raw.read_index(self.context(self.opts.id, seq));
            }
            Inbound::TouchLeader(sessions) => {
                let leader = self.raw.raft.leader_id;
                if leader == self.opts.id {
                    let _ = self.touches.try_send(Touches {
                        from: leader,
                        sessions,
                    });
                } else if leader != 0 {
                    self.transport.touch(leader, sessions);
                }
            }
        }
    }

    /// An entry context: who waits (node, process run) and for which number.
    fn context(&self, origin: u64, seq: u64) -> Vec<u8> {
        let mut ctx = Vec::with_capacity(CONTEXT_LEN);
        ctx.extend_from_slice(&origin.to_be_bytes());
        ctx.extend_from_slice(&self.incarnation.to_be_bytes());
        ctx.extend_from_slice(&seq.to_be_bytes());
        ctx
    }

    /// New proposals queue behind any held ones (per-session order), then go out.
    fn propose(&mut self, batch: &mut Vec<Proposal>) {
        let now = Instant::now();
        self.held.extend(batch.drain(..).map(|p| (now, p)));
        self.flush_held();
    }

    /// Proposes held proposals here (leader) or forwards them to the leader, in order, as
    /// far as possible.
    fn flush_held(&mut self) {
        loop {
            let leader = self.raw.raft.leader_id;
            if leader == 0 {
                return;
            }
            let Some((_, front)) = self.held.front() else {
                return;
            };
            if leader == self.opts.id {
                if self.raw.raft.state != StateRole::Leader {
                    return;
                }
                if let Some((_, p)) = self.held.pop_front() {
                    self.propose_local(p);
                }
                continue;
            }
            let waits = front.done.is_some();
            let fwd = Forward {
                origin: self.opts.id,
                incarnation: self.incarnation,
                seq: if waits { self.next_seq } else { 0 },
                txn: front.txn.to_bytes(),
            };
            if !self.transport.forward(leader, &fwd) {
                // No route or the leader's queue is full: keep it (and everything behind it)
                // until the next round or the hold timeout.
                return;
            }
            if let Some((_, p)) = self.held.pop_front() {
                if let Some(done) = p.done {
                    self.next_seq += 1;
                    self.pending.insert(
                        fwd.seq,
                        Pending {
                            done,
                            forwarded: true,
                            since: Instant::now(),
                        },
                    );
                }
            }
        }
    }

    fn propose_local(&mut self, p: Proposal) {
        let mut txn = p.txn;
        let reconfig = self.stamp(&mut txn);
        let data = txn.to_bytes();
        let (context, seq) = match p.done {
            Some(done) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.pending.insert(
                    seq,
                    Pending {
                        done,
                        forwarded: false,
                        since: Instant::now(),
                    },
                );
                (self.context(self.opts.id, seq), Some(seq))
            }
            None => (vec![], None),
        };
        if let Err(e) = self.raw.propose(context, data) {
            tracing::warn!("raft refused a proposal: {e}");
            if let Some(seq) = seq {
                self.pending.remove(&seq);
            }
        } else if reconfig {
            self.last_reconfig_index = self.raw.raft.raft_log.last_index();
        }
    }

    /// A proposal a follower forwarded: proposed with the origin's context, so the origin
    /// answers it when it applies the entry. Only a txn that decodes is proposed: an entry
    /// that does not decode would stop every replica at apply.
    fn propose_forwarded(&mut self, from: u64, f: Forward) {
        if self.raw.raft.state != StateRole::Leader {
            tracing::debug!("not the leader: dropping a proposal forwarded by {from}");
            return;
        }
        let mut f = f;
        let mut reconfig = false;
        match Txn::decode(&f.txn) {
            Err(e) => {
                tracing::warn!("peer {from} forwarded an invalid txn ({e}); dropped");
                return;
            }
            Ok(mut txn) => {
                if self.stamp(&mut txn) {
                    f.txn = txn.to_bytes();
                    reconfig = true;
                }
            }
        }
        let context = if f.seq == 0 {
            vec![]
        } else {
            let mut ctx = Vec::with_capacity(CONTEXT_LEN);
            ctx.extend_from_slice(&f.origin.to_be_bytes());
            ctx.extend_from_slice(&f.incarnation.to_be_bytes());
            ctx.extend_from_slice(&f.seq.to_be_bytes());
            ctx
        };
        if let Err(e) = self.raw.propose(context, f.txn) {
            tracing::warn!("raft refused a proposal forwarded by {from}: {e}");
        } else if reconfig {
            self.last_reconfig_index = self.raw.raft.raft_log.last_index();
        }
    }

    /// A fresh ensemble would otherwise wait a whole election timeout (syncLimit x tickTime,
    /// 10 s with ZooKeeper's defaults) before anyone campaigns, where ZooKeeper elects in a
    /// moment. While no leader is known in the first ticks, voters campaign staggered by
    /// their rank in the voter list (rank r at tick 2 + 2r). Pre-vote keeps this harmless
    /// when a leader exists that this node has not heard from yet.
    fn startup_campaign(&mut self) {
        if self.raw.raft.leader_id != 0 || self.raw.raft.state == raft::StateRole::Leader {
            return;
        }
        let voters = sorted(self.raw.raft.prs().conf().to_conf_state().voters);
        let Some(rank) = voters.iter().position(|&v| v == self.opts.id) else {
            return;
        };
        if self.ticks == 2 + 2 * rank as u64 {
            tracing::info!("no leader yet: campaigning at start-up (rank {rank})");
            if let Err(e) = self.raw.campaign() {
                tracing::warn!("start-up campaign failed: {e}");
            }
        }
    }

    /// Per tick: transport reports to raft-rs; give up on proposals held too long, on
    /// forwarded proposals never answered, on read barriers; retry read barriers.
    fn on_tick(&mut self) -> Result<(), Error> {
        self.ticks += 1;
        if self.waiting {
            self.waiting_tick()?;
        } else {
            self.startup_campaign();
            self.reconcile();
        }
        for r in self.transport.take_reports() {
            match r {
                PeerReport::Unreachable(id) => self.raw.report_unreachable(id),
                PeerReport::SnapshotFailed(id) => {
                    self.raw.report_snapshot(id, SnapshotStatus::Failure)
                }
            }
        }
        let now = Instant::now();
        let hold = self.opts.hold_timeout();
        let mut dropped = 0;
        while self
            .held
            .front()
            .is_some_and(|(since, _)| now.duration_since(*since) > hold)
        {
            self.held.pop_front();
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                "no leader for {hold:?}: dropped {dropped} proposal(s) (leader {})",
                self.raw.raft.leader_id
            );
        }
        let forward_timeout = self.opts.forward_timeout();
        let before = self.pending.len();
        self.pending
            .retain(|_, p| !(p.forwarded && now.duration_since(p.since) > forward_timeout));
        if self.pending.len() < before {
            tracing::warn!(
                "{} forwarded proposal(s) unanswered after {forward_timeout:?}: dropped",
                before - self.pending.len()
            );
        }
        let before = self.reads.len();
        self.reads
            .retain(|_, r| now.duration_since(r.since) <= hold);
        if self.reads.len() < before {
            tracing::warn!(
                "{} read barrier(s) unanswered after {hold:?}: dropped",
                before - self.reads.len()
            );
        }
        let retry = self.opts.election_timeout() / 2;
        let due: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_none() && now.duration_since(r.tried) > retry)
            .map(|(seq, _)| *seq)
            .collect();
        self.reissue_reads(due, now);
        Ok(())
    }

    fn reissue_reads(&mut self, seqs: Vec<u64>, now: Instant) {
        for seq in seqs {
            if let Some(r) = self.reads.get_mut(&seq) {
                r.tried = now;
            }
            self.raw.read_index(self.context(self.opts.id, seq));
        }
    }

    /// Answers the read barriers whose index is applied.
    fn resolve_reads(&mut self) {
        let applied = self.applied;
        let done: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.index.is_some_and(|i| i <= applied))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in done {
            if let Some(r) = self.reads.remove(&seq) {
                let _ = r.done.send(());
            }
        }
    }

    /// The sequence number in an entry's context, if this run of this node proposed it.
    fn own_seq(&self, context: &[u8]) -> Option<u64> {
        if context.len() != CONTEXT_LEN {
            return None;
        }
        let word = |i: usize| {
            context
                .get(i * 8..i * 8 + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
        };
        (word(0)? == self.opts.id && word(1)? == self.incarnation).then_some(word(2)?)
    }

    /// Handles every pending Ready, in raft-rs's documented order, and what follows from
    /// the new state (held proposals, read barriers), until nothing is pending.
    fn on_ready(&mut self) -> Result<(), Error> {
        loop {
            self.handle_readies()?;
            self.after_ready();
            if !self.raw.has_ready() {
                return Ok(());
            }
        }
    }

    fn handle_readies(&mut self) -> Result<(), Error> {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            // 1. Messages that may go out before persisting (a leader's appends).
            if !rd.messages().is_empty() {
                self.transport.send(rd.take_messages());
            }
            // ReadIndex answers: the commit index each barrier must wait for.
            for rs in rd.take_read_states() {
                if let Some(seq) = self.own_seq(&rs.request_ctx) {
                    if let Some(r) = self.reads.get_mut(&seq) {
                        r.index = Some(rs.index);
                    }
                }
            }
            // 2. A snapshot from the leader.
            if !rd.snapshot().is_empty() {
                self.install_snapshot(rd.snapshot().clone())?;
            }
            // 3. Committed entries (all persisted already, raft-rs guarantees).
            self.apply(rd.take_committed_entries())?;
            // 4 + 5. Entries and hard state: one transaction, one flush, one fdatasync.
            if rd.must_sync() {
                self.sync_readies += 1;
            }
            let must_sync = rd.must_sync();
            self.raw
                .mut_store()
                .persist(rd.entries(), rd.hs(), must_sync)?;
            // 6. Messages that acknowledge what was just persisted (votes, append acks).
            if !rd.persisted_messages().is_empty() {
                self.transport.send(rd.take_persisted_messages());
            }
            // 7. Advance; the LightReady carries what persisting unlocked.
            let mut light = self.raw.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit)?;
            }
            if !light.messages().is_empty() {
                self.transport.send(light.take_messages());
            }
            self.apply(light.take_committed_entries())?;
            self.raw.advance_apply();
        }
        Ok(())
    }

    fn after_ready(&mut self) {
        let leader = self.raw.raft.state == StateRole::Leader;
        let term = self.raw.raft.term;
        if ((self.was_leader && !leader) || term != self.last_term) && !self.pending.is_empty() {
            // Their entries may still commit under the new leader, but this node can no
            // longer tell (a forwarded one may have died with the old leader): the server
            // answers ConnectionLoss, as ZooKeeper does.
            tracing::warn!(
                "term {} -> {term} (leader {}): {} proposal(s) get no answer",
                self.last_term,
                self.raw.raft.leader_id,
                self.pending.len()
            );
            self.pending.clear();
        }
        // raft-rs drops ReadIndex requests while no leader is known and on a leader that
        // has not committed in its term: ask again as soon as that changes.
        let leader_id = self.raw.raft.leader_id;
        let committed_in_term = leader && self.raw.raft.commit_to_current_term();
        if leader_id != self.last_leader || (committed_in_term && !self.committed_in_term) {
            let due: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, r)| r.index.is_none())
                .map(|(seq, _)| *seq)
                .collect();
            if leader_id != 0 {
                self.reissue_reads(due, Instant::now());
            }
        }
        self.was_leader = leader;
        self.last_term = term;
        self.last_leader = leader_id;
        self.committed_in_term = committed_in_term;
        self.flush_held();
        self.resolve_reads();
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), Error> {
        for e in entries {
            if e.index <= self.applied {
                continue;
            }
            match e.get_entry_type() {
                // A new leader's empty entry: nothing to apply.
                EntryType::EntryNormal if e.data.is_empty() => {}
                EntryType::EntryNormal => {
                    // Every replica decodes the same bytes: a failure here is not this node's
                    // to skip (replicas would diverge), so the node stops.
                    let txn = Txn::decode(&e.data).map_err(|err| {
                        fault(format!(
                            "log entry {} (term {}) is not a txn: {err}",
                            e.index, e.term
                        ))
                    })?;
                    let applied = self.sm.apply(zxid(e.term, e.index), &txn);
                    if let Some(seq) = self.own_seq(&e.context) {
                        if let Some(p) = self.pending.remove(&seq) {
                            let _ = p.done.send(applied);
                        }
                    }
                    if matches!(txn, Txn::SetConfig { .. } | Txn::Reconfig { .. }) {
                        self.refresh_membership();
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    let id = cc.node_id;
                    let what = match cc.get_change_type() {
                        ConfChangeType::AddNode => format!("promoted {id} to voter"),
                        ConfChangeType::AddLearnerNode if cs.learners.contains(&id) => {
                            format!("added {id} as learner")
                        }
                        ConfChangeType::AddLearnerNode => format!("learner change for {id}"),
                        ConfChangeType::RemoveNode => format!("removed {id}"),
                    };
                    self.conf_applied(e.index, &what, cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    self.conf_applied(e.index, "joint change", cs)?;
                }
            }
            self.applied = e.index;
            self.since_snapshot += 1;
        }
        Ok(())
    }

    /// Logs an applied conf change and stores the membership it produced.
    fn conf_applied(&mut self, index: u64, what: &str, cs: ConfState) -> Result<(), Error> {
        tracing::info!(
            "membership: {what} (conf change at index {index}); voters {:?}, learners {:?}",
            sorted(cs.voters.clone()),
            sorted(cs.learners.clone())
        );
        self.last_conf_index = index;
        self.raw.mut_store().set_conf_state(cs)
    }

    /// A snapshot received from the leader: made durable as a file, the log reset to it,
    /// the state machine replaced.
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), Error> {
        let meta = snap.get_metadata().clone();
        let file = self.raw.store().snapshots().write(&meta, &snap.data)?;
        self.sm.restore(&snap.data)?;
        self.refresh_membership();
        self.raw.mut_store().install_snapshot(&meta)?;
        self.applied = meta.index;
        self.since_snapshot = 0;
        self.last_snapshot = (meta.index, file.size);
        self.snapshots_installed += 1;
        // A server that imported ZooKeeper's data but is not the one starting the group
        // drops its import now that it has the group's state.
        self.opts.seed = None;
        if self.waiting {
            self.waiting = false;
            self.ticks = 0;
            let cs = meta.get_conf_state();
            tracing::info!(
                "membership: joined the ensemble from the leader's snapshot: voters {:?}, \
                 learners {:?}",
                sorted(cs.voters.clone()),
                sorted(cs.learners.clone())
            );
        }
        tracing::info!(
            "installed the leader's snapshot at index {} (term {}, {} bytes)",
            meta.index,
            meta.term,
            file.size
        );
        Ok(())
    }

    /// Takes a snapshot when enough entries were applied; the file is written on its own
    /// thread, and the log compacted when that is done (`snapshot_written`).
    fn maybe_snapshot(&mut self) -> Result<Option<SnapJob>, Error> {
        let forced = std::mem::take(&mut self.force_snapshot);
        if (!forced && self.since_snapshot <= self.snapshot_threshold)
            || self.applied == 0
            || (self.applied <= self.last_snapshot.0 && !forced)
        {
            return Ok(None);
        }
        let index = self.applied;
        let term = self
            .raw
            .store()
            .term(index)
            .map_err(|e| fault(format!("snapshot at {index}: {e}")))?;
        let meta = SnapshotMetadata {
            index,
            term,
            conf_state: Some(self.raw.store().conf_state().clone()).into(),
            ..Default::default()
        };
        let data = self.sm.snapshot();
        let store = self.raw.store().snapshots().clone();
        let (tx, rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                let _ = tx.send((index, store.write(&meta, &data)));
            })
            .map_err(|e| fault(format!("spawning the snapshot writer: {e}")))?;
        self.since_snapshot = 0;
        self.snapshot_threshold = next_threshold(self.opts.snap_count);
        Ok(Some(rx))
    }

    fn snapshot_written(
        &mut self,
        index: u64,
        r: Result<SnapshotFile, Error>,
    ) -> Result<(), Error> {
        match r {
            Ok(f) => {
                self.last_snapshot.0 = index;
                tracing::info!("wrote snapshot {} ({} bytes)", f.path.display(), f.size);
                self.last_snapshot.1 = f.size;
                self.compact_and_purge(self.opts.purge_interval_hours > 0)
            }
            Err(e) => {
                // The log is untouched, so nothing is lost; the next snapshot retries.
                tracing::error!("snapshot failed: {e}");
                Ok(())
            }
        }
    }

    /// Compacts the log up to the oldest of the newest `retain` snapshots (so recovery can
    /// fall back to any of them) and, when `purge`, deletes older snapshot files.
    fn compact_and_purge(&mut self, purge: bool) -> Result<(), Error> {
        let snaps = self.raw.store().snapshots().clone();
        let files = snaps.list()?;
        let retain = self.opts.retain();
        let kept = &files[..files.len().min(retain)];
        if let Some(oldest) = kept.last() {
            match snaps.read_header(oldest) {
                Ok(meta) => {
                    let to = meta.index.min(self.applied);
                    if to > self.raw.store().log_start().0 {
                        self.raw.mut_store().compact(to)?;
                        tracing::info!("compacted the raft log through index {to}");
                    }
                }
                Err(why) => tracing::warn!(
                    "snapshot {} is unreadable ({why}); not compacting past it",
                    oldest.path.display()
                ),
            }
        }
        let mut remaining = files.len();
        if purge {
            for f in files.iter().skip(retain) {
                snaps.remove(f)?;
                remaining -= 1;
                tracing::info!("purged snapshot {}", f.path.display());
            }
            if files.len() > retain {
                super::storage::sync_dir(snaps.dir())?;
            }
        }
        self.snapshot_files = remaining as u64;
        Ok(())
    }

    /// Peer `from`'s connection to this node closed. If it was the leader this node follows,
    /// the leader is most likely gone (a crash, kill -9, a stop): instead of waiting an
    /// election timeout (syncLimit x tickTime, 10 s with ZooKeeper's defaults) the node forgets
    /// it (no more lease) and campaigns within moments, staggered by its rank among the other
    /// voters so that one candidate usually wins the first round. Safe when the leader is in
    /// fact alive: the campaign starts with pre-vote, which the voters still hearing from the
    /// leader refuse (check-quorum lease), and the leader's next heartbeat brings this node
    /// back. A hung leader whose connections stay open is still found by the election timeout.
    fn leader_gone(&mut self, from: u64) {
        if self.waiting
            || from != self.raw.raft.leader_id
            || self.raw.raft.state == StateRole::Leader
        {
            return;
        }
        let voters = sorted(self.raw.raft.prs().conf().to_conf_state().voters);
        let others: Vec<u64> = voters.into_iter().filter(|&v| v != from).collect();
        let Some(rank) = others.iter().position(|&v| v == self.opts.id) else {
            return; // a learner does not campaign
        };
        let term = self.raw.raft.term;
        self.raw.raft.become_follower(term, raft::INVALID_ID);
        let delay = LEADER_GONE_STAGGER * rank as u32;
        tracing::info!(
            "leader {from}'s connection closed: campaigning (pre-vote) in {delay:?} unless a \
             leader appears"
        );
        self.campaign_at = Some(Instant::now() + delay);
    }

    /// A leader asked to stop hands leadership to the voter that has the most of the log,
    /// so the ensemble has a leader again without waiting for an election timeout. Returns
    /// until when to wait for it (None: nothing to hand over).
    fn hand_over(&mut self) -> Option<Instant> {
        if self.raw.raft.state != StateRole::Leader {
            return None;
        }
        let me = self.opts.id;
        let voters = self.raw.raft.prs().conf().to_conf_state().voters;
        let best = voters
            .iter()
            .filter(|&&v| v != me)
            .filter_map(|&v| self.raw.raft.prs().get(v).map(|p| (p.matched, v)))
            .filter(|(_, v)| {
                self.heard
                    .get(v)
                    .is_some_and(|t| t.elapsed() < self.opts.election_timeout())
            })
            .max()?;
        tracing::info!(
            "stopping as leader: handing leadership to {} (it has the log up to {})",
            best.1,
            best.0
        );
        self.raw.transfer_leader(best.1);
        Some(Instant::now() + self.opts.election_timeout().min(Duration::from_secs(3)))
    }

    /// A membership probe from `from` (see `RaftOptions::follow_config`).
    fn on_probe(&mut self, from: u64, p: Probe) {
        match p {
            Probe::Fresh {
                voters,
                learners,
                imported,
            } => {
                self.probing_peers.insert(from, Instant::now());
                self.fresh_peers
                    .insert(from, (sorted(voters), sorted(learners), imported));
                self.member_peers.remove(&from);
                if !self.waiting {
                    // What the prober needs to decide: a group with an empty log can still be
                    // joined by bootstrapping with the same members; one with a log cannot.
                    let answer = if store_is_empty_log(self.raw.store())
                        && self.raw.raft.raft_log.last_index() == 0
                    {
                        let cs = self.raw.raft.prs().conf().to_conf_state();
                        Probe::Fresh {
                            voters: sorted(cs.voters),
                            learners: sorted(cs.learners),
                            imported: 0,
                        }
                    } else {
                        Probe::Member
                    };
                    self.transport.probe(from, &answer);
                }
            }
            Probe::Member => {
                self.fresh_peers.remove(&from);
                if self.member_peers.insert(from) && self.waiting {
                    tracing::info!(
                        "membership: server {from} belongs to an ensemble that has a log: \
                         waiting to be added by its leader"
                    );
                }
            }
        }
    }

    /// While waiting: probe zoo.cfg's servers; bootstrap when every voter has an empty log
    /// and the same server list. If any of them imported ZooKeeper's data, only the one with
    /// the newest starts the group, from its import (see `Seed`).
    fn waiting_tick(&mut self) -> Result<(), Error> {
        let want = (
            sorted(self.opts.voters.clone()),
            sorted(self.opts.learners.clone()),
        );
        let mine = self.opts.seed.as_ref().map_or(0, |s| s.zxid);
        if self.ticks % 2 == 1 {
            let probe = Probe::Fresh {
                voters: want.0.clone(),
                learners: want.1.clone(),
                imported: mine,
            };
            for id in self.transport.peer_ids() {
                self.transport.probe(id, &probe);
            }
        }
        let me = self.opts.id;
        let all_fresh = want.0.iter().filter(|&&v| v != me).all(|v| {
            self.fresh_peers
                .get(v)
                .is_some_and(|(vs, ls, _)| (vs, ls) == (&want.0, &want.1))
        });
        if !all_fresh {
            return Ok(());
        }
        // ZooKeeper's election rule: the highest zxid, then the highest id.
        let newest = want
            .0
            .iter()
            .map(|&v| match v == me {
                true => (mine, v),
                false => (self.fresh_peers.get(&v).map_or(0, |p| p.2), v),
            })
            .max();
        if let Some((zxid, seed_id)) = newest.filter(|(z, _)| *z != 0) {
            if seed_id != me {
                let note = format!("seed {seed_id}");
                if self.membership_note != note {
                    tracing::info!(
                        "membership: server {seed_id} has the newest ZooKeeper data (zxid \
                         {zxid:#x}; this server's: {mine:#x}): it starts the ensemble from \
                         it and this server waits to be added (its own import is dropped)"
                    );
                    self.membership_note = note;
                }
                return Ok(());
            }
            return self.start_from_seed();
        }
        tracing::info!(
            "membership: every voter in zoo.cfg ({:?}) has an empty log and the same server \
             list: bootstrapping a new ensemble (voters {:?}, learners {:?})",
            want.0,
            want.0,
            want.1
        );
        for (ids, ty) in [
            (&want.0, ConfChangeType::AddNode),
            (&want.1, ConfChangeType::AddLearnerNode),
        ] {
            for &id in ids {
                let mut cc = ConfChange::default();
                cc.set_change_type(ty);
                cc.node_id = id;
                self.raw
                    .apply_conf_change(&cc)
                    .map_err(|e| fault(format!("bootstrapping membership: {e}")))?;
            }
        }
        let cs = self.raw.raft.prs().conf().to_conf_state();
        self.raw.mut_store().set_conf_state(cs)?;
        self.waiting = false;
        self.ticks = 0;
        Ok(())
    }

    /// Starts a one-voter group from this server's seed (it has the newest imported state of
    /// all voters); `reconcile` then adds the others, who take its snapshot.
    fn start_from_seed(&mut self) -> Result<(), Error> {
        let Some(seed) = self.opts.seed.take() else {
            return Ok(());
        };
        let zxid = seed.zxid;
        let snap = seed.into_snapshot(ConfState {
            voters: vec![self.opts.id],
            ..Default::default()
        });
        let term = snap.get_metadata().term;
        tracing::info!(
            "membership: this server has the newest ZooKeeper data of all voters in zoo.cfg \
             (zxid {zxid:#x}): starting the ensemble from it (term {term}); the others join \
             from its snapshot"
        );
        // Terms never go down in the log: the group starts in the seed's term.
        self.raw.raft.become_follower(term, raft::INVALID_ID);
        if !self.raw.raft.restore(snap) {
            return Err(fault(
                "raft refused the imported state as its first snapshot",
            ));
        }
        // install_snapshot (next Ready) must not report this as joining a leader.
        self.waiting = false;
        // The only voter campaigns on the next tick (`startup_campaign` at tick 2), once the
        // snapshot is persisted: raft-rs leads only over a persisted log.
        self.ticks = 1;
        Ok(())
    }

    /// Takes the replicated membership from the state machine if it changed: the target of
    /// `reconcile`, and peers the transport must be able to reach.
    fn refresh_membership(&mut self) {
        let Some(m) = self.sm.take_membership() else {
            return;
        };
        if m.voters.is_empty() || self.target.as_ref() == Some(&m) {
            return;
        }
        tracing::info!(
            "membership: the ensemble's configuration lists voters {:?}, observers {:?}",
            m.voters,
            m.learners
        );
        self.transport.set_peers(&m.peers);
        self.target = Some(m);
    }

    /// The members `reconcile` moves the group towards: the replicated configuration once
    /// there is one, zoo.cfg's before.
    fn wanted(&self) -> (Vec<u64>, Vec<u64>) {
        match &self.target {
            Some(m) => (sorted(m.voters.clone()), sorted(m.learners.clone())),
            None => (
                sorted(self.opts.voters.clone()),
                sorted(self.opts.learners.clone()),
            ),
        }
    }

    /// A peer that is connected (heard from within an election timeout) and replicating
    /// (mntr's "synced").
    fn synced(&self, id: u64, now: Instant) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.raw
            .raft
            .prs()
            .get(id)
            .is_some_and(|p| replicating(p, last))
            && self
                .heard
                .get(&id)
                .is_some_and(|t| now.duration_since(*t) <= self.opts.election_timeout())
    }

    /// Synced, and matched within `CATCH_UP_SLACK` of the leader's last index.
    fn caught_up(&self, id: u64, now: Instant) -> bool {
        let last = self.raw.raft.raft_log.last_index();
        self.synced(id, now)
            && self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|p| p.matched + CATCH_UP_SLACK >= last)
    }

    /// What a reconfig entry carries from its leader (see `tree::LeaderView`): the servers
    /// synced now (this one included) and whether a membership change is still in flight.
    fn leader_view(&self) -> LeaderView {
        let me = self.opts.id;
        let now = Instant::now();
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let mut synced = vec![me];
        synced.extend(
            cs.voters
                .iter()
                .chain(&cs.learners)
                .copied()
                .filter(|&id| id != me && self.caught_up(id, now)),
        );
        LeaderView {
            // As ZooKeeper: another reconfig is in the log and not applied yet (a new leader
            // cannot tell before it has committed in its term). Raft conf changes still in
            // flight do not count: the group moves towards whichever configuration is newest.
            in_progress: self.last_reconfig_index > self.applied
                || !self.raw.raft.commit_to_current_term(),
            synced: sorted(synced),
        }
    }

    /// A reconfig gets the leader's view as it enters the log. True for a reconfig.
    fn stamp(&self, txn: &mut Txn) -> bool {
        if let Txn::Reconfig { view, .. } = txn {
            *view = Some(self.leader_view());
            return true;
        }
        false
    }

    /// Leader only: move the group's membership towards this node's zoo.cfg, one conf change
    /// at a time (see `RaftOptions::follow_config`); send joining servers a snapshot.
    fn reconcile(&mut self) {
        if !self.opts.follow_config || self.raw.raft.state != StateRole::Leader {
            return;
        }
        let me = self.opts.id;
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let now = Instant::now();
        let recent = self.opts.election_timeout() * 2;
        self.probing_peers
            .retain(|_, t| now.duration_since(*t) <= recent);
        // A member with nothing matched that probes as empty needs a snapshot that holds its
        // membership (a snapshot newer than the last conf change, and a compacted log so
        // raft-rs sends it rather than entries from index 1).
        let joining: Vec<u64> = cs
            .voters
            .iter()
            .chain(&cs.learners)
            .copied()
            .filter(|&id| {
                id != me
                    && self.probing_peers.contains_key(&id)
                    && self
                        .raw
                        .raft
                        .prs()
                        .get(id)
                        .is_some_and(|pr| pr.matched == 0)
            })
            .collect();
        let need_at = self.last_conf_index.max(1);
        if !joining.is_empty()
            && self.forced_snapshot_at < need_at
            && (self.raw.store().log_start().0 == 0 || self.last_snapshot.0 < need_at)
        {
            tracing::info!(
                "membership: server(s) {joining:?} joined with an empty log: taking a snapshot \
                 to send them"
            );
            self.force_snapshot = true;
            self.forced_snapshot_at = self.applied.max(need_at);
        }
        if !self.raw.raft.commit_to_current_term()
            || self.raw.raft.has_pending_conf()
            || !cs.voters_outgoing.is_empty()
        {
            return;
        }
        let (want_v, want_l) = self.wanted();
        let is_voter = |id: &u64| cs.voters.contains(id);
        let is_learner = |id: &u64| cs.learners.contains(id);
        let last = self.raw.raft.raft_log.last_index();
        let mut step: Option<(ConfChangeType, u64, String)> = None;
        let mut notes = vec![];
        // 1. Promote learners that the configuration lists as participants, once caught up.
        for &id in want_v.iter().filter(|id| is_learner(id)) {
            let matched = self.raw.raft.prs().get(id).map_or(0, |p| p.matched);
            if self.caught_up(id, now) {
                step = Some((
                    ConfChangeType::AddNode,
                    id,
                    format!(
                        "promoting server {id} to voter (caught up: matched {matched} of {last})"
                    ),
                ));
                break;
            }
            notes.push(format!(
                "server {id} is a learner catching up (matched {matched} of {last})"
            ));
        }
        // 2. Add servers zoo.cfg lists that are not members, as learners.
        if step.is_none() {
            if let Some(&id) = want_v
                .iter()
                .chain(&want_l)
                .find(|id| !is_voter(id) && !is_learner(id))
            {
                step = Some((
                    ConfChangeType::AddLearnerNode,
                    id,
                    format!("adding server {id} as learner"),
                ));
            }
        }
        // 3. Demote voters that zoo.cfg lists as observers.
        if step.is_none() {
            if let Some(&id) = want_l.iter().find(|id| is_voter(id) && **id != me) {
                step = Some((
                    ConfChangeType::AddLearnerNode,
                    id,
                    format!("demoting server {id} to learner (an observer in the configuration)"),
                ));
            }
        }
        // 4. Remove members zoo.cfg does not list.
        if step.is_none() {
            if let Some(&id) = cs
                .learners
                .iter()
                .chain(&cs.voters)
                .find(|id| **id != me && !want_v.contains(id) && !want_l.contains(id))
            {
                step = Some((
                    ConfChangeType::RemoveNode,
                    id,
                    format!("removing server {id} (not in the configuration)"),
                ));
            }
        }
        // 5. Leave: the configuration no longer lists this leader as a voter. Raft-rs would
        // keep it leading; hand over to the most caught-up voter, which then removes it.
        if step.is_none() && !want_v.contains(&me) && !want_v.is_empty() {
            let to = want_v
                .iter()
                .copied()
                .filter(|&id| is_voter(&id) && self.caught_up(id, now))
                .max_by_key(|&id| self.raw.raft.prs().get(id).map_or(0, |p| p.matched));
            match to {
                Some(to) if self.raw.raft.lead_transferee.is_none() => {
                    tracing::info!(
                        "membership: this server ({me}) leaves the voters; transferring \
                         leadership to server {to}"
                    );
                    self.raw.transfer_leader(to);
                    return;
                }
                Some(_) => return,
                None => notes.push(format!(
                    "this server ({me}) leaves the voters once another voter is caught up"
                )),
            }
        }
        let Some((ty, id, what)) = step else {
            let note = notes.join("; ");
            if note != self.membership_note {
                if !note.is_empty() {
                    tracing::info!("membership: {note}");
                }
                self.membership_note = note;
            }
            return;
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(ty);
        cc.node_id = id;
        tracing::info!(
            "membership: {what}; voters {:?}, learners {:?} -> proposing one conf change",
            sorted(cs.voters.clone()),
            sorted(cs.learners.clone())
        );
        self.membership_note = what;
        if let Err(e) = self.raw.propose_conf_change(vec![], cc) {
            tracing::warn!("membership: raft refused the conf change: {e}");
        }
    }

    fn publish(&mut self) {
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let (mut voters, mut learners) = (cs.voters, cs.learners);
        voters.sort_unstable();
        learners.sort_unstable();
        let id = self.opts.id;
        let is_leader = self.raw.raft.state == StateRole::Leader;
        let role = match self.raw.raft.state {
            StateRole::Leader => RaftRole::Leader,
            StateRole::Candidate | StateRole::PreCandidate => RaftRole::Candidate,
            StateRole::Follower if learners.contains(&id) => RaftRole::Learner,
            StateRole::Follower => RaftRole::Follower,
        };
        let (mut synced_followers, mut synced_learners) = (0, 0);
        if is_leader {
            let now = Instant::now();
            for (peer, _) in self.raw.raft.prs().iter() {
                if *peer == id || !self.synced(*peer, now) {
                    continue;
                }
                if learners.contains(peer) {
                    synced_learners += 1;
                } else {
                    synced_followers += 1;
                }
            }
        }
        // Removed by a membership change (not in the replicated configuration): clients
        // are told to go elsewhere, as ZooKeeper's removed servers stop serving.
        let removed = self
            .target
            .as_ref()
            .is_some_and(|m| !m.voters.contains(&id) && !m.learners.contains(&id));
        if removed != self.removed {
            if removed {
                tracing::info!(
                    "membership: this server ({id}) is not in the ensemble's configuration: \
                     not serving clients"
                );
            }
            self.removed = removed;
        }
        let outside = self.waiting || removed;
        let store = self.raw.store();
        let st = RaftStatus {
            id,
            role,
            is_leader,
            serving: self.raw.raft.leader_id != 0 && !outside,
            voters,
            learners,
            synced_followers,
            synced_learners,
            snapshots_installed: self.snapshots_installed,
            leader_id: if outside { 0 } else { self.raw.raft.leader_id },
            term: self.raw.raft.term,
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied,
            first_index: store.log_start().0 + 1,
            last_index: store.last_index_cached(),
            restored_snapshot_index: self.restored_snapshot_index,
            last_snapshot_index: self.last_snapshot.0,
            last_snapshot_size: self.last_snapshot.1,
            snapshot_files: self.snapshot_files,
            log_bytes: store.log_bytes(),
            fsyncs: store.syncs(),
            sync_readies: self.sync_readies,
            running: true,
        };
        self.status.send_if_modified(|s| {
            if *s == st {
                false
            } else {
                *s = st;
                true
            }
        });
    }
}

async fn wait_job(job: &mut Option<SnapJob>) -> (u64, Result<SnapshotFile, Error>) {
    match job {
        Some(rx) => rx
            .await
            .unwrap_or_else(|_| (0, Err(fault("the snapshot writer thread died")))),
        None => std::future::pending().await,
    }
}

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn wait_tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
