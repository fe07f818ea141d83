//! Client requests: the body that follows a RequestHeader, one variant per record type.
//!
//! ```text
//! frame   := int32 len, RequestHeader, body
//! RequestHeader := int32 xid, int32 type
//! ```

use bytes::Bytes;

use super::error::Result;
use super::records::{Acl, AddWatchMode, WatcherType};
use super::OpCode;

/// RequestHeader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    /// The raw opcode; kept raw so an unknown opcode can still be answered UNIMPLEMENTED.
    pub op: i32,
}

impl RequestHeader {
    /// The opcode, or `None` when `op` is not one ZooKeeper defines.
    pub fn opcode(&self) -> Option<OpCode> {
        OpCode::from_i32(self.op)
    }
}

/// CreateRequest / CreateTTLRequest (opcodes 1, 15, 19, 21; ttl is -1 unless opcode 21).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    /// `None` is jute's null buffer (length -1); distinct from empty data.
    pub data: Option<Bytes>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    pub path: String,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Bytes>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckVersionRequest {
    pub path: String,
    pub version: i32,
}

/// One operation inside multi (14). `op` tells create (1) from create2 (15),
/// createContainer (19) and createTTL (21): the result record differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create { op: OpCode, req: CreateRequest },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
}

/// One operation inside multiRead (22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetChildren { path: String },
    GetData { path: String },
}

/// SetWatches (101) and SetWatches2 (105; the last two lists are empty for 101).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data_watches: Vec<String>,
    pub exist_watches: Vec<String>,
    pub child_watches: Vec<String>,
    pub persistent_watches: Vec<String>,
    pub persistent_recursive_watches: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigRequest {
    pub joining_servers: Option<String>,
    pub leaving_servers: Option<String>,
    pub new_members: Option<String>,
    pub cur_config_id: i64,
}

/// A decoded request body. The header's opcode decides which variant is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15), createContainer (19), createTTL (21).
    Create {
        op: OpCode,
        req: CreateRequest,
    },
    Delete(DeleteRequest),
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl(SetAclRequest),
    /// getChildren (8) when `with_stat` is false, getChildren2 (12) when true.
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig(ReconfigRequest),
    /// checkWatches (17) when `remove` is false, removeWatches (18) when true.
    RemoveWatches {
        path: String,
        watcher_type: WatcherType,
        remove: bool,
    },
    Auth {
        auth_type: i32,
        scheme: String,
        auth: Bytes,
    },
    /// sasl (102): GetSASLRequest, one token of a SASL exchange (DIGEST-MD5 here); None is
    /// a null buffer (ZooKeeper drops the connection on it).
    Sasl {
        token: Option<Bytes>,
    },
    SetWatches(SetWatches),
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    WhoAmI,
    CloseSession,
}

impl Request {
    /// Whether this request changes replicated state (goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Check(_)
                | Request::Multi(_)
                | Request::Reconfig(_)
                | Request::CloseSession
        )
    }

    /// Whether this request answers from the replicated tree, so that with
    /// keeperd.linearizableReads it waits for a read barrier first (the responder). Writes go
    /// through the log; sync has its own barrier;
    /// ping, whoAmI, addWatch and removeWatches/checkWatches read nothing replicated (only this
    /// connection's identities or this server's watch table). setWatches compares the client's
    /// zxid with the tree to fire missed events, so it reads the tree.
    pub fn reads_replicated_state(&self) -> bool {
        match self {
            Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetAcl { .. }
            | Request::GetChildren { .. }
            | Request::MultiRead(_)
            | Request::GetEphemerals { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::SetWatches(_) => true,
            Request::Create { .. }
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Check(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
            | Request::CloseSession
            | Request::Auth { .. }
            | Request::Sasl { .. }
            | Request::Sync { .. }
            | Request::Ping
            | Request::WhoAmI
            | Request::AddWatch { .. }
            | Request::RemoveWatches { .. } => false,
        }
    }
}

/// The outcome of decoding a frame body after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Request(Request),
    /// The opcode is not one this server knows: answer UNIMPLEMENTED.
    Unknown,
}

/// Decodes one request frame body (everything after the 4-byte length): the header, then the
/// record the opcode names. Malformed input is an `Error::Malformed`, never a panic.
pub fn decode_request(frame: &[u8]) -> Result<(RequestHeader, Decoded)> {
    super::codec::decode_request(frame)
}
