//! Helpers shared by the codec tests: frame builders, sample records (one of every request
//! variant), the 3.4 ConnectRequest bytes and small byte-assembly helpers.

use bytes::{Bytes, BytesMut};

use super::{decode_request, encode_reply, encode_request};
use crate::proto::error::Error;
use crate::proto::opcode::OpCode;
use crate::proto::records::{Acl, AddWatchMode, CreateMode, Id, Stat, WatcherType};
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, MultiOp, ReadOp, ReconfigRequest, Request,
    SetAclRequest, SetDataRequest, SetWatches,
};
use crate::proto::response::{ReplyHeader, Response};

/// The body of a frame written by one of our encoders, after checking its length prefix.
pub(super) fn body(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 4, "frame shorter than its length prefix");
    let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(
        len as usize,
        frame.len() - 4,
        "length prefix disagrees with frame"
    );
    &frame[4..]
}

pub(super) fn request_frame(xid: i32, req: &Request) -> BytesMut {
    let mut out = BytesMut::new();
    encode_request(&mut out, xid, req);
    out
}

pub(super) fn reply_frame(header: &ReplyHeader, resp: &Response) -> BytesMut {
    let mut out = BytesMut::new();
    encode_reply(&mut out, header, resp);
    out
}

pub(super) fn ok_header(xid: i32) -> ReplyHeader {
    ReplyHeader {
        xid,
        zxid: 0x1_0000_0005,
        err: 0,
    }
}

pub(super) fn sample_stat() -> Stat {
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

pub(super) fn create(
    op: OpCode,
    path: &str,
    data: Option<&[u8]>,
    flags: i32,
    ttl: i64,
) -> CreateRequest {
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
pub(super) fn sample_requests() -> Vec<Request> {
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
        Request::Sasl {
            token: Some(Bytes::new()),
        },
        Request::Sasl { token: None },
        Request::Sasl {
            token: Some(Bytes::from_static(b"charset=utf-8,username=\"kafka\"")),
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
pub(super) fn variant_index(req: &Request) -> usize {
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
        Request::Sasl { .. } => 22,
    }
}
pub(super) const REQUEST_VARIANTS: usize = 23;

/// What a 3.4 client sends first: no readOnly byte, 44-byte body.
pub(super) const CONNECT_3_4: [u8; 44] = [
    0, 0, 0, 0, // protocolVersion
    0, 0, 0, 0, 0, 0, 0, 0x2a, // lastZxidSeen 42
    0, 0, 0x75, 0x30, // timeOut 30000
    0, 0, 0, 0, 0, 0, 0, 0, // sessionId 0
    0, 0, 0, 16, // passwd length
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // passwd
];

pub(super) fn frame_body(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(super) fn be(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}

pub(super) fn assert_malformed(bytes: &[u8]) {
    match decode_request(bytes) {
        Err(Error::Malformed { .. }) => {}
        other => panic!("expected Malformed for {bytes:?}, got {other:?}"),
    }
}
