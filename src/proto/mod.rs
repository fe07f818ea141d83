//! The jute wire format of ZooKeeper's client protocol, and nothing else: records, requests,
//! responses, opcodes, error codes and framing. No I/O and no state live here, so every other
//! layer (tree, consensus, server) can share these types and the decoders can be fuzzed alone.
//!
//! Decoders are written with `nom` over `&[u8]` and never panic on input a peer controls;
//! encoders append to a `bytes::BytesMut`.

pub mod codec;
pub mod connect;
pub mod error;
pub mod frame;
pub mod opcode;
pub mod records;
pub mod request;
pub mod response;

pub use error::{Error, ZkError};
pub use opcode::OpCode;
pub use records::*;
