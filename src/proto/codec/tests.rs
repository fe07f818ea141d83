//! Codec tests: byte-exact layouts against hand-written arrays, round trips for every request
//! variant, and hostile input (truncation, huge lengths, deterministic random garbage).

use super::*;
use crate::proto::error::ZkError;
use crate::proto::records::CreateMode;

/// The body of a frame written by one of our encoders, after checking its length prefix.
fn body(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 4, "frame shorter than its length prefix");
    let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(
        len as usize,
        frame.len() - 4,
        "length prefix disagrees with frame"
    );
    &frame[4..]
}

fn request_frame(xid: i32, req: &Request) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(&mut out, xid, req);
    out
}

fn reply_frame(header: &ReplyHeader, resp: &Response) -> BytesMut {
    let mut out = BytesMut::new();
    encode_reply(&mut out, header, resp);
    out
}

fn ok_header(xid: i32) -> ReplyHeader {
    ReplyHeader {
        xid,
        zxid: 0x1_0000_0005,
        err: 0,
    }
}

fn sample_stat() -> Stat {
    Stat {
        czxid: 0x0102030405060708,
        mzxid: 2,
        ctime: 1_700_000_000_000,
        mtime: -1,
        version: 5,
        cversion: 6,
        aversion: 7,
        ephemeral_owner: 0x7fff_0000_0000_0001,
        data_length: 9,
        num_children: 10,
        pzxid: 11,
    }
}

fn create(op: OpCode, path: &str, data: Option<&[u8]>, flags: i32, ttl: i64) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl: Acl::open_unsafe(),
        flags,
        ttl: if op == OpCode::CreateTtl { ttl } else { -1 },
    }
}

