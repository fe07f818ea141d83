//! The client side of `keeperctl bench`: one ZooKeeper session on a plain TCP connection,
//! framed with keeperd's own jute codec (`keeperd::proto::codec`). Requests are encoded into
//! an output buffer and written in batches, so a session keeps a window of requests in flight
//! on one connection; replies are matched to requests by xid, in order, as ZooKeeper answers
//! them (a reply whose xid is not the oldest outstanding one is a protocol error).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use keeperd::proto::codec::{
    decode_connect_response, decode_reply_header, decode_response, decode_watcher_event,
    encode_connect_request, encode_request, request_opcode,
};
use keeperd::proto::connect::ConnectRequest;
use keeperd::proto::opcode::xid;
use keeperd::proto::request::Request;
use keeperd::proto::response::Response;
use keeperd::proto::{OpCode, WatcherEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Replies larger than this are a protocol error (ZooKeeper's jute.maxbuffer default plus
/// headroom for a getChildren of many children).
const MAX_FRAME: usize = 64 << 20;
/// Bound on connecting and on the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one `call` (setup requests, churn, watch); the windowed loop has its own.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A session's reply to one request: the error code (0 for OK) and the decoded body.
pub struct Reply {
    pub err: i32,
    pub body: Response,
}

pub struct Conn {
    stream: TcpStream,
    inbuf: BytesMut,
    out: BytesMut,
    next_xid: i32,
    /// Opcode and xid of every request sent and not yet answered, oldest first.
    pending: VecDeque<(i32, OpCode)>,
    /// Notifications that arrived while waiting for a reply, with their arrival time.
    pub events: VecDeque<(WatcherEvent, Instant)>,
    pub session_id: i64,
}

impl Conn {
    /// Opens a new session on `addr` (host:port) with the given session timeout.
    pub async fn connect(addr: &str, session_timeout_ms: i32) -> Result<Conn, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr}: timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = Conn {
            stream,
            inbuf: BytesMut::with_capacity(64 << 10),
            out: BytesMut::with_capacity(16 << 10),
            next_xid: 1,
            pending: VecDeque::new(),
            events: VecDeque::new(),
            session_id: 0,
        };
        let mut hello = BytesMut::new();
        encode_connect_request(
            &mut hello,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: session_timeout_ms,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            },
        );
        conn.stream
            .write_all(&hello)
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        let frame = tokio::time::timeout(CONNECT_TIMEOUT, conn.next_frame())
            .await
            .map_err(|_| format!("handshake with {addr}: timed out"))??;
        let resp = decode_connect_response(&frame).map_err(|e| e.to_string())?;
        if resp.session_id == 0 || resp.timeout_ms <= 0 {
            return Err(format!("{addr} refused the session"));
        }
        conn.session_id = resp.session_id;
        Ok(conn)
    }

    /// Encodes `req` into the output buffer (sent by the next `flush`) and returns its xid.
    pub fn send(&mut self, req: &Request) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        encode_request(&mut self.out, xid, req);
        self.pending.push_back((xid, request_opcode(req)));
        xid
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out)
                .await
                .map_err(|e| format!("write: {e}"))?;
            self.out.clear();
        }
        Ok(())
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Reads more bytes from the socket; cancel-safe (no bytes are lost when a `select!`
    /// drops it).
    pub async fn fill(&mut self) -> Result<(), String> {
        let n = self
            .stream
            .read_buf(&mut self.inbuf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        Ok(())
    }

    /// The next whole frame body already buffered, if any.
    fn take_frame(&mut self) -> Result<Option<BytesMut>, String> {
        match keeperd::proto::frame::check_frame(&self.inbuf, MAX_FRAME) {
            Ok(None) => Ok(None),
            Ok(Some(len)) => {
                self.inbuf.advance(4);
                Ok(Some(self.inbuf.split_to(len)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn next_frame(&mut self) -> Result<BytesMut, String> {
        loop {
            if let Some(f) = self.take_frame()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    /// The next reply already buffered, matched to the oldest outstanding request (xid and
    /// opcode). Notifications met on the way go to `events`, pings are skipped.
    pub fn take_reply(&mut self) -> Result<Option<Reply>, String> {
        while let Some(frame) = self.take_frame()? {
            let (header, body) = decode_reply_header(&frame).map_err(|e| e.to_string())?;
            match header.xid {
                xid::NOTIFICATION => {
                    let event = decode_watcher_event(body).map_err(|e| e.to_string())?;
                    self.events.push_back((event, Instant::now()));
                    continue;
                }
                xid::PING => continue,
                _ => {}
            }
            let Some((expected, op)) = self.pending.pop_front() else {
                return Err(format!("reply with xid {} to no request", header.xid));
            };
            if header.xid != expected {
                return Err(format!(
                    "reply xid {} where {expected} was the oldest outstanding",
                    header.xid
                ));
            }
            let body = if header.err == 0 {
                decode_response(op, body).map_err(|e| e.to_string())?
            } else {
                Response::Empty
            };
            return Ok(Some(Reply {
                err: header.err,
                body,
            }));
        }
        Ok(None)
    }

    /// Waits for the next reply.
    pub async fn next_reply(&mut self) -> Result<Reply, String> {
        loop {
            if let Some(r) = self.take_reply()? {
                return Ok(r);
            }
            self.fill().await?;
        }
    }

    /// Sends one request and waits (at most CALL_TIMEOUT) for its reply.
    pub async fn call(&mut self, req: &Request) -> Result<Reply, String> {
        self.send(req);
        self.flush().await?;
        tokio::time::timeout(CALL_TIMEOUT, self.next_reply())
            .await
            .map_err(|_| "no reply within 30 s".to_string())?
    }

    /// The next notification, waiting at most `limit`.
    pub async fn next_event(&mut self, limit: Duration) -> Result<(WatcherEvent, Instant), String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(r) = self.take_reply()? {
                return Err(format!("unexpected reply (err {})", r.err));
            }
            // take_reply moved any buffered notification into `events`.
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            tokio::time::timeout_at(deadline, self.fill())
                .await
                .map_err(|_| "no notification in time".to_string())??;
        }
    }

    /// closeSession, waiting for its reply so the server has dropped the session's
    /// ephemerals when this returns.
    pub async fn close(mut self) -> Result<(), String> {
        let r = self.call(&Request::CloseSession).await?;
        if r.err != 0 {
            return Err(format!("closeSession failed: error {}", r.err));
        }
        Ok(())
    }
}
