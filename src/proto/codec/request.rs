//! Requests: the RequestHeader and every request body, decoded as the server reads them and
//! encoded as a client writes them (the txn log and the tests encode requests).

use bytes::{BufMut, BytesMut};

use super::jute::{
    boolean, buffer, fail, framed, int, long, opt_ustring, put_bool, put_buf, put_opt_str, put_str,
    put_strs, run, to_error, ustring, ustrings, PResult,
};
use super::records::{acls, multi_header, put_acls, put_multi_end, put_multi_header};
use crate::proto::error::Result;
use crate::proto::opcode::OpCode;
use crate::proto::records::{AddWatchMode, WatcherType};
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, Decoded, DeleteRequest, MultiOp, ReadOp, ReconfigRequest,
    Request, RequestHeader, SetAclRequest, SetDataRequest, SetWatches,
};

/// Decodes one request frame body (everything after the 4-byte length): RequestHeader, then
/// the record its opcode names. Opcodes this server does not serve give `Decoded::Unknown`
/// with the header intact, so the caller can answer UNIMPLEMENTED.
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Decoded)> {
    let (header, body) = decode_request_header(frame)?;
    let Some(op) = header.opcode() else {
        return Ok((header, Decoded::Unknown));
    };
    let decoded = match request_body(op, body) {
        Ok((_, Some(req))) => Decoded::Request(req),
        Ok((_, None)) => Decoded::Unknown,
        Err(e) => return Err(to_error("request", frame, e)),
    };
    Ok((header, decoded))
}

/// Decodes only the RequestHeader and returns the body after it. For a caller that wants the
/// xid of a request whose body `decode_request` rejected: for most opcodes the Java server
/// answers such a request with MARSHALLINGERROR (-5) rather than dropping the connection.
pub fn decode_request_header(frame: &[u8]) -> Result<(RequestHeader, &[u8])> {
    run("request header", frame, request_header)
}

/// Appends a whole request frame (length, RequestHeader, body) as a client would send it.
/// The header's opcode follows from the variant: `Create { op, .. }` uses `op` (which must be
/// one of the four create opcodes; `req.ttl` is written only for createTTL), `SetWatches` is
/// sent as setWatches (101) unless it carries persistent watches, then as setWatches2 (105),
/// and multiRead ops are sent with watch = false as the Java client does.
pub fn encode_request(out: &mut BytesMut, xid: i32, req: &Request) {
    framed(out, |out| {
        out.put_i32(xid);
        out.put_i32(request_opcode(req).code());
        put_request_body(out, req);
    })
}

/// The opcode `encode_request` puts in the header for `req`.
pub fn request_opcode(req: &Request) -> OpCode {
    match req {
        Request::Create { op, .. } => *op,
        Request::Delete(_) => OpCode::Delete,
        Request::Exists { .. } => OpCode::Exists,
        Request::GetData { .. } => OpCode::GetData,
        Request::SetData(_) => OpCode::SetData,
        Request::GetAcl { .. } => OpCode::GetAcl,
        Request::SetAcl(_) => OpCode::SetAcl,
        Request::GetChildren { with_stat, .. } => {
            if *with_stat {
                OpCode::GetChildren2
            } else {
                OpCode::GetChildren
            }
        }
        Request::Sync { .. } => OpCode::Sync,
        Request::Ping => OpCode::Ping,
        Request::Check(_) => OpCode::Check,
        Request::Multi(_) => OpCode::Multi,
        Request::MultiRead(_) => OpCode::MultiRead,
        Request::Reconfig(_) => OpCode::Reconfig,
        Request::RemoveWatches { remove, .. } => {
            if *remove {
                OpCode::RemoveWatches
            } else {
                OpCode::CheckWatches
            }
        }
        Request::Auth { .. } => OpCode::Auth,
        Request::Sasl { .. } => OpCode::Sasl,
        Request::SetWatches(sw) => {
            if sw.persistent_watches.is_empty() && sw.persistent_recursive_watches.is_empty() {
                OpCode::SetWatches
            } else {
                OpCode::SetWatches2
            }
        }
        Request::GetEphemerals { .. } => OpCode::GetEphemerals,
        Request::GetAllChildrenNumber { .. } => OpCode::GetAllChildrenNumber,
        Request::AddWatch { .. } => OpCode::AddWatch,
        Request::WhoAmI => OpCode::WhoAmI,
        Request::CloseSession => OpCode::CloseSession,
    }
}

fn request_header(i: &[u8]) -> PResult<'_, RequestHeader> {
    let (i, xid) = int(i)?;
    let (i, op) = int(i)?;
    Ok((i, RequestHeader { xid, op }))
}

