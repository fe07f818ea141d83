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
//! Outbound: `Transport::send` (and `forward`, `touch`) encode the frame on the caller's
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

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::peer::{Forward, PeerMsg, PeerReport, PeerSender, Probe, Transport};
use super::peer_auth::{self, QuorumSecret};

/// The frame format version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// The largest frame body accepted or sent (a MsgSnapshot carries the whole snapshot).
pub const MAX_FRAME: usize = 256 << 20;
/// Frames queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 4096;
/// How long an accepted connection may take to say hello (and to authenticate).
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest frame read before a peer is known (and authenticated): hellos and the
/// challenge-response are under 80 bytes.
const MAX_HANDSHAKE_FRAME: usize = 128;
/// A frame that started arriving must be complete within this (plus 100 ms per MiB).
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Dial timeout and backoff bounds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Inbound connections served at once (a reconnecting peer briefly has two).
const MAX_INBOUND: usize = 64;

const T_HELLO: u8 = 1;
const T_RAFT: u8 = 2;
const T_FORWARD: u8 = 3;
const T_TOUCH: u8 = 4;
const T_PROBE: u8 = 5;
const T_AUTH_HELLO: u8 = 6;
const T_CHALLENGE: u8 = 7;
const T_PROOF: u8 = 8;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello {
        from: u64,
        to: u64,
    },
    AuthHello {
        from: u64,
        to: u64,
        nonce: [u8; peer_auth::LEN],
    },
    Challenge {
        nonce: [u8; peer_auth::LEN],
        mac: [u8; peer_auth::LEN],
    },
    Proof {
        mac: [u8; peer_auth::LEN],
    },
    Msg(PeerMsg),
}