/// At least one of every Request variant, with the shapes that matter on the wire (null vs
/// empty data, null reconfig strings, setWatches vs setWatches2, every multi op kind).
fn sample_requests() -> Vec<Request> {
    let digest = Acl {
        perms: 31,
        id: Id::new("digest", "user:aGVsbG8="),
    };
    vec![
        Request::Create {
            op: OpCode::Create,
            req: create(OpCode::Create, "/a", Some(b"hello"), 0, -1),
        },
        Request::Create {
            op: OpCode::Create2,
            req: CreateRequest {
                acl: vec![digest.clone(), Acl::read_unsafe()[0].clone()],
                ..create(
                    OpCode::Create2,
                    "/seq-",
                    None,
                    CreateMode::EphemeralSequential.flag(),
                    -1,
                )
            },
        },
        Request::Create {
            op: OpCode::CreateContainer,
            req: create(OpCode::CreateContainer, "/c", Some(b""), 4, -1),
        },
        Request::Create {
            op: OpCode::CreateTtl,
            req: create(OpCode::CreateTtl, "/ttl", Some(b"x"), 5, 60_000),
        },
        Request::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        }),
        Request::Exists {
            path: "/a".into(),
            watch: true,
        },
        Request::GetData {
            path: "/a".into(),
            watch: false,
        },
        Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"\x00\xff\x10")),
            version: 3,
        }),
        Request::SetData(SetDataRequest {
            path: "/a".into(),
            data: None,
            version: -1,
        }),
        Request::GetAcl { path: "/a".into() },
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: vec![digest],
            version: 0,
        }),
        Request::SetAcl(SetAclRequest {
            path: "/empty-acl".into(),
            acl: vec![],
            version: 1,
        }),
        Request::GetChildren {
            path: "/".into(),
            watch: true,
            with_stat: false,
        },
        Request::GetChildren {
            path: "/".into(),
            watch: false,
            with_stat: true,
        },
        Request::Sync { path: "/a".into() },
        Request::Ping,
        Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 2,
        }),
        Request::Multi(vec![
            MultiOp::Create {
                op: OpCode::Create,
                req: create(OpCode::Create, "/m1", Some(b"1"), 0, -1),
            },
            MultiOp::Create {
                op: OpCode::Create2,
                req: create(OpCode::Create2, "/m2", None, 1, -1),
            },
            MultiOp::Create {
                op: OpCode::CreateContainer,
                req: create(OpCode::CreateContainer, "/m3", None, 4, -1),
            },
            MultiOp::Create {
                op: OpCode::CreateTtl,
                req: create(OpCode::CreateTtl, "/m4", None, 6, 1234),
            },
            MultiOp::Delete(DeleteRequest {
                path: "/m0".into(),
                version: 7,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m1".into(),
                data: Some(Bytes::from_static(b"2")),
                version: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m1".into(),
                version: 1,
            }),
        ]),
        Request::Multi(vec![]),
        Request::MultiRead(vec![
            ReadOp::GetChildren { path: "/".into() },
            ReadOp::GetData { path: "/a".into() },
        ]),
        Request::Reconfig(ReconfigRequest {
            joining_servers: Some("server.4=h4:2888:3888;2181".into()),
            leaving_servers: Some("3".into()),
            new_members: None,
            cur_config_id: -1,
        }),
        Request::Reconfig(ReconfigRequest {
            joining_servers: None,
            leaving_servers: None,
            new_members: Some("".into()),
            cur_config_id: 0x1_0000_0000,
        }),
        Request::RemoveWatches {
            path: "/a".into(),
            watcher_type: WatcherType::Data,
            remove: false,
        },
        Request::RemoveWatches {
            path: "/a".into(),
            watcher_type: WatcherType::PersistentRecursive,
            remove: true,
        },
        Request::Auth {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Bytes::from_static(b"user:pass"),
        },
        Request::SetWatches(SetWatches {
            relative_zxid: 42,
            data_watches: vec!["/a".into(), "/b".into()],
            exist_watches: vec![],
            child_watches: vec!["/".into()],
            ..SetWatches::default()
        }),
        Request::SetWatches(SetWatches {
            relative_zxid: 43,
            data_watches: vec![],
            exist_watches: vec!["/x".into()],
            child_watches: vec![],
            persistent_watches: vec!["/p".into()],
            persistent_recursive_watches: vec!["/r".into(), "/r2".into()],
        }),
        Request::GetEphemerals {
            prefix: "/e".into(),
        },
        Request::GetAllChildrenNumber { path: "/".into() },
        Request::AddWatch {
            path: "/w".into(),
            mode: AddWatchMode::Persistent,
        },
        Request::AddWatch {
            path: "/w".into(),
            mode: AddWatchMode::PersistentRecursive,
        },
        Request::WhoAmI,
        Request::CloseSession,
        // Non-ASCII survives as UTF-8.
        Request::Sync {
            path: "/ünï/çødé/日本".into(),
        },
    ]
}

/// Exhaustive over `Request`, so a new variant fails to compile here until it is sampled.
fn variant_index(req: &Request) -> usize {
    match req {
        Request::Create { .. } => 0,
        Request::Delete(_) => 1,
        Request::Exists { .. } => 2,
        Request::GetData { .. } => 3,
        Request::SetData(_) => 4,
        Request::GetAcl { .. } => 5,
        Request::SetAcl(_) => 6,
        Request::GetChildren { .. } => 7,
        Request::Sync { .. } => 8,
        Request::Ping => 9,
        Request::Check(_) => 10,
        Request::Multi(_) => 11,
        Request::MultiRead(_) => 12,
        Request::Reconfig(_) => 13,
        Request::RemoveWatches { .. } => 14,
        Request::Auth { .. } => 15,
        Request::SetWatches(_) => 16,
        Request::GetEphemerals { .. } => 17,
        Request::GetAllChildrenNumber { .. } => 18,
        Request::AddWatch { .. } => 19,
        Request::WhoAmI => 20,
        Request::CloseSession => 21,
    }
}
const REQUEST_VARIANTS: usize = 22;

// ---- byte-exact layouts ------------------------------------------------------------------

/// What a 3.4 client sends first: no readOnly byte, 44-byte body.
const CONNECT_3_4: [u8; 44] = [
    0, 0, 0, 0, // protocolVersion
    0, 0, 0, 0, 0, 0, 0, 0x2a, // lastZxidSeen 42
    0, 0, 0x75, 0x30, // timeOut 30000
    0, 0, 0, 0, 0, 0, 0, 0, // sessionId 0
    0, 0, 0, 16, // passwd length
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // passwd
];