/// The path of a request. The Java server fails on a null path (length -1) with a
/// NullPointerException that reaches the client as MARSHALLINGERROR, so null is malformed.
fn req_path(i: &[u8]) -> PResult<'_, String> {
    let (rest, s) = opt_ustring(i)?;
    match s {
        Some(s) => Ok((rest, s)),
        None => fail(i, "null path"),
    }
}

fn add_watch_mode_from_i32(v: i32) -> Option<AddWatchMode> {
    match v {
        0 => Some(AddWatchMode::Persistent),
        1 => Some(AddWatchMode::PersistentRecursive),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding: request bodies
// ---------------------------------------------------------------------------------------------

/// CreateRequest {path, data, acl, flags}, or CreateTTLRequest which adds `long ttl`.
fn create_request(with_ttl: bool) -> impl Fn(&[u8]) -> PResult<'_, CreateRequest> {
    move |i| {
        let (i, path) = req_path(i)?;
        let (i, data) = buffer(i)?;
        let (i, acl) = acls(i)?;
        let (i, flags) = int(i)?;
        let (i, ttl) = if with_ttl { long(i)? } else { (i, -1) };
        Ok((
            i,
            CreateRequest {
                path,
                data,
                acl,
                flags,
                ttl,
            },
        ))
    }
}

fn path_version(i: &[u8]) -> PResult<'_, (String, i32)> {
    let (i, path) = req_path(i)?;
    let (i, version) = int(i)?;
    Ok((i, (path, version)))
}

fn path_watch(i: &[u8]) -> PResult<'_, (String, bool)> {
    let (i, path) = req_path(i)?;
    let (i, watch) = boolean(i)?;
    Ok((i, (path, watch)))
}

fn delete_request(i: &[u8]) -> PResult<'_, DeleteRequest> {
    let (i, (path, version)) = path_version(i)?;
    Ok((i, DeleteRequest { path, version }))
}

fn check_request(i: &[u8]) -> PResult<'_, CheckVersionRequest> {
    let (i, (path, version)) = path_version(i)?;
    Ok((i, CheckVersionRequest { path, version }))
}

fn set_data_request(i: &[u8]) -> PResult<'_, SetDataRequest> {
    let (i, path) = req_path(i)?;
    let (i, data) = buffer(i)?;
    let (i, version) = int(i)?;
    Ok((
        i,
        SetDataRequest {
            path,
            data,
            version,
        },
    ))
}

/// MultiOperationRecord: (MultiHeader, op record)* until a header with done = true. Each
/// iteration consumes at least a 9-byte header, so the loop ends with the input.
fn multi_ops(mut i: &[u8]) -> PResult<'_, Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let start = i;
        let (rest, h) = multi_header(i)?;
        if h.done {
            return Ok((rest, ops));
        }
        let (rest, op) = match h.opcode() {
            Some(OpCode::Delete) => {
                let (r, d) = delete_request(rest)?;
                (r, MultiOp::Delete(d))
            }
            Some(OpCode::SetData) => {
                let (r, s) = set_data_request(rest)?;
                (r, MultiOp::SetData(s))
            }
            Some(OpCode::Check) => {
                let (r, c) = check_request(rest)?;
                (r, MultiOp::Check(c))
            }
            Some(op) if op.is_create() => {
                let (r, req) = create_request(op == OpCode::CreateTtl)(rest)?;
                (r, MultiOp::Create { op, req })
            }
            _ => return fail(start, format!("op type {} not allowed in multi", h.op)),
        };
        ops.push(op);
        i = rest;
    }
}

/// multiRead: the same framing as multi, with getChildren (8) and getData (4) records.
fn read_ops(mut i: &[u8]) -> PResult<'_, Vec<ReadOp>> {
    let mut ops = Vec::new();
    loop {
        let start = i;
        let (rest, h) = multi_header(i)?;
        if h.done {
            return Ok((rest, ops));
        }
        // The watch flag is read and dropped: the Java server builds these ops without one.
        let (rest, op) = match h.opcode() {
            Some(OpCode::GetChildren) => {
                let (r, (path, _watch)) = path_watch(rest)?;
                (r, ReadOp::GetChildren { path })
            }
            Some(OpCode::GetData) => {
                let (r, (path, _watch)) = path_watch(rest)?;
                (r, ReadOp::GetData { path })
            }
            _ => return fail(start, format!("op type {} not allowed in multiRead", h.op)),
        };
        ops.push(op);
        i = rest;
    }
}

