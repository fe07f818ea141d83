//! How a node is configured (`RaftOptions`, from zoo.cfg and myid) and the state a new group
//! can start from (`Seed`, ZooKeeper's data taken over).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use raft::prelude::{ConfState, Snapshot};

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
    pub quorum_secret: Option<crate::consensus::peer_auth::QuorumSecret>,
    /// sslQuorum=true: mutual TLS on every quorum-port connection (`tls::quorum`).
    pub quorum_tls: Option<crate::tls::quorum::QuorumTls>,
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
    pub(super) fn into_snapshot(self, conf: ConfState) -> Snapshot {
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
            quorum_tls: None,
        }
    }

    pub(super) fn retain(&self) -> usize {
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
