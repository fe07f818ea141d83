//! What each fuzz target does with one input. Beyond "no panic", each checks a property of
//! whatever decodes (a failed assertion is a crash to AFL, like any panic):
//! - `jute`: a decoded request, ConnectRequest, reply or notification re-encodes to a frame
//!   whose length prefix is right, that decodes to the same value, and that re-encodes to
//!   the same bytes (the encoding is a fixpoint after one round).
//! - `frame`: a decoded peer frame re-encodes to the same body, except for the two
//!   encodings the decoder accepts that are not the encoder's (see `frame`).
//! - `zoocfg`: the properties reader and `Config::parse_str` never panic; every `server.N`
//!   of a config that parses prints (`ServerSpec`'s Display, what `/zookeeper/config`
//!   shows) as a value that parses back to a spec printing the same.
//!
//! This file is also compiled into the main package's `tests/fuzz_corpus.rs` (by `#[path]`),
//! so it uses only `keeperd` and `bytes`.

use bytes::BytesMut;
use keeperd::config::{Config, ServerSpec};
use keeperd::consensus::peer::{PeerMsg, Probe};
use keeperd::consensus::transport::Frame;
use keeperd::proto::codec::{
    decode_connect, decode_reply_header, decode_request, decode_response, decode_watcher_event,
    encode_connect_request, encode_notification, encode_reply, encode_request,
};
use keeperd::proto::request::Decoded;
use keeperd::proto::response::ReplyHeader;
use keeperd::proto::OpCode;

/// The body of a frame our encoder wrote, after checking its 4-byte length prefix.
fn body(frame: &[u8]) -> &[u8] {
    assert!(frame.len() >= 4, "encoded frame shorter than its prefix");
    let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
    assert_eq!(len as usize, frame.len() - 4, "length prefix disagrees");
    &frame[4..]
}

/// The jute decoders, server side (requests, the handshake) and client side (replies,
/// notifications), on the same bytes.
///
/// Returns whether any decoder accepted the input (the corpus replay test wants every seed
/// to be valid).
pub fn jute(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok((header, Decoded::Request(req))) = decode_request(data) {
        accepted = true;
        let mut once = BytesMut::new();
        encode_request(&mut once, header.xid, &req);
        let (again_header, again) =
            decode_request(body(&once)).expect("a re-encoded request must decode");
        assert_eq!(again_header.xid, header.xid);
        assert_eq!(again, Decoded::Request(req.clone()), "request changed");
        let mut twice = BytesMut::new();
        encode_request(&mut twice, header.xid, &req);
        assert_eq!(once, twice, "request encoding is not a fixpoint");
    }

    if let Ok(req) = decode_connect(data) {
        accepted = true;
        let mut once = BytesMut::new();
        encode_connect_request(&mut once, &req);
        let again = decode_connect(body(&once)).expect("a re-encoded connect must decode");
        assert_eq!(again, req, "connect request changed");
    }

    // Client side: the reply header, then the body as the reply to the opcode the xid
    // names (so the fuzzer can reach every response decoder), or a notification.
    if let Ok((header, rest)) = decode_reply_header(data) {
        if header.xid == -1 {
            if let Ok(event) = decode_watcher_event(rest) {
                accepted = true;
                let mut out = BytesMut::new();
                encode_notification(&mut out, &event);
                let (_, rest) = decode_reply_header(body(&out)).expect("notification header");
                let again = decode_watcher_event(rest).expect("a re-encoded event must decode");
                assert_eq!(again, event, "watcher event changed");
            }
        } else if let Some(op) = OpCode::from_i32(header.xid) {
            if let Ok(resp) = decode_response(op, rest) {
                accepted = true;
                let ok = ReplyHeader { err: 0, ..header };
                let mut out = BytesMut::new();
                encode_reply(&mut out, &ok, &resp);
                let (again_header, rest) =
                    decode_reply_header(body(&out)).expect("re-encoded reply header");
                assert_eq!(again_header, ok);
                let again = decode_response(op, rest).expect("a re-encoded reply must decode");
                assert_eq!(again, resp, "response to {op:?} changed");
            }
        }
    }
    accepted
}

