//! jute, ZooKeeper's serialization, for the client protocol: nom decoders over `&[u8]` and
//! encoders that append to a `BytesMut`.
//!
//! ```text
//! int     := 4 bytes, big-endian two's complement
//! long    := 8 bytes, big-endian two's complement
//! boolean := 1 byte, nonzero is true (we write 0 or 1)
//! buffer  := int len, len bytes; len -1 is null
//! ustring := int len, len bytes of UTF-8; len -1 is null
//! vector  := int count, count elements; count -1 is null
//! record  := its fields in declaration order, no tags, no padding
//! ```
//!
//! Invariants of the decoders, which see bytes a peer controls:
//! - They never panic and never allocate from a length before checking that the remaining
//!   input can hold it, so a hostile count costs at most the frame it arrived in.
//! - Any length below -1 is malformed, as in the Java server's `checkLength`.
//! - null decodes to `None` only where the Rust type can say so (buffers, reconfig's strings);
//!   elsewhere a null string decodes as "" and a null vector as empty.
//! - Invalid UTF-8 in a ustring is replaced with U+FFFD, as Java's `new String(b, UTF_8)`
//!   does, rather than rejected: the Java server accepts such requests.
//! - Bytes after a complete record are ignored, as the Java server ignores them.
//!
//! Encoders write exactly what the Java client and server write, including the 4-byte frame
//! length. They trust their input: lengths above `i32::MAX` cannot be framed and are not
//! expected (jute.maxbuffer bounds every payload far below that).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_i32, be_i64, be_u8};
use nom::IResult;

