//! A connection's reader: decodes request frames in arrival order, answers what is known at
//! decode time (errors, addauth), proposes writes and queues everything for the responder,
//! holding back a write until the reads queued before it have executed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::held::{can_hold, HeldRead, HeldReads, HELD_MAX};
use super::{InFlight, Item};
use crate::consensus::{BeforeApply, Proposer};
use crate::proto::frame::check_frame;
use crate::proto::request::{decode_request, Decoded, Request};
use crate::proto::response::Response;
use crate::proto::{Id, ZkError};
use crate::server::sasl::{self, digest_md5::DigestMd5Server, Answer};
use crate::server::stats::ConnStats;
use crate::server::{now_ms, ConnHandle, Shared};
use crate::tree::Txn;

pub(super) struct Reader {
    pub(super) handle: Arc<ConnHandle>,
    pub(super) shared: Arc<Shared>,
    pub(super) proposer: Proposer,
    pub(super) session_id: i64,
    pub(super) stats: Arc<ConnStats>,
    pub(super) items: mpsc::UnboundedSender<Item>,
    /// This connection's writes and held reads not yet answered.
    pub(super) in_flight: Arc<InFlight>,
    /// Set when a read is queued behind writes in flight: the next write is proposed only
    /// after that read has executed, so the read sees exactly the writes sent before it
    /// (ZooKeeper's per-session ordering), not a later one applied in the meantime.
    pub(super) read_barrier: Option<oneshot::Receiver<()>>,
    /// Reads held since the last write (`held`): the next write carries them.
    pub(super) held: Vec<Arc<HeldRead>>,
    /// This connection's SASL exchange, from its first sasl request on.
    pub(super) sasl: Option<DigestMd5Server>,
}