#[test]
fn connect_request_from_3_4_client() {
    let req = decode_connect(&CONNECT_3_4).unwrap();
    assert_eq!(
        req,
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 42,
            timeout_ms: 30_000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        }
    );
    let mut out = BytesMut::new();
    encode_connect_request(&mut out, &req);
    assert_eq!(&out[..4], &[0, 0, 0, 44]);
    assert_eq!(body(&out), &CONNECT_3_4[..]);
}

#[test]
fn connect_request_with_read_only() {
    let mut bytes = CONNECT_3_4.to_vec();
    bytes.push(1);
    let req = decode_connect(&bytes).unwrap();
    assert_eq!(req.read_only, Some(true));
    let mut out = BytesMut::new();
    encode_connect_request(&mut out, &req);
    assert_eq!(body(&out), &bytes[..]);

    bytes[44] = 0;
    assert_eq!(decode_connect(&bytes).unwrap().read_only, Some(false));
    // The Java server stops after readOnly; so do we.
    bytes.extend_from_slice(&[9, 9, 9]);
    assert_eq!(decode_connect(&bytes).unwrap().read_only, Some(false));
}

#[test]
fn connect_response_layout() {
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 4000,
        session_id: 0x0100_0000_0000_0002,
        passwd: (1..=16).collect(),
        read_only: None,
    };
    let mut out = BytesMut::new();
    encode_connect_response(&mut out, &resp);
    let mut expect = vec![0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0x0f, 0xa0];
    expect.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 16]);
    expect.extend(1..=16u8);
    assert_eq!(&out[..], &expect[..]);
    assert_eq!(decode_connect_response(body(&out)).unwrap(), resp);

    let resp = ConnectResponse {
        read_only: Some(false),
        ..resp
    };
    let mut out = BytesMut::new();
    encode_connect_response(&mut out, &resp);
    expect[3] = 37;
    expect.push(0);
    assert_eq!(&out[..], &expect[..]);
    assert_eq!(decode_connect_response(body(&out)).unwrap(), resp);
}

#[test]
fn get_data_request_layout() {
    let bytes = [
        0, 0, 0, 15, // frame length
        0, 0, 0, 7, // xid
        0, 0, 0, 4, // type getData
        0, 0, 0, 2, b'/', b'a', // path
        1,    // watch
    ];
    let req = Request::GetData {
        path: "/a".into(),
        watch: true,
    };
    assert_eq!(&request_frame(7, &req)[..], &bytes[..]);
    let (header, decoded) = decode_request(&bytes[4..]).unwrap();
    assert_eq!(header, RequestHeader { xid: 7, op: 4 });
    assert_eq!(decoded, Decoded::Request(req));
}

#[test]
fn create_request_layout() {
    let req = Request::Create {
        op: OpCode::Create,
        req: create(OpCode::Create, "/n", None, 1, -1),
    };
    #[rustfmt::skip]
    let expect: Vec<u8> = vec![
        0, 0, 0, 49,
        0, 0, 0, 1, 0, 0, 0, 1, // xid 1, create
        0, 0, 0, 2, b'/', b'n',
        0xff, 0xff, 0xff, 0xff, // null data
        0, 0, 0, 1, // one ACL
        0, 0, 0, 31,
        0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd',
        0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e',
        0, 0, 0, 1, // flags: ephemeral
    ];
    assert_eq!(&request_frame(1, &req)[..], &expect[..]);
}

