//! Snapshots merged from the previous one (`SnapshotCut::merge_previous`): the bytes are the
//! tree at the cut, exactly as a walk of the whole tree gives them, over chains of cuts with
//! random changes between and during them; a damaged previous snapshot fails the merge
//! instead of being copied.

use super::*;
use crate::tree::datatree::CHANGED_SLACK;

use crate::testing::Rng;

/// One random change: creates (plain, sequential, ephemeral of S1 or S2), deletes of leaves
/// and of whole small subtrees, data and ACL changes (to lists the tree already has), and
/// now and then S2 closing (its ephemerals go) and coming back.
fn random_change(t: &mut DataTree, log: &mut Log, rng: &mut Rng) {
    let parents = ["/a", "/a-", "/b", "/app"];
    let parent = parents[rng.below(parents.len() as u64) as usize];
    let child = format!("{parent}/{}", rng.below(40));
    let txn = match rng.below(12) {
        0..=2 => log.next(S1, mk(&child, b"new", 0)),
        3 => log.next(S1, mk(&format!("{child}/g"), b"grand", 0)),
        4 => log.next(S1, mk(&format!("{parent}/s-"), b"seq", 2)),
        5 => log.next(S2, mk(&format!("{parent}/e{}", rng.below(5)), b"eph", 1)),
        6 => log.next(S1, del(&format!("{child}/g"))),
        7 => log.next(S1, del(&child)),
        8 | 9 => log.next(S1, set(&child, Some(&[rng.below(256) as u8; 3]), -1)),
        10 => log.next(
            S1,
            Request::SetAcl(SetAclRequest {
                path: child,
                acl: Acl::read_unsafe(),
                version: -1,
            }),
        ),
        _ => {
            if rng.below(4) == 0 {
                let z = log.raw(Txn::CloseSession { session_id: S2 });
                t.apply(z.0, &z.1);
                log.raw(Txn::CreateSession {
                    session_id: S2,
                    timeout_ms: 10_000,
                })
            } else {
                log.next(S1, mk(parent, b"parent", 0))
            }
        }
    };
    t.apply(txn.0, &txn.1);
}

/// The tree `history` builds, its parents for `random_change`, S2 open, and a first
/// snapshot written whole (it starts the tracking).
fn start() -> (DataTree, Log, Vec<u8>) {
    let (mut t, mut log) = built();
    for (p, data) in [
        ("/a", &b"p"[..]),
        ("/a-", b"p"),
        ("/b", b"p"),
        ("/b/kept", b"a value to find"),
    ] {
        let z = log.next(S1, mk(p, data, 0));
        t.apply(z.0, &z.1);
    }
    let z = log.raw(Txn::CreateSession {
        session_id: S2,
        timeout_ms: 10_000,
    });
    t.apply(z.0, &z.1);
    let mut cut = t.begin_snapshot();
    assert_eq!(
        cut.tracked_since(),
        None,
        "nothing tracked before a tree's first cut"
    );
    while !cut.step(&t, 64).unwrap() {}
    t.end_snapshot(&cut);
    let first = cut.finish().unwrap();
    (t, log, first)
}

fn reader(bytes: &[u8]) -> Box<dyn std::io::Read + Send> {
    Box::new(std::io::Cursor::new(bytes.to_vec()))
}

