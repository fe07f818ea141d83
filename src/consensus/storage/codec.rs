//! The value format of the sled trees: every value sealed with a crc32 over its key and
//! payload, log entries stored as `crc32 | term | eraftpb.Entry` under their index.

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

pub(super) fn seal_entry(e: &Entry) -> Result<Vec<u8>, StorageError> {
    let encode_err = |err| StorageError::EncodeEntry {
        index: e.index,
        err,
    };
    // `crc | term | pb` built in place: one allocation per entry.
    let pb_len = e.compute_size() as usize;
    let mut v = Vec::with_capacity(4 + 8 + pb_len);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&e.term.to_be_bytes());
    {
        let mut os = protobuf::CodedOutputStream::vec(&mut v);
        e.write_to_with_cached_sizes(&mut os).map_err(encode_err)?;
        os.flush().map_err(encode_err)?;
    }
    let sum = crc(&[&entry_key(e.index), &v[4..]]);
    v[..4].copy_from_slice(&sum);
    Ok(v)
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
