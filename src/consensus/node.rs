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
//! Start-up recovery happens on that thread before `spawn_raft` returns: storage is opened
//! (torn tail cut), the newest good snapshot restored, and every stored entry re-applied, so
//! the server never serves a partially replayed tree.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeV2, Entry, EntryType, Message, Snapshot, SnapshotMetadata,
};
use raft::{RawNode, StateRole, Storage};
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use super::logger::raft_logger;
use super::storage::{SledStorage, SnapshotFile};
use super::{zxid, Proposal, Proposer, StateMachine};
use crate::proto::Error;
use crate::tree::{Applied, Txn};

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
    /// dataDir: snapshots go to `data_dir/version-2`.
    pub data_dir: PathBuf,
    /// dataLogDir: the log goes to `log_dir/version-2/raftlog`; None = data_dir.
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
}

impl RaftOptions {
    /// Standalone defaults (myid 1, ZooKeeper's snapCount 100000, forceSync on).
    pub fn standalone(data_dir: impl Into<PathBuf>) -> RaftOptions {
        RaftOptions {
            id: 1,
            voters: vec![1],
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
        }
    }

    fn retain(&self) -> usize {
        self.snap_retain_count.max(3)
    }
}

/// Sends Raft messages to peers. The ensemble implements it over the quorum port; it must not
/// block (queue and return) and may drop messages: Raft retransmits.
pub trait Transport: Send + 'static {
    fn send(&mut self, msgs: Vec<Message>);
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

/// What the four-letter words and the server need to know about this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    pub is_leader: bool,
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