/// Chains of cuts, each merged from the one before, with random changes between cuts and
/// between the steps of each walk: every snapshot equals the tree's own bytes at its cut,
/// and most nodes were copied rather than read.
#[test]
fn merged_snapshots_are_the_tree_at_each_cut() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut copied_total, mut written_total, mut merged) = (0, 0, 0);
    for round in 0..40 {
        let (mut t, mut log, mut previous) = start();
        let mut previous_id = None;
        for generation in 0..6 {
            for _ in 0..rng.below(30) {
                random_change(&mut t, &mut log, &mut rng);
            }
            let expected = t.snapshot_bytes();
            let mut cut = t.begin_snapshot();
            if let Some(id) = previous_id {
                assert_eq!(cut.tracked_since(), Some(id));
            }
            previous_id = Some(cut.id());
            let merging = cut.merge_previous(reader(&previous));
            // Only a new ACL list (setACL to one no node had) renumbers the lists.
            if let Err(why) = &merging {
                assert!(why.contains("ACL lists differ"), "{why}");
            }
            let mut done = false;
            while !done {
                done = cut.step(&t, rng.below(5) as usize).unwrap();
                for _ in 0..rng.below(3) {
                    random_change(&mut t, &mut log, &mut rng);
                }
            }
            t.end_snapshot(&cut);
            let (written, copied) = cut.progress();
            if merging.is_ok() {
                merged += 1;
                copied_total += copied;
                written_total += written;
            } else {
                assert_eq!(copied, 0);
            }
            let bytes = cut.finish().unwrap();
            assert!(
                bytes == expected,
                "round {round}, generation {generation}: the merged snapshot differs from the cut"
            );
            previous = bytes;
        }
    }
    assert!(merged > 150, "{merged} merged snapshots");
    assert!(
        copied_total * 2 > written_total,
        "{copied_total} of {written_total} nodes copied"
    );
}

/// A merged snapshot taken while nothing changed copies every node but the root.
#[test]
fn a_merge_without_changes_copies_every_node_but_the_root() {
    let (mut t, _, first) = start();
    let mut cut = t.begin_snapshot();
    cut.merge_previous(reader(&first)).unwrap();
    while !cut.step(&t, 7).unwrap() {}
    t.end_snapshot(&cut);
    assert_eq!(cut.progress(), (t.nodes.len(), t.nodes.len() - 1));
    assert!(cut.finish().unwrap() == first);
}

/// A previous snapshot with a byte changed in a node, cut short, or with bytes after its
/// last node fails the merged snapshot: nothing unverified ends up in a finished one.
#[test]
fn a_damaged_previous_snapshot_fails_the_merge() {
    let (mut t, mut log, first) = start();
    let mut rng = Rng(7);
    for _ in 0..10 {
        random_change(&mut t, &mut log, &mut rng);
    }
    // A node's data, well inside the body: the records still parse, only the checksum
    // tells.
    let at = first
        .windows(15)
        .position(|w| w == b"a value to find")
        .expect("the data of /b/kept");
    let mut flipped = first.clone();
    flipped[at + 3] ^= 0x20;
    let short = first[..first.len() - 9].to_vec();
    let mut longer = first.clone();
    let crc = longer.split_off(longer.len() - 4);
    longer.extend_from_slice(&[0; 4]);
    longer.extend_from_slice(&crc);
    for (what, bad, says) in [
        ("a flipped byte", flipped, "checksum"),
        ("cut short", short, ""),
        ("bytes after the last node", longer, ""),
    ] {
        let mut cut = t.begin_snapshot();
        cut.merge_previous(reader(&bad)).unwrap();
        let failed = loop {
            match cut.step(&t, 5) {
                Ok(true) => break None,
                Ok(false) => {}
                Err(e) => break Some(e),
            }
        };
        t.end_snapshot(&cut);
        let e = failed.unwrap_or_else(|| panic!("{what}: the merge succeeded"));
        assert!(
            e.contains("previous snapshot") && e.contains(says),
            "{what}: {e}"
        );
    }
}

/// What `merge_previous` refuses, leaving the cut to be written whole: another format
/// version, other ACL lists, a cut that has already started, a tree's first cut.
#[test]
fn an_unusable_previous_snapshot_leaves_a_whole_walk() {
    let (mut t, mut log, first) = start();
    let mut old = first.clone();
    old[11] = 2; // version 2
    let z = log.next(
        S1,
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: vec![acl(3, "ip", "192.168.77.0/24")],
            version: -1,
        }),
    );
    t.apply(z.0, &z.1);
    let expected = t.snapshot_bytes();
    for (bad, says) in [(old, "version 2"), (first.clone(), "ACL lists differ")] {
        let mut cut = t.begin_snapshot();
        let e = cut
            .merge_previous(reader(&bad))
            .expect_err(&format!("merged from one with {says}"));
        assert!(e.contains(says), "{e}");
        while !cut.step(&t, 3).unwrap() {}
        t.end_snapshot(&cut);
        assert!(cut.finish().unwrap() == expected);
    }
    let mut cut = t.begin_snapshot();
    cut.step(&t, 1).unwrap();
    assert!(
        cut.merge_previous(reader(&expected)).is_err(),
        "after a step"
    );
    t.end_snapshot(&cut);
    let mut fresh = load(&expected);
    let mut cut = fresh.begin_snapshot();
    assert!(cut.merge_previous(reader(&expected)).is_err(), "first cut");
    fresh.end_snapshot(&cut);
}