#[test]
fn stat_layout() {
    let stat = sample_stat();
    #[rustfmt::skip]
    let stat_bytes: [u8; 68] = [
        1, 2, 3, 4, 5, 6, 7, 8, // czxid
        0, 0, 0, 0, 0, 0, 0, 2, // mzxid
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // ctime 1_700_000_000_000
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // mtime -1
        0, 0, 0, 5, // version
        0, 0, 0, 6, // cversion
        0, 0, 0, 7, // aversion
        0x7f, 0xff, 0, 0, 0, 0, 0, 1, // ephemeralOwner
        0, 0, 0, 9, // dataLength
        0, 0, 0, 10, // numChildren
        0, 0, 0, 0, 0, 0, 0, 11, // pzxid
    ];
    let frame = reply_frame(
        &ReplyHeader {
            xid: 3,
            zxid: 0x1_0000_0005,
            err: 0,
        },
        &Response::Stat(stat),
    );
    let mut expect = vec![0, 0, 0, 84, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0];
    expect.extend_from_slice(&stat_bytes);
    assert_eq!(&frame[..], &expect[..]);

    let (header, rest) = decode_reply_header(body(&frame)).unwrap();
    assert_eq!(header.xid, 3);
    assert_eq!(rest.len(), 68);
    assert_eq!(
        decode_response(OpCode::Exists, rest).unwrap(),
        Response::Stat(stat)
    );
}

#[test]
fn error_reply_has_no_body() {
    let frame = reply_frame(
        &ReplyHeader {
            xid: 9,
            zxid: 17,
            err: ZkError::NoNode.code(),
        },
        &Response::Stat(sample_stat()),
    );
    assert_eq!(
        &frame[..],
        &[0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 17, 0xff, 0xff, 0xff, 0x9b]
    );
}

#[test]
fn notification_layout() {
    let mut out = BytesMut::new();
    encode_notification(
        &mut out,
        &WatcherEvent {
            event_type: EventType::NodeDataChanged,
            state: KeeperState::SyncConnected,
            path: "/a".into(),
        },
    );
    #[rustfmt::skip]
    let expect = [
        0, 0, 0, 30,
        0xff, 0xff, 0xff, 0xff, // xid -1
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // zxid -1
        0, 0, 0, 0, // err
        0, 0, 0, 3, // NodeDataChanged
        0, 0, 0, 3, // SyncConnected
        0, 0, 0, 2, b'/', b'a',
    ];
    assert_eq!(&out[..], &expect[..]);
    let (header, rest) = decode_reply_header(body(&out)).unwrap();
    assert_eq!((header.xid, header.zxid, header.err), (-1, -1, 0));
    let ev = decode_watcher_event(rest).unwrap();
    assert_eq!(ev.event_type, EventType::NodeDataChanged);
    assert_eq!(ev.path, "/a");
}

