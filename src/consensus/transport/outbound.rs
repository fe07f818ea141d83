//! The outbound side: one connection task per peer that dials (with backoff), says hello
//! (and authenticates with the quorum secret), then drains the peer's queue.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::frame::{read_frame, Frame, ReadError};
use super::{Outgoing, PeerRead, PeerSecurity, PeerWrite, HELLO_TIMEOUT, MAX_HANDSHAKE_FRAME};
use crate::consensus::peer::PeerReport;
use crate::consensus::peer_auth::{self, QuorumSecret};
use crate::tls::quorum::QuorumTls;

/// Dial timeout and backoff bounds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long writing `bytes` may take before the peer counts as stuck.
fn write_timeout(bytes: usize) -> Duration {
    Duration::from_secs(5) + Duration::from_millis((bytes >> 20) as u64 * 100)
}

/// The connection task for one peer: dial (with backoff), hello, then drain the queue.
pub(super) async fn outbound(
    my_id: u64,
    peer: u64,
    addr: String,
    mut rx: mpsc::Receiver<Outgoing>,
    reports: Arc<Mutex<Vec<PeerReport>>>,
    security: PeerSecurity,
) {
    let secret = &security.secret;
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
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map(|r| r.and_then(not_to_itself));
        let stream = match connected {
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
        let result: io::Result<()> = async {
            let (rh, wh) = match &security.tls {
                None => {
                    let (r, w) = stream.into_split();
                    (Box::new(r) as PeerRead, Box::new(w) as PeerWrite)
                }
                Some(tls) => connect_tls(tls, &addr, peer, stream).await?,
            };
            let mut r = BufReader::with_capacity(256, rh);
            let mut w = BufWriter::with_capacity(256 << 10, wh);
            match secret {
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

/// With `sslQuorum`: the TLS handshake with `peer` at `addr`, whose certificate must chain
/// to the trust store (and name its host, with hostname verification) and belong to
/// server `peer` (`QuorumTls::check_peer`). Nothing is sent before it passes.
async fn connect_tls(
    tls: &QuorumTls,
    addr: &str,
    peer: u64,
    stream: TcpStream,
) -> io::Result<(PeerRead, PeerWrite)> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let name = QuorumTls::server_name(host).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host} is not a name TLS can verify"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
    let s = tokio::time::timeout(HELLO_TIMEOUT, connector.connect(name, stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let cert = crate::tls::peer_leaf(s.get_ref().1).unwrap_or_default();
    tls.check_peer(&cert, peer, None)
        .map_err(|why| io::Error::new(io::ErrorKind::PermissionDenied, why))?;
    let (r, w) = tokio::io::split(s);
    Ok((Box::new(r), Box::new(w)))
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
    w.write_all(&hello.encode().map_err(|e| invalid(e.to_string()))?)
        .await?;
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
    w.write_all(&proof.encode().map_err(|e| invalid(e.to_string()))?)
        .await?;
    w.flush().await
}

/// Frames that may not have reached `peer`: a snapshot among them must be reported (raft-rs
/// otherwise waits for its acknowledgement forever).
fn lost(peer: u64, batch: &[Outgoing], report: &impl Fn(PeerReport)) {
    if batch.iter().any(|f| f.snapshot) {
        report(PeerReport::SnapshotFailed(peer));
    }
}

/// A connection to a local port that nothing listens on can meet itself: when the kernel
/// happens to pick that very port as the source, TCP's simultaneous open connects the socket
/// to itself. It then holds the peer's quorum port, and the peer cannot bind it when it
/// starts. Such a connection is closed at once, as refused.
fn not_to_itself(s: TcpStream) -> io::Result<TcpStream> {
    if s.local_addr()? == s.peer_addr()? {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connected to itself: nothing listens there",
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::not_to_itself;

    #[tokio::test]
    async fn a_connection_to_itself_is_refused() {
        // A port nothing listens on, then a socket bound to it connecting to it: the
        // simultaneous open that a free ephemeral port can give by chance, made certain.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(addr).expect("bind");
        let selfie = sock.connect(addr).await.expect("self-connect");
        let err = not_to_itself(selfie).expect_err("a self-connection is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let to = listener.local_addr().expect("addr");
        let normal = tokio::net::TcpStream::connect(to).await.expect("connect");
        assert!(not_to_itself(normal).is_ok());
    }
}