/// Tracking stops past a quarter of the nodes plus `CHANGED_SLACK` distinct paths (the set
/// stays bounded under any load) and starts again at the next cut.
#[test]
fn change_tracking_is_bounded() {
    let (mut t, mut log, _) = start();
    let nodes = t.node_count();
    for i in 0..(nodes / 4 + CHANGED_SLACK + 1) {
        let z = log.next(S1, mk(&format!("/b/q-{i}"), b"", 0));
        t.apply(z.0, &z.1);
        let z = log.next(S1, del(&format!("/b/q-{i}")));
        t.apply(z.0, &z.1);
    }
    let cut = t.begin_snapshot();
    assert_eq!(cut.tracked_since(), None);
    t.end_snapshot(&cut);
    let next = t.begin_snapshot();
    assert_eq!(next.tracked_since(), Some(cut.id()));
    t.end_snapshot(&next);
}

/// How long a merged snapshot takes against a whole walk, alone on the machine
/// (`cargo test --release --lib merge_speed -- --ignored --nocapture`): 500,000 znodes of
/// 128 bytes under one parent; 50,000 setData between two cuts, on keys drawn from the first
/// `MERGE_SPEED_KEYS` (default all 500,000); rounds 0 and 2 merged, 1 whole, 3 merged with
/// nothing changed.
#[test]
#[ignore]
fn merge_speed() {
    let mut t = DataTree::default();
    let mut log = Log::new();
    let value = [7u8; 128];
    let z = log.raw(Txn::CreateSession {
        session_id: S1,
        timeout_ms: 30_000,
    });
    t.apply(z.0, &z.1);
    let z = log.next(S1, mk("/bench", b"", 0));
    t.apply(z.0, &z.1);
    for i in 0..500_000 {
        let z = log.next(S1, mk(&format!("/bench/k{i:07}"), &value, 0));
        t.apply(z.0, &z.1);
    }
    let write = |t: &mut DataTree, previous: Option<&[u8]>| {
        let mut cut = t.begin_snapshot();
        if let Some(p) = previous {
            cut.merge_previous(reader(p)).unwrap();
        }
        let mut out = Vec::with_capacity(100 << 20);
        let mut took = std::time::Duration::ZERO;
        loop {
            let started = std::time::Instant::now();
            let done = cut.step(t, 1024).unwrap();
            took += started.elapsed();
            cut.drain(|b| {
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            if done {
                break;
            }
        }
        t.end_snapshot(&cut);
        let copied = cut.progress().1;
        let (head, tail) = cut.finish_drained().unwrap();
        out.splice(0..0, head);
        out.extend_from_slice(&tail);
        (out, copied, took)
    };
    let (mut previous, _, took) = write(&mut t, None);
    eprintln!("first, whole: {took:?}");
    let keys = std::env::var("MERGE_SPEED_KEYS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(500_000);
    let mut rng = Rng(99);
    for round in 0..4 {
        for _ in 0..if round == 3 { 0 } else { 50_000 } {
            let i = rng.below(keys);
            let z = log.next(S1, set(&format!("/bench/k{i:07}"), Some(&value), -1));
            t.apply(z.0, &z.1);
        }
        let merge = round % 2 == 0 || round == 3;
        let (bytes, copied, took) = write(&mut t, merge.then_some(&previous[..]));
        eprintln!("round {round}: merged {merge}, {copied} copied, {took:?}");
        previous = bytes;
    }
}

/// The bytes a drained snapshot's head, pieces and tail stand for, each copy read from
/// `previous`.
fn resolve(
    head: &[u8],
    pieces: &[(bool, Vec<u8>, u64, u64)],
    tail: &[u8],
    previous: &[u8],
) -> Vec<u8> {
    let mut out = head.to_vec();
    for (is_copy, bytes, off, len) in pieces {
        if *is_copy {
            out.extend_from_slice(&previous[*off as usize..(*off + *len) as usize]);
        } else {
            out.extend_from_slice(bytes);
        }
    }
    out.extend_from_slice(tail);
    out
}

/// Chains of cuts as in `merged_snapshots_are_the_tree_at_each_cut`, each merged from the
/// one before with its copies handed out by reference and drained at random points: the
/// head, the pieces (copies read from the previous snapshot) and the tail are the tree's
/// own bytes at the cut; copies are forward-only, and contiguous records go as one.
#[test]
fn snapshots_drained_by_reference_are_the_tree_at_each_cut() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut by_ref, mut copies, mut copied_bytes, mut total_bytes) = (0, 0, 0, 0);
    let mut copied_records = 0;
    for round in 0..30 {
        let (mut t, mut log, mut previous) = start();
        for generation in 0..6 {
            for _ in 0..rng.below(30) {
                random_change(&mut t, &mut log, &mut rng);
            }
            let expected = t.snapshot_bytes();
            let mut cut = t.begin_snapshot();
            let merging = cut.merge_previous(reader(&previous));
            let referencing = merging.is_ok() && cut.by_reference().is_ok();
            assert_eq!(merging.is_ok(), referencing, "by_reference after a merge");
            let mut pieces: Vec<(bool, Vec<u8>, u64, u64)> = Vec::new();
            let mut done = false;
            while !done {
                done = cut.step(&t, rng.below(5) as usize).unwrap();
                for _ in 0..rng.below(3) {
                    random_change(&mut t, &mut log, &mut rng);
                }
                if done || rng.below(3) == 0 {
                    cut.drain_pieces(|p| {
                        pieces.push(match p {
                            Piece::Bytes(b) => (false, b.to_vec(), 0, 0),
                            Piece::Copy { off, len } => (true, Vec::new(), off, len),
                        });
                        Ok::<(), ()>(())
                    })
                    .unwrap();
                }
            }
            t.end_snapshot(&cut);
            let cut_copied = cut.progress().1;
            let (head, tail) = cut.finish_drained().unwrap();
            let got = resolve(&head, &pieces, &tail, &previous);
            assert!(
                got == expected,
                "round {round}, generation {generation}: the pieces differ from the cut"
            );
            let mut end = 0;
            for (is_copy, bytes, off, len) in &pieces {
                if *is_copy {
                    assert!(!referencing || *off >= end, "a copy goes backwards");
                    assert!(*len > 0);
                    end = off + len;
                    copies += 1;
                    copied_bytes += len;
                } else {
                    assert!(!bytes.is_empty());
                }
            }
            if referencing {
                copied_records += cut_copied;
                by_ref += 1;
                total_bytes += expected.len() as u64;
            } else {
                assert!(pieces.iter().all(|p| !p.0), "a copy without by_reference");
            }
            previous = got;
        }
    }
    assert!(by_ref > 100, "{by_ref} snapshots by reference");
    assert!(copies > 1000, "{copies} copies");
    // Contiguous records go as one copy (within a drain).
    assert!(
        copies * 2 < copied_records,
        "{copies} copies of {copied_records} records"
    );
    assert!(
        copied_bytes * 2 > total_bytes,
        "{copied_bytes} of {total_bytes} bytes copied"
    );
}

/// A snapshot cut by reference keeps what `finish` and `by_reference` must refuse.
#[test]
fn by_reference_needs_a_merge_that_has_just_begun() {
    let (mut t, _, first) = start();
    let mut cut = t.begin_snapshot();
    assert!(cut.by_reference().is_err(), "by reference without a merge");
    cut.merge_previous(reader(&first)).unwrap();
    cut.step(&t, 2).unwrap();
    assert!(cut.by_reference().is_err(), "by reference after a step");
    t.end_snapshot(&cut);
    let mut cut = t.begin_snapshot();
    cut.merge_previous(reader(&first)).unwrap();
    cut.by_reference().unwrap();
    while !cut.step(&t, 7).unwrap() {}
    t.end_snapshot(&cut);
    assert!(cut.finish().is_err(), "finish of a snapshot by reference");
}
