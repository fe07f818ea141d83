//! Unit tests of `DataTree`. Expected values marked "3.8.0" were observed on a ZooKeeper 3.8.0
//! server or read from its bytecode.

use super::*;
use crate::proto::request::ReconfigRequest;

const S1: i64 = 0x100;
const S2: i64 = 0x200;

/// A tree plus a zxid counter, with helpers that build txns.
struct H {
    t: DataTree,
    zxid: i64,
    time: i64,
}

impl H {
    fn new() -> H {
        H::with(TreeOptions::default())
    }

    fn with(opts: TreeOptions) -> H {
        let mut h = H {
            t: DataTree::new(opts),
            zxid: 0,
            time: 1_000,
        };
        h.txn(Txn::CreateSession {
            session_id: S1,
            timeout_ms: 30_000,
        });
        h.txn(Txn::CreateSession {
            session_id: S2,
            timeout_ms: 10_000,
        });
        h
    }

    fn txn(&mut self, txn: Txn) -> Applied {
        self.zxid += 1;
        let a = self.t.apply(self.zxid, &txn);
        assert_eq!(a.zxid, self.zxid);
        assert_eq!(self.t.last_zxid(), self.zxid);
        a
    }

    fn req_as(&mut self, session_id: i64, auth: &[Id], request: Request) -> Applied {
        let time_ms = self.time;
        self.txn(Txn::Client {
            session_id,
            time_ms,
            auth: auth.to_vec(),
            request,
        })
    }

    fn req(&mut self, request: Request) -> Result<Response, ZkError> {
        self.req_as(S1, &[], request).result
    }

    #[allow(clippy::too_many_arguments)]
    fn create_full(
        &mut self,
        session: i64,
        auth: &[Id],
        op: OpCode,
        path: &str,
        data: Option<&[u8]>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    ) -> Applied {
        self.req_as(
            session,
            auth,
            Request::Create {
                op,
                req: CreateRequest {
                    path: path.into(),
                    data: data.map(Bytes::copy_from_slice),
                    acl,
                    flags,
                    ttl,
                },
            },
        )
    }

    /// create2 with open ACL; returns the created path or the error.
    fn create(&mut self, path: &str, data: Option<&[u8]>, flags: i32) -> Result<String, ZkError> {
        let a = self.create_full(
            S1,
            &[],
            OpCode::Create2,
            path,
            data,
            Acl::open_unsafe(),
            flags,
            -1,
        );
        match a.result? {
            Response::Create2 { path, .. } => Ok(path),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn create_acl(&mut self, path: &str, acl: Vec<Acl>, auth: &[Id]) -> Result<Response, ZkError> {
        self.create_full(S1, auth, OpCode::Create, path, None, acl, 0, -1)
            .result
    }

    fn delete(&mut self, path: &str, version: i32) -> Result<Response, ZkError> {
        self.req(Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        }))
    }

    fn set(&mut self, path: &str, data: Option<&[u8]>, version: i32) -> Result<Response, ZkError> {
        self.req(set_req(path, data, version))
    }

    fn stat(&self, path: &str) -> Stat {
        self.t.exists(path).expect(path)
    }
}

fn set_req(path: &str, data: Option<&[u8]>, version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        version,
    })
}

fn create_op(op: OpCode, path: &str, flags: i32) -> MultiOp {
    MultiOp::Create {
        op,
        req: CreateRequest {
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        },
    }
}

fn trig(path: &str, event: EventType) -> WatchTrigger {
    WatchTrigger {
        path: path.into(),
        event,
    }
}

fn acl(perms: i32, scheme: &str, id: &str) -> Vec<Acl> {
    vec![Acl {
        perms,
        id: Id::new(scheme, id),
    }]
}

