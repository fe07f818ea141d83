//! Replies: the ReplyHeader, the response body each opcode calls for, and notifications
//! (a ReplyHeader with xid -1 followed by a WatcherEvent). The server encodes them; the
//! decoders are the client side, for tests and tools.

use bytes::{BufMut, Bytes, BytesMut};

use super::jute::{
    buffer, fail, framed, int, long, put_buf, put_str, put_strs, run, ustring, ustrings, vector,
    wire_len, PResult,
};
use super::records::{
    acls, multi_header, put_acls, put_multi_end, put_multi_header, put_stat, stat,
};
use crate::proto::error::Result;
use crate::proto::opcode::OpCode;
use crate::proto::records::{ClientInfo, EventType, KeeperState, Stat, WatcherEvent};
use crate::proto::response::{OpResult, ReplyHeader, Response};

/// The jute `vector<ustring>` of `names` (count, then each length and UTF-8 bytes), as the
/// body of `Response::ChildrenEncoded`.
pub fn encode_names<'a>(names: impl ExactSizeIterator<Item = &'a str> + Clone) -> Bytes {
    let len = 4 + names.clone().map(|n| 4 + n.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_i32(wire_len(names.len()));
    for name in names {
        put_str(&mut out, name);
    }
    out.freeze()
}

/// Appends a whole reply frame: length, ReplyHeader, then the body record unless
/// `header.err != 0` (ZooKeeper sends only the header for a failed request).
pub fn encode_reply(out: &mut BytesMut, header: &ReplyHeader, body: &Response) {
    framed(out, |out| {
        put_reply_header(out, header);
        // ZooKeeper writes no body after an error, except SetSASLResponse: a failed SASL
        // login is answered with the error and a null token, and the Java client reads that
        // token while its exchange is in progress (without it, it reconnects and retries
        // instead of reporting AuthFailed).
        if header.err == 0 || matches!(body, Response::Sasl { .. }) {
            put_response_body(out, body);
        }
    })
}

/// Appends a whole notification frame: ReplyHeader(xid -1, zxid -1, err 0), WatcherEvent.
pub fn encode_notification(out: &mut BytesMut, event: &WatcherEvent) {
    framed(out, |out| {
        put_reply_header(
            out,
            &ReplyHeader {
                xid: crate::proto::opcode::xid::NOTIFICATION,
                zxid: -1,
                err: 0,
            },
        );
        out.put_i32(event.event_type as i32);
        out.put_i32(event.state as i32);
        put_str(out, &event.path);
    })
}

/// Decodes the ReplyHeader at the front of a reply frame body and returns it with the rest
/// of the body. xid -1 marks a notification (decode the rest with `decode_watcher_event`);
/// otherwise decode the rest with `decode_response` when `err == 0`.
pub fn decode_reply_header(frame: &[u8]) -> Result<(ReplyHeader, &[u8])> {
    run("reply header", frame, reply_header)
}

/// Decodes the body of a successful reply to a request of opcode `op` (the bytes after the
/// ReplyHeader). Opcodes whose reply has no body, and those this codec does not know, give
/// `Response::Empty` without looking at the bytes.
pub fn decode_response(op: OpCode, body: &[u8]) -> Result<Response> {
    run("response", body, |i| response_body(op, i)).map(|(resp, _)| resp)
}

/// Decodes the WatcherEvent that follows a notification's ReplyHeader. Event types and
/// states outside the enums in `records` are malformed.
pub fn decode_watcher_event(body: &[u8]) -> Result<WatcherEvent> {
    run("watcher event", body, watcher_event).map(|(ev, _)| ev)
}

fn reply_header(i: &[u8]) -> PResult<'_, ReplyHeader> {
    let (i, xid) = int(i)?;
    let (i, zxid) = long(i)?;
    let (i, err) = int(i)?;
    Ok((i, ReplyHeader { xid, zxid, err }))
}

fn watcher_event(i: &[u8]) -> PResult<'_, WatcherEvent> {
    let start = i;
    let (i, t) = int(i)?;
    let Some(event_type) = event_type_from_i32(t) else {
        return fail(start, format!("unknown event type {t}"));
    };
    let (i, s) = int(i)?;
    let Some(state) = keeper_state_from_i32(s) else {
        return fail(start, format!("unknown keeper state {s}"));
    };
    let (i, path) = ustring(i)?;
    Ok((
        i,
        WatcherEvent {
            event_type,
            state,
            path,
        },
    ))
}

