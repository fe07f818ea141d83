//! Server responses: ReplyHeader plus the record the request's opcode calls for, and
//! notifications (xid -1).
//!
//! ```text
//! frame := int32 len, ReplyHeader, body (omitted when err != 0)
//! ReplyHeader := int32 xid, int64 zxid, int32 err
//! ```

use bytes::{Bytes, BytesMut};

use super::error::ZkError;
use super::records::{Acl, ClientInfo, Stat, WatcherEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    /// 0 for OK, otherwise a `ZkError` code.
    pub err: i32,
}

impl ReplyHeader {
    /// The header of a reply: `err` is 0 for `None`, otherwise the error's code. The server
    /// keeps a `ZkError` until here, where it becomes the integer on the wire.
    pub fn new(xid: i32, zxid: i64, err: Option<ZkError>) -> ReplyHeader {
        ReplyHeader {
            xid,
            zxid,
            err: err.map_or(0, ZkError::code),
        }
    }
}

/// One result inside a multi (14) or multiRead (22) response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// Result of create (1) / createContainer (19) inside multi: the created path.
    Create {
        path: String,
    },
    /// Result of create2 (15) / createTTL (21) inside multi.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetChildren {
        children: Vec<String>,
    },
    /// A getChildren result whose `vector<ustring>` is already encoded
    /// (`codec::encode_names`): what the server sends, so a multiRead of a big child list
    /// copies the node's cached encoding instead of building a `String` per child. Decodes
    /// as `GetChildren`.
    GetChildrenEncoded {
        names: Bytes,
    },
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    /// An ErrorResult: type -1 with the code (0 for ops before the failing one).
    Error {
        err: i32,
    },
}

/// A response body. `Empty` is for ops with no body (delete, ping, setWatches, auth, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Empty,
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    Stat(Stat),
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    /// getChildren (`stat: None`) or getChildren2 as the server sends it: `names` is the jute
    /// `vector<ustring>` of the child names, already encoded (`codec::encode_names`), so a
    /// large list is one copy instead of a `String` per child. Only encoded, never decoded:
    /// a client reads `GetChildren` / `GetChildren2`.
    ChildrenEncoded {
        names: Bytes,
        stat: Option<Stat>,
    },
    Sync {
        path: String,
    },
    Multi(Vec<OpResult>),
    GetEphemerals {
        ephemerals: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    WhoAmI(Vec<ClientInfo>),
    /// SetSASLResponse: the server's next SASL token (null when it has none).
    Sasl {
        token: Option<Bytes>,
    },
    /// An ErrorResponse body `{int err}`: what addWatch (106) answers on success (err 0);
    /// the Java client reads this body and drops the connection without it.
    ErrorCode(i32),
}

/// Appends a whole reply frame (4-byte length, header, body) to `out`. When `header.err`
/// is non-zero the body is not written, as ZooKeeper does, except a `Sasl` body.
pub fn encode_reply(out: &mut BytesMut, header: &ReplyHeader, body: &Response) {
    super::codec::encode_reply(out, header, body)
}

/// Appends a whole notification frame (xid -1, zxid -1, err 0, WatcherEvent) to `out`.
pub fn encode_notification(out: &mut BytesMut, event: &WatcherEvent) {
    super::codec::encode_notification(out, event)
}
