//! One client connection: four-letter-word detection, the handshake, then three cooperating
//! tasks — the reader (this task), the responder (answers in request order) and the writer
//! (the only one touching the socket's write half).

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::stats::{op_name_index, ConnStats};
use super::{fourlw, now_ms, session, ConnHandle, Out, Shared};
use crate::consensus::Proposer;
use crate::proto::connect::{decode_connect, encode_connect_response, ConnectResponse};
use crate::proto::frame::check_frame;
use crate::proto::opcode::xid;
use crate::proto::request::{decode_request, Decoded, ReadOp, Request};
use crate::proto::response::{encode_notification, encode_reply, OpResult, ReplyHeader, Response};
use crate::proto::{ClientInfo, Id, ZkError};
use crate::tree::{Applied, Txn};
use crate::watch::WatchKind;

/// A request waiting for its turn to be answered.
enum Item {
    /// Executed against the local tree when its turn comes.
    Read {
        xid: i32,
        op: i32,
        req: Request,
        auth: Arc<Vec<Id>>,
        t0: Instant,
        /// Fired once executed, when a later write of this session waits for it.
        executed: Option<oneshot::Sender<()>>,
    },
    /// Answered when the consensus layer hands back its outcome.
    Write {
        xid: i32,
        op: i32,
        rx: oneshot::Receiver<Applied>,
        t0: Instant,
        close_after: bool,
    },
    /// An answer known at decode time (errors, auth): no body, and the error if any.
    Reply {
        xid: i32,
        op: i32,
        result: Result<(), ZkError>,
        t0: Instant,
        close_after: bool,
    },
}

