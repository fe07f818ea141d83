//! The peer network: TCP between keeperd nodes over the quorum port (the first port of
//! `server.N=host:quorumPort:electionPort`).
//!
//! Every node dials every other node once (one outbound connection per peer, carrying only
//! what this node sends to that peer) and accepts the other nodes' outbound connections
//! (carrying what they send to it). So a pair of nodes uses two TCP connections, one per
//! direction, and nobody has to decide who dials whom. The election port is not used: Raft
//! elections are ordinary messages on the quorum port.
//!
//! ```text
//! frame   := u32 BE len | body                  len = body length, 2 ..= MAX_FRAME
//! body    := u8 version (1) | u8 type | payload
//! type 1  Hello   := u64 BE from | u64 BE to     first frame on every connection, only there
//! type 2  Raft    := eraftpb.Message (protobuf)  m.from must be the hello's sender
//! type 3  Forward := u64 BE origin | u64 BE incarnation | u64 BE seq | txn entry bytes
//!                    a proposal forwarded to the leader; (origin, incarnation, seq) is the
//!                    entry context the leader proposes it with (seq 0: nobody waits)
//! type 4  Touch   := u32 BE n | n * i64 BE session id
//!                    sessions a follower heard from, for the leader's expiry clock
//! type 5  Probe   := u8 state | u32 BE nv | nv * u64 BE voter | u32 BE nl | nl * u64 BE learner
//!                    [| i64 BE imported zxid]
//!                    start-up membership probe (docs/operations.md, "Safety rule"): state 0 =
//!                    "my log is empty; a fresh group would have these voters/learners (my
//!                    zoo.cfg)", with the last zxid of the ZooKeeper data this server would
//!                    start from (absent or 0: none); state 1 = "I belong to a group with a
//!                    log" (lists empty, no zxid)
//! type 6  AuthHello := u64 BE from | u64 BE to | 32 B nonce    instead of Hello when the
//! type 7  Challenge := 32 B nonce | 32 B mac                   ensemble has a quorum secret
//! type 8  Proof     := 32 B mac                                (see `peer_auth`)
//! ```
//! Types 9..=255 are free for later frames; a node that does not know a type disconnects the
//! sender (peers run the same version during a rolling upgrade window only if they agree).
//!
//! Outbound: `Transport::send` (and `send_peer`) encode the frame on the caller's
//! thread and queue it on the peer's bounded queue, never waiting: when the queue is full the
//! frame is dropped (Raft retransmits; a dropped snapshot is reported so the leader retries).
//! A connection task per peer drains its queue, dialling with exponential backoff (50 ms
//! doubling to 1 s) and starting each connection with a hello.
//!
//! Inbound: an accept loop; each connection must send a valid hello (to = our id, from = a
//! known peer) within `HELLO_TIMEOUT`, and with a quorum secret complete the challenge of
//! `peer_auth` in that time; until then no frame may be longer than `MAX_HANDSHAKE_FRAME`,
//! so an unauthenticated connection costs a few bytes of memory, and after it a frame that
//! stops arriving for `FRAME_TIMEOUT` ends the connection. Every frame is decoded and
//! checked; a peer that sends anything invalid is logged and disconnected.
//!
//! Lifetime: the tasks live until the last clone of the `PeerNetwork` is dropped (the node
//! owns it as its transport, so they end with the node).

mod frame;
mod inbound;
mod outbound;

pub use frame::{Frame, FrameError, FRAME_VERSION, MAX_FRAME};

use inbound::accept_loop;
use outbound::outbound;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raft::prelude::{Message, MessageType};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::peer::{PeerMsg, PeerReport, PeerSender, Transport};
use super::peer_auth::QuorumSecret;
/// Frames queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// How long a connection may take to say hello and authenticate, both ways.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest frame read before a peer is known (and authenticated): hellos and the
/// challenge-response are under 80 bytes.
const MAX_HANDSHAKE_FRAME: usize = 128;
/// A frame waiting in a peer's queue.
struct Outgoing {
    bytes: Vec<u8>,
    /// A MsgSnapshot: losing it must be reported, or the leader waits for it forever.
    snapshot: bool,
    /// A raft message: stale once the connection it waited for was lost (see `outbound`).
    raft: bool,
}