/// A multi whose second op failed: ErrorResult(0) before it, its code, -2 after it.
#[test]
fn failed_multi_response_layout() {
    let results = vec![
        OpResult::Error { err: 0 },
        OpResult::Error {
            err: ZkError::NoNode.code(),
        },
        OpResult::Error {
            err: ZkError::RuntimeInconsistency.code(),
        },
    ];
    let frame = reply_frame(&ok_header(5), &Response::Multi(results.clone()));
    #[rustfmt::skip]
    let mut expect: Vec<u8> = vec![
        0, 0, 0, 0, // length, patched below
        0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, // ReplyHeader, err 0
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, // MultiHeader(-1, false, 0)
        0, 0, 0, 0, // ErrorResponse(0)
        0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b, // MultiHeader(-1, false, -101)
        0xff, 0xff, 0xff, 0x9b, // ErrorResponse(-101)
        0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xfe, // MultiHeader(-1, false, -2)
        0xff, 0xff, 0xff, 0xfe, // ErrorResponse(-2)
        0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // MultiHeader(-1, true, -1)
    ];
    let len = (expect.len() - 4) as u32;
    expect[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(&frame[..], &expect[..]);

    let (_, rest) = decode_reply_header(body(&frame)).unwrap();
    assert_eq!(
        decode_response(OpCode::Multi, rest).unwrap(),
        Response::Multi(results)
    );
}

#[test]
fn successful_multi_response_layout() {
    let stat = sample_stat();
    let results = vec![
        OpResult::Create { path: "/a".into() },
        OpResult::Delete,
        OpResult::Check,
    ];
    let frame = reply_frame(&ok_header(5), &Response::Multi(results));
    #[rustfmt::skip]
    let expect: Vec<u8> = vec![
        0, 0, 0, 58,
        0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0,
        0, 0, 0, 1, 0, 0, 0, 0, 0, // MultiHeader(1, false, 0)
        0, 0, 0, 2, b'/', b'a', // CreateResponse
        0, 0, 0, 2, 0, 0, 0, 0, 0, // MultiHeader(2, false, 0)
        0, 0, 0, 13, 0, 0, 0, 0, 0, // MultiHeader(13, false, 0)
        0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff,
    ];
    assert_eq!(&frame[..], &expect[..]);

    // Every result kind survives a round trip, in multi and multiRead replies.
    let all = vec![
        OpResult::Create { path: "/a".into() },
        OpResult::Create2 {
            path: "/b".into(),
            stat,
        },
        OpResult::Delete,
        OpResult::SetData { stat },
        OpResult::Check,
        OpResult::GetChildren {
            children: vec!["x".into(), "y".into()],
        },
        OpResult::GetData { data: None, stat },
        OpResult::GetData {
            data: Some(Bytes::from_static(b"d")),
            stat,
        },
        OpResult::Error { err: -101 },
    ];
    for op in [OpCode::Multi, OpCode::MultiRead] {
        let frame = reply_frame(&ok_header(1), &Response::Multi(all.clone()));
        let (_, rest) = decode_reply_header(body(&frame)).unwrap();
        assert_eq!(
            decode_response(op, rest).unwrap(),
            Response::Multi(all.clone())
        );
    }
}

#[test]
fn multi_request_layout() {
    let req = Request::Multi(vec![MultiOp::Delete(DeleteRequest {
        path: "/d".into(),
        version: -1,
    })]);
    #[rustfmt::skip]
    let expect = [
        0, 0, 0, 36,
        0, 0, 0, 2, 0, 0, 0, 14, // xid 2, multi
        0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, // MultiHeader(2, false, -1)
        0, 0, 0, 2, b'/', b'd', 0xff, 0xff, 0xff, 0xff, // DeleteRequest
        0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // MultiHeader(-1, true, -1)
    ];
    assert_eq!(&request_frame(2, &req)[..], &expect[..]);
}

#[test]
fn set_watches_picks_opcode_by_content() {
    let mut sw = SetWatches {
        relative_zxid: 1,
        ..SetWatches::default()
    };
    let frame = request_frame(-8, &Request::SetWatches(sw.clone()));
    assert_eq!(&frame[8..12], &[0, 0, 0, 101]);
    assert_eq!(frame.len(), 4 + 8 + 8 + 3 * 4);
    sw.persistent_watches.push("/p".into());
    let frame = request_frame(-8, &Request::SetWatches(sw));
    assert_eq!(&frame[8..12], &[0, 0, 0, 105]);
}

// ---- round trips ---------------------------------------------------------------------------

#[test]
fn every_request_variant_round_trips() {
    let samples = sample_requests();
    let mut seen = [false; REQUEST_VARIANTS];
    for (n, req) in samples.iter().enumerate() {
        seen[variant_index(req)] = true;
        let xid = n as i32 * 3 - 7;
        let frame = request_frame(xid, req);
        let (header, decoded) = decode_request(body(&frame))
            .unwrap_or_else(|e| panic!("{req:?} failed to decode: {e}"));
        assert_eq!(
            header,
            RequestHeader {
                xid,
                op: request_opcode(req).code()
            }
        );
        assert_eq!(decoded, Decoded::Request(req.clone()), "{req:?}");
    }
    let missing: Vec<usize> = (0..REQUEST_VARIANTS).filter(|&i| !seen[i]).collect();
    assert!(missing.is_empty(), "variants without a sample: {missing:?}");
}

#[test]
fn every_response_round_trips() {
    let stat = sample_stat();
    let cases = vec![
        (OpCode::Delete, Response::Empty),
        (OpCode::Create, Response::Create { path: "/a".into() }),
        (
            OpCode::Create2,
            Response::Create2 {
                path: "/a0000000001".into(),
                stat,
            },
        ),
        (OpCode::SetData, Response::Stat(stat)),
        (OpCode::Check, Response::Stat(stat)),
        (
            OpCode::GetData,
            Response::GetData {
                data: Some(Bytes::from_static(b"v")),
                stat,
            },
        ),
        (OpCode::GetData, Response::GetData { data: None, stat }),
        (
            OpCode::Reconfig,
            Response::GetData {
                data: Some(Bytes::from_static(b"server.1=h:1:2;3\nversion=1")),
                stat,
            },
        ),
        (
            OpCode::GetAcl,
            Response::GetAcl {
                acl: Acl::open_unsafe(),
                stat,
            },
        ),
        (
            OpCode::GetChildren,
            Response::GetChildren {
                children: vec!["a".into(), "zookeeper".into()],
            },
        ),
        (
            OpCode::GetChildren2,
            Response::GetChildren2 {
                children: vec![],
                stat,
            },
        ),
        (OpCode::Sync, Response::Sync { path: "/".into() }),
        (
            OpCode::GetEphemerals,
            Response::GetEphemerals {
                ephemerals: vec!["/e1".into()],
            },
        ),
        (
            OpCode::GetAllChildrenNumber,
            Response::GetAllChildrenNumber { total: 12 },
        ),
        (
            OpCode::WhoAmI,
            Response::WhoAmI(vec![
                ClientInfo {
                    auth_scheme: "ip".into(),
                    user: "127.0.0.1".into(),
                },
                ClientInfo {
                    auth_scheme: "digest".into(),
                    user: "bob".into(),
                },
            ]),
        ),
        (OpCode::Multi, Response::Multi(vec![])),
    ];
    for (op, resp) in cases {
        let frame = reply_frame(&ok_header(4), &resp);
        let (header, rest) = decode_reply_header(body(&frame)).unwrap();
        assert_eq!(header, ok_header(4));
        assert_eq!(decode_response(op, rest).unwrap(), resp, "{op:?}");
    }
}

// ---- lenient and strict decoding ----------------------------------------------------------

fn frame_body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}