pub async fn run(
    shared: Arc<Shared>,
    proposer: Proposer,
    mut stream: TcpStream,
    remote: SocketAddr,
    conn_id: u64,
) {
    let max = shared.config.jute_maxbuffer;
    let mut buf = BytesMut::with_capacity(4096);

    // The first four bytes decide between a four-letter word and a ConnectRequest frame.
    while buf.len() < 4 {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    if let Some(word) = fourlw::parse(&buf[..4]) {
        let reply = fourlw::answer(&shared, word, remote);
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Read what the client sent after the word (`echo mntr | nc` sends a newline) before
        // closing: closing with unread input makes the kernel send RST, and the client may
        // lose the reply (ZooKeeper has this bug).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            let mut sink = [0u8; 256];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        return;
    }

    if !shared.serving() {
        // ZooKeeper closes client connections while it has no quorum; the client moves on
        // to another server of its connect string.
        debug!(%remote, "not serving (no leader known): closing");
        return;
    }
    let connect = loop {
        match check_frame(&buf, max) {
            Ok(Some(len)) => {
                let body = buf.split_to(4 + len);
                match decode_connect(&body[4..]) {
                    Ok(c) => break c,
                    Err(e) => {
                        warn!(%remote, error = %e, "bad ConnectRequest, closing");
                        return;
                    }
                }
            }
            Ok(None) => match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            Err(e) => {
                warn!(%remote, error = %e, "Len error in handshake, closing");
                return;
            }
        }
    };

    let last_zxid = shared.last_zxid();
    if connect.last_zxid_seen > last_zxid {
        info!(
            %remote,
            client_zxid = format_args!("0x{:x}", connect.last_zxid_seen),
            our_zxid = format_args!("0x{:x}", last_zxid),
            "refusing session request: client has seen a newer zxid, it must try another server"
        );
        return;
    }

    let cfg = &shared.config;
    let (session_id, timeout_ms) = if connect.session_id == 0 {
        let timeout = connect.timeout_ms.clamp(
            cfg.min_session_timeout_ms as i32,
            cfg.max_session_timeout_ms as i32,
        );
        let session_id = shared.ids.lock().expect("ids lock").next_id();
        let Ok(rx) = proposer.propose(Txn::CreateSession {
            session_id,
            timeout_ms: timeout,
        }) else {
            return;
        };
        if rx.await.is_err() {
            return;
        }
        debug!(%remote, session = format_args!("0x{:x}", session_id), timeout, "session created");
        (session_id, timeout)
    } else {
        let (known, imported) = {
            let state = shared.state.read().expect("state lock");
            (
                state.tree.session(connect.session_id),
                state.tree.session_is_imported(connect.session_id),
            )
        };
        // A session imported from ZooKeeper's data: its client holds the password
        // ZooKeeper derived; it keeps that password for the life of the session.
        let valid = known.is_some()
            && (connect.passwd[..] == session::password(&shared.secret, connect.session_id)[..]
                || imported && connect.passwd[..] == session::zk_password(connect.session_id)[..]);
        match known {
            Some(info) if valid => (info.session_id, info.timeout_ms),
            _ => {
                info!(%remote, session = format_args!("0x{:x}", connect.session_id),
                    "reconnect to an expired or unknown session (or bad password)");
                let mut out = BytesMut::new();
                encode_connect_response(
                    &mut out,
                    &ConnectResponse {
                        protocol_version: 0,
                        timeout_ms: 0,
                        session_id: 0,
                        passwd: vec![0; 16],
                        read_only: connect.read_only.map(|_| false),
                    },
                );
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    };

    let (out_tx, out_rx) = mpsc::unbounded_channel::<Out>();
    let stats = Arc::new(ConnStats::new(now_ms()));
    let handle = Arc::new(ConnHandle {
        conn_id,
        remote,
        session_id,
        timeout_ms,
        stats: stats.clone(),
        out: out_tx.clone(),
        closing: std::sync::atomic::AtomicBool::new(false),
        auth: std::sync::Mutex::new(Arc::new(vec![Id::new("ip", remote.ip().to_string())])),
        backlog: AtomicUsize::new(0),
        drained: tokio::sync::Notify::new(),
    });
    take_over_session(&shared, handle.clone());
    shared
        .liveness
        .lock()
        .expect("liveness lock")
        .touch(session_id, Instant::now());

    let mut hello = BytesMut::new();
    encode_connect_response(
        &mut hello,
        &ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: session::password(&shared.secret, session_id).to_vec(),
            read_only: connect.read_only.map(|_| false),
        },
    );
    handle.send_frame(hello.freeze());

    let (read_half, write_half) = stream.into_split();
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(write_loop(write_half, out_rx, closed_tx, handle.clone()));
    let (item_tx, item_rx) = mpsc::unbounded_channel::<Item>();
    let writes_in_flight = Arc::new(AtomicUsize::new(0));
    let responder = tokio::spawn(respond_loop(
        shared.clone(),
        handle.clone(),
        stats.clone(),
        item_rx,
        writes_in_flight.clone(),
    ));

    let mut reader = Reader {
        handle: handle.clone(),
        shared: shared.clone(),
        proposer,
        session_id,
        stats,
        items: item_tx,
        writes_in_flight: writes_in_flight.clone(),
        read_barrier: None,
    };
    tokio::select! {
        _ = reader.read_loop(read_half, buf) => {}
        _ = closed_rx => {}
    }
    // Let the responder finish what was already accepted, then close the socket.
    drop(reader);
    let _ = responder.await;
    let _ = out_tx.send(Out::Close);
    drop(out_tx);
    let _ = writer.await;
    release_session(&shared, session_id, conn_id);
    debug!(%remote, session = format_args!("0x{:x}", session_id), "connection closed");
}

/// Makes `handle` the session's connection, closing any previous one and dropping its
/// watches (the client re-sends them with setWatches).
fn take_over_session(shared: &Shared, handle: Arc<ConnHandle>) {
    let mut state = shared.state.write().expect("state lock");
    let mut conns = shared.conns.lock().expect("conns lock");
    if let Some(old) = conns.by_session.insert(handle.session_id, handle.conn_id) {
        if let Some(old) = conns.all.remove(&old) {
            let _ = old.out.send(Out::Close);
        }
        state.watches.remove_session(handle.session_id);
    }
    conns.all.insert(handle.conn_id, handle);
}

fn release_session(shared: &Shared, session_id: i64, conn_id: u64) {
    let mut state = shared.state.write().expect("state lock");
    let mut conns = shared.conns.lock().expect("conns lock");
    conns.all.remove(&conn_id);
    if conns.by_session.get(&session_id) == Some(&conn_id) {
        conns.by_session.remove(&session_id);
        state.watches.remove_session(session_id);
    }
}

async fn write_loop(
    half: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    closed: oneshot::Sender<()>,
    handle: Arc<ConnHandle>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, half);
    // A client that stops reading for longer than twice its session timeout is gone as far
    // as ZooKeeper is concerned (its session expires); the connection is dropped rather
    // than held open with its backlog.
    let stall = std::time::Duration::from_millis(2 * handle.timeout_ms.max(1000) as u64);
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Out::Frame(b) => {
                    let ok = matches!(
                        tokio::time::timeout(stall, w.write_all(&b)).await,
                        Ok(Ok(()))
                    );
                    handle.backlog.fetch_sub(b.len(), Relaxed);
                    handle.drained.notify_waiters();
                    if !ok {
                        break 'outer;
                    }
                }
                Out::Close => {
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        if !matches!(tokio::time::timeout(stall, w.flush()).await, Ok(Ok(()))) {
            break;
        }
    }
    // Nothing more will drain: release whoever waits on the backlog (their frames now go
    // nowhere), so the responder can finish and the connection end.
    handle.backlog.store(0, Relaxed);
    handle.drained.notify_waiters();
    let _ = closed.send(());
}

struct Reader {
    handle: Arc<ConnHandle>,
    shared: Arc<Shared>,
    proposer: Proposer,
    session_id: i64,
    stats: Arc<ConnStats>,
    items: mpsc::UnboundedSender<Item>,
    /// This session's writes proposed and not yet answered.
    writes_in_flight: Arc<AtomicUsize>,
    /// Set when a read is queued behind writes in flight: the next write is proposed only
    /// after that read has executed, so the read sees exactly the writes sent before it
    /// (ZooKeeper's per-session ordering), not a later one applied in the meantime.
    read_barrier: Option<oneshot::Receiver<()>>,
}

impl Reader {
    async fn read_loop(&mut self, mut half: OwnedReadHalf, mut buf: BytesMut) {
        let max = self.shared.config.jute_maxbuffer;
        // globalOutstandingLimit, per connection: no request is read while this many of
        // the connection's are unanswered, nor while its replies pile up unread
        // (`ConnHandle::backlog`). (ZooKeeper counts it over the whole server; per
        // connection, one client that never reads cannot hold back the others.)
        let limit = self.shared.config.global_outstanding_limit.max(1) as usize;
        loop {
            loop {
                match check_frame(&buf, max) {
                    Ok(Some(len)) => {
                        let (stats, handle) = (&self.stats, &self.handle);
                        handle
                            .wait_until(|| {
                                (stats.queued.load(Relaxed) as usize) < limit
                                    && !handle.backlog_over_limit()
                            })
                            .await;
                        buf.advance(4);
                        let body = buf.split_to(len).freeze();
                        if !self.handle_frame(body).await {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(session = format_args!("0x{:x}", self.session_id), error = %e,
                            "Len error: closing connection");
                        return;
                    }
                }
            }
            match half.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Handles one request frame; false means stop reading (close requested or auth failed).
    async fn handle_frame(&mut self, body: Bytes) -> bool {
        let t0 = Instant::now();
        let shared = &self.shared;
        shared.stats.packets_received.fetch_add(1, Relaxed);
        shared.stats.outstanding.fetch_add(1, Relaxed);
        self.stats.received.fetch_add(1, Relaxed);
        self.stats.queued.fetch_add(1, Relaxed);
        shared.touch(self.session_id);

        let (header, decoded) = match decode_request(&body) {
            Ok(x) => x,
            Err(e) => {
                // Without a header there is no xid to answer: the stream is unusable.
                let xid = if body.len() >= 4 {
                    i32::from_be_bytes([body[0], body[1], body[2], body[3]])
                } else {
                    warn!(error = %e, "undecodable request, closing");
                    return false;
                };
                let op = if body.len() >= 8 {
                    i32::from_be_bytes([body[4], body[5], body[6], body[7]])
                } else {
                    0
                };
                debug!(error = %e, xid, op, "malformed request body");
                return self.push(Item::Reply {
                    xid,
                    op,
                    result: Err(ZkError::MarshallingError),
                    t0,
                    close_after: false,
                });
            }
        };
        let (xid, op) = (header.xid, header.op);
        self.stats.last_cxid.store(xid as i64, Relaxed);
        let req = match decoded {
            Decoded::Unknown => {
                return self.push(Item::Reply {
                    xid,
                    op,
                    result: Err(ZkError::Unimplemented),
                    t0,
                    close_after: false,
                })
            }
            Decoded::Request(r) => r,
        };
        match req {
            Request::Auth { scheme, auth, .. } => {
                let result = self.authenticate(&scheme, &auth);
                let ok = result.is_ok();
                self.push(Item::Reply {
                    xid,
                    op,
                    result,
                    t0,
                    close_after: !ok,
                }) && ok
            }
            Request::CloseSession => {
                self.handle.closing.store(true, Relaxed);
                let txn = Txn::CloseSession {
                    session_id: self.session_id,
                };
                self.write(xid, op, t0, txn, true).await;
                false
            }
            Request::Reconfig(request) => {
                // ZooKeeper refuses reconfig before anything else when reconfigEnabled is
                // off, and a standalone server cannot reconfigure at all.
                let refuse = if !self.shared.config.reconfig_enabled {
                    Some(ZkError::ReconfigDisabled)
                } else if !self.shared.config.is_distributed() {
                    Some(ZkError::Unimplemented)
                } else {
                    None
                };
                if let Some(err) = refuse {
                    return self.push(Item::Reply {
                        xid,
                        op,
                        result: Err(err),
                        t0,
                        close_after: false,
                    });
                }
                let txn = Txn::Reconfig {
                    session_id: self.session_id,
                    time_ms: now_ms(),
                    auth: self.auth().as_ref().clone(),
                    request,
                    // ZooKeeper keeps at least 2 voters while standaloneEnabled=true.
                    min_voters: 1 + u32::from(self.shared.config.standalone_enabled),
                    view: None,
                };
                self.write(xid, op, t0, txn, false).await
            }
            req if req.is_write() => {
                let txn = Txn::Client {
                    session_id: self.session_id,
                    time_ms: now_ms(),
                    auth: self.auth().as_ref().clone(),
                    request: req,
                };
                self.write(xid, op, t0, txn, false).await
            }
            req => {
                let executed = if self.writes_in_flight.load(Relaxed) > 0 {
                    let (tx, rx) = oneshot::channel();
                    self.read_barrier = Some(rx);
                    Some(tx)
                } else {
                    None
                };
                self.push(Item::Read {
                    xid,
                    op,
                    req,
                    auth: self.auth(),
                    t0,
                    executed,
                })
            }
        }
    }

    /// Proposes a write once the reads queued before it have executed, and queues its
    /// answer in order (closing the connection after it when `close_after`). False when
    /// the log no longer accepts entries.
    async fn write(&mut self, xid: i32, op: i32, t0: Instant, txn: Txn, close_after: bool) -> bool {
        self.wait_for_reads().await;
        self.writes_in_flight.fetch_add(1, Relaxed);
        let Ok(rx) = self.proposer.propose(txn) else {
            return false;
        };
        self.push(Item::Write {
            xid,
            op,
            rx,
            t0,
            close_after,
        })
    }

    /// Waits until the last read queued behind writes has executed (see `read_barrier`).
    async fn wait_for_reads(&mut self) {
        if let Some(rx) = self.read_barrier.take() {
            let _ = rx.await;
        }
    }

    /// The identities this connection has proven (ip always; digest/super after auth),
    /// kept on the handle, where watch delivery reads them too.
    fn auth(&self) -> Arc<Vec<Id>> {
        self.handle.auth.lock().expect("conn auth lock").clone()
    }

    fn push(&self, item: Item) -> bool {
        self.items.send(item).is_ok()
    }

    /// addauth. digest: `user:password` becomes digest:user:base64(sha1(user:password)), and
    /// super when it matches superDigest. Other schemes are not supported yet (AUTHFAILED).
    fn authenticate(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ZkError> {
        match scheme {
            "digest" => {
                let text = std::str::from_utf8(auth).map_err(|_| ZkError::AuthFailed)?;
                let id = digest_id(text).ok_or(ZkError::AuthFailed)?;
                let mut ids = self.auth().as_ref().clone();
                if self.shared.config.super_digest.as_deref() == Some(id.as_str()) {
                    push_unique(&mut ids, Id::new("super", ""));
                }
                push_unique(&mut ids, Id::new("digest", id));
                *self.handle.auth.lock().expect("conn auth lock") = Arc::new(ids);
                Ok(())
            }
            _ => {
                warn!(scheme, "authentication with an unsupported scheme");
                Err(ZkError::AuthFailed)
            }
        }
    }
}

fn push_unique(ids: &mut Vec<Id>, id: Id) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

/// `user:password` -> `user:base64(sha1("user:password"))` (DigestAuthenticationProvider).
pub fn digest_id(user_password: &str) -> Option<String> {
    use base64::Engine;
    let (user, _) = user_password.split_once(':')?;
    let hash = Sha1::digest(user_password.as_bytes());
    Some(format!(
        "{}:{}",
        user,
        base64::engine::general_purpose::STANDARD.encode(hash)
    ))
}

async fn respond_loop(
    shared: Arc<Shared>,
    handle: Arc<ConnHandle>,
    stats: Arc<ConnStats>,
    mut items: mpsc::UnboundedReceiver<Item>,
    writes_in_flight: Arc<AtomicUsize>,
) {
    let session_id = handle.session_id;
    let out = &handle.out;
    while let Some(item) = items.recv().await {
        let (xid, op, t0, close_after, zxid, result) = match item {
            Item::Reply {
                xid,
                op,
                result,
                t0,
                close_after,
            } => {
                let r = result.map(|()| Response::Empty);
                (xid, op, t0, close_after, shared.last_zxid(), r)
            }
            Item::Write {
                xid,
                op,
                rx,
                t0,
                close_after,
            } => {
                let outcome = rx.await;
                writes_in_flight.fetch_sub(1, Relaxed);
                match outcome {
                    Ok(applied) => (xid, op, t0, close_after, applied.zxid, applied.result),
                    // The log stopped (shutdown): the client sees ConnectionLoss.
                    Err(_) => break,
                }
            }
            Item::Read {
                xid,
                op,
                req,
                auth,
                t0,
                executed,
            } => {
                if matches!(req, Request::Sync { .. }) {
                    // In an ensemble, sync first catches this server up with everything the
                    // leader had committed (ReadIndex); standalone it is already current.
                    if let Some(raft) = shared.raft.get().filter(|_| shared.config.is_distributed())
                    {
                        if raft.read_barrier().await.is_err() {
                            break;
                        }
                    }
                }
                // A read's reply can be large (a 1 MB znode): none is built while this
                // connection's earlier replies are still unread.
                handle.wait_until(|| !handle.backlog_over_limit()).await;
                let (zxid, r) = execute_read(&shared, session_id, &auth, req, &handle);
                if let Some(done) = executed {
                    let _ = done.send(());
                }
                (xid, op, t0, false, zxid, r)
            }
        };
        let (err, body) = match result {
            Ok(b) => (None, b),
            Err(e) => (Some(e), Response::Empty),
        };
        let mut buf = BytesMut::with_capacity(128);
        encode_reply(&mut buf, &ReplyHeader::new(xid, zxid, err), &body);
        let sent = handle.send_frame(buf.freeze());

        let ms = t0.elapsed().as_millis() as u64;
        shared.stats.outstanding.fetch_sub(1, Relaxed);
        stats.queued.fetch_sub(1, Relaxed);
        handle.drained.notify_waiters();
        if sent {
            shared.stats.packets_sent.fetch_add(1, Relaxed);
            stats.sent.fetch_add(1, Relaxed);
        }
        if xid != xid::PING {
            shared.stats.latency.record(ms);
            stats.latency.record(ms);
        }
        stats.last_zxid.store(zxid, Relaxed);
        stats.last_response_ms.store(now_ms(), Relaxed);
        stats.last_latency_ms.store(ms, Relaxed);
        stats.last_op.store(op_name_index(op), Relaxed);
        if close_after {
            let _ = out.send(Out::Close);
            break;
        }
    }
}

/// The largest multiRead reply built (or jute.maxbuffer, if larger).
const MULTI_READ_REPLY_CAP: usize = 16 << 20;

/// Answers a request that does not go through the log, against the local tree. Watch
/// registration happens under the same lock as the read, so no change can slip between them.
fn execute_read(
    shared: &Shared,
    session_id: i64,
    auth: &[Id],
    req: Request,
    conn: &ConnHandle,
) -> (i64, Result<Response, ZkError>) {
    let needs_write = matches!(
        &req,
        Request::Exists { watch: true, .. }
            | Request::GetData { watch: true, .. }
            | Request::GetChildren { watch: true, .. }
            | Request::SetWatches(_)
            | Request::AddWatch { .. }
            | Request::RemoveWatches { .. }
    );
    if !needs_write {
        let state = shared.state.read().expect("state lock");
        let tree = &state.tree;
        let zxid = tree.last_zxid();
        let r = match req {
            Request::Ping => Ok(Response::Empty),
            Request::Exists { path, .. } => tree
                .exists(&path)
                .map(Response::Stat)
                .ok_or(ZkError::NoNode),
            Request::GetData { path, .. } => tree
                .get_data(&path, auth)
                .map(|(data, stat)| Response::GetData { data, stat }),
            Request::GetChildren {
                path, with_stat, ..
            } => tree.get_children(&path, auth).map(|(children, stat)| {
                if with_stat {
                    Response::GetChildren2 { children, stat }
                } else {
                    Response::GetChildren { children }
                }
            }),
            Request::GetAcl { path } => tree
                .get_acl(&path, auth)
                .map(|(acl, stat)| Response::GetAcl { acl, stat }),
            Request::Sync { path } => Ok(Response::Sync { path }),
            Request::MultiRead(ops) => {
                // The whole reply is built before it is sent: one multiRead of thousands of
                // getData of a 1 MB znode would otherwise take gigabytes. Past this size no
                // client could read it anyway (its jute.maxbuffer refuses the packet), so it
                // is refused as MarshallingError instead of built.
                let cap = shared.config.jute_maxbuffer.max(MULTI_READ_REPLY_CAP);
                let mut size = 0usize;
                let mut results = Vec::with_capacity(ops.len().min(1024));
                for op in ops {
                    let r = match op {
                        ReadOp::GetChildren { path } => match tree.get_children(&path, auth) {
                            Ok((children, _)) => {
                                size += children.iter().map(|c| c.len() + 4).sum::<usize>();
                                OpResult::GetChildren { children }
                            }
                            Err(e) => OpResult::Error { err: e.code() },
                        },
                        ReadOp::GetData { path } => match tree.get_data(&path, auth) {
                            Ok((data, stat)) => {
                                size += data.as_ref().map_or(0, |d| d.len()) + 80;
                                OpResult::GetData { data, stat }
                            }
                            Err(e) => OpResult::Error { err: e.code() },
                        },
                    };
                    size += 12;
                    if size > cap {
                        warn!(
                            session = format_args!("0x{:x}", session_id),
                            cap, "multiRead reply over the cap: refused (MarshallingError)"
                        );
                        return (zxid, Err(ZkError::MarshallingError));
                    }
                    results.push(r);
                }
                Ok(Response::Multi(results))
            }
            Request::GetEphemerals { prefix } => Ok(Response::GetEphemerals {
                ephemerals: tree.get_ephemerals(session_id, &prefix),
            }),
            Request::GetAllChildrenNumber { path } => tree
                .all_children_number(&path, auth)
                .map(|total| Response::GetAllChildrenNumber { total }),
            Request::WhoAmI => Ok(Response::WhoAmI(
                auth.iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: id.id.clone(),
                    })
                    .collect(),
            )),
            _ => Err(ZkError::Unimplemented),
        };
        return (zxid, r);
    }

    let mut guard = shared.state.write().expect("state lock");
    let state = &mut *guard;
    let zxid = state.tree.last_zxid();
    let r = match req {
        Request::Exists { path, .. } => {
            // exists registers a watch whether or not the node is there (NodeCreated).
            state.watches.add(session_id, &path, WatchKind::Data);
            state
                .tree
                .exists(&path)
                .map(Response::Stat)
                .ok_or(ZkError::NoNode)
        }
        Request::GetData { path, .. } => {
            let r = state.tree.get_data(&path, auth);
            if r.is_ok() {
                state.watches.add(session_id, &path, WatchKind::Data);
            }
            r.map(|(data, stat)| Response::GetData { data, stat })
        }
        Request::GetChildren {
            path, with_stat, ..
        } => {
            let r = state.tree.get_children(&path, auth);
            if r.is_ok() {
                state.watches.add(session_id, &path, WatchKind::Child);
            }
            r.map(|(children, stat)| {
                if with_stat {
                    Response::GetChildren2 { children, stat }
                } else {
                    Response::GetChildren { children }
                }
            })
        }
        Request::SetWatches(sw) => {
            for event in state.watches.set_watches(session_id, &sw, &state.tree) {
                let mut buf = BytesMut::with_capacity(64);
                encode_notification(&mut buf, &event);
                conn.send_frame(buf.freeze());
            }
            Ok(Response::Empty)
        }
        Request::AddWatch { path, mode } => {
            let kind = match mode {
                crate::proto::AddWatchMode::Persistent => WatchKind::Persistent,
                crate::proto::AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
            };
            state.watches.add(session_id, &path, kind);
            Ok(Response::ErrorCode(0))
        }
        Request::RemoveWatches {
            path,
            watcher_type,
            remove,
        } => {
            if state
                .watches
                .remove(session_id, &path, watcher_type, remove)
            {
                Ok(Response::Empty)
            } else {
                Err(ZkError::NoWatcher)
            }
        }
        _ => Err(ZkError::Unimplemented),
    };
    (zxid, r)
}