fn event_type_from_i32(v: i32) -> Option<EventType> {
    Some(match v {
        -1 => EventType::None,
        1 => EventType::NodeCreated,
        2 => EventType::NodeDeleted,
        3 => EventType::NodeDataChanged,
        4 => EventType::NodeChildrenChanged,
        5 => EventType::DataWatchRemoved,
        6 => EventType::ChildWatchRemoved,
        7 => EventType::PersistentWatchRemoved,
        _ => return None,
    })
}

fn keeper_state_from_i32(v: i32) -> Option<KeeperState> {
    Some(match v {
        0 => KeeperState::Disconnected,
        3 => KeeperState::SyncConnected,
        4 => KeeperState::AuthFailed,
        5 => KeeperState::ConnectedReadOnly,
        6 => KeeperState::SaslAuthenticated,
        -112 => KeeperState::Expired,
        7 => KeeperState::Closed,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding: response bodies
// ---------------------------------------------------------------------------------------------

fn get_data_response(i: &[u8]) -> PResult<'_, (Option<Bytes>, Stat)> {
    let (i, data) = buffer(i)?;
    let (i, st) = stat(i)?;
    Ok((i, (data, st)))
}

fn path_stat(i: &[u8]) -> PResult<'_, (String, Stat)> {
    let (i, path) = ustring(i)?;
    let (i, st) = stat(i)?;
    Ok((i, (path, st)))
}

fn client_info(i: &[u8]) -> PResult<'_, ClientInfo> {
    let (i, auth_scheme) = ustring(i)?;
    let (i, user) = ustring(i)?;
    Ok((i, ClientInfo { auth_scheme, user }))
}

/// MultiResponse: (MultiHeader, result record)* until a header with done = true.
fn multi_results(mut i: &[u8]) -> PResult<'_, Vec<OpResult>> {
    let mut results = Vec::new();
    loop {
        let start = i;
        let (rest, h) = multi_header(i)?;
        if h.done {
            return Ok((rest, results));
        }
        let (rest, result) = match h.opcode() {
            Some(OpCode::Create) => {
                let (r, path) = ustring(rest)?;
                (r, OpResult::Create { path })
            }
            Some(OpCode::Create2) => {
                let (r, (path, stat)) = path_stat(rest)?;
                (r, OpResult::Create2 { path, stat })
            }
            Some(OpCode::Delete) => (rest, OpResult::Delete),
            Some(OpCode::SetData) => {
                let (r, stat) = stat(rest)?;
                (r, OpResult::SetData { stat })
            }
            Some(OpCode::Check) => (rest, OpResult::Check),
            Some(OpCode::GetChildren) => {
                let (r, children) = ustrings(rest)?;
                (r, OpResult::GetChildren { children })
            }
            Some(OpCode::GetData) => {
                let (r, (data, stat)) = get_data_response(rest)?;
                (r, OpResult::GetData { data, stat })
            }
            Some(OpCode::Error) => {
                let (r, err) = int(rest)?;
                (r, OpResult::Error { err })
            }
            _ => {
                return fail(
                    start,
                    format!("result type {} not allowed in multi response", h.op),
                )
            }
        };
        results.push(result);
        i = rest;
    }
}

fn response_body(op: OpCode, i: &[u8]) -> PResult<'_, Response> {
    let (i, resp) = match op {
        OpCode::Create => {
            let (i, path) = ustring(i)?;
            (i, Response::Create { path })
        }
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            let (i, (path, stat)) = path_stat(i)?;
            (i, Response::Create2 { path, stat })
        }
        // exists, setData, setACL and a standalone check all answer with a Stat.
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl | OpCode::Check => {
            let (i, st) = stat(i)?;
            (i, Response::Stat(st))
        }
        OpCode::GetData | OpCode::Reconfig => {
            let (i, (data, stat)) = get_data_response(i)?;
            (i, Response::GetData { data, stat })
        }
        OpCode::GetAcl => {
            let (i, acl) = acls(i)?;
            let (i, stat) = stat(i)?;
            (i, Response::GetAcl { acl, stat })
        }
        OpCode::GetChildren => {
            let (i, children) = ustrings(i)?;
            (i, Response::GetChildren { children })
        }
        OpCode::GetChildren2 => {
            let (i, children) = ustrings(i)?;
            let (i, stat) = stat(i)?;
            (i, Response::GetChildren2 { children, stat })
        }
        OpCode::Sync => {
            let (i, path) = ustring(i)?;
            (i, Response::Sync { path })
        }
        OpCode::Multi | OpCode::MultiRead => {
            let (i, results) = multi_results(i)?;
            (i, Response::Multi(results))
        }
        OpCode::GetEphemerals => {
            let (i, ephemerals) = ustrings(i)?;
            (i, Response::GetEphemerals { ephemerals })
        }
        OpCode::GetAllChildrenNumber => {
            let (i, total) = int(i)?;
            (i, Response::GetAllChildrenNumber { total })
        }
        OpCode::WhoAmI => {
            let (i, infos) = vector(8, client_info)(i)?;
            (i, Response::WhoAmI(infos))
        }
        OpCode::AddWatch => {
            let (i, err) = int(i)?;
            (i, Response::ErrorCode(err))
        }
        OpCode::Sasl => {
            let (i, token) = buffer(i)?;
            (i, Response::Sasl { token })
        }
        OpCode::Delete
        | OpCode::Ping
        | OpCode::CheckWatches
        | OpCode::RemoveWatches
        | OpCode::Auth
        | OpCode::SetWatches
        | OpCode::SetWatches2
        | OpCode::CloseSession
        | OpCode::Notification
        | OpCode::DeleteContainer
        | OpCode::CreateSession
        | OpCode::Error => (i, Response::Empty),
    };
    Ok((i, resp))
}

