//! jute primitives and record layouts: nom decoders and BytesMut encoders.
//! (Implementation in progress.)

use bytes::BytesMut;

use super::connect::{ConnectRequest, ConnectResponse};
use super::error::{Error, Result};
use super::records::WatcherEvent;
use super::request::{Decoded, RequestHeader};
use super::response::{ReplyHeader, Response};

pub fn decode_request(_frame: &[u8]) -> Result<(RequestHeader, Decoded)> {
    Err(Error::malformed("request", "codec not implemented"))
}

pub fn encode_reply(_out: &mut BytesMut, _header: &ReplyHeader, _body: &Response) {}

pub fn encode_notification(_out: &mut BytesMut, _event: &WatcherEvent) {}

pub fn decode_connect(_frame: &[u8]) -> Result<ConnectRequest> {
    Err(Error::malformed("connect", "codec not implemented"))
}

pub fn encode_connect_response(_out: &mut BytesMut, _resp: &ConnectResponse) {}