/// A cheap handle on a running node: status, inbound peer messages, shutdown.
#[derive(Clone)]
pub struct RaftHandle {
    status: watch::Receiver<RaftStatus>,
    stopped: watch::Receiver<bool>,
    inbound: mpsc::UnboundedSender<Message>,
    shutdown: Arc<Notify>,
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
    /// Hands a message from a peer to the node (the transport's inbound side).
    pub fn step(&self, msg: Message) -> Result<(), super::NotAccepting> {
        self.inbound.send(msg).map_err(|_| super::NotAccepting)
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

/// Starts a Raft node with no peers (standalone; the ensemble uses `spawn_raft_with`).
pub fn spawn_raft<S: StateMachine>(
    sm: S,
    opts: RaftOptions,
) -> Result<(Proposer, RaftHandle), Error> {
    spawn_raft_with(sm, opts, NoPeers)
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
    let (tx, rx) = mpsc::unbounded_channel::<Proposal>();
    let (peer_tx, peer_rx) = mpsc::unbounded_channel::<Message>();
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
            let node = match Node::recover(sm, opts, transport, status_tx) {
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
    Proposals,
    ProposersGone,
    Peer(Message),
    Tick,
    Purge,
    SnapshotWritten(u64, Result<SnapshotFile, Error>),
}

struct Node<S, T> {
    raw: RawNode<SledStorage>,
    sm: S,
    transport: T,
    opts: RaftOptions,
    status: watch::Sender<RaftStatus>,
    /// Proposals of this run waiting for their entry to be applied, by sequence number.
    pending: HashMap<u64, oneshot::Sender<Applied>>,
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
}

fn next_threshold(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::thread_rng().gen_range(0..half)
}

impl<S: StateMachine, T: Transport> Node<S, T> {
    fn recover(
        mut sm: S,
        opts: RaftOptions,
        transport: T,
        status: watch::Sender<RaftStatus>,
    ) -> Result<Self, Error> {
        let log_root = opts
            .log_dir
            .clone()
            .unwrap_or_else(|| opts.data_dir.clone());
        let (mut store, report) =
            SledStorage::open(&log_root, &opts.data_dir, opts.force_sync, &opts.voters)?;
        if report.fresh {
            tracing::info!(
                "raft log {} is empty: new group with voters {:?}",
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

        let single_voter =
            store.conf_state().voters == [opts.id] && store.conf_state().learners.is_empty();
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
            opts,
        };
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
        mut peers: mpsc::UnboundedReceiver<Message>,
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
        let result = loop {
            let event = tokio::select! {
                biased;
                _ = shutdown.notified() => Event::Shutdown,
                (index, r) = wait_job(&mut snap_job) => Event::SnapshotWritten(index, r),
                n = proposals.recv_many(&mut batch, self.opts.max_batch) => {
                    if n == 0 { Event::ProposersGone } else { Event::Proposals }
                }
                Some(m) = peers.recv() => Event::Peer(m),
                _ = ticker.tick() => Event::Tick,
                _ = wait_tick(&mut purge) => Event::Purge,
            };
            let step = match event {
                Event::Shutdown | Event::ProposersGone => break Ok(()),
                Event::Proposals => {
                    self.propose(&mut batch);
                    Ok(())
                }
                Event::Peer(m) => {
                    self.step(m);
                    while let Ok(m) = peers.try_recv() {
                        self.step(m);
                    }
                    Ok(())
                }
                Event::Tick => {
                    self.raw.tick();
                    Ok(())
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

    fn propose(&mut self, batch: &mut Vec<Proposal>) {
        if self.raw.raft.state != StateRole::Leader {
            // Forwarding to the leader comes with the ensemble; dropping `done` makes the
            // server answer ConnectionLoss.
            tracing::warn!(
                "not the leader (leader is {}): refusing {} proposal(s)",
                self.raw.raft.leader_id,
                batch.len()
            );
            batch.clear();
            return;
        }
        for p in batch.drain(..) {
            let data = p.txn.to_bytes();
            let (context, seq) = match p.done {
                Some(done) => {
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    self.pending.insert(seq, done);
                    let mut ctx = Vec::with_capacity(CONTEXT_LEN);
                    ctx.extend_from_slice(&self.opts.id.to_be_bytes());
                    ctx.extend_from_slice(&self.incarnation.to_be_bytes());
                    ctx.extend_from_slice(&seq.to_be_bytes());
                    (ctx, Some(seq))
                }
                None => (vec![], None),
            };
            if let Err(e) = self.raw.propose(context, data) {
                tracing::warn!("raft refused a proposal: {e}");
                if let Some(seq) = seq {
                    self.pending.remove(&seq);
                }
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

    /// Handles every pending Ready, in raft-rs's documented order.
    fn on_ready(&mut self) -> Result<(), Error> {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            // 1. Messages that may go out before persisting (a leader's appends).
            if !rd.messages().is_empty() {
                self.transport.send(rd.take_messages());
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
        let leader = self.raw.raft.state == StateRole::Leader;
        if self.was_leader && !leader && !self.pending.is_empty() {
            // Their entries may still commit under the new leader, but this node can no
            // longer tell: the server answers ConnectionLoss, as ZooKeeper does.
            tracing::warn!(
                "lost leadership: {} proposal(s) get no answer",
                self.pending.len()
            );
            self.pending.clear();
        }
        self.was_leader = leader;
        Ok(())
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
                        if let Some(done) = self.pending.remove(&seq) {
                            let _ = done.send(applied);
                        }
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    self.raw.mut_store().set_conf_state(cs)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    let cs = self
                        .raw
                        .apply_conf_change(&cc)
                        .map_err(|err| fault(format!("conf change {}: {err}", e.index)))?;
                    self.raw.mut_store().set_conf_state(cs)?;
                }
            }
            self.applied = e.index;
            self.since_snapshot += 1;
        }
        Ok(())
    }

    /// A snapshot received from the leader: made durable as a file, the log reset to it,
    /// the state machine replaced.
    fn install_snapshot(&mut self, snap: Snapshot) -> Result<(), Error> {
        let meta = snap.get_metadata().clone();
        let file = self.raw.store().snapshots().write(&meta, &snap.data)?;
        self.sm.restore(&snap.data)?;
        self.raw.mut_store().install_snapshot(&meta)?;
        self.applied = meta.index;
        self.since_snapshot = 0;
        self.last_snapshot = (meta.index, file.size);
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
        if self.since_snapshot <= self.snapshot_threshold || self.applied <= self.last_snapshot.0 {
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

    fn publish(&mut self) {
        let store = self.raw.store();
        let st = RaftStatus {
            id: self.opts.id,
            is_leader: self.raw.raft.state == StateRole::Leader,
            leader_id: self.raw.raft.leader_id,
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

async fn wait_tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
