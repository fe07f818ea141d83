//! `DataTree` tests of single client writes (create in all its modes, delete, setData,
//! check): the errors and their order, versions, Stat and parent bookkeeping, sequential
//! names, and the watch triggers each write fires.

use super::*;

#[test]
fn create_errors() {
    let mut h = H::new();
    h.create("/a", None, 0).unwrap();
    h.create("/e", None, 1).unwrap();
    let before = h.t.digest();
    assert_eq!(h.create("/a", None, 0), Err(ZkError::NodeExists));
    assert_eq!(h.create("/x/y", None, 0), Err(ZkError::NoNode));
    assert_eq!(h.create("relative", None, 0), Err(ZkError::BadArguments));
    assert_eq!(h.create("/a/", None, 0), Err(ZkError::BadArguments));
    assert_eq!(h.create("/a/.", None, 0), Err(ZkError::BadArguments));
    assert_eq!(h.create("/a/\u{1}", None, 0), Err(ZkError::BadArguments));
    assert_eq!(h.create("/a\0b", None, 0), Err(ZkError::BadArguments));
    assert_eq!(
        h.create("/a", None, 7),
        Err(ZkError::BadArguments),
        "bad flags"
    );
    // The parent is looked up before the full path is validated (ZooKeeper's order).
    assert_eq!(h.create("/missing/.", None, 0), Err(ZkError::NoNode));
    assert_eq!(h.create("/a//b", None, 0), Err(ZkError::NoNode));
    assert_eq!(h.create("/e", None, 0), Err(ZkError::NodeExists));
    assert_eq!(
        h.create("/e/x", None, 0),
        Err(ZkError::NoChildrenForEphemerals)
    );
    // Empty ACL list.
    assert_eq!(h.create_acl("/b", vec![], &[]), Err(ZkError::InvalidAcl));
    // Unknown session.
    let a = h.create_full(
        77,
        &[],
        OpCode::Create,
        "/b",
        None,
        Acl::open_unsafe(),
        0,
        -1,
    );
    assert_eq!(a.result, Err(ZkError::SessionExpired));
    assert_eq!(before, h.t.digest(), "failed creates change nothing");
}

#[test]
fn ttl_and_mode_validation() {
    let mut h = H::new();
    let open = Acl::open_unsafe;
    let mut c = |op, flags, ttl| {
        h.create_full(S1, &[], op, "/t", None, open(), flags, ttl)
            .result
            .map(|_| ())
    };
    assert_eq!(c(OpCode::CreateTtl, 5, 0), Err(ZkError::BadArguments));
    assert_eq!(c(OpCode::CreateTtl, 5, -5), Err(ZkError::BadArguments));
    assert_eq!(
        c(OpCode::CreateTtl, 5, MAX_TTL_MS + 1),
        Err(ZkError::BadArguments)
    );
    // TTL flags need createTTL; createTTL needs TTL flags.
    assert_eq!(c(OpCode::Create2, 5, 1000), Err(ZkError::BadArguments));
    assert_eq!(c(OpCode::Create, 6, -1), Err(ZkError::BadArguments));
    assert_eq!(
        c(OpCode::CreateContainer, 5, -1),
        Err(ZkError::BadArguments)
    );
    assert_eq!(c(OpCode::CreateTtl, 0, 1000), Err(ZkError::BadArguments));
    assert_eq!(c(OpCode::CreateTtl, 0, -1), Err(ZkError::BadArguments));
    assert_eq!(c(OpCode::CreateTtl, 5, MAX_TTL_MS), Ok(()));
    assert_eq!(c(OpCode::Create2, 4, -1), Err(ZkError::NodeExists));
    // TTL checks come before the session check.
    let a = h.create_full(77, &[], OpCode::CreateTtl, "/t", None, open(), 5, 0);
    assert_eq!(a.result, Err(ZkError::BadArguments));
    // create2 with the container flag makes a plain persistent node (the opcode decides).
    h.create_full(S1, &[], OpCode::Create2, "/p", None, open(), 4, -1)
        .result
        .unwrap();
    h.create("/p/c", None, 0).unwrap();
    h.delete("/p/c", -1).unwrap();
    assert!(h.t.reap_candidates(i64::MAX).iter().all(|p| p != "/p"));
}