#[test]
fn initial_tree_matches_zookeeper() {
    let t = DataTree::new(TreeOptions::default());
    // 3.8.0 mntr on an empty server: zk_znode_count 5, zk_approximate_data_size 44.
    assert_eq!(t.node_count(), 5);
    assert_eq!(t.approximate_data_size(), 44);
    assert_eq!(t.last_zxid(), 0);
    // 3.8.0 `exists /`: cversion -1 (0 creations, 1 child), everything else 0.
    let root = t.exists("/").unwrap();
    assert_eq!(
        root,
        Stat {
            cversion: -1,
            num_children: 1,
            ..Stat::default()
        }
    );
    // 3.8.0 `exists /zookeeper/config`: aversion -1, world-readable only.
    let config = t.exists("/zookeeper/config").unwrap();
    assert_eq!(config.aversion, -1);
    assert_eq!(
        t.get_acl("/zookeeper/config", &[]).unwrap().0,
        Acl::read_unsafe()
    );
    assert_eq!(t.get_acl("/zookeeper", &[]).unwrap().0, Acl::open_unsafe());
    assert_eq!(t.exists("/zookeeper").unwrap().cversion, -2);
    assert!(t.exists("/zookeeper/quota").is_some());
    assert_eq!(t.get_children("/", &[]).unwrap().0, vec!["zookeeper"]);
    assert_eq!(
        t.get_children("/zookeeper", &[]).unwrap().0,
        vec!["config", "quota"]
    );
    assert_eq!(t.get_data("/", &[]).unwrap().0, Some(Bytes::new()));
    assert_eq!(t.all_children_number("/", &[]), Ok(3));
    assert_eq!(t.all_children_number("/zookeeper", &[]), Ok(2));
    assert_eq!(t.digest(), DataTree::default().digest());
}

