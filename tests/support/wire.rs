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

/// Creates `path`, then pipelines `rounds` times (setData of `path` to the round's number,
/// getData and exists of it) in one segment on a new raw session, and checks that every read
/// saw exactly the writes sent before it: the round's value and version, and a reply zxid
/// from between the two writes around it. With writes in flight the reads are held and
/// carried by the next write (the server's `connection::held`), so this is where a read
/// executed on the wrong side of a write would show.
pub async fn check_reads_between_pipelined_writes(addr: SocketAddr, path: &str, rounds: i32) {
    use keeperd::proto::codec::decode_response;
    use keeperd::proto::request::{CreateRequest, SetDataRequest};
    use keeperd::proto::response::Response;
    use keeperd::proto::{Acl, OpCode};

    let (mut raw, _) = Raw::session(addr).await;
    let create = Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    };
    raw.send(1, &create).await;
    assert_eq!(raw.reply().await.0.err, 0, "create {path}");
    let mut out = BytesMut::new();
    for round in 1..=rounds {
        let xid = 1 + 3 * round;
        let set = Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(round.to_string().into_bytes().into()),
            version: -1,
        });
        encode_request(&mut out, xid, &set);
        let get = Request::GetData {
            path: path.into(),
            watch: false,
        };
        encode_request(&mut out, xid + 1, &get);
        let exists = Request::Exists {
            path: path.into(),
            watch: false,
        };
        encode_request(&mut out, xid + 2, &exists);
    }
    raw.send_bytes(&out).await;
    // (round, zxid of the reply) of each read, checked against the writes' zxids below.
    let mut reads = vec![];
    let mut writes = vec![0i64];
    for round in 1..=rounds {
        let (h, _) = raw.reply().await;
        assert_eq!(
            (h.xid, h.err),
            (1 + 3 * round, 0),
            "setData of round {round}"
        );
        writes.push(h.zxid);
        let (h, body) = raw.reply().await;
        assert_eq!(
            (h.xid, h.err),
            (2 + 3 * round, 0),
            "getData of round {round}"
        );
        match decode_response(OpCode::GetData, &body).unwrap() {
            Response::GetData { data, stat } => {
                let want = round.to_string();
                assert_eq!(
                    data.as_deref(),
                    Some(want.as_bytes()),
                    "getData of round {round} saw another write"
                );
                assert_eq!(stat.version, round, "getData of round {round}");
            }
            other => panic!("getData of round {round}: {other:?}"),
        }
        reads.push((round, h.zxid));
        let (h, body) = raw.reply().await;
        assert_eq!(
            (h.xid, h.err),
            (3 + 3 * round, 0),
            "exists of round {round}"
        );
        match decode_response(OpCode::Exists, &body).unwrap() {
            Response::Stat(stat) => assert_eq!(stat.version, round, "exists of round {round}"),
            other => panic!("exists of round {round}: {other:?}"),
        }
        reads.push((round, h.zxid));
    }
    for (round, zxid) in reads {
        let after = writes[round as usize];
        let next = writes.get(round as usize + 1).copied().unwrap_or(i64::MAX);
        assert!(
            after <= zxid && zxid < next,
            "a read of round {round} has zxid {zxid:#x}, outside [{after:#x}, {next:#x})"
        );
    }
}
