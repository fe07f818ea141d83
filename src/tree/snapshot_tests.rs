//! Unit tests of the snapshot format. This file owns the harness (a varied history of txns,
//! `built()`, `load`, `err`, `observe`) and the tests of valid snapshots: round trips of trees
//! built by applying txns, equal behaviour after a restore, canonical bytes. The rejection of
//! every truncated, corrupted or inconsistent input is in `snapshot_reject_tests.rs`, a child
//! module.

use super::*;
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, MultiOp, Request, SetAclRequest,
    SetDataRequest,
};
use crate::proto::response::Response;
use crate::proto::{perms, OpCode, ZkError};
use crate::tree::{Applied, Txn};
use bytes::Bytes;

const S1: i64 = 0x100;
const S2: i64 = 0x200;
const S3: i64 = 0x7fff_0000_0000_0003;

fn digest_id() -> Id {
    Id::new("digest", "alice:aGFzaA==")
}

fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
    Acl {
        perms,
        id: Id::new(scheme, id),
    }
}

fn create(
    op: OpCode,
    path: &str,
    data: Option<&[u8]>,
    acl: Vec<Acl>,
    flags: i32,
    ttl: i64,
) -> Request {
    Request::Create {
        op,
        req: CreateRequest {
            path: path.into(),
            data: data.map(Bytes::copy_from_slice),
            acl,
            flags,
            ttl,
        },
    }
}

fn mk(path: &str, data: &[u8], flags: i32) -> Request {
    create(
        OpCode::Create2,
        path,
        Some(data),
        Acl::open_unsafe(),
        flags,
        -1,
    )
}

fn set(path: &str, data: Option<&[u8]>, version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        version,
    })
}

fn del(path: &str) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version: -1,
    })
}

/// Applies txns with increasing zxids and a moving clock.
struct Log {
    zxid: i64,
    time: i64,
}

impl Log {
    fn new() -> Log {
        Log {
            zxid: 0,
            time: 1_000_000,
        }
    }

    fn next(&mut self, session_id: i64, request: Request) -> (i64, Txn) {
        self.zxid += 1;
        self.time += 7;
        let txn = Txn::Client {
            session_id,
            time_ms: self.time,
            auth: vec![digest_id(), Id::new("ip", "10.0.0.1")],
            request,
        };
        (self.zxid, txn)
    }

    fn raw(&mut self, txn: Txn) -> (i64, Txn) {
        self.zxid += 1;
        (self.zxid, txn)
    }
}