impl Frame {
    /// The body (without the length prefix).
    pub fn encode_body(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![FRAME_VERSION];
        match self {
            Frame::Hello { from, to } => {
                out.push(T_HELLO);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
            }
            Frame::AuthHello { from, to, nonce } => {
                out.push(T_AUTH_HELLO);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
                out.extend_from_slice(nonce);
            }
            Frame::Challenge { nonce, mac } => {
                out.push(T_CHALLENGE);
                out.extend_from_slice(nonce);
                out.extend_from_slice(mac);
            }
            Frame::Proof { mac } => {
                out.push(T_PROOF);
                out.extend_from_slice(mac);
            }
            Frame::Msg(PeerMsg::Raft(m)) => {
                out.push(T_RAFT);
                m.write_to_vec(&mut out)
                    .map_err(|e| format!("encoding a raft message: {e}"))?;
            }
            Frame::Msg(PeerMsg::Forward(f)) => {
                out.push(T_FORWARD);
                out.extend_from_slice(&f.origin.to_be_bytes());
                out.extend_from_slice(&f.incarnation.to_be_bytes());
                out.extend_from_slice(&f.seq.to_be_bytes());
                out.extend_from_slice(&f.txn);
            }
            Frame::Msg(PeerMsg::Probe(p)) => {
                out.push(T_PROBE);
                let (state, voters, learners, imported): (u8, &[u64], &[u64], i64) = match p {
                    Probe::Fresh {
                        voters,
                        learners,
                        imported,
                    } => (0, voters, learners, *imported),
                    Probe::Member => (1, &[], &[], 0),
                };
                out.push(state);
                for list in [voters, learners] {
                    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                    for id in list {
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                }
                if imported != 0 {
                    out.extend_from_slice(&imported.to_be_bytes());
                }
            }
            Frame::Msg(PeerMsg::Closed) => {
                return Err("Closed is not a frame".into());
            }
            Frame::Msg(PeerMsg::Touch(sessions)) => {
                out.push(T_TOUCH);
                out.extend_from_slice(&(sessions.len() as u32).to_be_bytes());
                for s in sessions {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
        }
        if out.len() > MAX_FRAME {
            return Err(format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                out.len()
            ));
        }
        Ok(out)
    }

    /// Length prefix + body: what goes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let body = self.encode_body()?;
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a body. Invalid input is an error, never a panic.
    pub fn decode_body(body: &[u8]) -> Result<Frame, String> {
        let (&version, rest) = body.split_first().ok_or("empty frame")?;
        if version != FRAME_VERSION {
            return Err(format!("frame version {version}, expected {FRAME_VERSION}"));
        }
        let (&ty, p) = rest.split_first().ok_or("frame without a type")?;
        let u64_at = |i: usize| {
            p.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| format!("frame type {ty} is truncated"))
        };
        match ty {
            T_HELLO => {
                if p.len() != 16 {
                    return Err(format!("hello of {} bytes, expected 16", p.len()));
                }
                Ok(Frame::Hello {
                    from: u64_at(0)?,
                    to: u64_at(8)?,
                })
            }
            T_AUTH_HELLO | T_CHALLENGE | T_PROOF => {
                let want = match ty {
                    T_AUTH_HELLO => 16 + peer_auth::LEN,
                    T_CHALLENGE => 2 * peer_auth::LEN,
                    _ => peer_auth::LEN,
                };
                if p.len() != want {
                    return Err(format!(
                        "frame type {ty} of {} bytes, expected {want}",
                        p.len()
                    ));
                }
                let block = |i: usize| -> [u8; peer_auth::LEN] {
                    let mut b = [0u8; peer_auth::LEN];
                    b.copy_from_slice(&p[i..i + peer_auth::LEN]);
                    b
                };
                Ok(match ty {
                    T_AUTH_HELLO => Frame::AuthHello {
                        from: u64_at(0)?,
                        to: u64_at(8)?,
                        nonce: block(16),
                    },
                    T_CHALLENGE => Frame::Challenge {
                        nonce: block(0),
                        mac: block(peer_auth::LEN),
                    },
                    _ => Frame::Proof { mac: block(0) },
                })
            }
            T_RAFT => Message::parse_from_bytes(p)
                .map(|m| Frame::Msg(PeerMsg::Raft(m)))
                .map_err(|e| format!("bad raft message: {e}")),
            T_FORWARD => Ok(Frame::Msg(PeerMsg::Forward(Forward {
                origin: u64_at(0)?,
                incarnation: u64_at(8)?,
                seq: u64_at(16)?,
                txn: p.get(24..).unwrap_or_default().to_vec(),
            }))),
            T_TOUCH => {
                let n = p
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .ok_or("touch frame is truncated")? as usize;
                let ids = p.get(4..).unwrap_or_default();
                if ids.len() != n.saturating_mul(8) {
                    return Err(format!(
                        "touch frame says {n} sessions, has {} bytes",
                        ids.len()
                    ));
                }
                Ok(Frame::Msg(PeerMsg::Touch(
                    ids.chunks_exact(8)
                        .filter_map(|c| c.try_into().ok().map(i64::from_be_bytes))
                        .collect(),
                )))
            }
            T_PROBE => {
                let (&state, mut rest) = p.split_first().ok_or("probe frame is truncated")?;
                let mut lists = vec![];
                for _ in 0..2 {
                    let n = rest
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_be_bytes)
                        .ok_or("probe frame is truncated")? as usize;
                    let ids = rest
                        .get(4..)
                        .and_then(|r| r.get(..n.saturating_mul(8)))
                        .ok_or("probe frame is truncated")?;
                    lists.push(
                        ids.chunks_exact(8)
                            .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
                            .collect::<Vec<u64>>(),
                    );
                    rest = &rest[4 + ids.len()..];
                }
                let imported = match rest.len() {
                    0 => 0,
                    8 => i64::from_be_bytes(rest.try_into().map_err(|_| "probe zxid")?),
                    _ => return Err("probe frame has trailing bytes".into()),
                };
                let learners = lists.pop().unwrap_or_default();
                let voters = lists.pop().unwrap_or_default();
                match state {
                    0 => Ok(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
                        voters,
                        learners,
                        imported,
                    }))),
                    1 if voters.is_empty() && learners.is_empty() && imported == 0 => {
                        Ok(Frame::Msg(PeerMsg::Probe(Probe::Member)))
                    }
                    _ => Err(format!("bad probe state {state}")),
                }
            }
            other => Err(format!("unknown frame type {other}")),
        }
    }
}