#[test]
fn unknown_and_unserved_opcodes_keep_the_header() {
    for op in [10, 102, 20, 0, -10, -1, 999, i32::MIN] {
        let bytes = frame_body(&[&be(77), &be(op), b"ignored body"]);
        assert_eq!(
            decode_request(&bytes).unwrap(),
            (RequestHeader { xid: 77, op }, Decoded::Unknown),
            "op {op}"
        );
    }
}

#[test]
fn trailing_bytes_are_ignored() {
    let mut frame = request_frame(1, &Request::Sync { path: "/".into() }).to_vec();
    frame.extend_from_slice(b"junk");
    let (_, decoded) = decode_request(&frame[4..]).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request(Request::Sync { path: "/".into() })
    );
}

#[test]
fn nulls_decode_to_none_or_empty() {
    // create: a null path is malformed (the Java server answers MARSHALLINGERROR).
    let bytes = frame_body(&[&be(1), &be(1), &be(-1), &be(-1), &be(-1), &be(0)]);
    assert!(decode_request(&bytes).is_err());
    // create: empty path, null data, null ACL vector.
    let bytes = frame_body(&[&be(1), &be(1), &be(0), &be(-1), &be(-1), &be(0)]);
    let (_, decoded) = decode_request(&bytes).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request(Request::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: String::new(),
                data: None,
                acl: vec![],
                flags: 0,
                ttl: -1,
            },
        })
    );
    // auth with a null buffer.
    let bytes = frame_body(&[&be(-4), &be(100), &be(0), &be(6), b"digest", &be(-1)]);
    let (_, decoded) = decode_request(&bytes).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request(Request::Auth {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Bytes::new(),
        })
    );
}

#[test]
fn invalid_utf8_is_replaced_like_java() {
    let bytes = frame_body(&[&be(1), &be(9), &be(3), &[b'/', 0xff, b'a']]);
    let (_, decoded) = decode_request(&bytes).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request(Request::Sync {
            path: "/\u{fffd}a".into()
        })
    );
}