use super::connect::{ConnectRequest, ConnectResponse};
use super::error::{Error, Result};
use super::opcode::OpCode;
use super::records::{
    Acl, AddWatchMode, ClientInfo, EventType, Id, KeeperState, Stat, WatcherEvent, WatcherType,
};
use super::request::{
    CheckVersionRequest, CreateRequest, Decoded, DeleteRequest, MultiOp, ReadOp, ReconfigRequest,
    Request, RequestHeader, SetAclRequest, SetDataRequest, SetWatches,
};
use super::response::{OpResult, ReplyHeader, Response};

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Decodes one request frame body (everything after the 4-byte length): RequestHeader, then
/// the record its opcode names. sasl (102) and opcodes this server does not serve give
/// `Decoded::Unknown` with the header intact, so the caller can answer UNIMPLEMENTED.
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Decoded)> {
    let (header, body) = decode_request_header(frame)?;
    let decoded = match request_body(header.op, body) {
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

/// Appends a whole reply frame: length, ReplyHeader, then the body record unless
/// `header.err != 0` (ZooKeeper sends only the header for a failed request).
pub fn encode_reply(out: &mut BytesMut, header: &ReplyHeader, body: &Response) {
    framed(out, |out| {
        put_reply_header(out, header);
        if header.err == 0 {
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
                xid: super::opcode::xid::NOTIFICATION,
                zxid: -1,
                err: 0,
            },
        );
        out.put_i32(event.event_type as i32);
        out.put_i32(event.state as i32);
        put_str(out, &event.path);
    })
}

/// Decodes a ConnectRequest frame body. readOnly is read when at least one byte follows the
/// password (45-byte body for a 16-byte password) and is `None` when none does (3.4 clients).
pub fn decode_connect(frame: &[u8]) -> Result<ConnectRequest> {
    run("connect request", frame, connect_request).map(|(req, _)| req)
}

/// Appends a whole ConnectRequest frame; readOnly is written only when `Some`.
pub fn encode_connect_request(out: &mut BytesMut, req: &ConnectRequest) {
    framed(out, |out| {
        out.put_i32(req.protocol_version);
        out.put_i64(req.last_zxid_seen);
        out.put_i32(req.timeout_ms);
        out.put_i64(req.session_id);
        put_buf(out, Some(&req.passwd));
        if let Some(ro) = req.read_only {
            put_bool(out, ro);
        }
    })
}

/// Appends a whole ConnectResponse frame; readOnly is written only when `Some`.
pub fn encode_connect_response(out: &mut BytesMut, resp: &ConnectResponse) {
    framed(out, |out| {
        out.put_i32(resp.protocol_version);
        out.put_i32(resp.timeout_ms);
        out.put_i64(resp.session_id);
        put_buf(out, Some(&resp.passwd));
        if let Some(ro) = resp.read_only {
            put_bool(out, ro);
        }
    })
}

/// Decodes a ConnectResponse frame body (the client side of the handshake). A null password
/// decodes as empty.
pub fn decode_connect_response(frame: &[u8]) -> Result<ConnectResponse> {
    run("connect response", frame, connect_response).map(|(resp, _)| resp)
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

// ---------------------------------------------------------------------------------------------
// Decoding: error plumbing
// ---------------------------------------------------------------------------------------------

/// nom error that keeps a readable reason and where it happened (as the number of bytes left,
/// turned into an offset once the whole input is known again).
#[derive(Debug)]
struct JuteError {
    remaining: usize,
    detail: Cow<'static, str>,
}

impl<'a> ParseError<&'a [u8]> for JuteError {
    fn from_error_kind(input: &'a [u8], kind: ErrorKind) -> Self {
        let detail = match kind {
            ErrorKind::Eof => Cow::Borrowed("truncated"),
            other => Cow::Owned(format!("{other:?}")),
        };
        JuteError {
            remaining: input.len(),
            detail,
        }
    }

    fn append(_: &'a [u8], _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<&'a [u8], T, JuteError>;

/// Fails at `input` with a reason.
fn fail<T>(input: &[u8], detail: impl Into<Cow<'static, str>>) -> PResult<'_, T> {
    Err(nom::Err::Error(JuteError {
        remaining: input.len(),
        detail: detail.into(),
    }))
}

fn to_error(what: &'static str, whole: &[u8], e: nom::Err<JuteError>) -> Error {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => {
            let at = whole.len().saturating_sub(e.remaining);
            Error::malformed(what, format!("{} at byte {at}", e.detail))
        }
        // Only `streaming` parsers say Incomplete and none are used; treat it as truncation.
        nom::Err::Incomplete(_) => Error::malformed(what, "truncated"),
    }
}

/// Runs a parser over a whole input; returns the value and the unread tail.
fn run<'a, T>(
    what: &'static str,
    input: &'a [u8],
    mut parser: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> Result<(T, &'a [u8])> {
    match parser(input) {
        Ok((rest, value)) => Ok((value, rest)),
        Err(e) => Err(to_error(what, input, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding: primitives
// ---------------------------------------------------------------------------------------------

fn int(i: &[u8]) -> PResult<'_, i32> {
    be_i32(i)
}

fn long(i: &[u8]) -> PResult<'_, i64> {
    be_i64(i)
}

fn boolean(i: &[u8]) -> PResult<'_, bool> {
    let (i, b) = be_u8(i)?;
    Ok((i, b != 0))
}

/// A length prefix: `None` for -1 (null), otherwise a length that fits in what follows.
fn length(i: &[u8]) -> PResult<'_, Option<usize>> {
    let (rest, len) = int(i)?;
    match len {
        -1 => Ok((rest, None)),
        n if n < 0 => fail(i, format!("negative length {n}")),
        n if n as usize > rest.len() => fail(
            i,
            format!("length {n} exceeds the {} bytes left", rest.len()),
        ),
        n => Ok((rest, Some(n as usize))),
    }
}

/// A jute buffer as a slice of the input; `None` is null.
fn raw_buffer(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    match length(i)? {
        (rest, None) => Ok((rest, None)),
        (rest, Some(n)) => {
            let (rest, b) = take(n)(rest)?;
            Ok((rest, Some(b)))
        }
    }
}

fn buffer(i: &[u8]) -> PResult<'_, Option<Bytes>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(Bytes::copy_from_slice)))
}

/// A buffer where null means the same as empty.
fn buffer_or_empty(i: &[u8]) -> PResult<'_, Vec<u8>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(<[u8]>::to_vec).unwrap_or_default()))
}

fn opt_ustring(i: &[u8]) -> PResult<'_, Option<String>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(|b| String::from_utf8_lossy(b).into_owned())))
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

/// A ustring where the record has no use for null: null reads as "".
fn ustring(i: &[u8]) -> PResult<'_, String> {
    let (i, s) = opt_ustring(i)?;
    Ok((i, s.unwrap_or_default()))
}