/// Why reading a frame stopped.
#[derive(Debug)]
enum ReadError {
    /// Clean end of stream between frames.
    Closed,
    Io(io::Error),
    Invalid(String),
}

/// Reads one frame of at most `max` bytes. The body is read as it arrives (never allocated
/// up front from the length), so a bogus length costs nothing until the bytes actually come,
/// and it must arrive within `FRAME_TIMEOUT` (plus 100 ms per MiB) once it has started.
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R, max: usize) -> Result<Frame, ReadError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadError::Closed),
        Err(e) => return Err(ReadError::Io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(2..=max).contains(&len) {
        return Err(ReadError::Invalid(format!(
            "frame length {len} outside 2..={max}"
        )));
    }
    let mut body = Vec::with_capacity(len.min(64 << 10));
    let limit = FRAME_TIMEOUT + Duration::from_millis((len >> 20) as u64 * 100);
    match tokio::time::timeout(limit, (&mut *r).take(len as u64).read_to_end(&mut body)).await {
        Ok(r) => r.map_err(ReadError::Io)?,
        Err(_) => {
            return Err(ReadError::Invalid(format!(
                "{} of a {len}-byte frame in {limit:?}",
                body.len()
            )))
        }
    };
    if body.len() != len {
        return Err(ReadError::Invalid(format!(
            "connection closed inside a frame ({} of {len} bytes)",
            body.len()
        )));
    }
    Frame::decode_body(&body).map_err(ReadError::Invalid)
}

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
    /// The ensemble's shared secret: every connection, both ways, is authenticated with it.
    secret: Option<QuorumSecret>,
    reports: Arc<Mutex<Vec<PeerReport>>>,
    /// The accept loop and the connection tasks; aborted when the last clone goes.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    runtime: tokio::runtime::Handle,
}

