//! The session handshake: ConnectRequest and ConnectResponse, both directions. The trailing
//! readOnly byte is optional in both (3.4 clients neither send nor expect it).

use bytes::{BufMut, BytesMut};

use super::jute::{boolean, buffer_or_empty, framed, int, long, put_bool, put_buf, run, PResult};
use crate::proto::connect::{ConnectRequest, ConnectResponse};
use crate::proto::error::Result;

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

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
