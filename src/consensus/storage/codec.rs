//! The checksummed formats: sled values (the meta tree's, sealed with a crc32 over key and
//! payload) and entry records, `len (u32 BE) | crc32 | term | eraftpb.Entry`, the crc32
//! covering the entry's index (u64 BE) | term | entry. Segment files (`wal`) hold records
//! back to back; the sled layouts before them held the same records as batch values (one
//! per batch of consecutive entries) or, without the length prefix, one value per entry, so
//! both convert by copying records.

use protobuf::Message as _;
use raft::prelude::Entry;

use super::error::{EntryDefect, StorageError};

/// The keys of the meta tree (also the names its errors give).
pub(super) const KEY_HARD_STATE: &str = "hard_state";
pub(super) const KEY_CONF_STATE: &str = "conf_state";
pub(super) const KEY_LOG_START: &str = "log_start";

pub(super) fn crc(parts: &[&[u8]]) -> [u8; 4] {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_be_bytes()
}

/// `crc32(key | payload) | payload`.
pub(super) fn seal(key: impl AsRef<[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + payload.len());
    v.extend_from_slice(&crc(&[key.as_ref(), payload]));
    v.extend_from_slice(payload);
    v
}

/// The payload of a sealed value, if its checksum matches.
pub(super) fn unseal(key: impl AsRef<[u8]>, value: &[u8]) -> Option<&[u8]> {
    if value.len() < 4 {
        return None;
    }
    let (sum, payload) = value.split_at(4);
    (crc(&[key.as_ref(), payload]) == sum).then_some(payload)
}

pub(super) fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

pub(super) fn entry_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub(super) fn key_index(key: &[u8]) -> Option<u64> {
    if key.len() != 8 {
        return None;
    }
    be_u64(key)
}

/// The length prefix of a record in a batch value.
pub(super) const RECORD_LEN: usize = 4;

/// Appends `e` to a batch value as one record, `len | crc | term | pb`, built in place.
/// Returns the record's length (prefix included).
pub(super) fn push_record(v: &mut Vec<u8>, e: &Entry) -> Result<usize, StorageError> {
    let encode_err = |err| StorageError::EncodeEntry {
        index: e.index,
        err,
    };
    let start = v.len();
    let pb_len = e.compute_size() as usize;
    v.reserve(RECORD_LEN + 4 + 8 + pb_len);
    v.extend_from_slice(&[0; RECORD_LEN + 4]);
    v.extend_from_slice(&e.term.to_be_bytes());
    {
        let mut os = protobuf::CodedOutputStream::vec(v);
        e.write_to_with_cached_sizes(&mut os).map_err(encode_err)?;
        os.flush().map_err(encode_err)?;
    }
    let sealed = start + RECORD_LEN;
    let sum = crc(&[&entry_key(e.index), &v[sealed + 4..]]);
    v[sealed..sealed + 4].copy_from_slice(&sum);
    let len = u32::try_from(v.len() - sealed).map_err(|_| StorageError::EntryTooLarge {
        index: e.index,
        len: v.len() - sealed,
    })?;
    v[start..sealed].copy_from_slice(&len.to_be_bytes());
    Ok(v.len() - start)
}

/// Appends a record holding `sealed` (`crc | term | pb`: a value of the per-entry layout)
/// of entry `index`.
pub(super) fn push_sealed(v: &mut Vec<u8>, index: u64, sealed: &[u8]) -> Result<(), StorageError> {
    let len = u32::try_from(sealed.len()).map_err(|_| StorageError::EntryTooLarge {
        index,
        len: sealed.len(),
    })?;
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(sealed);
    Ok(())
}

/// The records of a batch value stored under `first`: `(index, sealed entry, offset of the
/// record in the value)`. A record whose length runs past the value (a torn or rotten
/// value) is `Err(Torn)`, and ends the iteration. The records are not checked
/// here: `entry_term` and `decode_entry` do that.
pub(super) fn records(first: u64, value: &[u8]) -> Records<'_> {
    Records {
        value,
        at: 0,
        index: first,
    }
}

pub(super) struct Records<'a> {
    value: &'a [u8],
    at: usize,
    index: u64,
}

/// One record of a batch value.
pub(super) struct Record<'a> {
    pub index: u64,
    /// `crc | term | pb`.
    pub sealed: &'a [u8],
    /// Where the record starts in the value (the value cut here keeps the records before).
    pub offset: usize,
}

/// A record whose length runs past the end of its value.
pub(super) struct Torn {
    pub index: u64,
    pub offset: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Torn>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.value.get(self.at..)?;
        if rest.is_empty() {
            return None;
        }
        let index = self.index;
        let len = rest
            .get(..RECORD_LEN)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let offset = self.at;
        let Some(sealed) = len.and_then(|len| rest.get(RECORD_LEN..RECORD_LEN + len)) else {
            self.at = self.value.len();
            return Some(Err(Torn { index, offset }));
        };
        self.at += RECORD_LEN + sealed.len();
        self.index += 1;
        Some(Ok(Record {
            index,
            sealed,
            offset,
        }))
    }
}

/// The number of records a batch value holds, counting a torn record as one; a tail of
/// zeros (a segment's unused prepared space) holds none.
pub(super) fn record_count(value: &[u8]) -> u64 {
    records(0, &value[..records_end(value)]).count() as u64
}

/// Where a value's records end: where a record would start and only zeros follow (a
/// segment's prepared space, not written yet), else at the value's end. The records are
/// followed by their lengths only, not checked.
pub(super) fn records_end(value: &[u8]) -> usize {
    records(0, value)
        .map(|r| match r {
            Ok(r) => r.offset,
            Err(t) => t.offset,
        })
        .find(|&at| zeros(&value[at..]))
        .unwrap_or(value.len())
}

/// Whether every byte is zero.
fn zeros(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// The value of the per-entry layout (`crc | term | pb`), for the tests that write one.
#[cfg(test)]
pub(super) fn seal_entry(e: &Entry) -> Result<Vec<u8>, StorageError> {
    let mut v = Vec::new();
    push_record(&mut v, e)?;
    Ok(v.split_off(RECORD_LEN))
}

/// The term stored in front of an entry, once the checksum matched.
pub(super) fn entry_term(index: u64, value: &[u8]) -> Result<u64, EntryDefect> {
    let payload = unseal(entry_key(index), value).ok_or(EntryDefect::ChecksumMismatch)?;
    be_u64(payload).ok_or(EntryDefect::TooShort)
}

pub(super) fn decode_entry(index: u64, value: &[u8]) -> Result<Entry, EntryDefect> {
    let payload = unseal(entry_key(index), value).ok_or(EntryDefect::ChecksumMismatch)?;
    let term = be_u64(payload).ok_or(EntryDefect::TooShort)?;
    let e = Entry::parse_from_bytes(&payload[8..]).map_err(EntryDefect::Protobuf)?;
    if e.index != index || e.term != term {
        return Err(EntryDefect::Misplaced {
            index: e.index,
            term: e.term,
            stored_index: index,
            stored_term: term,
        });
    }
    Ok(e)
}

pub(super) fn pb<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, StorageError> {
    m.write_to_bytes()
        .map_err(|err| StorageError::Encode { err })
}

pub(super) fn start_bytes((index, term): (u64, u64)) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8..].copy_from_slice(&term.to_be_bytes());
    b
}
