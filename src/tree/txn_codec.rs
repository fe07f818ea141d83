//! The log entry format of a `Txn`: what the consensus layer stores and replicates.
//!
//! ```text
//! entry   := u8 format (1), u8 kind, fields
//! kind 1  CreateSession := long session, int timeoutMs
//! kind 2  CloseSession  := long session
//! kind 3  Client        := long session, long timeMs, int n, n * (ustring scheme, ustring id),
//!                          request frame exactly as a client sends it (int len, xid 0, op, body)
//! kind 4  Reap          := long timeMs, int n, n * ustring path
//! kind 5  SetConfig     := long timeMs, int len, data
//! kind 6  Reconfig      := long session, long timeMs, int n, n * (ustring scheme, ustring id),
//!                          reconfig request frame (as kind 3), int minVoters,
//!                          u8 hasView, [u8 inProgress, int m, m * long synced]
//! kind 7  SessionAuth   := long session, long server, int n, n * (ustring scheme, ustring id)
//! kind 8  Owned         := long server, u8 kind (2, 3 or 6), fields of that kind with n = 0
//!                          identities (an Owned write carries none)
//! ustring := int len, UTF-8 bytes
//! ```
//! Client requests are stored in ZooKeeper's own wire format, so the log reuses the codec
//! that is tested against the Java layouts, and an entry can be inspected with jute tools.

use bytes::{BufMut, BytesMut};

use super::{LeaderView, Txn};
use crate::proto::codec::{decode_request, encode_request};
use crate::proto::request::{Decoded, Request};
use crate::proto::{Error, Id};

const FORMAT: u8 = 1;

impl Txn {
    /// Appends this txn's log entry bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(FORMAT);
        self.encode_kind(out);
    }

    /// The kind byte and the fields.
    fn encode_kind(&self, out: &mut BytesMut) {
        match self {
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                out.put_u8(1);
                out.put_i64(*session_id);
                out.put_i32(*timeout_ms);
            }
            Txn::CloseSession { session_id } => {
                out.put_u8(2);
                out.put_i64(*session_id);
            }
            Txn::Client {
                session_id,
                time_ms,
                auth,
                request,
            } => {
                out.put_u8(3);
                out.put_i64(*session_id);
                out.put_i64(*time_ms);
                put_auth(out, auth);
                encode_request(out, 0, request);
            }
            Txn::SetConfig { time_ms, data } => {
                out.put_u8(5);
                out.put_i64(*time_ms);
                out.put_i32(data.len() as i32);
                out.put_slice(data);
            }
            Txn::Reconfig {
                session_id,
                time_ms,
                auth,
                request,
                min_voters,
                view,
            } => {
                out.put_u8(6);
                out.put_i64(*session_id);
                out.put_i64(*time_ms);
                put_auth(out, auth);
                encode_request(out, 0, &Request::Reconfig(request.clone()));
                out.put_i32(*min_voters as i32);
                match view {
                    None => out.put_u8(0),
                    Some(v) => {
                        out.put_u8(1);
                        out.put_u8(v.in_progress as u8);
                        out.put_i32(v.synced.len() as i32);
                        for id in &v.synced {
                            out.put_i64(*id as i64);
                        }
                    }
                }
            }
            Txn::SessionAuth {
                session_id,
                server,
                ids,
            } => {
                out.put_u8(7);
                out.put_i64(*session_id);
                out.put_i64(*server as i64);
                put_auth(out, ids);
            }
            Txn::Owned { server, txn } => {
                out.put_u8(8);
                out.put_i64(*server as i64);
                txn.encode_kind(out);
            }
            Txn::Reap { time_ms, paths } => {
                out.put_u8(4);
                out.put_i64(*time_ms);
                out.put_i32(paths.len() as i32);
                for p in paths {
                    put_str(out, p);
                }
            }
        }
    }

    /// The entry bytes of this txn.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = BytesMut::with_capacity(64);
        self.encode(&mut out);
        out.to_vec()
    }

    /// Decodes one entry. Bytes that are not a valid entry are an error, never a panic.
    pub fn decode(entry: &[u8]) -> Result<Txn, Error> {
        let mut r = Cursor { buf: entry, pos: 0 };
        let format = r.u8()?;
        if format != FORMAT {
            return Err(Error::malformed("txn", format!("unknown format {format}")));
        }
        let txn = r.txn()?;
        if r.pos != entry.len() {
            return Err(Error::malformed("txn", "trailing bytes"));
        }
        Ok(txn)
    }
}

