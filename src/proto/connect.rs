//! The session handshake: the first frame a client sends and the server's answer.
//!
//! ```text
//! ConnectRequest  := int32 protocolVersion, int64 lastZxidSeen, int32 timeOut,
//!                    int64 sessionId, buffer passwd [, bool readOnly]
//! ConnectResponse := int32 protocolVersion, int32 timeOut, int64 sessionId,
//!                    buffer passwd [, bool readOnly]
//! ```
//! 3.4 clients omit readOnly; both 44- and 45-byte request bodies are accepted, and the
//! response carries readOnly only when the request did.

use bytes::BytesMut;

use super::error::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` when the client did not send the byte (3.4 clients).
    pub read_only: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Written only when `Some` (mirrors the request).
    pub read_only: Option<bool>,
}

/// Decodes a ConnectRequest frame body (after the 4-byte length).
pub fn decode_connect(frame: &[u8]) -> Result<ConnectRequest> {
    super::codec::decode_connect(frame)
}

/// Appends a whole ConnectResponse frame (with its 4-byte length) to `out`.
pub fn encode_connect_response(out: &mut BytesMut, resp: &ConnectResponse) {
    super::codec::encode_connect_response(out, resp)
}