#[test]
fn create_stat_and_parent() {
    let mut h = H::new();
    h.time = 5_000;
    h.create("/a", Some(b"hello"), 0).unwrap();
    let za = h.zxid;
    let a = h.stat("/a");
    assert_eq!(
        a,
        Stat {
            czxid: za,
            mzxid: za,
            ctime: 5_000,
            mtime: 5_000,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 5,
            num_children: 0,
            pzxid: za,
        }
    );
    let r = h
        .create_full(
            S1,
            &[],
            OpCode::Create2,
            "/a/b",
            None,
            Acl::open_unsafe(),
            0,
            -1,
        )
        .result
        .unwrap();
    let zb = h.zxid;
    assert_eq!(
        r,
        Response::Create2 {
            path: "/a/b".into(),
            stat: h.stat("/a/b")
        }
    );
    h.time = 6_000;
    h.create("/a/c", None, 0).unwrap();
    let zc = h.zxid;
    let a = h.stat("/a");
    assert_eq!((a.cversion, a.num_children, a.pzxid), (2, 2, zc));
    assert_eq!((a.mzxid, a.version), (za, 0), "children do not touch mzxid");
    assert!(zb < zc);
    // Delete: numChildren down, client cversion up (3.8.0 showed cversion 3 after
    // create, create, delete), pzxid = delete zxid.
    h.delete("/a/b", -1).unwrap();
    let zd = h.zxid;
    let a = h.stat("/a");
    assert_eq!((a.cversion, a.num_children, a.pzxid), (3, 1, zd));
    // setData: version, mzxid, mtime, dataLength.
    h.time = 7_000;
    let r = h.set("/a", Some(b"hi"), 0).unwrap();
    let zs = h.zxid;
    let a = h.stat("/a");
    assert_eq!(r, Response::Stat(a));
    assert_eq!(
        (a.version, a.mzxid, a.mtime, a.ctime, a.data_length, a.czxid),
        (1, zs, 7_000, 5_000, 2, za)
    );
    // Response of create (opcode 1) carries only the path.
    let r = h.create_full(
        S1,
        &[],
        OpCode::Create,
        "/z",
        None,
        Acl::open_unsafe(),
        0,
        -1,
    );
    assert_eq!(r.result, Ok(Response::Create { path: "/z".into() }));
    assert_eq!(
        r.triggers,
        vec![
            trig("/z", EventType::NodeCreated),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
}

#[test]
fn sequential_names() {
    let mut h = H::new();
    h.create("/p", None, 0).unwrap();
    assert_eq!(h.create("/p/s-", None, 2), Ok("/p/s-0000000000".into()));
    assert_eq!(h.create("/p/s-", None, 2), Ok("/p/s-0000000001".into()));
    h.create("/p/x", None, 0).unwrap();
    h.delete("/p/x", -1).unwrap();
    h.delete("/p/s-0000000000", -1).unwrap();
    // Deletes do not move the counter; it counts creations (3.8.0: /a/s0000000002 after
    // creating b, c and deleting b).
    assert_eq!(h.create("/p/s-", None, 2), Ok("/p/s-0000000003".into()));
    // A trailing slash is fine for sequential nodes (3.8.0: "/a/" -> "/a/0000000003").
    assert_eq!(h.create("/p/", None, 2), Ok("/p/0000000004".into()));
    assert_eq!(h.create("/p/", None, 0), Err(ZkError::BadArguments));
    // A fresh parent starts at zero; ephemeral sequential too.
    h.create("/q", None, 0).unwrap();
    assert_eq!(h.create("/q/e", None, 3), Ok("/q/e0000000000".into()));
    assert_eq!(h.stat("/q/e0000000000").ephemeral_owner, S1);
    // Java's %010d of a negative int.
    assert_eq!(format!("{}{:010}", "/n", -1i32), "/n-000000001");
    assert_eq!(format!("{}{:010}", "/n", i32::MIN), "/n-2147483648");
}

#[test]
fn delete_set_check_errors_and_versions() {
    let mut h = H::new();
    h.create("/a", None, 0).unwrap();
    h.create("/a/b", None, 0).unwrap();
    assert_eq!(h.delete("/nope", -1), Err(ZkError::NoNode));
    assert_eq!(h.delete("/nope/x", -1), Err(ZkError::NoNode));
    assert_eq!(h.delete("nope", -1), Err(ZkError::BadArguments));
    assert_eq!(h.delete("/a", -1), Err(ZkError::NotEmpty));
    assert_eq!(h.delete("/a/b", 3), Err(ZkError::BadVersion));
    assert_eq!(h.set("/nope", None, -1), Err(ZkError::NoNode));
    assert_eq!(h.set("/a/", None, -1), Err(ZkError::BadArguments));
    assert_eq!(h.set("/a", None, 5), Err(ZkError::BadVersion));
    let check = |path: &str, version| {
        Request::Check(CheckVersionRequest {
            path: path.into(),
            version,
        })
    };
    assert_eq!(h.req(check("/a", 1)), Err(ZkError::BadVersion));
    assert_eq!(h.req(check("/x", -1)), Err(ZkError::NoNode));
    assert_eq!(h.req(check("x", -1)), Err(ZkError::BadArguments));
    assert_eq!(h.req(check("/a", 0)), Ok(Response::Empty));
    h.set("/a", None, 0).unwrap();
    h.set("/a", None, -1).unwrap();
    assert_eq!(h.stat("/a").version, 2);
    assert_eq!(h.req(check("/a", 2)), Ok(Response::Empty));
    let a = h.delete("/a/b", 0);
    assert_eq!(a, Ok(Response::Empty));
    assert!(h.t.exists("/a/b").is_none());
    // Writes from an unknown session.
    let a = h.req_as(77, &[], set_req("/a", None, -1));
    assert_eq!(a.result, Err(ZkError::SessionExpired));
    // A failed write still consumes its zxid (checked in H::txn) and changes nothing else.
    let d = h.t.digest();
    assert_eq!(h.delete("/nope", -1), Err(ZkError::NoNode));
    assert_eq!(d, h.t.digest());
    // Reconfig travels as `Txn::Reconfig`, never as a client request.
    let r = h.req(Request::Reconfig(ReconfigRequest {
        joining_servers: None,
        leaving_servers: None,
        new_members: None,
        cur_config_id: -1,
    }));
    assert_eq!(r, Err(ZkError::Unimplemented));
}

#[test]
fn triggers_in_zookeeper_order() {
    let mut h = H::new();
    let a = h.create_full(
        S1,
        &[],
        OpCode::Create,
        "/a",
        None,
        Acl::open_unsafe(),
        0,
        -1,
    );
    assert_eq!(
        a.triggers,
        vec![
            trig("/a", EventType::NodeCreated),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
    let a = h.req_as(S1, &[], set_req("/a", Some(b"x"), -1));
    assert_eq!(a.triggers, vec![trig("/a", EventType::NodeDataChanged)]);
    let a = h.req_as(
        S1,
        &[],
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl: Acl::open_unsafe(),
            version: -1,
        }),
    );
    assert!(a.triggers.is_empty());
    let a = h.req_as(
        S1,
        &[],
        Request::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        }),
    );
    assert_eq!(
        a.triggers,
        vec![
            trig("/a", EventType::NodeDeleted),
            trig("/", EventType::NodeChildrenChanged)
        ]
    );
    let a = h.req_as(S1, &[], set_req("/a", Some(b"x"), -1));
    assert!(a.triggers.is_empty(), "failed writes trigger nothing");
}
