//! One client connection: four-letter-word detection, the handshake, then three cooperating
//! tasks — the reader (this task, `reader`), the responder (`responder`, answers in request
//! order) and the writer (`writer`, the only one touching the socket's write half). This file
//! holds the handshake, the wiring of the three, and taking over / releasing the session.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::stats::ConnStats;
use super::{fourlw, now_ms, session, ConnHandle, Out, Shared};
use crate::consensus::Proposer;
use crate::proto::connect::{decode_connect, encode_connect_response, ConnectResponse};
use crate::proto::frame::check_frame;
use crate::proto::request::Request;
use crate::proto::response::Response;
use crate::proto::{Id, ZkError};
use crate::tree::{Applied, Txn};

mod held;
pub(crate) use held::HeldReads;
mod reader;
pub(super) use reader::digest_id;
mod responder;
mod writer;

use self::reader::Reader;
use self::responder::respond_loop;
use self::writer::write_loop;

/// A connection's requests in flight, as its reader and responder count them.
#[derive(Default)]
struct InFlight {
    /// Writes proposed and not yet answered.
    writes: AtomicUsize,
    /// Held reads (`held`) not yet answered.
    held: AtomicUsize,
}

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
    /// A read queued behind a write of its session, carried by the next write
    /// (`held`): executed by the applier before that write, or here in its turn.
    Held {
        xid: i32,
        op: i32,
        read: Arc<held::HeldRead>,
        t0: Instant,
    },
    /// Answered when the consensus layer hands back its outcome.
    Write {
        xid: i32,
        op: i32,
        rx: oneshot::Receiver<Applied>,
        t0: Instant,
        close_after: bool,
    },
    /// An answer known at decode time (errors, auth, sasl).
    Reply {
        xid: i32,
        op: i32,
        result: Result<Response, ZkError>,
        t0: Instant,
        close_after: bool,
    },
}

/// A client's byte stream, plain TCP or TLS, and how it splits into the reader's and the
/// writer's halves (TCP's halves need no lock; TLS's share the session through one).
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn into_halves(self) -> (Self::Read, Self::Write);
}

impl ClientStream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// Serves one client connection. `tls_ids` are the identities its TLS handshake proved (a
/// verified client certificate's `x509` id, and `super` for the x509 super user); they join
/// the `ip` id every connection has.
pub async fn run<S: ClientStream>(
    shared: Arc<Shared>,
    proposer: Proposer,
    mut stream: S,
    remote: SocketAddr,
    conn_id: u64,
    tls_ids: Vec<Id>,
) {
    let max = shared.config().jute_maxbuffer;
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

    // The certificate's ids, proven during the TLS handshake, then the ip id added with the
    // session (whoami and `auth` ACLs list them in ZooKeeper's hash-set order,
    // `tree::zk_auth_order`).
    let ids: Vec<Id> = tls_ids
        .into_iter()
        .chain(std::iter::once(Id::new("ip", remote.ip().to_string())))
        .collect();
    let cfg = shared.config();
    // The log learns that this server holds the session's connection, and with which
    // identities, before the client hears of the session: the writes it then submits are
    // applied against these (`Txn::Owned`).
    let record_auth = |session_id: i64| {
        proposer.propose(Txn::SessionAuth {
            session_id,
            server: shared.node_id(),
            ids: ids.clone(),
        })
    };
    let mut auth_rx = None;
    let (session_id, timeout_ms) = if connect.session_id == 0 {
        let timeout = connect.timeout_ms.clamp(
            cfg.min_session_timeout_ms as i32,
            cfg.max_session_timeout_ms as i32,
        );
        let session_id = shared.ids().next_id();
        let Ok(rx) = proposer.propose(Txn::CreateSession {
            session_id,
            timeout_ms: timeout,
        }) else {
            return;
        };
        auth_rx = record_auth(session_id).ok();
        if rx.await.is_err() {
            return;
        }
        // Once per session at info, as ZooKeeper's "Established session" (expiry and the
        // client's close are logged at info too).
        info!(%remote, session = format_args!("0x{:x}", session_id), timeout, "session created");
        (session_id, timeout)
    } else {
        let (known, imported) = {
            let state = shared.state();
            (
                state.tree.session(connect.session_id),
                state.tree.session_is_imported(connect.session_id),
            )
        };
        // A session imported from ZooKeeper's data: its client holds the password
        // ZooKeeper derived; it keeps that password for the life of the session.
        let valid = known.is_some()
            && (connect.passwd[..] == session::password(shared.secret(), connect.session_id)[..]
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

    let recorded = match auth_rx.take() {
        Some(rx) => Ok(rx),
        None => record_auth(session_id),
    };
    let recorded = match recorded {
        Ok(rx) => rx.await.ok().map(|a| a.result),
        Err(_) => None,
    };
    match recorded {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            info!(%remote, session = format_args!("0x{:x}", session_id), error = ?e,
                "session ended while attaching: closing");
            return;
        }
        None => {
            info!(%remote, session = format_args!("0x{:x}", session_id),
                "could not record the connection's identities (no leader?): closing");
            return;
        }
    }
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
        auth: std::sync::Mutex::new(Arc::new(ids)),
        backlog: AtomicUsize::new(0),
        drained: tokio::sync::Notify::new(),
        quit: tokio::sync::Notify::new(),
    });
    take_over_session(&shared, handle.clone());
    shared.liveness().touch(session_id, Instant::now());

    let mut hello = BytesMut::new();
    encode_connect_response(
        &mut hello,
        &ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id,
            passwd: session::password(shared.secret(), session_id).to_vec(),
            read_only: connect.read_only.map(|_| false),
        },
    );
    handle.send_frame(hello.freeze());

    let (read_half, write_half) = stream.into_halves();
    let (closed_tx, closed_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(write_loop(write_half, out_rx, closed_tx, handle.clone()));
    let (item_tx, item_rx) = mpsc::unbounded_channel::<Item>();
    let in_flight = Arc::new(InFlight::default());
    let responder = tokio::spawn(respond_loop(
        shared.clone(),
        handle.clone(),
        stats.clone(),
        item_rx,
        in_flight.clone(),
    ));

    let mut reader = Reader {
        handle: handle.clone(),
        shared: shared.clone(),
        proposer,
        session_id,
        stats,
        items: item_tx,
        in_flight,
        read_barrier: None,
        held: Vec::new(),
        sasl: None,
    };
    tokio::select! {
        _ = reader.read_loop(read_half, buf) => {}
        _ = closed_rx => {}
        _ = handle.quit.notified() => {}
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
    let mut state = shared.state_mut();
    let mut conns = shared.conns();
    if let Some(old) = conns.by_session.insert(handle.session_id, handle.conn_id) {
        if let Some(old) = conns.all.remove(&old) {
            let _ = old.out.send(Out::Close);
        }
        state.watches.remove_session(handle.session_id);
    }
    conns.all.insert(handle.conn_id, handle);
}

fn release_session(shared: &Shared, session_id: i64, conn_id: u64) {
    let mut state = shared.state_mut();
    let mut conns = shared.conns();
    conns.all.remove(&conn_id);
    if conns.by_session.get(&session_id) == Some(&conn_id) {
        conns.by_session.remove(&session_id);
        state.watches.remove_session(session_id);
    }
}