/// A vector whose elements each take at least `min_elem` bytes; null reads as empty. The
/// count is checked against the remaining input before anything is allocated.
fn vector<'a, T>(
    min_elem: usize,
    mut elem: impl FnMut(&'a [u8]) -> PResult<'a, T>,
) -> impl FnMut(&'a [u8]) -> PResult<'a, Vec<T>> {
    move |i: &'a [u8]| {
        let (mut rest, count) = int(i)?;
        if count == -1 {
            return Ok((rest, Vec::new()));
        }
        if count < 0 {
            return fail(i, format!("negative vector count {count}"));
        }
        let count = count as usize;
        if count > rest.len() / min_elem {
            return fail(
                i,
                format!("vector count {count} cannot fit in {} bytes", rest.len()),
            );
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let (r, item) = elem(rest)?;
            items.push(item);
            rest = r;
        }
        Ok((rest, items))
    }
}

fn ustrings(i: &[u8]) -> PResult<'_, Vec<String>> {
    vector(4, ustring)(i)
}

// ---------------------------------------------------------------------------------------------
// Decoding: records
// ---------------------------------------------------------------------------------------------

fn id(i: &[u8]) -> PResult<'_, Id> {
    let (i, scheme) = ustring(i)?;
    let (i, id) = ustring(i)?;
    Ok((i, Id { scheme, id }))
}

fn acl(i: &[u8]) -> PResult<'_, Acl> {
    let (i, perms) = int(i)?;
    let (i, id) = id(i)?;
    Ok((i, Acl { perms, id }))
}

/// perms + two string lengths.
const MIN_ACL_LEN: usize = 12;

fn acls(i: &[u8]) -> PResult<'_, Vec<Acl>> {
    vector(MIN_ACL_LEN, acl)(i)
}

fn stat(i: &[u8]) -> PResult<'_, Stat> {
    let (i, czxid) = long(i)?;
    let (i, mzxid) = long(i)?;
    let (i, ctime) = long(i)?;
    let (i, mtime) = long(i)?;
    let (i, version) = int(i)?;
    let (i, cversion) = int(i)?;
    let (i, aversion) = int(i)?;
    let (i, ephemeral_owner) = long(i)?;
    let (i, data_length) = int(i)?;
    let (i, num_children) = int(i)?;
    let (i, pzxid) = long(i)?;
    Ok((
        i,
        Stat {
            czxid,
            mzxid,
            ctime,
            mtime,
            version,
            cversion,
            aversion,
            ephemeral_owner,
            data_length,
            num_children,
            pzxid,
        },
    ))
}

fn request_header(i: &[u8]) -> PResult<'_, RequestHeader> {
    let (i, xid) = int(i)?;
    let (i, op) = int(i)?;
    Ok((i, RequestHeader { xid, op }))
}

fn reply_header(i: &[u8]) -> PResult<'_, ReplyHeader> {
    let (i, xid) = int(i)?;
    let (i, zxid) = long(i)?;
    let (i, err) = int(i)?;
    Ok((i, ReplyHeader { xid, zxid, err }))
}

/// MultiHeader {int type; boolean done; int err}, keeping what readers act on: neither the
/// Java server nor the Java client looks at err (an ErrorResult's code is read from the
/// ErrorResponse that follows).
struct MultiHeader {
    op: i32,
    done: bool,
}

fn multi_header(i: &[u8]) -> PResult<'_, MultiHeader> {
    let (i, op) = int(i)?;
    let (i, done) = boolean(i)?;
    let (i, _err) = int(i)?;
    Ok((i, MultiHeader { op, done }))
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

fn add_watch_mode_from_i32(v: i32) -> Option<AddWatchMode> {
    match v {
        0 => Some(AddWatchMode::Persistent),
        1 => Some(AddWatchMode::PersistentRecursive),
        _ => None,
    }
}