#[test]
fn special_paths() {
    let mut h = H::new();
    // 3.8.0: deleting a special node is BADARGUMENTS ...
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(h.delete(p, -1), Err(ZkError::BadArguments), "{p}");
    }
    // ... but creating under /zookeeper is allowed by its open ACL, and under
    // /zookeeper/config refused by its read-only ACL.
    assert_eq!(
        h.create("/zookeeper/foo", None, 0),
        Ok("/zookeeper/foo".into())
    );
    assert_eq!(h.delete("/zookeeper/foo", -1), Ok(Response::Empty));
    assert_eq!(
        h.create("/zookeeper/config/x", None, 0),
        Err(ZkError::NoAuth)
    );
    assert_eq!(
        h.create("/zookeeper/quota/x", None, 0),
        Ok("/zookeeper/quota/x".into())
    );
    assert_eq!(h.delete("/zookeeper/quota/x", -1), Ok(Response::Empty));
    assert_eq!(
        h.set("/zookeeper/config", Some(b"x"), -1),
        Err(ZkError::NoAuth)
    );
    assert_eq!(h.create("/", None, 0), Err(ZkError::NodeExists));
    assert_eq!(h.create("/zookeeper", None, 0), Err(ZkError::NodeExists));
}

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
fn null_and_empty_data() {
    let mut h = H::new();
    h.create("/null", None, 0).unwrap();
    h.create("/empty", Some(b""), 0).unwrap();
    let (d, s) = h.t.get_data("/null", &[]).unwrap();
    assert_eq!((d, s.data_length), (None, 0));
    let (d, s) = h.t.get_data("/empty", &[]).unwrap();
    assert_eq!((d, s.data_length), (Some(Bytes::new()), 0));
    let d1 = h.t.digest();
    h.set("/empty", None, -1).unwrap();
    assert_eq!(h.t.get_data("/empty", &[]).unwrap().0, None);
    assert_ne!(d1, h.t.digest(), "null and empty hash differently");
    h.set("/null", Some(b""), -1).unwrap();
    assert_eq!(h.t.get_data("/null", &[]).unwrap().0, Some(Bytes::new()));
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
fn multi_success() {
    let mut h = H::new();
    h.create("/m", None, 0).unwrap();
    h.time = 9_000;
    let ops = vec![
        create_op(OpCode::Create, "/m/a", 0),
        MultiOp::SetData(SetDataRequest {
            path: "/m/a".into(),
            data: Some(Bytes::from_static(b"v")),
            version: 0,
        }),
        create_op(OpCode::Create2, "/m/s", 2),
        create_op(OpCode::Create2, "/m/s", 2),
        MultiOp::Check(CheckVersionRequest {
            path: "/m/a".into(),
            version: 1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/m/s0000000001".into(),
            version: 0,
        }),
        create_op(OpCode::CreateContainer, "/m/c", 0),
    ];
    let a = h.req_as(S1, &[], Request::Multi(ops));
    let z = h.zxid;
    let Ok(Response::Multi(results)) = a.result else {
        panic!("{:?}", a.result)
    };
    let sa = h.stat("/m/a");
    assert_eq!(
        (sa.czxid, sa.mzxid, sa.version, sa.data_length),
        (z, z, 1, 1)
    );
    assert_eq!(results.len(), 7);
    assert_eq!(
        results[0],
        OpResult::Create {
            path: "/m/a".into()
        }
    );
    assert_eq!(results[1], OpResult::SetData { stat: sa });
    assert!(matches!(&results[2], OpResult::Create2 { path, stat }
        if path == "/m/s0000000001" && stat.czxid == z));
    assert!(matches!(&results[3], OpResult::Create2 { path, .. } if path == "/m/s0000000002"));
    assert_eq!(results[4], OpResult::Check);
    assert_eq!(results[5], OpResult::Delete);
    assert!(matches!(&results[6], OpResult::Create2 { path, .. } if path == "/m/c"));
    let m = h.stat("/m");
    assert_eq!((m.num_children, m.pzxid, m.cversion), (3, z, 5));
    assert_eq!(
        a.triggers,
        vec![
            trig("/m/a", EventType::NodeCreated),
            trig("/m", EventType::NodeChildrenChanged),
            trig("/m/a", EventType::NodeDataChanged),
            trig("/m/s0000000001", EventType::NodeCreated),
            trig("/m", EventType::NodeChildrenChanged),
            trig("/m/s0000000002", EventType::NodeCreated),
            trig("/m", EventType::NodeChildrenChanged),
            trig("/m/s0000000001", EventType::NodeDeleted),
            trig("/m", EventType::NodeChildrenChanged),
            trig("/m/c", EventType::NodeCreated),
            trig("/m", EventType::NodeChildrenChanged),
        ]
    );
    // An empty multi is fine.
    assert_eq!(h.req(Request::Multi(vec![])), Ok(Response::Multi(vec![])));
}

#[test]
fn multi_failure_changes_nothing() {
    let mut h = H::new();
    h.create("/m", Some(b"orig"), 0).unwrap();
    h.create("/m/old", None, 1).unwrap();
    h.create("/exists", None, 0).unwrap();
    let digest = h.t.digest();
    let size = h.t.approximate_data_size();
    let count = h.t.node_count();
    let acls = h.t.acls.len();
    let m = h.stat("/m");
    let ops = vec![
        create_op(OpCode::Create, "/m/new", 0),
        MultiOp::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: "/m/e".into(),
                data: None,
                acl: acl(31, "digest", "u:h"),
                flags: 1,
                ttl: -1,
            },
        },
        MultiOp::Delete(DeleteRequest {
            path: "/m/old".into(),
            version: -1,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: None,
            version: -1,
        }),
        create_op(OpCode::Create2, "/m/seq", 2),
        create_op(OpCode::Create, "/exists", 0),
        create_op(OpCode::Create, "/never", 0),
        MultiOp::Check(CheckVersionRequest {
            path: "/m".into(),
            version: -1,
        }),
    ];
    let a = h.req_as(S1, &[], Request::Multi(ops));
    let err = |e: i32| OpResult::Error { err: e };
    assert_eq!(
        a.result,
        Ok(Response::Multi(vec![
            err(0),
            err(0),
            err(0),
            err(0),
            err(0),
            err(ZkError::NodeExists.code()),
            err(-2),
            err(-2)
        ]))
    );
    assert!(a.triggers.is_empty());
    assert_eq!(h.t.digest(), digest);
    assert_eq!(h.t.approximate_data_size(), size);
    assert_eq!(h.t.node_count(), count);
    assert_eq!(h.t.acls.len(), acls);
    assert_eq!(h.stat("/m"), m);
    assert_eq!(
        h.t.get_data("/m", &[]).unwrap().0.as_deref(),
        Some(&b"orig"[..])
    );
    assert_eq!(h.t.get_ephemerals(S1, "/"), vec!["/m/old"]);
    assert_eq!(h.t.get_children("/m", &[]).unwrap().0, vec!["old"]);
    // The sequence counter was rolled back too.
    assert_eq!(h.create("/m/seq", None, 2), Ok("/m/seq0000000001".into()));

    // Failure on the first op, and from an unknown session.
    let a = h.req_as(
        77,
        &[],
        Request::Multi(vec![create_op(OpCode::Create, "/z", 0)]),
    );
    assert_eq!(
        a.result,
        Ok(Response::Multi(vec![err(ZkError::SessionExpired.code())]))
    );
}