fn set_watches(v2: bool) -> impl Fn(&[u8]) -> PResult<'_, SetWatches> {
    move |i| {
        let (i, relative_zxid) = long(i)?;
        let (i, data_watches) = ustrings(i)?;
        let (i, exist_watches) = ustrings(i)?;
        let (i, child_watches) = ustrings(i)?;
        let (i, persistent_watches, persistent_recursive_watches) = if v2 {
            let (i, p) = ustrings(i)?;
            let (i, r) = ustrings(i)?;
            (i, p, r)
        } else {
            (i, Vec::new(), Vec::new())
        };
        Ok((
            i,
            SetWatches {
                relative_zxid,
                data_watches,
                exist_watches,
                child_watches,
                persistent_watches,
                persistent_recursive_watches,
            },
        ))
    }
}

/// The body named by `code`; `None` for opcodes that are not served (answered UNIMPLEMENTED).
fn request_body(code: OpCode, i: &[u8]) -> PResult<'_, Option<Request>> {
    let (i, req) = match code {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            let (i, req) = create_request(code == OpCode::CreateTtl)(i)?;
            (i, Request::Create { op: code, req })
        }
        OpCode::Delete => {
            let (i, d) = delete_request(i)?;
            (i, Request::Delete(d))
        }
        OpCode::Exists => {
            let (i, (path, watch)) = path_watch(i)?;
            (i, Request::Exists { path, watch })
        }
        OpCode::GetData => {
            let (i, (path, watch)) = path_watch(i)?;
            (i, Request::GetData { path, watch })
        }
        OpCode::SetData => {
            let (i, s) = set_data_request(i)?;
            (i, Request::SetData(s))
        }
        OpCode::GetAcl => {
            let (i, path) = req_path(i)?;
            (i, Request::GetAcl { path })
        }
        OpCode::SetAcl => {
            let (i, path) = req_path(i)?;
            let (i, acl) = acls(i)?;
            let (i, version) = int(i)?;
            (i, Request::SetAcl(SetAclRequest { path, acl, version }))
        }
        OpCode::GetChildren | OpCode::GetChildren2 => {
            let (i, (path, watch)) = path_watch(i)?;
            let with_stat = code == OpCode::GetChildren2;
            (
                i,
                Request::GetChildren {
                    path,
                    watch,
                    with_stat,
                },
            )
        }
        OpCode::Sync => {
            let (i, path) = req_path(i)?;
            (i, Request::Sync { path })
        }
        OpCode::Ping => (i, Request::Ping),
        OpCode::Check => {
            let (i, c) = check_request(i)?;
            (i, Request::Check(c))
        }
        OpCode::Multi => {
            let (i, ops) = multi_ops(i)?;
            (i, Request::Multi(ops))
        }
        OpCode::MultiRead => {
            let (i, ops) = read_ops(i)?;
            (i, Request::MultiRead(ops))
        }
        OpCode::Reconfig => {
            let (i, joining_servers) = opt_ustring(i)?;
            let (i, leaving_servers) = opt_ustring(i)?;
            let (i, new_members) = opt_ustring(i)?;
            let (i, cur_config_id) = long(i)?;
            (
                i,
                Request::Reconfig(ReconfigRequest {
                    joining_servers,
                    leaving_servers,
                    new_members,
                    cur_config_id,
                }),
            )
        }
        OpCode::CheckWatches | OpCode::RemoveWatches => {
            let (rest, path) = ustring(i)?;
            let (rest, t) = int(rest)?;
            let Some(watcher_type) = WatcherType::from_i32(t) else {
                return fail(i, format!("unknown watcher type {t}"));
            };
            let remove = code == OpCode::RemoveWatches;
            (
                rest,
                Request::RemoveWatches {
                    path,
                    watcher_type,
                    remove,
                },
            )
        }
        OpCode::Auth => {
            let (i, auth_type) = int(i)?;
            let (i, scheme) = ustring(i)?;
            let (i, auth) = buffer(i)?;
            let auth = auth.unwrap_or_default();
            (
                i,
                Request::Auth {
                    auth_type,
                    scheme,
                    auth,
                },
            )
        }
        OpCode::Sasl => {
            let (i, token) = buffer(i)?;
            (i, Request::Sasl { token })
        }
        OpCode::SetWatches | OpCode::SetWatches2 => {
            let (i, sw) = set_watches(code == OpCode::SetWatches2)(i)?;
            (i, Request::SetWatches(sw))
        }
        OpCode::GetEphemerals => {
            let (i, prefix) = ustring(i)?;
            (i, Request::GetEphemerals { prefix })
        }
        OpCode::GetAllChildrenNumber => {
            let (i, path) = req_path(i)?;
            (i, Request::GetAllChildrenNumber { path })
        }
        OpCode::AddWatch => {
            let (rest, path) = ustring(i)?;
            let (rest, m) = int(rest)?;
            let Some(mode) = add_watch_mode_from_i32(m) else {
                return fail(i, format!("unknown addWatch mode {m}"));
            };
            (rest, Request::AddWatch { path, mode })
        }
        OpCode::WhoAmI => (i, Request::WhoAmI),
        OpCode::CloseSession => (i, Request::CloseSession),
        // Not client requests (notification, error, createSession, deleteContainer): the
        // caller answers UNIMPLEMENTED.
        OpCode::Notification | OpCode::Error | OpCode::CreateSession | OpCode::DeleteContainer => {
            return Ok((i, None))
        }
    };
    Ok((i, Some(req)))
}

