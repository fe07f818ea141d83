//! `DataTree` tests of what removes znodes without a delete: closing a session removes its
//! ephemerals; the reaper removes containers that had children and TTL nodes past their TTL.

use super::*;
use crate::tree::SessionInfo;

#[test]
fn ephemerals_and_sessions() {
    let mut h = H::new();
    h.create("/app", None, 0).unwrap();
    h.create("/app/b", None, 1).unwrap();
    h.create("/app/a", None, 1).unwrap();
    h.create("/other", None, 1).unwrap();
    h.create_full(
        S2,
        &[],
        OpCode::Create,
        "/s2",
        None,
        Acl::open_unsafe(),
        1,
        -1,
    )
    .result
    .unwrap();
    assert_eq!(h.stat("/app/a").ephemeral_owner, S1);
    assert_eq!(h.t.ephemerals_count(), 4);
    assert_eq!(
        h.t.get_ephemerals(S1, "/"),
        vec!["/app/a", "/app/b", "/other"]
    );
    assert_eq!(h.t.get_ephemerals(S1, ""), h.t.get_ephemerals(S1, "/"));
    assert_eq!(h.t.get_ephemerals(S1, "/app"), vec!["/app/a", "/app/b"]);
    assert_eq!(h.t.get_ephemerals(S1, "/o"), vec!["/other"]);
    assert_eq!(h.t.get_ephemerals(99, "/"), Vec::<String>::new());
    assert_eq!(
        h.t.ephemerals_by_session(),
        vec![
            (S1, vec!["/app/a".into(), "/app/b".into(), "/other".into()]),
            (S2, vec!["/s2".into()])
        ]
    );
    assert_eq!(
        h.t.sessions(),
        vec![
            SessionInfo {
                session_id: S1,
                timeout_ms: 30_000
            },
            SessionInfo {
                session_id: S2,
                timeout_ms: 10_000
            }
        ]
    );
    // Deleting an ephemeral by hand removes it from the session's list.
    h.delete("/other", -1).unwrap();
    assert_eq!(h.t.get_ephemerals(S1, "/"), vec!["/app/a", "/app/b"]);
    let size = h.t.approximate_data_size();
    let a = h.txn(Txn::CloseSession { session_id: S1 });
    let z = h.zxid;
    assert_eq!(a.result, Ok(Response::Empty));
    assert_eq!(
        a.triggers,
        vec![
            trig("/app/a", EventType::NodeDeleted),
            trig("/app", EventType::NodeChildrenChanged),
            trig("/app/b", EventType::NodeDeleted),
            trig("/app", EventType::NodeChildrenChanged),
        ]
    );
    assert!(h.t.exists("/app/a").is_none() && h.t.exists("/app/b").is_none());
    assert_eq!(h.stat("/app").pzxid, z);
    assert_eq!(h.stat("/app").cversion, 4);
    assert_eq!(h.t.session(S1), None);
    assert_eq!(h.t.ephemerals_count(), 1);
    assert_eq!(h.t.approximate_data_size(), size - 12);
    // The closed session can no longer write; closing again is harmless.
    assert_eq!(h.create("/x", None, 0), Err(ZkError::SessionExpired));
    assert!(h
        .txn(Txn::CloseSession { session_id: S1 })
        .triggers
        .is_empty());
    assert_eq!(h.t.session(S2).map(|s| s.timeout_ms), Some(10_000));
}

#[test]
fn containers_reaped_only_after_a_child() {
    let mut h = H::new();
    let r = h.create_full(
        S1,
        &[],
        OpCode::CreateContainer,
        "/c",
        None,
        Acl::open_unsafe(),
        0,
        -1,
    );
    // createContainer answers Create2 (3.8.0) and shows ephemeralOwner 0.
    let Ok(Response::Create2 { stat, .. }) = r.result else {
        panic!("{:?}", r.result)
    };
    assert_eq!(stat.ephemeral_owner, 0);
    assert!(h.t.reap_candidates(i64::MAX).is_empty());
    // Reaping a never-used container does nothing.
    let a = h.txn(Txn::Reap {
        time_ms: 0,
        paths: vec!["/c".into()],
    });
    assert!(a.triggers.is_empty());
    assert!(h.t.exists("/c").is_some());
    h.create("/c/x", None, 0).unwrap();
    assert!(h.t.reap_candidates(0).is_empty(), "has a child");
    h.delete("/c/x", -1).unwrap();
    assert_eq!(h.t.reap_candidates(0), vec!["/c"]);
    // A child that arrives after the candidate list was made keeps the container.
    h.create("/c/y", None, 0).unwrap();
    let a = h.txn(Txn::Reap {
        time_ms: 0,
        paths: vec!["/c".into(), "/missing".into()],
    });
    assert!(a.triggers.is_empty());
    h.delete("/c/y", -1).unwrap();
    let a = h.txn(Txn::Reap {
        time_ms: 0,
        paths: vec!["/c".into()],
    });
    assert_eq!(a.result, Ok(Response::Empty));
    assert_eq!(
        a.triggers,
        vec![
            trig("/c", EventType::NodeDeleted),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
    assert!(h.t.exists("/c").is_none());
    assert!(h.t.reap_candidates(i64::MAX).is_empty());
    assert_eq!(h.stat("/").pzxid, h.zxid);
}

#[test]
fn ttl_nodes_reaped_by_time() {
    let mut h = H::new();
    h.time = 100;
    let r = h.create_full(
        S1,
        &[],
        OpCode::CreateTtl,
        "/t",
        None,
        Acl::open_unsafe(),
        5,
        1000,
    );
    let Ok(Response::Create2 { stat, .. }) = r.result else {
        panic!("{:?}", r.result)
    };
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes show owner 0");
    h.create_full(
        S1,
        &[],
        OpCode::CreateTtl,
        "/ts",
        None,
        Acl::open_unsafe(),
        6,
        50,
    )
    .result
    .unwrap();
    assert!(h.t.exists("/ts0000000001").is_some());
    // Expired when now - mtime > ttl (ContainerManager).
    assert_eq!(h.t.reap_candidates(150), Vec::<String>::new());
    assert_eq!(h.t.reap_candidates(151), vec!["/ts0000000001"]);
    assert_eq!(h.t.reap_candidates(1100), vec!["/ts0000000001"]);
    assert_eq!(h.t.reap_candidates(1101), vec!["/t", "/ts0000000001"]);
    // A setData moves mtime and so the deadline.
    h.time = 1_000;
    h.set("/t", Some(b"x"), -1).unwrap();
    assert_eq!(h.t.reap_candidates(1101), vec!["/ts0000000001"]);
    let a = h.txn(Txn::Reap {
        time_ms: 1101,
        paths: vec!["/t".into(), "/ts0000000001".into()],
    });
    assert_eq!(
        a.triggers,
        vec![
            trig("/ts0000000001", EventType::NodeDeleted),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
    assert!(h.t.exists("/t").is_some());
    // Children keep it alive.
    h.create("/t/c", None, 0).unwrap();
    assert!(h.t.reap_candidates(i64::MAX).is_empty());
    h.delete("/t/c", -1).unwrap();
    assert_eq!(h.t.reap_candidates(2001), vec!["/t"]);
    h.txn(Txn::Reap {
        time_ms: 2001,
        paths: vec!["/t".into()],
    });
    assert!(h.t.exists("/t").is_none());
}