#[test]
fn acl_digest_world_ip_super_auth() {
    let mut h = H::new();
    let alice = Id::new("digest", "alice:hash");
    let bob = Id::new("digest", "bob:hash");
    // "auth" expands to the digest ids of the requester.
    let r = h.create_acl(
        "/alice",
        acl(perms::ALL, "auth", ""),
        std::slice::from_ref(&alice),
    );
    assert_eq!(
        r,
        Ok(Response::Create {
            path: "/alice".into()
        })
    );
    assert_eq!(
        h.t.get_acl("/alice", std::slice::from_ref(&alice))
            .unwrap()
            .0,
        acl(perms::ALL, "digest", "alice:hash")
    );
    // "auth" with no digest id (ip does not count) is InvalidAcl.
    let ip = Id::new("ip", "127.0.0.1");
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "auth", ""), std::slice::from_ref(&ip)),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "digest", "nocolon"), &[]),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "world", "nobody"), &[]),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "sasl", "who"), &[]),
        Err(ZkError::InvalidAcl)
    );

    // NoAuth on every operation for bob, allowed for alice.
    let ba = [bob.clone()];
    assert_eq!(h.t.get_data("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.get_children("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.get_acl("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.all_children_number("/alice", &ba), Err(ZkError::NoAuth));
    assert!(h.t.exists("/alice").is_some(), "exists is unchecked");
    assert!(h.t.get_data("/alice", std::slice::from_ref(&alice)).is_ok());
    let set = h.req_as(S1, &ba, set_req("/alice", Some(b"x"), -1)).result;
    assert_eq!(set, Err(ZkError::NoAuth));
    let mk = |p: &str| Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: p.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    };
    assert_eq!(
        h.req_as(S1, &ba, mk("/alice/c")).result,
        Err(ZkError::NoAuth)
    );
    assert!(h
        .req_as(S1, std::slice::from_ref(&alice), mk("/alice/c"))
        .result
        .is_ok());
    let del = Request::Delete(DeleteRequest {
        path: "/alice/c".into(),
        version: -1,
    });
    assert_eq!(h.req_as(S1, &ba, del.clone()).result, Err(ZkError::NoAuth));
    let setacl = |version| {
        Request::SetAcl(SetAclRequest {
            path: "/alice".into(),
            acl: Acl::read_unsafe(),
            version,
        })
    };
    assert_eq!(h.req_as(S1, &ba, setacl(-1)).result, Err(ZkError::NoAuth));
    let check = Request::Check(CheckVersionRequest {
        path: "/alice".into(),
        version: -1,
    });
    assert_eq!(
        h.req_as(S1, &ba, check.clone()).result,
        Err(ZkError::NoAuth)
    );
    // super bypasses everything.
    let sup = [Id::new("super", "")];
    assert!(h.req_as(S1, &sup, del).result.is_ok());
    assert!(h.t.get_data("/alice", &sup).is_ok());
    // setACL: aversion check and +1.
    let aa = [alice.clone()];
    assert_eq!(
        h.req_as(S1, &aa, setacl(3)).result,
        Err(ZkError::BadVersion)
    );
    let r = h.req_as(S1, &aa, setacl(0)).result.unwrap();
    assert!(matches!(r, Response::Stat(s) if s.aversion == 1));
    assert_eq!(h.t.get_acl("/alice", &[]).unwrap().0, Acl::read_unsafe());
    // World read-only now: anybody reads, nobody writes (not even alice).
    assert!(h.t.get_data("/alice", &[]).is_ok());
    let set = h.req_as(S1, &aa, set_req("/alice", None, -1)).result;
    assert_eq!(set, Err(ZkError::NoAuth));

    // ip ACL with a mask.
    h.create_acl("/net", acl(perms::ALL, "ip", "10.1.0.0/16"), &[])
        .unwrap();
    assert!(h.t.get_data("/net", &[Id::new("ip", "10.1.200.3")]).is_ok());
    assert_eq!(
        h.t.get_data("/net", &[Id::new("ip", "10.2.0.1")]),
        Err(ZkError::NoAuth)
    );
    assert_eq!(h.t.get_data("/net", &[]), Err(ZkError::NoAuth));

    // getACL with READ but no ADMIN hides digest hashes.
    let mixed = vec![
        Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        },
        Acl {
            perms: perms::ALL,
            id: alice.clone(),
        },
    ];
    h.create_acl("/mixed", mixed.clone(), &[]).unwrap();
    let seen = h.t.get_acl("/mixed", &[]).unwrap().0;
    assert_eq!(seen[1].id.id, "alice:x");
    assert_eq!(h.t.get_acl("/mixed", &[alice]).unwrap().0, mixed);
}