impl Cursor<'_> {
    /// A kind byte and its fields.
    fn txn(&mut self) -> Result<Txn, Error> {
        let r = self;
        let txn = match r.u8()? {
            1 => Txn::CreateSession {
                session_id: r.i64()?,
                timeout_ms: r.i32()?,
            },
            2 => Txn::CloseSession {
                session_id: r.i64()?,
            },
            3 => {
                let session_id = r.i64()?;
                let time_ms = r.i64()?;
                let auth = r.auth()?;
                let request = r.request()?;
                Txn::Client {
                    session_id,
                    time_ms,
                    auth,
                    request,
                }
            }
            4 => {
                let time_ms = r.i64()?;
                let n = r.count()?;
                let mut paths = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    paths.push(r.string()?);
                }
                Txn::Reap { time_ms, paths }
            }
            5 => {
                let time_ms = r.i64()?;
                let n = r.count()?;
                let data = r.take(n)?.to_vec();
                Txn::SetConfig { time_ms, data }
            }
            6 => {
                let session_id = r.i64()?;
                let time_ms = r.i64()?;
                let auth = r.auth()?;
                let Request::Reconfig(request) = r.request()? else {
                    return Err(Error::malformed("txn", "reconfig entry without a reconfig"));
                };
                let min_voters = r.i32()?.max(0) as u32;
                let view = match r.u8()? {
                    0 => None,
                    1 => {
                        let in_progress = r.u8()? != 0;
                        let n = r.count()?;
                        let mut synced = Vec::with_capacity(n.min(256));
                        for _ in 0..n {
                            synced.push(r.i64()? as u64);
                        }
                        Some(LeaderView {
                            in_progress,
                            synced,
                        })
                    }
                    b => return Err(Error::malformed("txn", format!("bad view flag {b}"))),
                };
                Txn::Reconfig {
                    session_id,
                    time_ms,
                    auth,
                    request,
                    min_voters,
                    view,
                }
            }
            7 => Txn::SessionAuth {
                session_id: r.i64()?,
                server: r.i64()? as u64,
                ids: r.auth()?,
            },
            8 => {
                let server = r.i64()? as u64;
                // Checked before decoding, so owned entries never nest (no recursion).
                let kind = r.u8()?;
                if !matches!(kind, 2 | 3 | 6) {
                    return Err(Error::malformed(
                        "txn",
                        format!("owned write of kind {kind}"),
                    ));
                }
                r.pos -= 1;
                let txn = r.txn()?;
                let owned_kind = match &txn {
                    Txn::Client { auth, .. } | Txn::Reconfig { auth, .. } => auth.is_empty(),
                    Txn::CloseSession { .. } => true,
                    _ => false,
                };
                if !owned_kind {
                    return Err(Error::malformed(
                        "txn",
                        "an owned write that is not a client write without identities",
                    ));
                }
                Txn::Owned {
                    server,
                    txn: Box::new(txn),
                }
            }
            k => return Err(Error::malformed("txn", format!("unknown kind {k}"))),
        };
        Ok(txn)
    }
}