/// A varied history: every create mode, sequentials, ephemerals of several sessions,
/// containers, TTL nodes, data and ACL changes with several lists, deletes, multis (one
/// failing), a closed session and a reap.
fn history(log: &mut Log) -> Vec<(i64, Txn)> {
    let mut v = vec![
        log.raw(Txn::CreateSession {
            session_id: S1,
            timeout_ms: 30_000,
        }),
        log.raw(Txn::CreateSession {
            session_id: S2,
            timeout_ms: 10_000,
        }),
        log.raw(Txn::CreateSession {
            session_id: S3,
            timeout_ms: 4_000,
        }),
    ];
    let c = |log: &mut Log, s, r| log.next(s, r);
    v.push(c(log, S1, mk("/app", b"root of app", 0)));
    v.push(c(
        log,
        S1,
        create(OpCode::Create, "/app/null", None, Acl::open_unsafe(), 0, -1),
    ));
    v.push(c(log, S1, mk("/app/empty", b"", 0)));
    for i in 0..5 {
        v.push(c(log, S1, mk("/app/seq-", format!("s{i}").as_bytes(), 2)));
    }
    v.push(c(log, S2, mk("/app/eph", b"e", 1)));
    v.push(c(log, S2, mk("/app/eseq-", b"e", 3)));
    v.push(c(log, S3, mk("/app/eseq-", b"e3", 3)));
    v.push(c(
        log,
        S1,
        create(
            OpCode::CreateContainer,
            "/locks",
            Some(b""),
            Acl::open_unsafe(),
            4,
            -1,
        ),
    ));
    v.push(c(log, S1, mk("/locks/l-", b"", 3)));
    v.push(c(
        log,
        S1,
        create(
            OpCode::CreateContainer,
            "/emptied",
            None,
            Acl::open_unsafe(),
            4,
            -1,
        ),
    ));
    v.push(c(log, S1, mk("/emptied/x", b"x", 0)));
    v.push(c(log, S1, del("/emptied/x")));
    v.push(c(
        log,
        S1,
        create(
            OpCode::CreateTtl,
            "/ttl",
            Some(b"t"),
            Acl::open_unsafe(),
            5,
            50,
        ),
    ));
    v.push(c(
        log,
        S1,
        create(
            OpCode::CreateTtl,
            "/ttl-seq-",
            Some(b"t"),
            Acl::open_unsafe(),
            6,
            1_000_000,
        ),
    ));
    v.push(c(
        log,
        S1,
        create(
            OpCode::Create,
            "/secret",
            Some(b"s"),
            vec![acl(31, "auth", "")],
            0,
            -1,
        ),
    ));
    v.push(c(
        log,
        S1,
        create(
            OpCode::Create,
            "/mixed",
            Some(b"m"),
            vec![acl(1, "world", "anyone"), acl(31, "ip", "10.0.0.0/8")],
            0,
            -1,
        ),
    ));
    v.push(c(log, S1, set("/app", Some(b"v2"), 0)));
    v.push(c(log, S1, set("/app/empty", None, -1)));
    v.push(c(log, S1, set("/app/empty", Some(b"again"), -1)));
    v.push(c(
        log,
        S1,
        Request::SetAcl(SetAclRequest {
            path: "/app/empty".into(),
            acl: vec![acl(17, "digest", "bob:aGFzaA=="), acl(1, "world", "anyone")],
            version: 0,
        }),
    ));
    // The list /secret used is released here and interned again below: slots get reused.
    v.push(c(
        log,
        S1,
        Request::SetAcl(SetAclRequest {
            path: "/secret".into(),
            acl: Acl::read_unsafe(),
            version: -1,
        }),
    ));
    v.push(c(
        log,
        S1,
        create(
            OpCode::Create,
            "/secret2",
            Some(b""),
            vec![acl(31, "auth", "")],
            0,
            -1,
        ),
    ));
    v.push(c(log, S1, del("/app/seq-0000000003")));
    v.push(c(
        log,
        S1,
        Request::Multi(vec![
            MultiOp::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: "/multi".into(),
                    data: Some(Bytes::from_static(b"m")),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            },
            MultiOp::Create {
                op: OpCode::Create2,
                req: CreateRequest {
                    path: "/multi/s-".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 2,
                    ttl: -1,
                },
            },
            MultiOp::SetData(SetDataRequest {
                path: "/app".into(),
                data: Some(Bytes::from_static(b"v3")),
                version: 1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/app/seq-0000000002".into(),
                version: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/app".into(),
                version: 2,
            }),
        ]),
    ));
    // Fails on its last op and is rolled back (its zxid still counts).
    v.push(c(
        log,
        S1,
        Request::Multi(vec![
            MultiOp::Delete(DeleteRequest {
                path: "/mixed".into(),
                version: -1,
            }),
            MultiOp::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: "/rolled".into(),
                    data: None,
                    acl: vec![acl(3, "digest", "carol:aGFzaA==")],
                    flags: 0,
                    ttl: -1,
                },
            },
            MultiOp::Check(CheckVersionRequest {
                path: "/app".into(),
                version: 99,
            }),
        ]),
    ));
    v.push(c(log, S1, mk("/zookeeper/quota/q", b"quota", 0)));
    v.push(c(log, S1, mk("/app/eph/child", b"", 0))); // NoChildrenForEphemerals
    v.push(log.raw(Txn::CreateSession {
        session_id: 0x999,
        timeout_ms: 5_000,
    }));
    v.push(c(log, 0x999, mk("/gone", b"", 1)));
    v.push(log.raw(Txn::CloseSession { session_id: 0x999 }));
    let reap_at = log.time + 1_000;
    v.push(log.raw(Txn::Reap {
        time_ms: reap_at,
        paths: vec!["/emptied".into(), "/ttl".into(), "/locks".into()],
    }));
    v
}