#[test]
fn skip_acl_option() {
    let mut h = H::with(TreeOptions { skip_acl: true });
    h.create_acl("/locked", acl(perms::READ, "digest", "u:h"), &[])
        .unwrap();
    assert!(h.t.get_data("/locked", &[]).is_ok());
    assert!(h.set("/locked", Some(b"x"), -1).is_ok());
    assert!(h.create("/locked/c", None, 0).is_ok());
    // Invalid ACLs are still refused.
    assert_eq!(h.create_acl("/x", vec![], &[]), Err(ZkError::InvalidAcl));
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

#[test]
fn children_and_counts() {
    let mut h = H::new();
    for p in ["/a", "/a/z", "/a/b", "/a/b/c", "/a/m"] {
        h.create(p, Some(b"12"), 0).unwrap();
    }
    let (children, stat) = h.t.get_children("/a", &[]).unwrap();
    assert_eq!(children, vec!["b", "m", "z"]);
    assert_eq!(stat.num_children, 3);
    assert_eq!(h.t.all_children_number("/a", &[]), Ok(4));
    assert_eq!(h.t.all_children_number("/a/b/c", &[]), Ok(0));
    assert_eq!(h.t.all_children_number("/", &[]), Ok(8));
    assert_eq!(h.t.all_children_number("/nope", &[]), Err(ZkError::NoNode));
    assert_eq!(h.t.get_children("/nope", &[]), Err(ZkError::NoNode));
    assert_eq!(h.t.get_data("/nope", &[]), Err(ZkError::NoNode));
    assert_eq!(h.t.get_acl("/nope", &[]), Err(ZkError::NoNode));
    assert_eq!(h.t.node_count(), 5 + 5);
    // 44 + "/a" + "/a/z" + "/a/b" + "/a/b/c" + "/a/m" + 5 * 2 data bytes
    assert_eq!(h.t.approximate_data_size(), 44 + 2 + 4 + 4 + 6 + 4 + 10);
}

#[test]
fn determinism() {
    let txns = |variant: bool| {
        let mut v = vec![
            Txn::CreateSession {
                session_id: S1,
                timeout_ms: 5_000,
            },
            Txn::Client {
                session_id: S1,
                time_ms: 10,
                auth: vec![],
                request: Request::Create {
                    op: OpCode::Create,
                    req: CreateRequest {
                        path: "/a".into(),
                        data: Some(Bytes::from_static(b"1")),
                        acl: Acl::open_unsafe(),
                        flags: 0,
                        ttl: -1,
                    },
                },
            },
            Txn::Client {
                session_id: S1,
                time_ms: 11,
                auth: vec![],
                request: Request::Create {
                    op: OpCode::Create2,
                    req: CreateRequest {
                        path: "/a/e".into(),
                        data: None,
                        acl: Acl::open_unsafe(),
                        flags: 3,
                        ttl: -1,
                    },
                },
            },
        ];
        v.push(Txn::Client {
            session_id: S1,
            time_ms: 12,
            auth: vec![],
            request: set_req("/a", Some(if variant { b"3" } else { b"2" }), -1),
        });
        v
    };
    let run = |txns: Vec<Txn>| {
        let mut t = DataTree::default();
        for (i, txn) in txns.iter().enumerate() {
            t.apply(i as i64 + 1, txn);
        }
        t
    };
    let a = run(txns(false));
    let b = run(txns(false));
    let c = run(txns(true));
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
    // Same content at a different zxid is a different tree.
    let mut shifted = txns(false);
    shifted.insert(
        0,
        Txn::CreateSession {
            session_id: 9,
            timeout_ms: 1,
        },
    );
    let mut d = run(shifted);
    assert_ne!(a.digest(), d.digest());
    d.apply(100, &Txn::CloseSession { session_id: 9 });
    assert_ne!(a.digest(), d.digest(), "czxids differ");
    // Cloning keeps the digest.
    assert_eq!(a.clone().digest(), a.digest());
}

#[test]
fn node_stays_compact() {
    // A regression guard for the per-znode footprint (the map adds the 16-byte key).
    let size = std::mem::size_of::<Node>();
    assert!(size <= 120, "Node is {size} bytes");
}

#[test]
fn many_nodes_and_digest_order() {
    // Insertion order must not matter to the digest: it walks children in name order.
    let mut a = H::new();
    let mut b = H::new();
    a.create("/p", None, 0).unwrap();
    b.create("/p", None, 0).unwrap();
    for i in 0..200 {
        a.create(&format!("/p/n{i}"), None, 0).unwrap();
    }
    for i in (0..200).rev() {
        b.create(&format!("/p/n{i}"), None, 0).unwrap();
    }
    // Same shape but different czxids per path: digests differ...
    assert_ne!(a.t.digest(), b.t.digest());
    assert_eq!(a.t.all_children_number("/p", &[]), Ok(200));
    // ...and deleting everything again gives trees that differ only in /p's pzxid/cversion.
    for i in 0..200 {
        a.delete(&format!("/p/n{i}"), -1).unwrap();
        b.delete(&format!("/p/n{i}"), -1).unwrap();
    }
    assert_eq!(a.t.node_count(), 6);
    assert_eq!(a.t.digest(), b.t.digest());
}

#[test]
fn set_config_replaces_zookeeper_config_data_and_fires_a_data_watch() {
    let mut t = DataTree::new(TreeOptions::default());
    let before = t.exists("/zookeeper/config").unwrap();
    let text = b"server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=0".to_vec();
    let applied = t.apply(
        77,
        &Txn::SetConfig {
            time_ms: 5,
            data: text.clone(),
        },
    );
    assert_eq!(applied.triggers.len(), 1);
    assert_eq!(applied.triggers[0].path, "/zookeeper/config");
    let (data, stat) = t.get_data("/zookeeper/config", &[]).unwrap();
    assert_eq!(data.as_deref(), Some(&text[..]));
    // As ZooKeeper 3.8 shows it: dataVersion -1, mzxid = the config's version.
    assert_eq!(before.version, 0);
    assert_eq!(stat.version, -1);
    assert_eq!((stat.mzxid, stat.mtime), (0, 5));
    assert_eq!(stat.data_length as usize, text.len());
}

/// A tree whose /zookeeper/config lists servers 1..3 (version 0x100000000).
fn three_servers() -> DataTree {
    let mut t = DataTree::new(TreeOptions::default());
    let text = "server.1=127.0.0.1:2001:3001:participant;0.0.0.0:4001\n\
                server.2=127.0.0.1:2002:3002:participant;0.0.0.0:4002\n\
                server.3=127.0.0.1:2003:3003:participant;0.0.0.0:4003\nversion=100000000";
    t.apply(
        0x1_0000_0001,
        &Txn::SetConfig {
            time_ms: 1,
            data: text.as_bytes().to_vec(),
        },
    );
    t
}

fn reconfig_txn(add: &str, auth: Vec<Id>, view: Option<LeaderView>) -> Txn {
    Txn::Reconfig {
        session_id: 1,
        time_ms: 9,
        auth,
        request: ReconfigRequest {
            joining_servers: Some(add.to_string()),
            leaving_servers: None,
            new_members: None,
            cur_config_id: -1,
        },
        min_voters: 2,
        view,
    }
}

#[test]
fn reconfig_needs_write_on_zookeeper_config_and_a_leader_view() {
    let mut t = three_servers();
    let view = LeaderView {
        in_progress: false,
        synced: vec![1, 2, 3],
    };
    let add = "server.4=127.0.0.1:2004:3004;4004";
    let zxid = 0x1_0000_0005;
    // Nobody stamped it: no synced quorum can be shown.
    let r = t.apply(zxid, &reconfig_txn(add, vec![], None));
    assert_eq!(r.result, Err(ZkError::NewConfigNoQuorum));
    // world:anyone may only read /zookeeper/config.
    let r = t.apply(zxid, &reconfig_txn(add, vec![], Some(view.clone())));
    assert_eq!(r.result, Err(ZkError::NoAuth));
    assert!(r.triggers.is_empty());
    let r = t.apply(
        zxid,
        &reconfig_txn(add, vec![Id::new("super", "")], Some(view.clone())),
    );
    let Ok(Response::GetData {
        data: Some(data),
        stat,
    }) = r.result
    else {
        panic!("{:?}", r.result);
    };
    let text = std::str::from_utf8(&data).unwrap();
    assert!(
        text.ends_with("server.4=127.0.0.1:2004:3004:participant;0.0.0.0:4004\nversion=100000005")
    );
    assert_eq!((stat.version, stat.mzxid, stat.mtime), (-1, zxid, 9));
    assert_eq!(r.triggers.len(), 1);
    let (now, _) = t.get_data("/zookeeper/config", &[]).unwrap();
    assert_eq!(now.as_deref(), Some(&data[..]));
    // skipACL lets anyone reconfigure.
    let mut t = three_servers();
    t.opts.skip_acl = true;
    let r = t.apply(zxid, &reconfig_txn(add, vec![], Some(view)));
    assert!(r.result.is_ok(), "{:?}", r.result);
}