struct Inner {
    my_id: u64,
    local_addr: SocketAddr,
    /// Each peer's outgoing queue and the address its connection task dials.
    queues: Mutex<HashMap<u64, (String, mpsc::Sender<Outgoing>)>>,
    /// The peers whose connections are accepted (shared with the accept loop).
    known: Known,
    /// How every connection, both ways, is authenticated: the ensemble's shared secret
    /// and/or mutual TLS.
    security: PeerSecurity,
    reports: Arc<Mutex<Vec<PeerReport>>>,
    /// The accept loop and the connection tasks; aborted when the last clone goes.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

type Known = Arc<std::sync::RwLock<HashSet<u64>>>;

/// How servers authenticate each other on the quorum port: with the shared secret's
/// challenge-response (`peer_auth`), with mutual TLS (`sslQuorum`, `tls::quorum`), or both
/// (TLS first, then the secret's handshake inside it).
#[derive(Clone, Default)]
pub struct PeerSecurity {
    pub secret: Option<QuorumSecret>,
    pub tls: Option<crate::tls::quorum::QuorumTls>,
}

impl From<Option<QuorumSecret>> for PeerSecurity {
    fn from(secret: Option<QuorumSecret>) -> PeerSecurity {
        PeerSecurity { secret, tls: None }
    }
}

/// A connection's halves once any TLS is set up: plain TCP and TLS alike.
type PeerRead = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type PeerWrite = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;
type Live = Arc<Mutex<HashMap<u64, usize>>>;

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().map(|t| t.iter()).into_iter().flatten() {
            t.abort();
        }
    }
}

/// The outbound side of the peer network; also the node's `Transport`. Cheap to clone.
#[derive(Clone)]
pub struct PeerNetwork {
    inner: Arc<Inner>,
}

/// The inbound side: frames from peers, in arrival order per connection. Hand it to the node
/// with `attach` once the node is running.
pub struct PeerInbound {
    rx: mpsc::Receiver<(u64, PeerMsg)>,
}

impl PeerInbound {
    /// Delivers every inbound frame to the node (`RaftHandle::peer_sender`) until the
    /// network or the node goes away; waits for room in the node's queue.
    pub fn attach(self, node: PeerSender) -> JoinHandle<()> {
        let mut rx = self.rx;
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if node.send(frame).await.is_err() {
                    break;
                }
            }
        })
    }

    /// The next inbound frame (for tests and custom wiring).
    pub async fn recv(&mut self) -> Option<(u64, PeerMsg)> {
        self.rx.recv().await
    }
}

impl PeerNetwork {
    /// Binds `listen` and starts the network of node `my_id`. `peers` are the quorum
    /// addresses (`host:port`) of the other members; an entry for `my_id` is ignored.
    /// Must be called inside a tokio runtime (the tasks are spawned on it).
    pub fn start(
        my_id: u64,
        listen: SocketAddr,
        peers: Vec<(u64, String)>,
        security: impl Into<PeerSecurity>,
    ) -> io::Result<(PeerNetwork, PeerInbound)> {
        let sock = match listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        sock.bind(listen)?;
        let listener = sock.listen(1024)?;
        Self::start_on(my_id, listener, peers, security)
    }

    /// As `start`, on a listener the caller already bound (tests bind port 0 first to learn
    /// every node's address).
    pub fn start_on(
        my_id: u64,
        listener: TcpListener,
        peers: Vec<(u64, String)>,
        security: impl Into<PeerSecurity>,
    ) -> io::Result<(PeerNetwork, PeerInbound)> {
        let security: PeerSecurity = security.into();
        let local_addr = listener.local_addr()?;
        let peers: Vec<(u64, String)> = peers.into_iter().filter(|(id, _)| *id != my_id).collect();
        let known: Known = Arc::new(std::sync::RwLock::new(
            peers.iter().map(|(id, _)| *id).collect(),
        ));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (in_tx, in_rx) = mpsc::channel(PEER_QUEUE);
        let accept = tokio::spawn(accept_loop(
            my_id,
            listener,
            known.clone(),
            in_tx,
            security.clone(),
        ));
        match (&security.secret, &security.tls) {
            (Some(_), None) => tracing::info!(
                "peer network of node {my_id} listening on {local_addr}; peers authenticate \
                 with the quorum secret"
            ),
            (secret, Some(tls)) => tracing::info!(
                "peer network of node {my_id} listening on {local_addr}; peers authenticate \
                 with mutual TLS ({tls:?}){}",
                if secret.is_some() {
                    " and the quorum secret"
                } else {
                    ""
                }
            ),
            (None, None) => tracing::warn!(
                "peer network of node {my_id} listening on {local_addr} WITHOUT \
                 authentication: anyone who reaches this port can act as a member; firewall \
                 it or set keeperd.quorum.secretFile (docs/security.md)"
            ),
        }
        let net = PeerNetwork {
            inner: Arc::new(Inner {
                my_id,
                local_addr,
                queues: Mutex::default(),
                known,
                security,
                reports,
                tasks: Mutex::new(vec![accept]),
                runtime: tokio::runtime::Handle::current(),
            }),
        };
        net.add_peers(&peers);
        Ok((net, PeerInbound { rx: in_rx }))
    }