fn put_auth(out: &mut BytesMut, auth: &[Id]) {
    out.put_i32(auth.len() as i32);
    for id in auth {
        put_str(out, &id.scheme);
        put_str(out, &id.id);
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_i32(s.len() as i32);
    out.put_slice(s.as_bytes());
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Error::malformed("txn", format!("truncated at byte {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, Error> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A non-negative count or length that the remaining bytes could hold.
    fn count(&mut self) -> Result<usize, Error> {
        let n = self.i32()?;
        if n < 0 || n as usize > self.buf.len() - self.pos {
            return Err(Error::malformed("txn", format!("bad length {n}")));
        }
        Ok(n as usize)
    }

    fn auth(&mut self) -> Result<Vec<Id>, Error> {
        let n = self.count()?;
        let mut auth = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let scheme = self.string()?;
            let id = self.string()?;
            auth.push(Id { scheme, id });
        }
        Ok(auth)
    }

    /// A request frame as a client sends it (int len, header, body).
    fn request(&mut self) -> Result<Request, Error> {
        let len = self.count()?;
        let frame = self.take(len)?;
        match decode_request(frame)? {
            (_, Decoded::Request(req)) => Ok(req),
            (h, Decoded::Unknown) => Err(Error::malformed(
                "txn",
                format!("request with opcode {} in the log", h.op),
            )),
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        let n = self.count()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::malformed("txn", "invalid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::request::{CreateRequest, MultiOp, ReconfigRequest, Request, SetDataRequest};
    use crate::proto::{Acl, OpCode};

    fn samples() -> Vec<Txn> {
        vec![
            Txn::CreateSession {
                session_id: 0x0100_0000_0000_0001,
                timeout_ms: 6000,
            },
            Txn::CloseSession { session_id: -7 },
            Txn::Client {
                session_id: 42,
                time_ms: 1_700_000_000_000,
                auth: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h=")],
                request: Request::Multi(vec![
                    MultiOp::Create {
                        op: OpCode::Create,
                        req: CreateRequest {
                            path: "/brokers/ids/1".into(),
                            data: None,
                            acl: Acl::open_unsafe(),
                            flags: 1,
                            ttl: -1,
                        },
                    },
                    MultiOp::SetData(SetDataRequest {
                        path: "/brokers/ids/1".into(),
                        data: Some(bytes::Bytes::from_static(b"{}")),
                        version: 0,
                    }),
                ]),
            },
            Txn::Client {
                session_id: 1,
                time_ms: 5,
                auth: vec![],
                request: Request::Create {
                    op: OpCode::CreateTtl,
                    req: CreateRequest {
                        path: "/t".into(),
                        data: Some(bytes::Bytes::new()),
                        acl: Acl::open_unsafe(),
                        flags: 5,
                        ttl: 1000,
                    },
                },
            },
            Txn::Reap {
                time_ms: 9,
                paths: vec!["/a".into(), "/b/c".into()],
            },
            Txn::SetConfig {
                time_ms: 10,
                data: b"server.1=h:2888:3888:participant;0.0.0.0:2181\nversion=0".to_vec(),
            },
            Txn::Reconfig {
                session_id: 3,
                time_ms: 11,
                auth: vec![Id::new("super", "")],
                request: ReconfigRequest {
                    joining_servers: Some("server.4=h:1:2;3".into()),
                    leaving_servers: None,
                    new_members: None,
                    cur_config_id: -1,
                },
                min_voters: 2,
                view: None,
            },
            Txn::Reconfig {
                session_id: 3,
                time_ms: 11,
                auth: vec![],
                request: ReconfigRequest {
                    joining_servers: None,
                    leaving_servers: Some("2,3".into()),
                    new_members: Some(String::new()),
                    cur_config_id: 0x1_0000_0005,
                },
                min_voters: 1,
                view: Some(LeaderView {
                    in_progress: true,
                    synced: vec![1, 5],
                }),
            },
            Txn::SessionAuth {
                session_id: 42,
                server: 3,
                ids: vec![Id::new("ip", "10.0.0.1"), Id::new("sasl", "kafka")],
            },
            Txn::Owned {
                server: 2,
                txn: Box::new(Txn::CloseSession { session_id: 42 }),
            },
            Txn::Owned {
                server: 2,
                txn: Box::new(Txn::Client {
                    session_id: 42,
                    time_ms: 12,
                    auth: vec![],
                    request: Request::SetData(SetDataRequest {
                        path: "/a".into(),
                        data: None,
                        version: -1,
                    }),
                }),
            },
        ]
    }

    #[test]
    fn owned_writes_carry_no_identities_and_wrap_only_client_writes() {
        let with_auth = Txn::Owned {
            server: 2,
            txn: Box::new(Txn::Client {
                session_id: 42,
                time_ms: 12,
                auth: vec![Id::new("super", "")],
                request: Request::Delete(crate::proto::request::DeleteRequest {
                    path: "/a".into(),
                    version: -1,
                }),
            }),
        };
        assert!(Txn::decode(&with_auth.to_bytes()).is_err());
        for inner in [
            Txn::Reap {
                time_ms: 1,
                paths: vec![],
            },
            Txn::CreateSession {
                session_id: 1,
                timeout_ms: 1,
            },
            Txn::SessionAuth {
                session_id: 1,
                server: 2,
                ids: vec![],
            },
        ] {
            let t = Txn::Owned {
                server: 2,
                txn: Box::new(inner),
            };
            assert!(Txn::decode(&t.to_bytes()).is_err(), "{t:?}");
        }
    }

    #[test]
    fn every_kind_round_trips() {
        for t in samples() {
            let bytes = t.to_bytes();
            assert_eq!(Txn::decode(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn truncated_or_extended_entries_are_errors() {
        for t in samples() {
            let bytes = t.to_bytes();
            for cut in 0..bytes.len() {
                assert!(Txn::decode(&bytes[..cut]).is_err(), "{t:?} cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Txn::decode(&longer).is_err());
        }
        assert!(Txn::decode(&[2, 1]).is_err());
        assert!(Txn::decode(&[1, 9]).is_err());
    }
}
