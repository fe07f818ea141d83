//! The inbound side: the accept loop and one task per accepted connection, which must say
//! a valid hello (and authenticate) within `HELLO_TIMEOUT` with small frames only, then
//! hands every decoded frame to the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::frame::{read_frame, Frame, ReadError, MAX_FRAME};
use super::{Known, Live, PeerRead, PeerSecurity, PeerWrite, HELLO_TIMEOUT, MAX_HANDSHAKE_FRAME};
use crate::consensus::peer::PeerMsg;
use crate::consensus::peer_auth;

/// Inbound connections served at once (a reconnecting peer briefly has two).
const MAX_INBOUND: usize = 64;

pub(super) async fn accept_loop(
    my_id: u64,
    listener: TcpListener,
    known: Known,
    tx: mpsc::Sender<(u64, PeerMsg)>,
    security: PeerSecurity,
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
            security.clone(),
            live.clone(),
        ));
    }
}

/// With `sslQuorum`, the TLS handshake: the peer must present a certificate the trust store
/// vouches for before a byte of it is read as a frame. Returns the halves and the peer's
/// certificate; None (logged) when the handshake fails.
async fn accept_tls(
    security: &PeerSecurity,
    stream: TcpStream,
    remote: SocketAddr,
) -> Option<(PeerRead, PeerWrite, Option<Vec<u8>>)> {
    let Some(tls) = &security.tls else {
        let (r, w) = stream.into_split();
        return Some((Box::new(r), Box::new(w), None));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
    match tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => {
            let cert = crate::tls::peer_leaf(s.get_ref().1);
            let (r, w) = tokio::io::split(s);
            Some((Box::new(r), Box::new(w), cert))
        }
        Ok(Err(e)) => {
            tracing::warn!(
                "peer connection from {remote}: TLS handshake failed ({e}); disconnecting"
            );
            None
        }
        Err(_) => {
            tracing::warn!("peer connection from {remote}: no TLS handshake in time");
            None
        }
    }
}

/// Serves one accepted connection: TLS (with sslQuorum), hello first, then frames until
/// EOF or a violation.
async fn inbound(
    my_id: u64,
    stream: TcpStream,
    remote: SocketAddr,
    known: Known,
    tx: mpsc::Sender<(u64, PeerMsg)>,
    security: PeerSecurity,
    live: Live,
) {
    let Some((rh, mut wh, cert)) = accept_tls(&security, stream, remote).await else {
        return;
    };
    let secret = &security.secret;
    let mut r = BufReader::with_capacity(256 << 10, rh);
    let is_peer = |from: u64, to: u64| {
        to == my_id && from != my_id && known.read().is_ok_and(|k| k.contains(&from))
    };
    let handshake = async {
        let first = read_frame(&mut r, MAX_HANDSHAKE_FRAME).await;
        match (first, secret) {
            (Ok(Frame::AuthHello { from, to, nonce }), Some(s)) if is_peer(from, to) => {
                let na = peer_auth::nonce();
                let challenge = Frame::Challenge {
                    nonce: na,
                    mac: s.acceptor_mac(my_id, from, &nonce, &na),
                };
                let bytes = challenge
                    .encode()
                    .map_err(|e| ReadError::Invalid(e.to_string()))?;
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
    // The certificate must belong to the server the peer says it is (tls::quorum).
    if let Some(tls) = &security.tls {
        let cert = cert.as_deref().unwrap_or_default();
        if let Err(why) = tls.check_peer(cert, from, Some(remote.ip())) {
            tracing::warn!("peer connection from {remote} as server {from}: {why}; disconnecting");
            return;
        }
    }
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
