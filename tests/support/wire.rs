//! A raw client-port session for the wire-level tests: frames built and read with
//! keeperd's own jute codec (checked byte-for-byte against ZooKeeper's layouts in its unit
//! tests), for bytes and orders a real client would never send.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use keeperd::proto::codec::{
    decode_connect_response, decode_reply_header, encode_connect_request, encode_request,
};
use keeperd::proto::connect::{ConnectRequest, ConnectResponse};
use keeperd::proto::request::Request;
use keeperd::proto::response::ReplyHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A new session's connect request (no id, zero password, read-write) asking for
/// `timeout_ms`.
pub fn new_session_request(timeout_ms: i32) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
}

/// A minimal raw session: connect, then send frames and read frames.
pub struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    pub async fn handshake(&mut self, req: ConnectRequest) -> ConnectResponse {
        let mut out = BytesMut::new();
        encode_connect_request(&mut out, &req);
        self.stream.write_all(&out).await.unwrap();
        let frame = self.frame().await.expect("connect response");
        decode_connect_response(&frame).unwrap()
    }

    /// A raw session with a 5 s timeout.
    pub async fn session(addr: SocketAddr) -> (Raw, ConnectResponse) {
        let mut raw = Raw::open(addr).await;
        let resp = raw.handshake(new_session_request(5000)).await;
        (raw, resp)
    }

    pub async fn send(&mut self, xid: i32, req: &Request) {
        let mut out = BytesMut::new();
        encode_request(&mut out, xid, req);
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next frame body, or None when the server closed the connection.
    pub async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.buf.len() >= 4 {
                let len = i32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() >= 4 + len {
                    let f = self.buf.split_to(4 + len);
                    return Some(f[4..].to_vec());
                }
            }
            let n =
                tokio::time::timeout(Duration::from_secs(10), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("server answers within 10 s")
                    .ok()?;
            if n == 0 {
                return None;
            }
        }
    }

    pub async fn reply(&mut self) -> (ReplyHeader, Vec<u8>) {
        let f = self.frame().await.expect("a reply");
        let (h, body) = decode_reply_header(&f).unwrap();
        (h, body.to_vec())
    }
}