/// More history, applied after a restore: everything that reads state the snapshot carries.
fn more(log: &mut Log) -> Vec<(i64, Txn)> {
    let c = |log: &mut Log, s, r| log.next(s, r);
    let mut v = vec![
        c(log, S1, mk("/app/seq-", b"after", 2)),
        c(log, S1, mk("/multi/s-", b"after", 2)),
        c(log, S2, mk("/app/eseq-", b"after", 3)),
        c(log, S1, mk("/locks/l-", b"", 2)),
        c(log, S1, del("/app/eph")),
        c(log, S1, set("/app", Some(b"v4"), 2)),
        c(log, S1, set("/app", Some(b"bad"), 2)),
        c(
            log,
            S1,
            Request::SetAcl(SetAclRequest {
                path: "/mixed".into(),
                acl: vec![acl(31, "auth", "")],
                version: 0,
            }),
        ),
        c(
            log,
            S1,
            create(
                OpCode::Create,
                "/fresh",
                Some(b"f"),
                vec![acl(5, "ip", "10.1.0.0/16")],
                0,
                -1,
            ),
        ),
        c(log, S1, del("/secret")),
        c(log, S1, del("/app/null")),
        c(log, S3, mk("/app/eph3", b"", 1)),
    ];
    v.push(log.raw(Txn::CloseSession { session_id: S2 }));
    v.push(log.raw(Txn::CreateSession {
        session_id: S2,
        timeout_ms: 12_000,
    }));
    v.push(c(log, S2, mk("/app/eph", b"back", 1)));
    v.push(c(log, S1, del("/locks/l-0000000001")));
    let t = log.time + 10_000_000;
    v.push(log.raw(Txn::Reap {
        time_ms: t,
        paths: vec![
            "/locks".into(),
            "/ttl-seq-0000000004".into(),
            "/emptied".into(),
        ],
    }));
    v
}

fn apply_all(t: &mut DataTree, txns: &[(i64, Txn)]) -> Vec<Applied> {
    txns.iter().map(|(z, txn)| t.apply(*z, txn)).collect()
}

fn built() -> (DataTree, Log) {
    let mut log = Log::new();
    let mut t = DataTree::default();
    apply_all(&mut t, &history(&mut log));
    (t, log)
}

fn load(bytes: &[u8]) -> DataTree {
    DataTree::from_snapshot_bytes(bytes, TreeOptions::default()).expect("snapshot loads")
}

fn err(bytes: &[u8]) -> String {
    match DataTree::from_snapshot_bytes(bytes, TreeOptions::default()) {
        Ok(_) => panic!("{} bytes loaded", bytes.len()),
        Err(e @ Error::Malformed { .. }) => e.to_string(),
        Err(e) => panic!("not Malformed: {e}"),
    }
}

/// Everything a client or the server can read from a tree.
fn observe(t: &DataTree) -> String {
    let mut paths: Vec<&str> = t.nodes.iter().map(|(k, _)| k).collect();
    paths.sort_unstable();
    let mut out = format!(
        "zxid {} count {} size {} eph {} sessions {:?} by_session {:?} reap {:?}\n",
        t.last_zxid(),
        t.node_count(),
        t.approximate_data_size(),
        t.ephemerals_count(),
        t.sessions(),
        t.ephemerals_by_session(),
        t.reap_candidates(i64::MAX / 2),
    );
    let super_auth = [Id::new("super", "")];
    for p in paths {
        out += &format!(
            "{p} {:?} {:?} {:?} {:?}\n",
            t.get_data(p, &super_auth),
            t.get_children(p, &super_auth),
            t.get_acl(p, &super_auth),
            t.all_children_number(p, &super_auth),
        );
    }
    out
}

