//! The node seen from outside: `spawn_raft` starts it (recovery on the node's own thread,
//! then the event loop), `RaftHandle` talks to it (status, peer frames, read barriers,
//! touches, shutdown) and `RaftStatus` is what it reports.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::Message;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::{Node, RaftOptions};
use crate::consensus::peer::{NoPeers, PeerMsg, PeerSender, Touches, Transport};
use crate::consensus::transport::PeerNetwork;
use crate::consensus::ConsensusError;
use crate::consensus::{NotAccepting, Proposal, Proposer, StateMachine};

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
    /// This node leads and has applied an entry of its own term, so everything committed
    /// before it: its state is the ensemble's. Leader-only duties that read the state
    /// (session expiry, publishing zoo.cfg's membership, reaping) wait for it.
    pub leader_ready: bool,
    /// A leader is known (this node or another) and hears this node: the ensemble can serve
    /// writes, and this node's clients (ZooKeeper's "serving requests").
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
    /// Snapshots skipped because they fell due while the previous one was being written.
    pub snapshots_skipped: u64,
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

/// What reaches the node task from this process besides proposals (peer frames come on
/// their own queue, `PeerSender`).
pub(super) enum Local {
    /// `RaftHandle::read_barrier`.
    ReadBarrier(oneshot::Sender<()>),
    /// `RaftHandle::touch_leader`.
    TouchLeader(Vec<i64>),
}

/// Peer frames, and local requests, queued for the node before new ones are refused.
const INBOUND_QUEUE: usize = 8192;
/// Touch batches queued for the server before new ones are dropped.
const TOUCH_QUEUE: usize = 1024;

/// A cheap handle on a running node: status, inbound peer messages, read barriers, session
/// touches, shutdown.
#[derive(Clone)]
pub struct RaftHandle {
    status: watch::Receiver<RaftStatus>,
    stopped: watch::Receiver<bool>,
    peers: PeerSender,
    local: mpsc::Sender<Local>,
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
    /// `RaftStatus::leader_ready`.
    pub fn is_leader_ready(&self) -> bool {
        self.status.borrow().leader_ready
    }
    pub fn leader_id(&self) -> u64 {
        self.status.borrow().leader_id
    }
    /// `RaftStatus::serving`.
    pub fn serving(&self) -> bool {
        self.status.borrow().serving
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
        match self.peers.try_send((msg.from, PeerMsg::Raft(msg))) {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(NotAccepting),
            _ => Ok(()),
        }
    }

    /// Where a transport delivers the frames it receives (`PeerInbound::attach`): sending
    /// waits for room in the node's queue, so backpressure reaches the peer's connection.
    pub fn peer_sender(&self) -> PeerSender {
        self.peers.clone()
    }

    /// Resolves once this node has applied everything the leader had committed when the
    /// call was made (Raft ReadIndex; for `sync`). Err when no answer came within
    /// `RaftOptions::hold_timeout` (no leader, no quorum) or the node stopped.
    pub fn read_barrier(&self) -> impl std::future::Future<Output = Result<(), NotAccepting>> {
        let local = self.local.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            local
                .send(Local::ReadBarrier(tx))
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
            let _ = self.local.try_send(Local::TouchLeader(sessions));
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
    /// Whether the node task has ended (see [`RaftHandle::stopped`]).
    pub fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
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
pub fn spawn_raft<S: StateMachine>(
    sm: S,
    opts: RaftOptions,
) -> Result<(Proposer, RaftHandle), ConsensusError> {
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
                .ok_or_else(|| {
                    ConsensusError::Options(format!("no quorum address for myid {}", opts.id))
                })?;
            std::net::ToSocketAddrs::to_socket_addrs(own.as_str())
                .map_err(|e| ConsensusError::Options(format!("quorum address {own}: {e}")))?
                .next()
                .ok_or_else(|| {
                    ConsensusError::Options(format!("quorum address {own} resolves to nothing"))
                })?
        }
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConsensusError::Options(
            "the peer network needs a tokio runtime".into(),
        ));
    }
    let (net, inbound) = PeerNetwork::start(
        opts.id,
        listen,
        opts.peers.clone(),
        crate::consensus::transport::PeerSecurity {
            secret: opts.quorum_secret.clone(),
            tls: opts.quorum_tls.clone(),
        },
    )
    .map_err(|e| {
        ConsensusError::io(format!("raft: cannot listen on quorum address {listen}"), e)
    })?;
    let (proposer, handle) = spawn_raft_with(sm, opts, net)?;
    inbound.attach(handle.peer_sender());
    Ok((proposer, handle))
}

/// Recovers from disk, replays the log into `sm`, and starts the node task. Returns once
/// every stored entry is applied (as a single voter: once this node leads and has committed
/// its term's first entry). Blocks the calling thread for the recovery.
pub fn spawn_raft_with<S: StateMachine, T: Transport>(
    sm: S,
    opts: RaftOptions,
    transport: T,
) -> Result<(Proposer, RaftHandle), ConsensusError> {
    if opts.id == 0 {
        return Err(ConsensusError::Options("myid must not be 0".into()));
    }
    if opts.voters.is_empty() {
        return Err(ConsensusError::Options("no voters".into()));
    }
    if opts.learners.iter().any(|l| opts.voters.contains(l)) {
        return Err(ConsensusError::Options(
            "a server cannot be both a voter and a learner".into(),
        ));
    }
    if !opts.voters.contains(&opts.id) && !opts.learners.contains(&opts.id) {
        return Err(ConsensusError::Options(format!(
            "myid {} is neither a voter nor a learner",
            opts.id
        )));
    }
    let (tx, rx) = mpsc::unbounded_channel::<Proposal>();
    let (peer_tx, peer_rx) = mpsc::channel::<(u64, PeerMsg)>(INBOUND_QUEUE);
    let (local_tx, local_rx) = mpsc::channel::<Local>(INBOUND_QUEUE);
    let (touch_tx, touch_rx) = mpsc::channel::<Touches>(TOUCH_QUEUE);
    let (status_tx, status_rx) = watch::channel(RaftStatus::default());
    let (stopped_tx, stopped_rx) = watch::channel(false);
    let shutdown = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ConsensusError>>();
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
                    let _ = ready_tx.send(Err(ConsensusError::io("raft runtime", e)));
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
            if let Err(e) = rt.block_on(node.run(rx, peer_rx, local_rx, notify)) {
                tracing::error!("raft node {id} stopped on an error: {e}");
            }
            // `run` consumed the node: storage is dropped; wait for sled to let go of it.
            if !crate::consensus::storage::wait_unlocked(&db_dir, Duration::from_secs(5)) {
                tracing::warn!(
                    "raft log {} is still locked after shutdown",
                    db_dir.display()
                );
            }
        })
        .map_err(|e| ConsensusError::io("spawning the raft thread", e))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((
            Proposer { tx },
            RaftHandle {
                status: status_rx,
                stopped: stopped_rx,
                peers: peer_tx,
                local: local_tx,
                shutdown,
                touches: Arc::new(Mutex::new(Some(touch_rx))),
            },
        )),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConsensusError::ThreadDied(
            "raft node thread died during recovery",
        )),
    }
}

struct StoppedGuard(watch::Sender<bool>);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        self.0.send_modify(|s| *s = true);
    }
}
