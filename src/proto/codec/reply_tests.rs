//! Reply tests: byte-exact layouts (Stat, error replies without a body, notifications, multi
//! results), a round trip for every response kind, and truncation.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::proto::codec::test_support::*;
use crate::proto::error::ZkError;
use crate::proto::records::Acl;

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

/// `ReplyHeader::new` is where the server's `ZkError` becomes the wire code.
#[test]
fn reply_header_new_writes_the_error_code() {
    let frame = reply_frame(
        &ReplyHeader::new(9, 17, Some(ZkError::NoNode)),
        &Response::Stat(sample_stat()),
    );
    assert_eq!(
        &frame[..],
        &[0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 17, 0xff, 0xff, 0xff, 0x9b]
    );
    assert_eq!(ReplyHeader::new(4, 0x1_0000_0005, None), ok_header(4));
    assert_eq!(
        ReplyHeader::new(1, 0, Some(ZkError::MarshallingError)).err,
        -5
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
    // A pre-encoded child list goes out as the same bytes and decodes as GetChildren.
    let encoded = all
        .iter()
        .map(|r| match r {
            OpResult::GetChildren { children } => OpResult::GetChildrenEncoded {
                names: encode_names(children.iter().map(|c| c.as_str())),
            },
            other => other.clone(),
        })
        .collect::<Vec<_>>();
    assert_eq!(
        reply_frame(&ok_header(1), &Response::Multi(encoded)),
        reply_frame(&ok_header(1), &Response::Multi(all.clone()))
    );
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
        (
            OpCode::Sasl,
            Response::Sasl {
                token: Some(Bytes::from_static(b"rspauth=0123")),
            },
        ),
        (OpCode::Sasl, Response::Sasl { token: None }),
    ];
    for (op, resp) in cases {
        let frame = reply_frame(&ok_header(4), &resp);
        let (header, rest) = decode_reply_header(body(&frame)).unwrap();
        assert_eq!(header, ok_header(4));
        assert_eq!(decode_response(op, rest).unwrap(), resp, "{op:?}");
    }
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

/// A failed SASL login: the error header and still a SetSASLResponse with a null token,
/// which the Java client reads to learn that its login failed.
#[test]
fn failed_sasl_reply_keeps_its_null_token() {
    let header = ReplyHeader {
        xid: 5,
        zxid: 0,
        err: -115,
    };
    let frame = reply_frame(&header, &Response::Sasl { token: None });
    assert_eq!(&body(&frame)[16..], &[0xff; 4]);
    let frame = reply_frame(&header, &Response::Empty);
    assert_eq!(body(&frame).len(), 16);
}