// ---------------------------------------------------------------------------------------------
// Encoding: reply bodies
// ---------------------------------------------------------------------------------------------

fn put_reply_header(out: &mut BytesMut, h: &ReplyHeader) {
    out.put_i32(h.xid);
    out.put_i64(h.zxid);
    out.put_i32(h.err);
}

fn put_response_body(out: &mut BytesMut, body: &Response) {
    match body {
        Response::Empty => {}
        Response::Create { path } | Response::Sync { path } => put_str(out, path),
        Response::Create2 { path, stat } => {
            put_str(out, path);
            put_stat(out, stat);
        }
        Response::Stat(stat) => put_stat(out, stat),
        Response::GetData { data, stat } => {
            put_buf(out, data.as_deref());
            put_stat(out, stat);
        }
        Response::GetAcl { acl, stat } => {
            put_acls(out, acl);
            put_stat(out, stat);
        }
        Response::GetChildren { children }
        | Response::GetEphemerals {
            ephemerals: children,
        } => put_strs(out, children),
        Response::GetChildren2 { children, stat } => {
            put_strs(out, children);
            put_stat(out, stat);
        }
        Response::ChildrenEncoded { names, stat } => {
            out.put_slice(names);
            if let Some(stat) = stat {
                put_stat(out, stat);
            }
        }
        Response::Multi(results) => {
            for r in results {
                put_op_result(out, r);
            }
            put_multi_end(out);
        }
        Response::GetAllChildrenNumber { total } => out.put_i32(*total),
        Response::ErrorCode(err) => out.put_i32(*err),
        Response::Sasl { token } => put_buf(out, token.as_deref()),
        Response::WhoAmI(infos) => {
            out.put_i32(wire_len(infos.len()));
            for info in infos {
                put_str(out, &info.auth_scheme);
                put_str(out, &info.user);
            }
        }
    }
}

/// One entry of a MultiResponse: MultiHeader(type, false, err) and the result record. Only
/// ErrorResult carries a non-zero err in its header (MultiResponse.serialize).
fn put_op_result(out: &mut BytesMut, r: &OpResult) {
    match r {
        OpResult::Create { path } => {
            put_multi_header(out, OpCode::Create, 0);
            put_str(out, path);
        }
        OpResult::Create2 { path, stat } => {
            put_multi_header(out, OpCode::Create2, 0);
            put_str(out, path);
            put_stat(out, stat);
        }
        OpResult::Delete => put_multi_header(out, OpCode::Delete, 0),
        OpResult::SetData { stat } => {
            put_multi_header(out, OpCode::SetData, 0);
            put_stat(out, stat);
        }
        OpResult::Check => put_multi_header(out, OpCode::Check, 0),
        OpResult::GetChildren { children } => {
            put_multi_header(out, OpCode::GetChildren, 0);
            put_strs(out, children);
        }
        OpResult::GetChildrenEncoded { names } => {
            put_multi_header(out, OpCode::GetChildren, 0);
            out.put_slice(names);
        }
        OpResult::GetData { data, stat } => {
            put_multi_header(out, OpCode::GetData, 0);
            put_buf(out, data.as_deref());
            put_stat(out, stat);
        }
        OpResult::Error { err } => {
            put_multi_header(out, OpCode::Error, *err);
            out.put_i32(*err);
        }
    }
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