    /// Adds peers (or new addresses of known ones: the old connection task ends when its
    /// queue goes). This node's own id is ignored.
    pub fn add_peers(&self, peers: &[(u64, String)]) {
        let inner = &self.inner;
        let mut queues = inner.queues.lock().expect("peer queues");
        for (id, addr) in peers {
            if *id == inner.my_id || queues.get(id).is_some_and(|(a, _)| a == addr) {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            if queues.insert(*id, (addr.clone(), tx)).is_some() {
                tracing::info!("peer {id} moved to {addr}");
            }
            inner.known.write().expect("known peers").insert(*id);
            let task = inner.runtime.spawn(outbound(
                inner.my_id,
                *id,
                addr.clone(),
                rx,
                inner.reports.clone(),
                inner.security.clone(),
            ));
            let mut tasks = inner.tasks.lock().expect("peer tasks");
            tasks.retain(|t| !t.is_finished());
            tasks.push(task);
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    pub fn my_id(&self) -> u64 {
        self.inner.my_id
    }

    /// Queues a frame for `to`; false when there is no such peer, the queue is full or the
    /// frame cannot be encoded.
    fn queue(&self, to: u64, frame: &Frame, snapshot: bool) -> bool {
        let Some(q) = self
            .inner
            .queues
            .lock()
            .expect("peer queues")
            .get(&to)
            .map(|(_, q)| q.clone())
        else {
            tracing::debug!("no peer {to}: dropping a frame");
            return false;
        };
        let bytes = match frame.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("cannot send to peer {to}: {e}");
                return false;
            }
        };
        let raft = matches!(frame, Frame::Msg(PeerMsg::Raft(_)));
        match q.try_send(Outgoing {
            bytes,
            snapshot,
            raft,
        }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("queue to peer {to} is full: dropping a frame");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn report(&self, r: PeerReport) {
        if let Ok(mut v) = self.inner.reports.lock() {
            v.push(r);
        }
    }
}

impl Transport for PeerNetwork {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            let to = m.to;
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            if !self.queue(to, &Frame::Msg(PeerMsg::Raft(m)), snapshot) && snapshot {
                self.report(PeerReport::SnapshotFailed(to));
            }
        }
    }

    fn send_peer(&mut self, to: u64, msg: PeerMsg) -> bool {
        self.queue(to, &Frame::Msg(msg), false)
    }

    fn peer_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .inner
            .queues
            .lock()
            .expect("peer queues")
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    fn set_peers(&mut self, peers: &[(u64, String)]) {
        self.add_peers(peers);
    }

    fn take_reports(&mut self) -> Vec<PeerReport> {
        self.inner
            .reports
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn queues_drop_instead_of_blocking_and_unknown_peers_are_refused() {
        // A peer that never accepts: its queue fills and further frames are dropped.
        let (mut net, _inbound) = PeerNetwork::start(
            1,
            "127.0.0.1:0".parse().expect("addr"),
            vec![(2, "127.0.0.1:9".into())],
            None,
        )
        .expect("start");
        let touch = |n: &mut PeerNetwork| n.send_peer(2, PeerMsg::Touch(vec![1]));
        let mut queued = 0;
        for _ in 0..PEER_QUEUE + 10 {
            if touch(&mut net) {
                queued += 1;
            }
        }
        assert!(queued <= PEER_QUEUE + 1, "queued {queued}");
        assert!(!net.send_peer(3, PeerMsg::Touch(vec![1])), "no such peer");
        let mut snap = Message::default();
        snap.set_msg_type(MessageType::MsgSnapshot);
        snap.to = 2;
        net.send(vec![snap]);
        let reports = net.take_reports();
        assert!(
            reports.contains(&PeerReport::SnapshotFailed(2)),
            "{reports:?}"
        );
    }
}