/// The trailing readOnly flag of the handshake records: it arrived in 3.5, and the Java
/// server reads it when present and defaults otherwise (3.4 clients never send it).
fn opt_read_only(i: &[u8]) -> PResult<'_, Option<bool>> {
    if i.is_empty() {
        return Ok((i, None));
    }
    let (i, ro) = boolean(i)?;
    Ok((i, Some(ro)))
}

fn connect_request(i: &[u8]) -> PResult<'_, ConnectRequest> {
    let (i, protocol_version) = int(i)?;
    let (i, last_zxid_seen) = long(i)?;
    let (i, timeout_ms) = int(i)?;
    let (i, session_id) = long(i)?;
    let (i, passwd) = buffer_or_empty(i)?;
    let (i, read_only) = opt_read_only(i)?;
    Ok((
        i,
        ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        },
    ))
}

fn connect_response(i: &[u8]) -> PResult<'_, ConnectResponse> {
    let (i, protocol_version) = int(i)?;
    let (i, timeout_ms) = int(i)?;
    let (i, session_id) = long(i)?;
    let (i, passwd) = buffer_or_empty(i)?;
    let (i, read_only) = opt_read_only(i)?;
    Ok((
        i,
        ConnectResponse {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        },
    ))
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

/// The create opcodes and whether their record carries a ttl.
fn create_kind(op: i32) -> Option<(OpCode, bool)> {
    match OpCode::from_i32(op)? {
        op @ (OpCode::Create | OpCode::Create2 | OpCode::CreateContainer) => Some((op, false)),
        OpCode::CreateTtl => Some((OpCode::CreateTtl, true)),
        _ => None,
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
        let (rest, op) = match h.op {
            2 => {
                let (r, d) = delete_request(rest)?;
                (r, MultiOp::Delete(d))
            }
            5 => {
                let (r, s) = set_data_request(rest)?;
                (r, MultiOp::SetData(s))
            }
            13 => {
                let (r, c) = check_request(rest)?;
                (r, MultiOp::Check(c))
            }
            t => match create_kind(t) {
                Some((op, ttl)) => {
                    let (r, req) = create_request(ttl)(rest)?;
                    (r, MultiOp::Create { op, req })
                }
                None => return fail(start, format!("op type {t} not allowed in multi")),
            },
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
        let (rest, (path, _watch)) = match h.op {
            4 | 8 => path_watch(rest)?,
            t => return fail(start, format!("op type {t} not allowed in multiRead")),
        };
        ops.push(if h.op == 8 {
            ReadOp::GetChildren { path }
        } else {
            ReadOp::GetData { path }
        });
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

/// The body named by `op`; `None` for opcodes that are answered UNIMPLEMENTED.
fn request_body(op: i32, i: &[u8]) -> PResult<'_, Option<Request>> {
    let Some(code) = OpCode::from_i32(op) else {
        return Ok((i, None));
    };
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
        // Not client requests (notification, error, createSession, deleteContainer) or not
        // served (sasl): the caller answers UNIMPLEMENTED.
        OpCode::Notification
        | OpCode::Error
        | OpCode::CreateSession
        | OpCode::DeleteContainer
        | OpCode::Sasl => return Ok((i, None)),
    };
    Ok((i, Some(req)))
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
        let (rest, result) = match h.op {
            1 => {
                let (r, path) = ustring(rest)?;
                (r, OpResult::Create { path })
            }
            15 => {
                let (r, (path, stat)) = path_stat(rest)?;
                (r, OpResult::Create2 { path, stat })
            }
            2 => (rest, OpResult::Delete),
            5 => {
                let (r, stat) = stat(rest)?;
                (r, OpResult::SetData { stat })
            }
            13 => (rest, OpResult::Check),
            8 => {
                let (r, children) = ustrings(rest)?;
                (r, OpResult::GetChildren { children })
            }
            4 => {
                let (r, (data, stat)) = get_data_response(rest)?;
                (r, OpResult::GetData { data, stat })
            }
            -1 => {
                let (r, err) = int(rest)?;
                (r, OpResult::Error { err })
            }
            t => {
                return fail(
                    start,
                    format!("result type {t} not allowed in multi response"),
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
        | OpCode::Sasl
        | OpCode::CreateSession
        | OpCode::Error => (i, Response::Empty),
    };
    Ok((i, resp))
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Writes a length placeholder, the frame body, then patches the length in.
fn framed(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_i32(0);
    body(out);
    let len = wire_len(out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A length as jute writes it. Payloads are bounded by jute.maxbuffer long before `i32::MAX`;
/// saturating keeps an impossible case from panicking.
fn wire_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_bool(out: &mut BytesMut, b: bool) {
    out.put_u8(u8::from(b));
}

fn put_buf(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(wire_len(b.len()));
            out.put_slice(b);
        }
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    put_buf(out, Some(s.as_bytes()));
}

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    put_buf(out, s.map(str::as_bytes));
}

fn put_strs(out: &mut BytesMut, v: &[String]) {
    out.put_i32(wire_len(v.len()));
    for s in v {
        put_str(out, s);
    }
}

fn put_acls(out: &mut BytesMut, acl: &[Acl]) {
    out.put_i32(wire_len(acl.len()));
    for a in acl {
        out.put_i32(a.perms);
        put_str(out, &a.id.scheme);
        put_str(out, &a.id.id);
    }
}

fn put_stat(out: &mut BytesMut, s: &Stat) {
    out.put_i64(s.czxid);
    out.put_i64(s.mzxid);
    out.put_i64(s.ctime);
    out.put_i64(s.mtime);
    out.put_i32(s.version);
    out.put_i32(s.cversion);
    out.put_i32(s.aversion);
    out.put_i64(s.ephemeral_owner);
    out.put_i32(s.data_length);
    out.put_i32(s.num_children);
    out.put_i64(s.pzxid);
}

fn put_reply_header(out: &mut BytesMut, h: &ReplyHeader) {
    out.put_i32(h.xid);
    out.put_i64(h.zxid);
    out.put_i32(h.err);
}

fn put_multi_header(out: &mut BytesMut, op: i32, done: bool, err: i32) {
    out.put_i32(op);
    put_bool(out, done);
    out.put_i32(err);
}

/// The end of a multi request or response: MultiHeader(-1, true, -1).
fn put_multi_end(out: &mut BytesMut) {
    put_multi_header(out, -1, true, -1);
}

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
                        put_multi_header(out, op.code(), false, -1);
                        put_create(out, *op, req);
                    }
                    MultiOp::Delete(d) => {
                        put_multi_header(out, OpCode::Delete.code(), false, -1);
                        put_str(out, &d.path);
                        out.put_i32(d.version);
                    }
                    MultiOp::SetData(s) => {
                        put_multi_header(out, OpCode::SetData.code(), false, -1);
                        put_set_data(out, s);
                    }
                    MultiOp::Check(c) => {
                        put_multi_header(out, OpCode::Check.code(), false, -1);
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
                put_multi_header(out, code.code(), false, -1);
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
        Response::Multi(results) => {
            for r in results {
                put_op_result(out, r);
            }
            put_multi_end(out);
        }
        Response::GetAllChildrenNumber { total } => out.put_i32(*total),
        Response::ErrorCode(err) => out.put_i32(*err),
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
            put_multi_header(out, OpCode::Create.code(), false, 0);
            put_str(out, path);
        }
        OpResult::Create2 { path, stat } => {
            put_multi_header(out, OpCode::Create2.code(), false, 0);
            put_str(out, path);
            put_stat(out, stat);
        }
        OpResult::Delete => put_multi_header(out, OpCode::Delete.code(), false, 0),
        OpResult::SetData { stat } => {
            put_multi_header(out, OpCode::SetData.code(), false, 0);
            put_stat(out, stat);
        }
        OpResult::Check => put_multi_header(out, OpCode::Check.code(), false, 0),
        OpResult::GetChildren { children } => {
            put_multi_header(out, OpCode::GetChildren.code(), false, 0);
            put_strs(out, children);
        }
        OpResult::GetData { data, stat } => {
            put_multi_header(out, OpCode::GetData.code(), false, 0);
            put_buf(out, data.as_deref());
            put_stat(out, stat);
        }
        OpResult::Error { err } => {
            put_multi_header(out, OpCode::Error.code(), false, *err);
            out.put_i32(*err);
        }
    }
}

#[cfg(test)]
mod tests;