#[path = "snapshot_reject_tests.rs"]
mod reject_tests;

#[path = "snapshot_merge_tests.rs"]
mod merge_tests;

#[test]
fn varied_tree_round_trips() {
    let (t, _) = built();
    assert!(t.nodes.len() > 20);
    // /emptied and /ttl were reaped; /gone went with its session.
    assert!(t.sessions.len() == 3 && t.containers.len() == 1 && t.ttls.len() == 1);
    assert!(t.exists("/emptied").is_none() && t.exists("/gone").is_none());
    let bytes = t.snapshot_bytes();
    let r = load(&bytes);
    assert_eq!(r.digest(), t.digest());
    assert_eq!(r.snapshot_bytes(), bytes);
    assert_eq!(observe(&r), observe(&t));
    assert_eq!(r.containers, t.containers);
    assert_eq!(r.ttls, t.ttls);
    assert_eq!(r.acls.len(), t.acls.len());
    // Null data, empty data and the special nodes' Stat survive as stored.
    assert_eq!(r.get_data("/app/null", &[]).unwrap().0, None);
    assert_eq!(
        r.get_data("/zookeeper/quota", &[]).unwrap().0,
        Some(Bytes::new())
    );
    assert_eq!(r.exists("/zookeeper/config").unwrap().aversion, -1);
}

#[test]
fn restored_tree_applies_later_txns_identically() {
    let (mut t, mut log) = built();
    let mut r = load(&t.snapshot_bytes());
    for (z, txn) in more(&mut log) {
        let a = t.apply(z, &txn);
        let b = r.apply(z, &txn);
        assert_eq!(a, b, "{txn:?}");
        assert_eq!(t.digest(), r.digest(), "after {txn:?}");
    }
    assert_eq!(observe(&r), observe(&t));
    assert_eq!(r.snapshot_bytes(), t.snapshot_bytes());
    // The later history did exercise sequential names from restored cversions.
    assert!(t.exists("/app/seq-0000000005").is_some());
    assert!(t.exists("/multi/s-0000000001").is_some());
    assert_eq!(t.ephemerals_by_session().len(), 3);
    assert_eq!(t.get_ephemerals(S2, "/"), ["/app/eph"]);
}

#[test]
fn equal_contents_give_equal_bytes_whatever_the_acl_slot_history() {
    // Same final contents, different order of ACL interning (so different slot numbers).
    let mut a = DataTree::default();
    let mut b = DataTree::default();
    let mut la = Log::new();
    let mut lb = Log::new();
    let x = vec![acl(1, "ip", "10.0.0.1")];
    let y = vec![acl(2, "ip", "10.0.0.2")];
    let s = |l: &mut Log| {
        l.raw(Txn::CreateSession {
            session_id: S1,
            timeout_ms: 1,
        })
    };
    let ops = |l: &mut Log, first: &Vec<Acl>, second: &Vec<Acl>| {
        let mut v = vec![s(l)];
        v.push(l.next(
            S1,
            create(OpCode::Create, "/tmp", None, first.clone(), 0, -1),
        ));
        v.push(l.next(S1, create(OpCode::Create, "/x", None, x.clone(), 0, -1)));
        v.push(l.next(S1, create(OpCode::Create, "/y", None, y.clone(), 0, -1)));
        v.push(l.next(S1, del("/tmp")));
        let _ = second;
        v
    };
    apply_all(&mut a, &ops(&mut la, &x, &y));
    apply_all(&mut b, &ops(&mut lb, &y, &x));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.snapshot_bytes(), b.snapshot_bytes());
}

#[test]
fn empty_tree_round_trips() {
    let t = DataTree::default();
    let bytes = t.snapshot_bytes();
    let r = load(&bytes);
    assert_eq!(r.digest(), t.digest());
    assert_eq!(r.snapshot_bytes(), bytes);
    assert_eq!(observe(&r), observe(&t));
    assert_eq!(r.approximate_data_size(), 44);
    assert_eq!(r.node_count(), 5);
}

