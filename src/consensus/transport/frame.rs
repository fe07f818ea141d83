//! The quorum port's wire format: frames, their encoding and decoding (every byte
//! checked, never a panic on input), and reading one frame from a stream with a length
//! limit and a time limit. The frame table is in the transport module's doc.

use std::io;
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::io::AsyncReadExt;

use crate::consensus::peer::{Forward, PeerMsg, Probe};
use crate::consensus::peer_auth;

/// The frame format version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// The largest frame body accepted or sent (a MsgSnapshot carries the whole snapshot).
pub const MAX_FRAME: usize = 256 << 20;
/// A frame that started arriving must be complete within this (plus 100 ms per MiB).
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

const T_HELLO: u8 = 1;
const T_RAFT: u8 = 2;
const T_FORWARD: u8 = 3;
const T_TOUCH: u8 = 4;
const T_PROBE: u8 = 5;
const T_AUTH_HELLO: u8 = 6;
const T_CHALLENGE: u8 = 7;
const T_PROOF: u8 = 8;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Hello {
        from: u64,
        to: u64,
    },
    AuthHello {
        from: u64,
        to: u64,
        nonce: [u8; peer_auth::LEN],
    },
    Challenge {
        nonce: [u8; peer_auth::LEN],
        mac: [u8; peer_auth::LEN],
    },
    Proof {
        mac: [u8; peer_auth::LEN],
    },
    Msg(PeerMsg),
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("encoding a raft message: {0}")]
    Encode(protobuf::ProtobufError),
    #[error("Closed is not a frame")]
    NotAFrame,
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("frame version {0}, expected {FRAME_VERSION}")]
    Version(u8),
    #[error("frame without a type")]
    NoType,
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("{0} is truncated")]
    Truncated(&'static str),
    #[error("{what} of {len} bytes, expected {want}")]
    Size {
        what: &'static str,
        len: usize,
        want: usize,
    },
    #[error("bad raft message: {0}")]
    Raft(protobuf::ProtobufError),
    #[error("touch frame says {n} sessions, has {len} bytes")]
    TouchCount { n: usize, len: usize },
    #[error("probe frame has trailing bytes")]
    ProbeTrailing,
    #[error("bad probe state {0}")]
    ProbeState(u8),
}

/// A frame type's name in errors.
fn name_of(ty: u8) -> &'static str {
    match ty {
        T_HELLO => "hello",
        T_RAFT => "raft frame",
        T_FORWARD => "forward frame",
        T_TOUCH => "touch frame",
        T_PROBE => "probe frame",
        T_AUTH_HELLO => "auth hello",
        T_CHALLENGE => "challenge",
        T_PROOF => "proof",
        _ => "frame",
    }
}