/// The quorum port's frame decoder. A decoded frame re-encodes to exactly the input, with
/// two known exceptions where the decoder is lenient and the encoder canonical:
/// - a raft message is protobuf, whose encoding is not unique (field order, varint padding,
///   unknown fields): there the re-encoded body must decode to the same fields and
///   re-encode to the same size instead;
/// - a probe may carry an explicit `imported` of 0, which the encoder omits.
///
/// Returns whether the input decoded.
pub fn frame(data: &[u8]) -> bool {
    let Ok(frame) = Frame::decode_body(data) else {
        return false;
    };
    let again = frame.encode_body().expect("a decoded frame must re-encode");
    match &frame {
        Frame::Msg(PeerMsg::Raft(_)) => {
            // rust-protobuf 2 keeps unknown fields in a HashMap: it writes them in the map's
            // iteration order, which differs between two equal messages, and its `==` tells
            // an empty map from none (both found by this fuzzer, docs/security.md). So the
            // known fields are compared through Debug (protobuf's text format, which lists
            // every set field) and the unknown ones by the size they encode to.
            let back = Frame::decode_body(&again).expect("a re-encoded raft frame must decode");
            assert_eq!(
                format!("{back:?}"),
                format!("{frame:?}"),
                "raft frame changed"
            );
            let twice = back.encode_body().expect("re-encode");
            assert_eq!(twice.len(), again.len(), "raft frame lost or gained bytes");
        }
        Frame::Msg(PeerMsg::Probe(Probe::Fresh { imported: 0, .. }))
        | Frame::Msg(PeerMsg::Probe(Probe::Member))
            if data.len() == again.len() + 8 =>
        {
            assert_eq!(&data[..again.len()], &again[..], "probe changed");
            assert_eq!(&data[again.len()..], &[0u8; 8], "probe changed");
        }
        _ => assert_eq!(again, data, "frame did not re-encode to its body"),
    }
    true
}

/// The data directory the zoo.cfg seeds name (`dataDir=/tmp/keeperd-fuzz`): it holds a
/// `myid` of 1, so that ensemble configs (which need one) parse and their server lines get
/// checked.
pub const FUZZ_DATA_DIR: &str = "/tmp/keeperd-fuzz";

fn ensure_myid() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::path::Path::new(FUZZ_DATA_DIR);
        if !dir.join("myid").is_file() {
            std::fs::create_dir_all(dir).expect("create the fuzz data dir");
            std::fs::write(dir.join("myid"), "1\n").expect("write the fuzz myid");
        }
    });
}

/// Whether parsing these entries could look a host name up in DNS (`clientPortAddress`, or
/// the client address after `;` in a `server.N` line): the config reader resolves them, and
/// a fuzzer must not send queries to the network, so such inputs stop at the properties
/// reader.
fn needs_dns(entries: &[keeperd::config::properties::Entry]) -> bool {
    let not_ip = |host: &str| {
        let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
        !bare.is_empty() && bare.parse::<std::net::IpAddr>().is_err()
    };
    entries.iter().any(|e| {
        if e.key.ends_with("clientPortAddress") {
            return not_ip(&e.value);
        }
        match e.value.split_once(';') {
            Some((_, client)) if e.key.contains("server.") => client
                .rsplit_once(':')
                .is_some_and(|(host, _)| not_ip(host)),
            _ => false,
        }
    })
}

/// The zoo.cfg parser on the input as text (lossily: the file reader rejects invalid UTF-8
/// before parsing, so only text reaches it).
///
/// `parse_str` reads the files a config names (`dataDir/myid`, `dynamicConfigFile`, the
/// quorum secret). Configs with a value naming /dev, /proc or /sys (after the properties
/// reader's unescaping) are skipped so that a generated
/// `dynamicConfigFile=/dev/zero` or `/dev/stdin` does not hang the run: reading whatever
/// file the operator names is intended.
///
/// Returns whether the text parsed as a config.
pub fn zoocfg(data: &[u8]) -> bool {
    ensure_myid();
    let text = String::from_utf8_lossy(data);
    let Ok(entries) = keeperd::config::properties::parse(&text) else {
        return false;
    };
    if needs_dns(&entries)
        || entries.iter().any(|e| {
            ["/dev", "/proc", "/sys"]
                .iter()
                .any(|p| e.value.contains(p))
        })
    {
        return false;
    }
    let Ok(config) = Config::parse_str(&text, "/nonexistent-fuzz-dir") else {
        return false;
    };
    for spec in &config.servers {
        let key = format!("server.{}", spec.id);
        let shown = spec.to_string();
        let again = ServerSpec::parse(&key, &shown)
            .unwrap_or_else(|e| panic!("{key}={shown} does not parse back: {e}"));
        assert_eq!(
            again.to_string(),
            shown,
            "{key} prints differently once re-parsed"
        );
        assert_eq!(again.id, spec.id);
    }
    let _ = config.membership_lines();
    true
}