#[test]
fn options_come_from_the_caller() {
    let (t, _) = built();
    let r = DataTree::from_snapshot_bytes(
        &t.snapshot_bytes(),
        TreeOptions {
            skip_acl: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(r.opts.skip_acl);
    assert!(r.get_data("/secret2", &[]).is_ok());
    assert_eq!(t.get_data("/secret2", &[]).unwrap_err(), ZkError::NoAuth);
}

/// A write submitted by a member (`Txn::Owned`) is applied against the identities the
/// session's last `SessionAuth` recorded, only for the member that recorded them, and those
/// records survive a snapshot.
#[test]
fn owned_writes_use_the_identities_recorded_for_the_session() {
    let mut t = DataTree::default();
    let mut z = 0;
    let mut apply = |t: &mut DataTree, txn: Txn| {
        z += 1;
        t.apply(z, &txn).result
    };
    let owned = |server: u64, session_id: i64, request: Request| Txn::Owned {
        server,
        txn: Box::new(Txn::Client {
            session_id,
            time_ms: 1,
            auth: vec![],
            request,
        }),
    };
    for s in [S1, S2] {
        apply(
            &mut t,
            Txn::CreateSession {
                session_id: s,
                timeout_ms: 4000,
            },
        )
        .unwrap();
    }
    let secret = vec![acl(perms::ALL, "digest", &digest_id().id)];
    // S1 has no record yet: no member may write for it.
    let made = create(OpCode::Create, "/secret", Some(b"v"), secret, 0, -1);
    assert_eq!(
        apply(&mut t, owned(1, S1, made.clone())),
        Err(ZkError::SessionMoved)
    );
    let record = |session_id, server, ids| Txn::SessionAuth {
        session_id,
        server,
        ids,
    };
    apply(&mut t, record(S1, 1, vec![digest_id()])).unwrap();
    apply(&mut t, record(S2, 2, vec![Id::new("ip", "10.0.0.2")])).unwrap();
    assert_eq!(
        apply(&mut t, record(0x999, 2, vec![])),
        Err(ZkError::SessionExpired)
    );
    apply(&mut t, owned(1, S1, made)).unwrap();
    // Another member, for S1: refused. S2's own server: S2's identities do not pass.
    assert_eq!(
        apply(&mut t, owned(2, S1, set("/secret", Some(b"x"), -1))),
        Err(ZkError::SessionMoved)
    );
    assert_eq!(
        apply(&mut t, owned(2, S2, set("/secret", Some(b"x"), -1))),
        Err(ZkError::NoAuth)
    );
    // Nor does a client close of S1 from member 2.
    let close = Txn::Owned {
        server: 2,
        txn: Box::new(Txn::CloseSession { session_id: S1 }),
    };
    assert_eq!(apply(&mut t, close), Err(ZkError::SessionMoved));
    assert_eq!(t.session_auth(S1), Some((1, vec![digest_id()])));

    let mut r = load(&t.snapshot_bytes());
    assert_eq!(r.session_auth(S1), t.session_auth(S1));
    assert_eq!(r.session_auth(S2), t.session_auth(S2));
    assert_eq!(r.snapshot_bytes(), t.snapshot_bytes());
    // The session moves to member 2 with the digest identity: now member 2 writes for it.
    apply(&mut r, record(S1, 2, vec![digest_id()])).unwrap();
    assert_eq!(
        apply(&mut r, owned(1, S1, set("/secret", Some(b"y"), -1))),
        Err(ZkError::SessionMoved)
    );
    assert!(matches!(
        apply(&mut r, owned(2, S1, set("/secret", Some(b"z"), -1))),
        Ok(Response::Stat(_))
    ));
    assert_eq!(
        &r.get_data("/secret", &[digest_id()]).unwrap().0.unwrap()[..],
        b"z"
    );
}

/// A snapshot written while txns keep being applied (`begin_snapshot`, then `step` between
/// txns) gives the bytes of the tree at the cut, whatever the changes and wherever the
/// writer stands when they come: before any node is written, after every node, and every
/// interleaving in between.
#[test]
fn snapshot_written_during_changes_is_the_tree_at_the_cut() {
    let (t0, mut log) = built();
    let later = more(&mut log);
    let expected = t0.snapshot_bytes();
    let nodes = t0.nodes.len();
    // (nodes written before the first txn, nodes written between txns)
    for (first, each) in [
        (0, 0),
        (nodes, 0),
        (0, 1),
        (1, 1),
        (2, 3),
        (5, 2),
        (0, nodes),
    ] {
        let mut t = t0.clone();
        let mut cut = t.begin_snapshot();
        let mut done = first > 0 && cut.step(&t, first).unwrap();
        for (z, txn) in &later {
            t.apply(*z, txn);
            if each > 0 && !done {
                done = cut.step(&t, each).unwrap();
            }
        }
        while !done {
            done = cut.step(&t, 4).unwrap();
        }
        t.end_snapshot(&cut);
        assert!(
            t.nodes.cow.is_none(),
            "nothing kept once the snapshot ended"
        );
        let bytes = cut.finish().unwrap();
        assert!(
            bytes == expected,
            "snapshot with {first} nodes first and {each} between txns differs from the cut"
        );
        // The tree itself moved on: its own snapshot is the later state.
        let mut after = t0.clone();
        apply_all(&mut after, &later);
        assert_eq!(t.snapshot_bytes(), after.snapshot_bytes());
    }
}

/// Random creates, deletes (whole subtrees too, and names deleted then made again) and
/// writes under a few parents, applied while a snapshot is walked in random steps: the
/// snapshot is the tree at the cut. The walk lists a parent's children from its live set
/// and the names deleted since the cut, never from a copy of the set. "/a-" sorts after
/// "/a/..." in the walk but before it as a string (copies are skipped by walk order).
#[test]
fn random_changes_during_a_snapshot_leave_the_cut() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut below = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for round in 0..100 {
        let mut log = Log::new();
        let mut t = DataTree::default();
        let mut txns = vec![log.raw(Txn::CreateSession {
            session_id: S1,
            timeout_ms: 30_000,
        })];
        for p in ["/a", "/a-", "/b"] {
            txns.push(log.next(S1, mk(p, b"p", 0)));
            for i in 0..below(12) {
                txns.push(log.next(S1, mk(&format!("{p}/{i}"), b"x", 0)));
                if below(4) == 0 {
                    txns.push(log.next(S1, mk(&format!("{p}/{i}/g"), b"y", 0)));
                }
            }
        }
        apply_all(&mut t, &txns);
        let expected = t.snapshot_bytes();
        let mut cut = t.begin_snapshot();
        let mut done = false;
        for _ in 0..120 {
            let parent = ["/a", "/a-", "/b"][below(3) as usize];
            let child = format!("{parent}/{}", below(12));
            let req = match below(6) {
                0 | 1 => mk(&child, b"new", 0),
                2 => del(&format!("{child}/g")),
                3 => del(&child),
                4 => set(&child, Some(b"changed"), -1),
                // Empty a parent and remove it; a later create may bring it back.
                _ => {
                    let names: Vec<String> = t
                        .get_children(parent, &[Id::new("super", "")])
                        .map(|(names, _)| names)
                        .unwrap_or_default();
                    for n in names {
                        let c = format!("{parent}/{n}");
                        let z = log.next(S1, del(&format!("{c}/g")));
                        t.apply(z.0, &z.1);
                        let z = log.next(S1, del(&c));
                        t.apply(z.0, &z.1);
                    }
                    del(parent)
                }
            };
            let (z, txn) = log.next(S1, req);
            t.apply(z, &txn);
            if !done {
                done = cut.step(&t, below(3) as usize).unwrap();
            }
            if below(10) == 0 {
                let (z, txn) = log.next(S1, mk(parent, b"back", 0));
                t.apply(z, &txn);
            }
        }
        while !done {
            done = cut.step(&t, 3).unwrap();
        }
        t.end_snapshot(&cut);
        assert!(cut.finish().unwrap() == expected, "round {round}");
    }
}

/// A snapshot whose tree was replaced (a snapshot installed from the leader) fails instead
/// of mixing two trees.
#[test]
fn snapshot_of_a_replaced_tree_fails() {
    let (mut t, _) = built();
    let bytes = t.snapshot_bytes();
    let mut cut = t.begin_snapshot();
    assert_eq!(cut.step(&t, 2), Ok(false));
    t = load(&bytes);
    assert!(cut.step(&t, usize::MAX).is_err());
    t.end_snapshot(&cut);
    assert_eq!(t.snapshot_bytes(), bytes);
}

/// A snapshot streamed out chunk by chunk (`drain` after each `step`, then the head and tail
/// of `finish_drained`) is `snapshot_bytes`' byte for byte at the cut, whatever the chunk
/// size and while txns keep changing the tree.
#[test]
fn drained_snapshot_is_the_same_bytes() {
    let (t0, mut log) = built();
    let later = more(&mut log);
    let expected = t0.snapshot_bytes();
    for each in [1, 2, 5, usize::MAX] {
        let mut t = t0.clone();
        let mut cut = t.begin_snapshot();
        let mut body = Vec::new();
        let mut changes = later.iter();
        loop {
            let done = cut.step(&t, each).unwrap();
            cut.drain(|b| {
                body.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            if let Some((z, txn)) = changes.next() {
                t.apply(*z, txn);
            }
            if done {
                break;
            }
        }
        t.end_snapshot(&cut);
        let (head, tail) = cut.finish_drained().unwrap();
        assert_eq!(head.len(), SnapshotCut::HEAD_LEN);
        let bytes = [&head[..], &body, &tail].concat();
        assert!(
            bytes == expected,
            "snapshot drained every {each} nodes differs from the cut"
        );
    }
}

/// `from_snapshot_releasing` (start-up's decode of a mapped file) builds the tree
/// `from_snapshot_bytes` does and tells `release` how far it has read, in two passes (the
/// checksum, then the decoding), each from the start: offsets grow within a pass, at most
/// `RELEASE_EVERY` (plus one item) apart, up to the end of what the pass reads.
#[test]
fn decoding_releases_what_it_has_read() {
    let (mut t, mut log) = built();
    // ~14 MiB of snapshot: nodes of 100 KiB and of 100 bytes, so items of both sizes cross
    // the release marks.
    let big = vec![7u8; 100 << 10];
    let mut txns = vec![];
    for i in 0..140 {
        txns.push(log.next(S1, mk(&format!("/big{i:03}"), &big, 0)));
    }
    for i in 0..2000 {
        txns.push(log.next(S1, mk(&format!("/small{i:04}"), &[i as u8; 100], 0)));
    }
    apply_all(&mut t, &txns);
    let bytes = t.snapshot_bytes();
    let told = std::cell::RefCell::new(Vec::new());
    let loaded = DataTree::from_snapshot_releasing(&bytes, TreeOptions::default(), &|at| {
        told.borrow_mut().push(at)
    })
    .expect("snapshot loads");
    assert_eq!(loaded.snapshot_bytes(), bytes);
    assert_eq!(observe(&loaded), observe(&load(&bytes)));

    let told = told.into_inner();
    let mut passes: Vec<Vec<usize>> = vec![];
    for at in told {
        match passes.last_mut() {
            Some(p) if p.last().is_some_and(|&prev| prev < at) => p.push(at),
            _ => passes.push(vec![at]),
        }
    }
    assert_eq!(
        passes.len(),
        2,
        "a checksum pass and a decoding pass: {passes:?}"
    );
    let item = big.len() + 64;
    for (i, pass) in passes.iter().enumerate() {
        let mut prev = 0;
        for &at in pass {
            assert!(
                at - prev <= RELEASE_EVERY + item,
                "pass {i}: {prev} to {at}"
            );
            prev = at;
        }
        assert!(
            bytes.len() - prev <= RELEASE_EVERY + item,
            "pass {i} stops releasing at {prev} of {}",
            bytes.len()
        );
    }
    assert_eq!(
        passes[0].last(),
        Some(&(bytes.len() - CRC_LEN)),
        "the checksum pass reads all it covers"
    );
}

/// A walk asked to stop (`step_until`) after every node still visits `MIN_STEP` names per
/// call (all written when nothing changes), and with changes applied between calls gives
/// the bytes of the cut: stopping early loses or repeats nothing.
#[test]
fn a_walk_told_to_stop_moves_on_and_keeps_the_cut() {
    let (mut t0, mut log) = built();
    let creates: Vec<_> = (0..300)
        .map(|i| log.next(S1, mk(&format!("/app/n{i:03}"), b"v", 0)))
        .collect();
    apply_all(&mut t0, &creates);
    let later = more(&mut log);
    let expected = t0.snapshot_bytes();
    let nodes = t0.nodes.len();
    for (stop_every, changes) in [(1usize, false), (3, false), (1, true), (40, true)] {
        let mut t = t0.clone();
        let mut cut = t.begin_snapshot();
        let asked = std::cell::Cell::new(0usize);
        let (mut calls, mut done) = (0, false);
        let mut later_txns = later.iter().filter(|_| changes);
        while !done {
            let before = cut.written;
            done = cut
                .step_until(&t, 1000, || {
                    asked.set(asked.get() + 1);
                    asked.get().is_multiple_of(stop_every)
                })
                .unwrap();
            calls += 1;
            let wrote = cut.written - before;
            assert!(
                changes || done || wrote == MIN_STEP + stop_every - 1,
                "a call wrote {wrote} nodes (stop every {stop_every})"
            );
            if let Some((z, txn)) = later_txns.next() {
                t.apply(*z, txn);
            }
        }
        for (z, txn) in later_txns {
            t.apply(*z, txn);
        }
        t.end_snapshot(&cut);
        if stop_every == 1 {
            assert!(calls >= nodes / MIN_STEP, "{calls} calls for {nodes} nodes");
        }
        assert!(
            cut.finish().unwrap() == expected,
            "stopping every {stop_every} asks (changes: {changes}) changed the snapshot"
        );
    }
}

/// How long the walk of a large flat tree takes (`cargo test --release --lib
/// snapshot_walk_speed -- --ignored --nocapture`): 500,000 znodes of 128 bytes under one
/// parent, as the write benchmark leaves them, written in 1,024-node steps and drained.
#[test]
#[ignore]
fn snapshot_walk_speed() {
    let mut t = DataTree::default();
    let mut log = Log::new();
    let value = [7u8; 128];
    let (z, txn) = log.raw(Txn::CreateSession {
        session_id: 1,
        timeout_ms: 30_000,
    });
    t.apply(z, &txn);
    let (z, txn) = log.next(1, mk("/bench", b"", 0));
    t.apply(z, &txn);
    for i in 0..500_000 {
        let (z, txn) = log.next(1, mk(&format!("/bench/k{i:07}"), &value, 0));
        t.apply(z, &txn);
    }
    for round in 0..3 {
        let started = std::time::Instant::now();
        let mut cut = t.begin_snapshot();
        let mut bytes = 0;
        loop {
            let done = cut.step(&t, 1024).unwrap();
            cut.drain(|b| {
                bytes += b.len();
                Ok::<(), ()>(())
            })
            .unwrap();
            if done {
                break;
            }
        }
        t.end_snapshot(&cut);
        assert!(bytes > 500_000 * 128, "{bytes} bytes");
        eprintln!("round {round}: {bytes} bytes in {:?}", started.elapsed());
    }
}