#[test]
fn nonzero_boolean_is_true() {
    let bytes = frame_body(&[&be(1), &be(3), &be(1), b"/", &[0x80]]);
    let (_, decoded) = decode_request(&bytes).unwrap();
    assert_eq!(
        decoded,
        Decoded::Request(Request::Exists {
            path: "/".into(),
            watch: true
        })
    );
}

fn assert_malformed(bytes: &[u8]) {
    match decode_request(bytes) {
        Err(Error::Malformed { .. }) => {}
        other => panic!("expected Malformed for {bytes:?}, got {other:?}"),
    }
}

#[test]
fn invalid_enums_and_ops_are_malformed() {
    // removeWatches with watcher type 9, checkWatches with 0.
    assert_malformed(&frame_body(&[&be(1), &be(18), &be(1), b"/", &be(9)]));
    assert_malformed(&frame_body(&[&be(1), &be(17), &be(1), b"/", &be(0)]));
    // addWatch with mode 2.
    assert_malformed(&frame_body(&[&be(1), &be(106), &be(1), b"/", &be(2)]));
    // multi containing getData.
    assert_malformed(&frame_body(&[
        &be(1),
        &be(14),
        &be(4),
        &[0],
        &be(-1),
        &be(1),
        b"/",
        &[0],
    ]));
    // multiRead containing delete.
    assert_malformed(&frame_body(&[
        &be(1),
        &be(22),
        &be(2),
        &[0],
        &be(-1),
        &be(1),
        b"/",
        &be(0),
    ]));
    // multi without its terminating header.
    assert_malformed(&frame_body(&[&be(1), &be(14)]));
}

#[test]
fn hostile_lengths_are_rejected_without_allocating() {
    // A path claiming 2 GiB.
    assert_malformed(&frame_body(&[&be(1), &be(9), &be(i32::MAX), b"/"]));
    // Negative lengths other than -1.
    assert_malformed(&frame_body(&[&be(1), &be(9), &be(-2)]));
    assert_malformed(&frame_body(&[&be(1), &be(9), &be(i32::MIN)]));
    // An ACL vector claiming 2^31-1 entries, and one claiming more than fit.
    let create_prefix = frame_body(&[&be(1), &be(1), &be(1), b"/", &be(0)]);
    assert_malformed(&frame_body(&[
        create_prefix.as_slice(),
        &be(i32::MAX),
        &[0; 64],
    ]));
    assert_malformed(&frame_body(&[create_prefix.as_slice(), &be(6), &[0; 64]]));
    assert_malformed(&frame_body(&[create_prefix.as_slice(), &be(-5), &be(0)]));
    // setWatches with a huge string vector.
    assert_malformed(&frame_body(&[&be(-8), &be(101), &[0; 8], &be(0x4000_0000)]));
    // The connect password.
    let mut connect = CONNECT_3_4.to_vec();
    connect[24..28].copy_from_slice(&be(0x7fff_fff0));
    assert!(decode_connect(&connect).is_err());
    connect[24..28].copy_from_slice(&be(-3));
    assert!(decode_connect(&connect).is_err());
}

#[test]
fn error_message_says_where() {
    let err = decode_request(&frame_body(&[&be(1), &be(9), &be(-2)])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("negative length -2"), "{msg}");
    assert!(msg.contains("at byte 8"), "{msg}");
}

// ---- truncation and garbage ----------------------------------------------------------------

#[test]
fn every_truncation_of_a_request_is_an_error() {
    for req in sample_requests() {
        let frame = request_frame(1, &req);
        let full = body(&frame);
        for cut in 0..full.len() {
            assert!(
                decode_request(&full[..cut]).is_err(),
                "{req:?} decoded from {cut} of {} bytes",
                full.len()
            );
        }
    }
}

#[test]
fn every_truncation_of_connect_is_an_error() {
    let mut with_ro = CONNECT_3_4.to_vec();
    with_ro.push(1);
    for cut in 0..CONNECT_3_4.len() {
        assert!(decode_connect(&with_ro[..cut]).is_err(), "cut {cut}");
    }
    // 44 of 45 bytes is a complete 3.4 request.
    assert_eq!(decode_connect(&with_ro[..44]).unwrap().read_only, None);
}

