//! Records that requests and replies share: Id and ACL, Stat, and the MultiHeader that frames
//! each operation of a multi request and each result of a multi response.

use bytes::{BufMut, BytesMut};

use super::jute::{boolean, int, long, put_bool, put_str, ustring, vector, wire_len, PResult};
use crate::proto::opcode::OpCode;
use crate::proto::records::{Acl, Id, Stat};

pub(super) fn id(i: &[u8]) -> PResult<'_, Id> {
    let (i, scheme) = ustring(i)?;
    let (i, id) = ustring(i)?;
    Ok((i, Id { scheme, id }))
}

pub(super) fn acl(i: &[u8]) -> PResult<'_, Acl> {
    let (i, perms) = int(i)?;
    let (i, id) = id(i)?;
    Ok((i, Acl { perms, id }))
}

/// perms + two string lengths.
pub(super) const MIN_ACL_LEN: usize = 12;

pub(super) fn acls(i: &[u8]) -> PResult<'_, Vec<Acl>> {
    vector(MIN_ACL_LEN, acl)(i)
}

pub(super) fn stat(i: &[u8]) -> PResult<'_, Stat> {
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

/// MultiHeader {int type; boolean done; int err}, keeping what readers act on: neither the
/// Java server nor the Java client looks at err (an ErrorResult's code is read from the
/// ErrorResponse that follows).
pub(super) struct MultiHeader {
    /// The raw type, for error messages; `opcode()` is what to match on.
    pub(super) op: i32,
    pub(super) done: bool,
}

impl MultiHeader {
    /// The type as an opcode; `None` for a value that is no opcode at all.
    pub(super) fn opcode(&self) -> Option<OpCode> {
        OpCode::from_i32(self.op)
    }
}

pub(super) fn multi_header(i: &[u8]) -> PResult<'_, MultiHeader> {
    let (i, op) = int(i)?;
    let (i, done) = boolean(i)?;
    let (i, _err) = int(i)?;
    Ok((i, MultiHeader { op, done }))
}

pub(super) fn put_acls(out: &mut BytesMut, acl: &[Acl]) {
    out.put_i32(wire_len(acl.len()));
    for a in acl {
        out.put_i32(a.perms);
        put_str(out, &a.id.scheme);
        put_str(out, &a.id.id);
    }
}

pub(super) fn put_stat(out: &mut BytesMut, s: &Stat) {
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

/// The MultiHeader before one operation or result (done = false).
pub(super) fn put_multi_header(out: &mut BytesMut, op: OpCode, err: i32) {
    out.put_i32(op.code());
    put_bool(out, false);
    out.put_i32(err);
}

/// The end of a multi request or response: MultiHeader(-1, true, -1). Its type names no
/// operation (the Java code writes the literal -1 and readers stop at done), so it is written
/// as a number rather than an `OpCode`.
pub(super) fn put_multi_end(out: &mut BytesMut) {
    out.put_i32(-1);
    put_bool(out, true);
    out.put_i32(-1);
}
