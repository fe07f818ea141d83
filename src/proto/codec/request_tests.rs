//! Request tests: byte-exact layouts, a round trip for every Request variant, opcodes that are
//! unknown, unserved or not allowed where they appear, and truncation.

use super::*;
use crate::proto::codec::test_support::*;

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
fn unknown_and_unserved_opcodes_keep_the_header() {
    for op in [10, 20, 0, -10, -1, 999, i32::MIN] {
        let bytes = frame_body(&[&be(77), &be(op), b"ignored body"]);
        assert_eq!(
            decode_request(&bytes).unwrap(),
            (RequestHeader { xid: 77, op }, Decoded::Unknown),
            "op {op}"
        );
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
fn header_survives_a_malformed_body() {
    let bytes = frame_body(&[&be(31), &be(106), &be(1), b"/", &be(7)]);
    assert_malformed(&bytes);
    let (header, rest) = decode_request_header(&bytes).unwrap();
    assert_eq!(header, RequestHeader { xid: 31, op: 106 });
    assert_eq!(rest.len(), 9);
    assert!(decode_request_header(&bytes[..7]).is_err());
}
