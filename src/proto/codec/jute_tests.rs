//! Primitive decoding rules, checked through whole requests: trailing bytes, nulls, invalid
//! UTF-8, booleans, hostile lengths and counts, and where an error message points.

use bytes::Bytes;

use crate::proto::codec::test_support::*;
use crate::proto::codec::{decode_connect, decode_request};
use crate::proto::opcode::OpCode;
use crate::proto::request::{CreateRequest, Decoded, Request};

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