// ---------------------------------------------------------------------------------------------
// Encoding: request bodies
// ---------------------------------------------------------------------------------------------

fn put_create(out: &mut BytesMut, op: OpCode, req: &CreateRequest) {
    put_str(out, &req.path);
    put_buf(out, req.data.as_deref());
    put_acls(out, &req.acl);
    out.put_i32(req.flags);
    if op == OpCode::CreateTtl {
        out.put_i64(req.ttl);
    }
}

fn put_set_data(out: &mut BytesMut, s: &SetDataRequest) {
    put_str(out, &s.path);
    put_buf(out, s.data.as_deref());
    out.put_i32(s.version);
}

fn put_request_body(out: &mut BytesMut, req: &Request) {
    match req {
        Request::Create { op, req } => put_create(out, *op, req),
        Request::Delete(d) => {
            put_str(out, &d.path);
            out.put_i32(d.version);
        }
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch, .. } => {
            put_str(out, path);
            put_bool(out, *watch);
        }
        Request::SetData(s) => put_set_data(out, s),
        Request::GetAcl { path }
        | Request::Sync { path }
        | Request::GetEphemerals { prefix: path }
        | Request::GetAllChildrenNumber { path } => put_str(out, path),
        Request::SetAcl(s) => {
            put_str(out, &s.path);
            put_acls(out, &s.acl);
            out.put_i32(s.version);
        }
        Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        Request::Check(c) => {
            put_str(out, &c.path);
            out.put_i32(c.version);
        }
        Request::Multi(ops) => {
            // The Java client writes err -1 in request headers; the server ignores it.
            for op in ops {
                match op {
                    MultiOp::Create { op, req } => {
                        put_multi_header(out, *op, -1);
                        put_create(out, *op, req);
                    }
                    MultiOp::Delete(d) => {
                        put_multi_header(out, OpCode::Delete, -1);
                        put_str(out, &d.path);
                        out.put_i32(d.version);
                    }
                    MultiOp::SetData(s) => {
                        put_multi_header(out, OpCode::SetData, -1);
                        put_set_data(out, s);
                    }
                    MultiOp::Check(c) => {
                        put_multi_header(out, OpCode::Check, -1);
                        put_str(out, &c.path);
                        out.put_i32(c.version);
                    }
                }
            }
            put_multi_end(out);
        }
        Request::MultiRead(ops) => {
            for op in ops {
                let (code, path) = match op {
                    ReadOp::GetChildren { path } => (OpCode::GetChildren, path),
                    ReadOp::GetData { path } => (OpCode::GetData, path),
                };
                put_multi_header(out, code, -1);
                put_str(out, path);
                put_bool(out, false);
            }
            put_multi_end(out);
        }
        Request::Reconfig(r) => {
            put_opt_str(out, r.joining_servers.as_deref());
            put_opt_str(out, r.leaving_servers.as_deref());
            put_opt_str(out, r.new_members.as_deref());
            out.put_i64(r.cur_config_id);
        }
        Request::RemoveWatches {
            path, watcher_type, ..
        } => {
            put_str(out, path);
            out.put_i32(*watcher_type as i32);
        }
        Request::Auth {
            auth_type,
            scheme,
            auth,
        } => {
            out.put_i32(*auth_type);
            put_str(out, scheme);
            put_buf(out, Some(auth));
        }
        Request::Sasl { token } => put_buf(out, token.as_deref()),
        Request::SetWatches(sw) => {
            out.put_i64(sw.relative_zxid);
            put_strs(out, &sw.data_watches);
            put_strs(out, &sw.exist_watches);
            put_strs(out, &sw.child_watches);
            if request_opcode(req) == OpCode::SetWatches2 {
                put_strs(out, &sw.persistent_watches);
                put_strs(out, &sw.persistent_recursive_watches);
            }
        }
        Request::AddWatch { path, mode } => {
            put_str(out, path);
            out.put_i32(*mode as i32);
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