type Known = Arc<std::sync::RwLock<HashSet<u64>>>;
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
        secret: Option<QuorumSecret>,
    ) -> io::Result<(PeerNetwork, PeerInbound)> {
        let sock = match listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        sock.bind(listen)?;
        let listener = sock.listen(1024)?;
        Self::start_on(my_id, listener, peers, secret)
    }

    /// As `start`, on a listener the caller already bound (tests bind port 0 first to learn
    /// every node's address).
    pub fn start_on(
        my_id: u64,
        listener: TcpListener,
        peers: Vec<(u64, String)>,
        secret: Option<QuorumSecret>,
    ) -> io::Result<(PeerNetwork, PeerInbound)> {
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
            secret.clone(),
        ));
        match &secret {
            Some(_) => tracing::info!(
                "peer network of node {my_id} listening on {local_addr}; peers authenticate \
                 with the quorum secret"
            ),
            None => tracing::warn!(
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
                secret,
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
                inner.secret.clone(),
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

/// How long writing `bytes` may take before the peer counts as stuck.
fn write_timeout(bytes: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_millis((bytes >> 20) as u64 * 100)
}

/// The connection task for one peer: dial (with backoff), hello, then drain the queue.
async fn outbound(
    my_id: u64,
    peer: u64,
    addr: String,
    mut rx: mpsc::Receiver<Outgoing>,
    reports: Arc<Mutex<Vec<PeerReport>>>,
    secret: Option<QuorumSecret>,
) {
    let report = |r| {
        if let Ok(mut v) = reports.lock() {
            v.push(r);
        }
    };
    let hello = match (Frame::Hello {
        from: my_id,
        to: peer,
    })
    .encode()
    {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("hello to peer {peer}: {e}");
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    let mut reachable = true;
    // A frame taken from the queue but not written when the connection broke.
    let mut carry: Option<Outgoing> = None;
    // Frames taken out of the queue to be kept when it is purged (see below).
    let mut kept: std::collections::VecDeque<Outgoing> = Default::default();
    let mut lost_connection = false;
    loop {
        if rx.is_closed() {
            return; // replaced by a task for a new address, or the network was dropped
        }
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if reachable {
                    tracing::info!("peer {peer} at {addr} is unreachable: {e}");
                    report(PeerReport::Unreachable(peer));
                    reachable = false;
                }
                lost_connection = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(_) => {
                if reachable {
                    tracing::info!("peer {peer} at {addr}: connect timed out");
                    report(PeerReport::Unreachable(peer));
                    reachable = false;
                }
                lost_connection = true;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (rh, wh) = stream.into_split();
        let mut r = BufReader::with_capacity(256, rh);
        let mut w = BufWriter::with_capacity(256 << 10, wh);
        let result: io::Result<()> = async {
            match &secret {
                None => {
                    w.write_all(&hello).await?;
                    w.flush().await?;
                }
                Some(s) => {
                    let handshake = authenticate_to(&mut r, &mut w, my_id, peer, s);
                    match tokio::time::timeout(HELLO_TIMEOUT, handshake).await {
                        Ok(r) => r?,
                        Err(_) => {
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "no challenge from the peer in time",
                            ))
                        }
                    }
                }
            }
            tracing::info!("connected to peer {peer} at {addr}");
            if std::mem::take(&mut lost_connection) {
                // Raft messages queued while the peer was unreachable are stale (appends of
                // entries the leader may since have compacted, heartbeats of an old term):
                // raft-rs sends what the peer needs once it answers. Delivering a backlog of
                // them only delays that, so they go; forwards, touches and probes stay.
                let mut dropped = 0;
                while let Ok(f) = rx.try_recv() {
                    if f.raft {
                        if f.snapshot {
                            report(PeerReport::SnapshotFailed(peer));
                        }
                        dropped += 1;
                    } else {
                        kept.push_back(f);
                    }
                }
                if carry.as_ref().is_some_and(|f| f.raft) {
                    lost(peer, carry.as_slice(), &report);
                    carry = None;
                    dropped += 1;
                }
                if dropped > 0 {
                    tracing::debug!("peer {peer}: dropped {dropped} stale raft frame(s)");
                }
            }
            reachable = true;
            backoff = BACKOFF_MIN;
            let mut probe = [0u8; 1];
            loop {
                let first = match carry.take().or_else(|| kept.pop_front()) {
                    Some(f) => f,
                    // The peer never writes on this connection after the handshake: a read
                    // that returns means it closed (a restart, a crash). Noticed now rather
                    // than by the next write, which would fail and lose its frames (a vote
                    // response among them costs the candidate an election timeout).
                    None => tokio::select! {
                        f = rx.recv() => match f {
                            Some(f) => f,
                            None => return Ok(()),
                        },
                        _ = r.read(&mut probe) => {
                            return Err(io::Error::new(
                                io::ErrorKind::ConnectionReset,
                                "closed by the peer",
                            ))
                        }
                    },
                };
                // Write what is queued now in one go, then flush once.
                let mut batch = vec![first];
                let mut bytes = batch[0].bytes.len();
                while bytes < (1 << 20) {
                    if let Some(f) = kept.pop_front() {
                        bytes += f.bytes.len();
                        batch.push(f);
                        continue;
                    }
                    match rx.try_recv() {
                        Ok(f) => {
                            bytes += f.bytes.len();
                            batch.push(f);
                        }
                        Err(_) => break,
                    }
                }
                let write = async {
                    for f in &batch {
                        w.write_all(&f.bytes).await?;
                    }
                    w.flush().await
                };
                match tokio::time::timeout(write_timeout(bytes), write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        lost(peer, &batch, &report);
                        return Err(e);
                    }
                    Err(_) => {
                        lost(peer, &batch, &report);
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out"));
                    }
                }
            }
        }
        .await;
        match result {
            Ok(()) => return, // the network was dropped
            Err(e) => {
                tracing::info!("connection to peer {peer} at {addr} lost: {e}");
                report(PeerReport::Unreachable(peer));
                reachable = false;
                lost_connection = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The connector's side of `peer_auth`: AuthHello, check the acceptor's challenge, Proof.
async fn authenticate_to<R: AsyncReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    r: &mut R,
    w: &mut W,
    me: u64,
    peer: u64,
    secret: &QuorumSecret,
) -> io::Result<()> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
    let nc = peer_auth::nonce();
    let hello = Frame::AuthHello {
        from: me,
        to: peer,
        nonce: nc,
    };
    w.write_all(&hello.encode().map_err(invalid)?).await?;
    w.flush().await?;
    let (na, mac) = match read_frame(r, MAX_HANDSHAKE_FRAME).await {
        Ok(Frame::Challenge { nonce, mac }) => (nonce, mac),
        Ok(other) => return Err(invalid(format!("expected a challenge, got {other:?}"))),
        Err(ReadError::Closed) => {
            return Err(invalid(
                "the peer closed the connection (no quorum secret there, or another one)".into(),
            ))
        }
        Err(ReadError::Io(e)) => return Err(e),
        Err(ReadError::Invalid(why)) => return Err(invalid(why)),
    };
    if !secret.check_acceptor(peer, me, &nc, &na, &mac) {
        return Err(invalid(
            "the peer does not know the quorum secret; not sending it anything".into(),
        ));
    }
    let proof = Frame::Proof {
        mac: secret.connector_mac(me, peer, &na, &nc),
    };
    w.write_all(&proof.encode().map_err(invalid)?).await?;
    w.flush().await
}

/// Frames that may not have reached `peer`: a snapshot among them must be reported (raft-rs
/// otherwise waits for its acknowledgement forever).
fn lost(peer: u64, batch: &[Outgoing], report: &impl Fn(PeerReport)) {
    if batch.iter().any(|f| f.snapshot) {
        report(PeerReport::SnapshotFailed(peer));
    }
}

async fn accept_loop(
    my_id: u64,
    listener: TcpListener,
    known: Known,
    tx: mpsc::Sender<(u64, PeerMsg)>,
    secret: Option<QuorumSecret>,
) {
    let mut conns = tokio::task::JoinSet::new();
    // Authenticated inbound connections open per peer: `PeerMsg::Closed` is reported only
    // when the last one goes (a second connection claiming a peer's id, closing, says
    // nothing about the peer's real connection).
    let live: Live = Arc::default();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("peer accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_INBOUND {
            tracing::warn!("too many peer connections: refusing {remote}");
            continue;
        }
        let _ = stream.set_nodelay(true);
        conns.spawn(inbound(
            my_id,
            stream,
            remote,
            known.clone(),
            tx.clone(),
            secret.clone(),
            live.clone(),
        ));
    }
}

/// Serves one accepted connection: hello first, then frames until EOF or a violation.
async fn inbound(
    my_id: u64,
    stream: TcpStream,
    remote: SocketAddr,
    known: Known,
    tx: mpsc::Sender<(u64, PeerMsg)>,
    secret: Option<QuorumSecret>,
    live: Live,
) {
    let (rh, mut wh) = stream.into_split();
    let mut r = BufReader::with_capacity(256 << 10, rh);
    let is_peer = |from: u64, to: u64| {
        to == my_id && from != my_id && known.read().is_ok_and(|k| k.contains(&from))
    };
    let handshake = async {
        let first = read_frame(&mut r, MAX_HANDSHAKE_FRAME).await;
        match (first, &secret) {
            (Ok(Frame::AuthHello { from, to, nonce }), Some(s)) if is_peer(from, to) => {
                let na = peer_auth::nonce();
                let challenge = Frame::Challenge {
                    nonce: na,
                    mac: s.acceptor_mac(my_id, from, &nonce, &na),
                };
                let bytes = challenge.encode().map_err(ReadError::Invalid)?;
                wh.write_all(&bytes).await.map_err(ReadError::Io)?;
                match read_frame(&mut r, MAX_HANDSHAKE_FRAME).await? {
                    Frame::Proof { mac } if s.check_connector(from, my_id, &na, &nonce, &mac) => {
                        Ok(Frame::Hello { from, to })
                    }
                    Frame::Proof { .. } => Err(ReadError::Invalid(format!(
                        "server {from} failed the quorum secret challenge"
                    ))),
                    _ => Err(ReadError::Invalid("no proof after the challenge".into())),
                }
            }
            (Ok(Frame::Hello { from, .. }), Some(_)) => Err(ReadError::Invalid(format!(
                "an unauthenticated hello (as server {from}) but this ensemble requires the \
                 quorum secret"
            ))),
            (Ok(Frame::AuthHello { from, .. }), None) => Err(ReadError::Invalid(format!(
                "server {from} authenticates with a quorum secret but this server has none \
                 (keeperd.quorum.secretFile)"
            ))),
            (other, _) => other,
        }
    };
    let from = match tokio::time::timeout(HELLO_TIMEOUT, handshake).await {
        Ok(Ok(Frame::Hello { from, to })) if is_peer(from, to) => from,
        Ok(Ok(Frame::Hello { from, to })) => {
            tracing::warn!(
                "peer connection from {remote}: hello from {from} to {to}, but this is node \
                 {my_id} and {from} is not a known peer; disconnecting"
            );
            return;
        }
        Ok(Ok(_)) => {
            tracing::warn!(
                "peer connection from {remote} did not start with a hello; disconnecting"
            );
            return;
        }
        Ok(Err(ReadError::Closed)) => return,
        Ok(Err(ReadError::Io(e))) => {
            tracing::debug!("peer connection from {remote}: {e}");
            return;
        }
        Ok(Err(ReadError::Invalid(why))) => {
            tracing::warn!("peer connection from {remote}: {why}; disconnecting");
            return;
        }
        Err(_) => {
            tracing::warn!("peer connection from {remote} sent no hello in time; disconnecting");
            return;
        }
    };
    tracing::info!("peer {from} connected from {remote}");
    // Nothing more is written here; the half stays open (dropping it would send a FIN).
    let _write_half = wh;
    *live.lock().expect("live peers").entry(from).or_default() += 1;
    serve_peer(my_id, from, remote, &mut r, &tx).await;
    let last = {
        let mut live = live.lock().expect("live peers");
        let n = live.entry(from).or_default();
        *n = n.saturating_sub(1);
        *n == 0
    };
    // The node learns at once that this peer's (last) connection is gone: when it was the
    // leader, the followers need not wait for an election timeout to notice (see `node`).
    if last {
        let _ = tx.send((from, PeerMsg::Closed)).await;
    }
}

/// Reads an authenticated peer's frames until EOF or a violation.
async fn serve_peer<R: AsyncReadExt + Unpin>(
    my_id: u64,
    from: u64,
    remote: SocketAddr,
    r: &mut R,
    tx: &mpsc::Sender<(u64, PeerMsg)>,
) {
    loop {
        let msg = match read_frame(r, MAX_FRAME).await {
            Ok(Frame::Msg(m)) => m,
            Ok(
                Frame::Hello { .. }
                | Frame::AuthHello { .. }
                | Frame::Challenge { .. }
                | Frame::Proof { .. },
            ) => {
                tracing::warn!(
                    "peer {from} ({remote}) sent a second handshake frame; disconnecting"
                );
                return;
            }
            Err(ReadError::Closed) => {
                tracing::info!("peer {from} ({remote}) disconnected");
                return;
            }
            Err(ReadError::Io(e)) => {
                tracing::info!("peer {from} ({remote}): {e}");
                return;
            }
            Err(ReadError::Invalid(why)) => {
                tracing::warn!(
                    "peer {from} ({remote}) sent an invalid frame ({why}); disconnecting"
                );
                return;
            }
        };
        let bad = match &msg {
            PeerMsg::Raft(m) if m.from != from || m.to != my_id => Some(format!(
                "a raft message from {} to {} on its connection",
                m.from, m.to
            )),
            PeerMsg::Forward(f) if f.origin != from => {
                Some(format!("a forward with origin {}", f.origin))
            }
            _ => None,
        };
        if let Some(why) = bad {
            tracing::warn!("peer {from} ({remote}) sent {why}; disconnecting");
            return;
        }
        if tx.send((from, msg)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(f: Frame) {
        let wire = f.encode().expect("encode");
        let len = u32::from_be_bytes(wire[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(len, wire.len() - 4);
        assert_eq!(Frame::decode_body(&wire[4..]).expect("decode"), f);
    }

    #[test]
    fn frames_roundtrip() {
        roundtrip(Frame::Hello { from: 1, to: 3 });
        roundtrip(Frame::AuthHello {
            from: 1,
            to: 3,
            nonce: [7; 32],
        });
        roundtrip(Frame::Challenge {
            nonce: [1; 32],
            mac: [2; 32],
        });
        roundtrip(Frame::Proof { mac: [9; 32] });
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 2;
        m.to = 1;
        m.term = 7;
        m.index = 42;
        roundtrip(Frame::Msg(PeerMsg::Raft(m)));
        roundtrip(Frame::Msg(PeerMsg::Forward(Forward {
            origin: 2,
            incarnation: u64::MAX,
            seq: 9,
            txn: vec![1, 2, 3],
        })));
        roundtrip(Frame::Msg(PeerMsg::Touch(vec![-1, 0, i64::MAX])));
        roundtrip(Frame::Msg(PeerMsg::Touch(vec![])));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Member)));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![1, 2, 3],
            learners: vec![4],
            imported: 0,
        })));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![1, 2, 3],
            learners: vec![],
            imported: 0x5_0000_0123,
        })));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![],
            learners: vec![],
            imported: 0,
        })));
    }

    #[test]
    fn invalid_bodies_are_errors() {
        for (body, why) in [
            (&[][..], "empty"),
            (&[2, 1][..], "version"),
            (&[1][..], "type"),
            (&[1, 200][..], "unknown"),
            (&[1, 1, 0, 0][..], "hello"),
            (&[1, 2, 0xff, 0xff, 0xff][..], "raft"),
            (&[1, 3, 0, 0, 0, 1][..], "truncated"),
            (&[1, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1][..], "touch"),
            (&[1, 4, 0xff, 0xff, 0xff, 0xff][..], "touch"),
            (&[1, 5][..], "probe"),
            (&[1, 5, 0, 0, 0, 0, 1][..], "probe"),
            (&[1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9][..], "probe"),
            (&[1, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0][..], "probe"),
        ] {
            let e = Frame::decode_body(body).expect_err(why);
            assert!(e.contains(why), "{body:?}: {e}");
        }
    }

    #[tokio::test]
    async fn read_frame_checks_the_length_before_reading() {
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 1];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        let mut r: &[u8] = &[0, 0, 0, 1, 1];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        // Cut inside a frame, and a clean end between frames.
        let mut r: &[u8] = &[0, 0, 0, 18, 1, 1, 0, 0];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        let mut r: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Closed)
        ));
        let wire = Frame::Hello { from: 1, to: 2 }.encode().expect("encode");
        let mut r: &[u8] = &wire;
        assert_eq!(
            read_frame(&mut r, MAX_FRAME).await.expect("hello"),
            Frame::Hello { from: 1, to: 2 }
        );
    }

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