impl Reader {
    pub(super) async fn read_loop<R: AsyncRead + Unpin>(&mut self, mut half: R, mut buf: BytesMut) {
        let max = self.shared.config().jute_maxbuffer;
        // globalOutstandingLimit, per connection: no request is read while this many of
        // the connection's are unanswered, nor while its replies pile up unread
        // (`ConnHandle::backlog`). (ZooKeeper counts it over the whole server; per
        // connection, one client that never reads cannot hold back the others.)
        let limit = self.shared.config().global_outstanding_limit.max(1) as usize;
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
        shared.stats().packets_received.fetch_add(1, Relaxed);
        shared.stats().outstanding.fetch_add(1, Relaxed);
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
                if let Some(keep_reading) = self.enforce(xid, op, t0) {
                    return keep_reading;
                }
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
        if let Some(keep_reading) = self.enforce(xid, op, t0) {
            return keep_reading;
        }
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
                let result = self.authenticate(&scheme, &auth).map(|()| Response::Empty);
                let ok = result.is_ok();
                self.push(Item::Reply {
                    xid,
                    op,
                    result,
                    t0,
                    close_after: !ok,
                }) && ok
            }
            Request::Sasl { token: None } => {
                // ZooKeeper's processSasl fails on a null token and the connection closes
                // without an answer.
                debug!(
                    session = format_args!("0x{:x}", self.session_id),
                    "sasl request with a null token: closing"
                );
                self.shared.stats().outstanding.fetch_sub(1, Relaxed);
                self.stats.queued.fetch_sub(1, Relaxed);
                false
            }
            Request::Sasl { token: Some(token) } => {
                let answer = sasl::step(
                    &self.shared.config().client_auth,
                    &mut self.sasl,
                    &token,
                    self.session_id,
                );
                let (result, ok) = match answer {
                    Answer::Token(token) => (Ok(Response::Sasl { token }), true),
                    Answer::Authenticated { token, ids } => {
                        let mut all = self.auth().as_ref().clone();
                        for id in ids {
                            push_unique(&mut all, id);
                        }
                        let ok = self.set_auth(all);
                        (Ok(Response::Sasl { token: Some(token) }), ok)
                    }
                    Answer::Failed(e) => (Err(e), false),
                };
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
                tracing::info!(
                    session = format_args!("0x{:x}", self.session_id),
                    "session closed by the client"
                );
                let txn = Txn::CloseSession {
                    session_id: self.session_id,
                };
                self.write(xid, op, t0, txn, true).await;
                false
            }
            Request::Reconfig(request) => {
                // ZooKeeper refuses reconfig before anything else when reconfigEnabled is
                // off, and a standalone server cannot reconfigure at all.
                let refuse = if !self.shared.config().reconfig_enabled {
                    Some(ZkError::ReconfigDisabled)
                } else if !self.shared.config().is_distributed() {
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
                    auth: vec![],
                    request,
                    // ZooKeeper keeps at least 2 voters while standaloneEnabled=true.
                    min_voters: 1 + u32::from(self.shared.config().standalone_enabled),
                    view: None,
                };
                self.write(xid, op, t0, txn, false).await
            }
            req if req.is_write() => {
                let txn = Txn::Client {
                    session_id: self.session_id,
                    time_ms: now_ms(),
                    auth: vec![],
                    request: req,
                };
                self.write(xid, op, t0, txn, false).await
            }
            req => {
                let writing = self.in_flight.writes.load(Relaxed) > 0;
                if writing
                    && can_hold(&req, self.shared.config().linearizable_reads)
                    && self.in_flight.held.load(Relaxed) < HELD_MAX
                {
                    self.in_flight.held.fetch_add(1, Relaxed);
                    let read = Arc::new(HeldRead::new(req, self.auth()));
                    self.held.push(read.clone());
                    return self.push(Item::Held { xid, op, read, t0 });
                }
                let executed = if writing {
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

    /// Proposes a write once the reads queued before it that are not held have executed,
    /// carrying the held ones (`held`), and queues its answer in order (closing the
    /// connection after it when `close_after`). False when the log no longer accepts
    /// entries.
    /// The write goes to the log as this server's, for its session (`Txn::Owned`): it is
    /// applied against the identities recorded for the connection (`set_auth`).
    async fn write(&mut self, xid: i32, op: i32, t0: Instant, txn: Txn, close_after: bool) -> bool {
        self.wait_for_reads().await;
        self.in_flight.writes.fetch_add(1, Relaxed);
        let txn = Txn::Owned {
            server: self.shared.node_id(),
            txn: Box::new(txn),
        };
        let before = (!self.held.is_empty())
            .then(|| Box::new(HeldReads(std::mem::take(&mut self.held))) as BeforeApply);
        let Ok(rx) = self.proposer.propose_after(txn, before) else {
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
    /// The connection's identities are now `ids`: here for its reads and watches, and in
    /// the log for its writes, which follow in the log in order (`Txn::SessionAuth`). If the
    /// log does not take them (no leader, the session ended) the connection is closed: the
    /// client reconnects and authenticates again. False when the log refused at once.
    fn set_auth(&mut self, ids: Vec<Id>) -> bool {
        *self.handle.auth() = Arc::new(ids.clone());
        let Ok(rx) = self.proposer.propose(Txn::SessionAuth {
            session_id: self.session_id,
            server: self.shared.node_id(),
            ids,
        }) else {
            return false;
        };
        let handle = self.handle.clone();
        tokio::spawn(async move {
            if !matches!(rx.await, Ok(crate::tree::Applied { result: Ok(_), .. })) {
                warn!(
                    session = format_args!("0x{:x}", handle.session_id),
                    "the connection's new identities were not recorded: closing"
                );
                let _ = handle.out.send(crate::server::Out::Close);
            }
        });
        true
    }

    fn auth(&self) -> Arc<Vec<Id>> {
        self.handle.auth().clone()
    }

    /// Enforced authentication (`enforce.auth.*`, `sessionRequireClientSASLAuth`): a request
    /// other than auth and sasl from a connection without an identity of an enforced scheme
    /// is answered SESSIONCLOSEDREQUIRESASLAUTH and the connection closes (the session
    /// stays until it expires), as ZooKeeper's AuthenticationHelper does. Some(whether to
    /// keep reading) when refused, None to go on with the request.
    fn enforce(&self, xid: i32, op: i32, t0: Instant) -> Option<bool> {
        if !sasl::refused(&self.shared.config().client_auth, op, &self.auth()) {
            return None;
        }
        warn!(
            session = format_args!("0x{:x}", self.session_id),
            op, "request before authentication with an enforced scheme: closing the connection"
        );
        self.push(Item::Reply {
            xid,
            op,
            result: Err(ZkError::SessionClosedRequireSaslAuth),
            t0,
            close_after: true,
        });
        Some(false)
    }

    fn push(&self, item: Item) -> bool {
        self.items.send(item).is_ok()
    }

    /// addauth. digest: `user:password` becomes digest:user:base64(sha1(user:password)), and
    /// super when it matches superDigest. x509: OK on a connection whose TLS handshake
    /// verified a client certificate. Other schemes are not supported yet (AUTHFAILED).
    fn authenticate(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ZkError> {
        match scheme {
            "digest" => {
                let text = std::str::from_utf8(auth).map_err(|_| ZkError::AuthFailed)?;
                let id = digest_id(text).ok_or(ZkError::AuthFailed)?;
                let mut ids = self.auth().as_ref().clone();
                if self.shared.config().super_digest.as_deref() == Some(id.as_str()) {
                    push_unique(&mut ids, Id::new("super", ""));
                }
                push_unique(&mut ids, Id::new("digest", id));
                if self.set_auth(ids) {
                    Ok(())
                } else {
                    Err(ZkError::ConnectionLoss)
                }
            }
            // The certificate of the TLS handshake is the credential (ZooKeeper's
            // X509AuthenticationProvider ignores the auth data); its ids are already there.
            "x509" if self.auth().iter().any(|id| id.scheme == "x509") => Ok(()),
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
