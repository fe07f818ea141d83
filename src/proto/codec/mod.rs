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
//!
//! One file per part of the protocol; each owns both directions of its records:
//! - `jute`: the nom error plumbing, primitive decoders and encoders, and frame lengths.
//! - `records`: Id, ACL, Stat and MultiHeader, shared by requests and replies.
//! - `request`: RequestHeader and every request body.
//! - `reply`: ReplyHeader, response bodies and notifications.
//! - `connect`: the session handshake.

mod connect;
mod jute;
mod records;
mod reply;
mod request;

pub use connect::{
    decode_connect, decode_connect_response, encode_connect_request, encode_connect_response,
};
pub use reply::{
    decode_reply_header, decode_response, decode_watcher_event, encode_names, encode_notification,
    encode_reply,
};
pub use request::{decode_request, decode_request_header, encode_request, request_opcode};

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