#[test]
fn every_truncation_of_a_reply_is_an_error() {
    let stat = sample_stat();
    let cases = [
        (
            OpCode::GetData,
            Response::GetData {
                data: Some(Bytes::from_static(b"abc")),
                stat,
            },
        ),
        (
            OpCode::Multi,
            Response::Multi(vec![
                OpResult::Create2 {
                    path: "/a".into(),
                    stat,
                },
                OpResult::Error { err: -2 },
            ]),
        ),
        (
            OpCode::WhoAmI,
            Response::WhoAmI(vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "::1".into(),
            }]),
        ),
    ];
    for (op, resp) in cases {
        let frame = reply_frame(&ok_header(1), &resp);
        let (_, rest) = decode_reply_header(body(&frame)).unwrap();
        for cut in 0..rest.len() {
            assert!(
                decode_response(op, &rest[..cut]).is_err(),
                "{op:?} cut {cut}"
            );
        }
    }
    for cut in 0..16 {
        assert!(decode_reply_header(&[0; 16][..cut]).is_err());
    }
}

/// xorshift64*: deterministic, dependency-free pseudo-random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Whatever decodes must re-encode to something that decodes to the same value.
fn check_stable(bytes: &[u8]) {
    if let Ok((header, Decoded::Request(req))) = decode_request(bytes) {
        let frame = request_frame(header.xid, &req);
        let (_, again) = decode_request(body(&frame)).expect("re-encoded request must decode");
        assert_eq!(again, Decoded::Request(req));
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for _ in 0..20_000 {
        let len = rng.below(96);
        let mut bytes = rng.bytes(len);
        // Make a known opcode likely, so bodies get exercised and not only the header.
        if bytes.len() >= 8 && rng.below(4) != 0 {
            let ops = [
                1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 22,
            ];
            let ops2 = [100, 101, 103, 104, 105, 106, 107, -11];
            let op = if rng.below(3) == 0 {
                ops2[rng.below(ops2.len())]
            } else {
                ops[rng.below(ops.len())]
            };
            bytes[4..8].copy_from_slice(&be(op));
        }
        if decode_request(&bytes).is_ok() {
            decoded += 1;
        }
        check_stable(&bytes);
        let _ = decode_connect(&bytes);
        let _ = decode_connect_response(&bytes);
        let _ = decode_reply_header(&bytes);
        let _ = decode_watcher_event(&bytes);
        let _ = decode_response(OpCode::Multi, &bytes);
        let _ = decode_response(OpCode::GetAcl, &bytes);
    }
    // Sanity: the generator reaches the decoders' success paths too (ping, whoAmI, ...).
    assert!(decoded > 100, "only {decoded} random frames decoded");
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut frames: Vec<Vec<u8>> = sample_requests()
        .iter()
        .map(|r| body(&request_frame(1, r)).to_vec())
        .collect();
    frames.push(CONNECT_3_4.to_vec());
    for _ in 0..20_000 {
        let mut bytes = frames[rng.below(frames.len())].clone();
        for _ in 0..=rng.below(4) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(4) {
                // Lengths and counts are where the danger is: favour 0xff and 0x7f.
                0 => bytes[at] = 0xff,
                1 => bytes[at] = 0x7f,
                2 => bytes[at] = rng.next() as u8,
                _ => bytes.truncate(at),
            }
        }
        check_stable(&bytes);
        let _ = decode_connect(&bytes);
    }
}

#[test]
fn header_survives_a_malformed_body() {
    let bytes = frame_body(&[&be(31), &be(106), &be(1), b"/", &be(7)]);
    assert_malformed(&bytes);
    let (header, rest) = decode_request_header(&bytes).unwrap();
    assert_eq!(header, RequestHeader { xid: 31, op: 106 });
    assert_eq!(rest.len(), 9);
    assert!(decode_request_header(&bytes[..7]).is_err());
}
