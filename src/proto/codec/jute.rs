//! The jute primitives every record is built from: the nom error type and the functions that
//! run a parser over a whole input, decoders for int, long, boolean, buffer, ustring and
//! vector (with the length checks the module invariants promise), and their encoders,
//! including the 4-byte frame length.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use nom::bytes::complete::take;
use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{be_i32, be_i64, be_u8};
use nom::IResult;

use crate::proto::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Decoding: error plumbing
// ---------------------------------------------------------------------------------------------

/// nom error that keeps a readable reason and where it happened (as the number of bytes left,
/// turned into an offset once the whole input is known again).
#[derive(Debug)]
pub(super) struct JuteError {
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

pub(super) type PResult<'a, T> = IResult<&'a [u8], T, JuteError>;

/// Fails at `input` with a reason.
pub(super) fn fail<T>(input: &[u8], detail: impl Into<Cow<'static, str>>) -> PResult<'_, T> {
    Err(nom::Err::Error(JuteError {
        remaining: input.len(),
        detail: detail.into(),
    }))
}

pub(super) fn to_error(what: &'static str, whole: &[u8], e: nom::Err<JuteError>) -> Error {
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
pub(super) fn run<'a, T>(
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

pub(super) fn int(i: &[u8]) -> PResult<'_, i32> {
    be_i32(i)
}

pub(super) fn long(i: &[u8]) -> PResult<'_, i64> {
    be_i64(i)
}

pub(super) fn boolean(i: &[u8]) -> PResult<'_, bool> {
    let (i, b) = be_u8(i)?;
    Ok((i, b != 0))
}

/// A length prefix: `None` for -1 (null), otherwise a length that fits in what follows.
pub(super) fn length(i: &[u8]) -> PResult<'_, Option<usize>> {
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
pub(super) fn raw_buffer(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    match length(i)? {
        (rest, None) => Ok((rest, None)),
        (rest, Some(n)) => {
            let (rest, b) = take(n)(rest)?;
            Ok((rest, Some(b)))
        }
    }
}

pub(super) fn buffer(i: &[u8]) -> PResult<'_, Option<Bytes>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(Bytes::copy_from_slice)))
}

/// A buffer where null means the same as empty.
pub(super) fn buffer_or_empty(i: &[u8]) -> PResult<'_, Vec<u8>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(<[u8]>::to_vec).unwrap_or_default()))
}

pub(super) fn opt_ustring(i: &[u8]) -> PResult<'_, Option<String>> {
    let (i, b) = raw_buffer(i)?;
    Ok((i, b.map(|b| String::from_utf8_lossy(b).into_owned())))
}

/// A ustring where the record has no use for null: null reads as "".
pub(super) fn ustring(i: &[u8]) -> PResult<'_, String> {
    let (i, s) = opt_ustring(i)?;
    Ok((i, s.unwrap_or_default()))
}

/// A vector whose elements each take at least `min_elem` bytes; null reads as empty. The
/// count is checked against the remaining input before anything is allocated.
pub(super) fn vector<'a, T>(
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

pub(super) fn ustrings(i: &[u8]) -> PResult<'_, Vec<String>> {
    vector(4, ustring)(i)
}

// ---------------------------------------------------------------------------------------------
// Encoding: primitives
// ---------------------------------------------------------------------------------------------

/// Writes a length placeholder, the frame body, then patches the length in.
pub(super) fn framed(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_i32(0);
    body(out);
    let len = wire_len(out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A length as jute writes it. Payloads are bounded by jute.maxbuffer long before `i32::MAX`;
/// saturating keeps an impossible case from panicking.
pub(super) fn wire_len(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub(super) fn put_bool(out: &mut BytesMut, b: bool) {
    out.put_u8(u8::from(b));
}

pub(super) fn put_buf(out: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => out.put_i32(-1),
        Some(b) => {
            out.put_i32(wire_len(b.len()));
            out.put_slice(b);
        }
    }
}

pub(super) fn put_str(out: &mut BytesMut, s: &str) {
    put_buf(out, Some(s.as_bytes()));
}

pub(super) fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    put_buf(out, s.map(str::as_bytes));
}

pub(super) fn put_strs(out: &mut BytesMut, v: &[String]) {
    out.put_i32(wire_len(v.len()));
    for s in v {
        put_str(out, s);
    }
}

#[cfg(test)]
#[path = "jute_tests.rs"]
mod tests;
