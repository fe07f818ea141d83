//! `DataTree` tests of the txns applied as a whole: multi (all ops or none, with the undo
//! log restoring the tree exactly), `Txn::SetConfig` and `Txn::Reconfig` on
//! /zookeeper/config.

use super::*;

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