impl Frame {
    /// The body (without the length prefix).
    pub fn encode_body(&self) -> Result<Vec<u8>, FrameError> {
        let mut out = vec![FRAME_VERSION];
        match self {
            Frame::Hello { from, to } => {
                out.push(T_HELLO);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
            }
            Frame::AuthHello { from, to, nonce } => {
                out.push(T_AUTH_HELLO);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
                out.extend_from_slice(nonce);
            }
            Frame::Challenge { nonce, mac } => {
                out.push(T_CHALLENGE);
                out.extend_from_slice(nonce);
                out.extend_from_slice(mac);
            }
            Frame::Proof { mac } => {
                out.push(T_PROOF);
                out.extend_from_slice(mac);
            }
            Frame::Msg(PeerMsg::Raft(m)) => {
                out.push(T_RAFT);
                m.write_to_vec(&mut out).map_err(FrameError::Encode)?;
            }
            Frame::Msg(PeerMsg::Forward(f)) => {
                out.push(T_FORWARD);
                out.extend_from_slice(&f.origin.to_be_bytes());
                out.extend_from_slice(&f.incarnation.to_be_bytes());
                out.extend_from_slice(&f.seq.to_be_bytes());
                out.extend_from_slice(&f.txn);
            }
            Frame::Msg(PeerMsg::Probe(p)) => {
                out.push(T_PROBE);
                let (state, voters, learners, imported): (u8, &[u64], &[u64], i64) = match p {
                    Probe::Fresh {
                        voters,
                        learners,
                        imported,
                    } => (0, voters, learners, *imported),
                    Probe::Member => (1, &[], &[], 0),
                };
                out.push(state);
                for list in [voters, learners] {
                    out.extend_from_slice(&(list.len() as u32).to_be_bytes());
                    for id in list {
                        out.extend_from_slice(&id.to_be_bytes());
                    }
                }
                if imported != 0 {
                    out.extend_from_slice(&imported.to_be_bytes());
                }
            }
            Frame::Msg(PeerMsg::Closed) => {
                return Err(FrameError::NotAFrame);
            }
            Frame::Msg(PeerMsg::Touch(sessions)) => {
                out.push(T_TOUCH);
                out.extend_from_slice(&(sessions.len() as u32).to_be_bytes());
                for s in sessions {
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
        }
        if out.len() > MAX_FRAME {
            return Err(FrameError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// Length prefix + body: what goes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let body = self.encode_body()?;
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a body. Invalid input is an error, never a panic.
    pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
        let (&version, rest) = body.split_first().ok_or(FrameError::Empty)?;
        if version != FRAME_VERSION {
            return Err(FrameError::Version(version));
        }
        let (&ty, p) = rest.split_first().ok_or(FrameError::NoType)?;
        let u64_at = |i: usize| {
            p.get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or(FrameError::Truncated(name_of(ty)))
        };
        match ty {
            T_HELLO => {
                if p.len() != 16 {
                    return Err(FrameError::Size {
                        what: "hello",
                        len: p.len(),
                        want: 16,
                    });
                }
                Ok(Frame::Hello {
                    from: u64_at(0)?,
                    to: u64_at(8)?,
                })
            }
            T_AUTH_HELLO | T_CHALLENGE | T_PROOF => {
                let want = match ty {
                    T_AUTH_HELLO => 16 + peer_auth::LEN,
                    T_CHALLENGE => 2 * peer_auth::LEN,
                    _ => peer_auth::LEN,
                };
                if p.len() != want {
                    return Err(FrameError::Size {
                        what: name_of(ty),
                        len: p.len(),
                        want,
                    });
                }
                let block = |i: usize| -> [u8; peer_auth::LEN] {
                    let mut b = [0u8; peer_auth::LEN];
                    b.copy_from_slice(&p[i..i + peer_auth::LEN]);
                    b
                };
                Ok(match ty {
                    T_AUTH_HELLO => Frame::AuthHello {
                        from: u64_at(0)?,
                        to: u64_at(8)?,
                        nonce: block(16),
                    },
                    T_CHALLENGE => Frame::Challenge {
                        nonce: block(0),
                        mac: block(peer_auth::LEN),
                    },
                    _ => Frame::Proof { mac: block(0) },
                })
            }
            T_RAFT => Message::parse_from_bytes(p)
                .map(|m| Frame::Msg(PeerMsg::Raft(m)))
                .map_err(FrameError::Raft),
            T_FORWARD => Ok(Frame::Msg(PeerMsg::Forward(Forward {
                origin: u64_at(0)?,
                incarnation: u64_at(8)?,
                seq: u64_at(16)?,
                txn: p.get(24..).unwrap_or_default().to_vec(),
            }))),
            T_TOUCH => {
                let n = p
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .ok_or(FrameError::Truncated("touch frame"))? as usize;
                let ids = p.get(4..).unwrap_or_default();
                if ids.len() != n.saturating_mul(8) {
                    return Err(FrameError::TouchCount { n, len: ids.len() });
                }
                Ok(Frame::Msg(PeerMsg::Touch(
                    ids.chunks_exact(8)
                        .filter_map(|c| c.try_into().ok().map(i64::from_be_bytes))
                        .collect(),
                )))
            }
            T_PROBE => {
                let (&state, mut rest) = p
                    .split_first()
                    .ok_or(FrameError::Truncated("probe frame"))?;
                let mut lists = vec![];
                for _ in 0..2 {
                    let n = rest
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_be_bytes)
                        .ok_or(FrameError::Truncated("probe frame"))?
                        as usize;
                    let ids = rest
                        .get(4..)
                        .and_then(|r| r.get(..n.saturating_mul(8)))
                        .ok_or(FrameError::Truncated("probe frame"))?;
                    lists.push(
                        ids.chunks_exact(8)
                            .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
                            .collect::<Vec<u64>>(),
                    );
                    rest = &rest[4 + ids.len()..];
                }
                let imported = match rest.len() {
                    0 => 0,
                    8 => i64::from_be_bytes(
                        rest.try_into()
                            .map_err(|_| FrameError::Truncated("probe frame"))?,
                    ),
                    _ => return Err(FrameError::ProbeTrailing),
                };
                let learners = lists.pop().unwrap_or_default();
                let voters = lists.pop().unwrap_or_default();
                match state {
                    0 => Ok(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
                        voters,
                        learners,
                        imported,
                    }))),
                    1 if voters.is_empty() && learners.is_empty() && imported == 0 => {
                        Ok(Frame::Msg(PeerMsg::Probe(Probe::Member)))
                    }
                    _ => Err(FrameError::ProbeState(state)),
                }
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }
}

/// Why reading a frame stopped.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Clean end of stream between frames.
    Closed,
    Io(io::Error),
    Invalid(String),
}

/// Reads one frame of at most `max` bytes. The body is read as it arrives (never allocated
/// up front from the length), so a bogus length costs nothing until the bytes actually come,
/// and it must arrive within `FRAME_TIMEOUT` (plus 100 ms per MiB) once it has started.
pub(super) async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Frame, ReadError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ReadError::Closed),
        Err(e) => return Err(ReadError::Io(e)),
    }
    let len = u32::from_be_bytes(len) as usize;
    if !(2..=max).contains(&len) {
        return Err(ReadError::Invalid(format!(
            "frame length {len} outside 2..={max}"
        )));
    }
    let mut body = Vec::with_capacity(len.min(64 << 10));
    let limit = FRAME_TIMEOUT + Duration::from_millis((len >> 20) as u64 * 100);
    match tokio::time::timeout(limit, (&mut *r).take(len as u64).read_to_end(&mut body)).await {
        Ok(r) => r.map_err(ReadError::Io)?,
        Err(_) => {
            return Err(ReadError::Invalid(format!(
                "{} of a {len}-byte frame in {limit:?}",
                body.len()
            )))
        }
    };
    if body.len() != len {
        return Err(ReadError::Invalid(format!(
            "connection closed inside a frame ({} of {len} bytes)",
            body.len()
        )));
    }
    Frame::decode_body(&body).map_err(|e| ReadError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::MessageType;

    fn roundtrip(f: Frame) {
        let wire = f.encode().expect("encode");
        let len = u32::from_be_bytes(wire[..4].try_into().expect("4 bytes")) as usize;
        assert_eq!(len, wire.len() - 4);
        assert_eq!(Frame::decode_body(&wire[4..]).expect("decode"), f);
    }

    #[test]
    fn frames_roundtrip() {
        roundtrip(Frame::Hello { from: 1, to: 3 });
        roundtrip(Frame::AuthHello {
            from: 1,
            to: 3,
            nonce: [7; 32],
        });
        roundtrip(Frame::Challenge {
            nonce: [1; 32],
            mac: [2; 32],
        });
        roundtrip(Frame::Proof { mac: [9; 32] });
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 2;
        m.to = 1;
        m.term = 7;
        m.index = 42;
        roundtrip(Frame::Msg(PeerMsg::Raft(m)));
        roundtrip(Frame::Msg(PeerMsg::Forward(Forward {
            origin: 2,
            incarnation: u64::MAX,
            seq: 9,
            txn: vec![1, 2, 3],
        })));
        roundtrip(Frame::Msg(PeerMsg::Touch(vec![-1, 0, i64::MAX])));
        roundtrip(Frame::Msg(PeerMsg::Touch(vec![])));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Member)));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![1, 2, 3],
            learners: vec![4],
            imported: 0,
        })));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![1, 2, 3],
            learners: vec![],
            imported: 0x5_0000_0123,
        })));
        roundtrip(Frame::Msg(PeerMsg::Probe(Probe::Fresh {
            voters: vec![],
            learners: vec![],
            imported: 0,
        })));
    }

    #[test]
    fn invalid_bodies_are_errors() {
        for (body, why) in [
            (&[][..], "empty"),
            (&[2, 1][..], "version"),
            (&[1][..], "type"),
            (&[1, 200][..], "unknown"),
            (&[1, 1, 0, 0][..], "hello"),
            (&[1, 2, 0xff, 0xff, 0xff][..], "raft"),
            (&[1, 3, 0, 0, 0, 1][..], "truncated"),
            (&[1, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1][..], "touch"),
            (&[1, 4, 0xff, 0xff, 0xff, 0xff][..], "touch"),
            (&[1, 5][..], "probe"),
            (&[1, 5, 0, 0, 0, 0, 1][..], "probe"),
            (&[1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9][..], "probe"),
            (&[1, 5, 7, 0, 0, 0, 0, 0, 0, 0, 0][..], "probe"),
        ] {
            let e = Frame::decode_body(body).expect_err(why);
            assert!(e.to_string().contains(why), "{body:?}: {e}");
        }
    }

    #[tokio::test]
    async fn read_frame_checks_the_length_before_reading() {
        let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 1];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        let mut r: &[u8] = &[0, 0, 0, 1, 1];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        // Cut inside a frame, and a clean end between frames.
        let mut r: &[u8] = &[0, 0, 0, 18, 1, 1, 0, 0];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Invalid(_))
        ));
        let mut r: &[u8] = &[];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Closed)
        ));
        let wire = Frame::Hello { from: 1, to: 2 }.encode().expect("encode");
        let mut r: &[u8] = &wire;
        assert_eq!(
            read_frame(&mut r, MAX_FRAME).await.expect("hello"),
            Frame::Hello { from: 1, to: 2 }
        );
    }
}
