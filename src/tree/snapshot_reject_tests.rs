//! Unit tests of snapshot input that is not a snapshot `snapshot_bytes` wrote: every
//! truncation and flipped byte, header errors, hand-written bodies whose content breaks the
//! tree's invariants or the canonical order, huge counts, random resealed mutations, and
//! version 1 files, which still load. Builds bodies with `seal`, `body` and `leaf`.

use super::*;

#[test]
fn every_truncation_is_an_error() {
    let (t, _) = built();
    let bytes = t.snapshot_bytes();
    for cut in 0..bytes.len() {
        err(&bytes[..cut]);
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(err(&longer).contains("truncated or extended"));
    let empty = DataTree::default().snapshot_bytes();
    for cut in 0..empty.len() {
        err(&empty[..cut]);
    }
}

#[test]
fn every_flipped_byte_is_detected() {
    let (t, _) = built();
    let bytes = t.snapshot_bytes();
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            err(&b);
        }
    }
}

#[test]
fn header_errors_say_what_is_wrong() {
    let bytes = DataTree::default().snapshot_bytes();
    let mut b = bytes.clone();
    b[0] = b'X';
    assert!(err(&b).contains("magic"));
    let mut b = bytes.clone();
    b[11] = 4;
    assert!(err(&b).contains("unknown format version 4"));
    let mut b = bytes.clone();
    let last = b.len() - 6;
    b[last] ^= 1;
    assert!(err(&b).contains("checksum mismatch"));
    let mut t = DataTree::default();
    t.apply(
        1,
        &Txn::CreateSession {
            session_id: S1,
            timeout_ms: 4000,
        },
    );
    let mut body = body_of(&t.snapshot_bytes()).to_vec();
    body[SESSION_FLAGS_AT] = 4;
    assert!(err(&seal(&body)).contains("unknown flags"));
    // Version 2 had no identities: the flag is unknown there.
    body[SESSION_FLAGS_AT] = 2;
    let mut v2 = seal(&body);
    v2[11] = 2;
    let crc = crc32fast::hash(&v2[..v2.len() - 4]);
    let at = v2.len() - 4;
    v2[at..].copy_from_slice(&crc.to_be_bytes());
    assert!(err(&v2).contains("unknown flags"));
    assert!(err(&bytes[..bytes.len() - 1]).contains("truncated"));
}

/// Wraps a hand-written body in a valid header and checksum.
fn seal(body: &[u8]) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u32(VERSION);
    w.u64(body.len() as u64);
    w.0.extend_from_slice(body);
    let crc = crc32fast::hash(&w.0);
    w.u32(crc);
    w.0
}

/// In the body of a default tree with one session: last_zxid, the two ACL lists of the
/// special nodes (one `world:anyone` entry each), the session count, id and timeout.
const SESSION_FLAGS_AT: usize = 8 + 4 + 2 * (4 + 4 + 4 + 5 + 4 + 6) + 4 + 8 + 4;

#[test]
fn version_1_snapshots_still_load() {
    // Version 1 had no session flags byte: a v1 file of a tree with a session.
    let mut t = DataTree::default();
    t.apply(
        1,
        &Txn::CreateSession {
            session_id: S1,
            timeout_ms: 4000,
        },
    );
    let v2 = t.snapshot_bytes();
    let mut body = body_of(&v2).to_vec();
    assert_eq!(
        body.remove(SESSION_FLAGS_AT),
        0,
        "the flags byte of the one session"
    );
    let mut w = Writer(Vec::new());
    w.0.extend_from_slice(MAGIC);
    w.u32(VERSION_1);
    w.u64(body.len() as u64);
    w.0.extend_from_slice(&body);
    let crc = crc32fast::hash(&w.0);
    w.u32(crc);
    let back = load(&w.0);
    assert_eq!(back.digest(), t.digest());
    assert!(!back.session_is_imported(S1));
}

/// The body of a valid snapshot.
fn body_of(bytes: &[u8]) -> &[u8] {
    &bytes[HEADER_LEN..bytes.len() - CRC_LEN]
}

/// A body with one open ACL list, the given sessions and a root whose children are written
/// by `children` (a count and then the nodes).
fn body(sessions: &[i64], root_children: u32, children: impl FnOnce(&mut Writer)) -> Vec<u8> {
    body_n(
        sessions,
        1 + u64::from(root_children),
        root_children,
        children,
    )
}

/// `body` with `nodes` nodes in all.
fn body_n(
    sessions: &[i64],
    nodes: u64,
    root_children: u32,
    children: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.i64(9);
    w.u32(1);
    w.u32(1);
    w.i32(31);
    w.str("world");
    w.str("anyone");
    w.u32(sessions.len() as u32);
    for &s in sessions {
        w.i64(s);
        w.i32(1000);
        w.u8(0);
    }
    w.u64(nodes);
    leaf(&mut w, "", KIND_PERSISTENT, 0, root_children);
    children(&mut w);
    w.0
}

