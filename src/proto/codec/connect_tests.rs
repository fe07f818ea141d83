//! Handshake tests: the 3.4 and 3.5+ ConnectRequest layouts, ConnectResponse with and
//! without readOnly, and truncation.

use bytes::BytesMut;

use super::*;
use crate::proto::codec::test_support::*;

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
fn every_truncation_of_connect_is_an_error() {
    let mut with_ro = CONNECT_3_4.to_vec();
    with_ro.push(1);
    for cut in 0..CONNECT_3_4.len() {
        assert!(decode_connect(&with_ro[..cut]).is_err(), "cut {cut}");
    }
    // 44 of 45 bytes is a complete 3.4 request.
    assert_eq!(decode_connect(&with_ro[..44]).unwrap().read_only, None);
}