/// A node with zero stats and versions, empty data and ACL list `acl`.
fn leaf(w: &mut Writer, name: &str, kind: u8, acl: u32, children: u32) {
    w.str(name);
    let mut flags = kind | MZXID_IS_CZXID | PZXID_IS_CZXID | MTIME_IS_CTIME | ZERO_VERSIONS;
    if children > 0 {
        flags |= HAS_CHILDREN;
    }
    w.u8(flags);
    if kind == KIND_EPHEMERAL {
        w.i64(S1);
    }
    if kind == KIND_TTL {
        w.i64(-5);
    }
    w.i64(0);
    w.i64(0);
    w.u32(acl);
    w.str("");
    if children > 0 {
        w.u32(children);
    }
}

#[test]
fn inconsistent_content_is_rejected() {
    // Sanity check of the hand-written form: the four special nodes load.
    let special_with = |w: &mut Writer, acl: u32| {
        leaf(w, "zookeeper", KIND_PERSISTENT, acl, 2);
        leaf(w, "config", KIND_PERSISTENT, acl, 0);
        leaf(w, "quota", KIND_PERSISTENT, acl, 0);
    };
    let special = |w: &mut Writer| special_with(w, 0);
    let ok = body_n(&[], 4, 1, special);
    let t = load(&seal(&ok));
    assert_eq!(t.node_count(), 5);
    assert_eq!(t.approximate_data_size(), 44);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no /zookeeper node", body(&[], 0, |_| {})),
        ("ACL list 1 of 1", body(&[], 1, |w| leaf(w, "a", 0, 1, 0))),
        (
            "out of order",
            body(&[], 2, |w| {
                leaf(w, "b", 0, 0, 0);
                leaf(w, "a", 0, 0, 0);
            }),
        ),
        (
            "out of order",
            body(&[], 2, |w| {
                leaf(w, "a", 0, 0, 0);
                leaf(w, "a", 0, 0, 0);
            }),
        ),
        ("bad name", body(&[], 1, |w| leaf(w, "a/b", 0, 0, 0))),
        ("bad name", body(&[], 1, |w| leaf(w, "", 0, 0, 0))),
        (
            "not in the table",
            body(&[S2], 1, |w| leaf(w, "e", KIND_EPHEMERAL, 0, 0)),
        ),
        (
            "has children",
            body(&[S1], 1, |w| {
                leaf(w, "e", KIND_EPHEMERAL, 0, 1);
                leaf(w, "c", 0, 0, 0);
            }),
        ),
        ("has TTL", body(&[], 1, |w| leaf(w, "t", KIND_TTL, 0, 0))),
        ("out of order or repeated", body(&[S2, S1], 0, |_| {})),
        ("bytes after the last node", {
            let mut b = ok.clone();
            b.push(0);
            b
        }),
        ("used by no node", {
            let mut w = Writer(Vec::new());
            w.i64(0);
            w.u32(2);
            for perms in [1, 31] {
                w.u32(1);
                w.i32(perms);
                w.str("world");
                w.str("anyone");
            }
            w.u32(0);
            w.u64(4);
            leaf(&mut w, "", 0, 1, 1);
            special_with(&mut w, 1);
            w.0
        }),
    ];
    for (want, b) in cases {
        let e = err(&seal(&b));
        assert!(e.contains(want), "wanted {want:?}, got {e:?}");
    }
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    // Counts at every level claim far more items than the bytes could hold.
    let mut w = Writer(Vec::new());
    w.i64(0);
    w.u32(u32::MAX);
    assert!(err(&seal(&w.0)).contains("ACL lists cannot fit"));
    let mut w = Writer(Vec::new());
    w.i64(0);
    w.u32(0);
    w.u32(u32::MAX);
    assert!(err(&seal(&w.0)).contains("sessions cannot fit"));
    let mut w = Writer(Vec::new());
    w.i64(0);
    w.u32(0);
    w.u32(0);
    w.u64(u64::MAX);
    assert!(err(&seal(&w.0)).contains("node count"));
    let mut b = body(&[], 1, |w| leaf(w, "a", 0, 0, 0));
    // The root's child count (the last 4 bytes before the child) claims u32::MAX children.
    let at = b.len() - (4 + 1 + 1 + 8 + 8 + 4 + 4) - 4;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(err(&seal(&b)).contains("children"));
}

#[test]
fn resealed_mutations_never_panic() {
    use rand::{Rng, SeedableRng};
    // Corruption that a checksum cannot catch (a bug, or bytes written by someone else): any
    // change of the body must give a tree or an error, never a panic.
    let (t, _) = built();
    let bytes = t.snapshot_bytes();
    let body = body_of(&bytes).to_vec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut rnd = move || rng.gen::<u64>();
    for _ in 0..3000 {
        let mut b = body.clone();
        for _ in 0..1 + rnd() % 3 {
            let i = (rnd() % b.len() as u64) as usize;
            b[i] = match rnd() % 3 {
                0 => b[i] ^ (1 << (rnd() % 8)),
                1 => 0xff,
                _ => 0,
            };
        }
        if let Ok(r) = DataTree::from_snapshot_bytes(&seal(&b), TreeOptions::default()) {
            // Whatever loads is a consistent tree: it saves and loads again.
            assert_eq!(load(&r.snapshot_bytes()).digest(), r.digest());
        }
    }
}
