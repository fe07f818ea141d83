//! Unit tests of `DataTree`. Expected values marked "3.8.0" were observed on a ZooKeeper 3.8.0
//! server or read from its bytecode.
//!
//! This file owns the test harness (`H` and the request builders the other test files use)
//! and the tests of the tree as a whole: the initial tree, the special nodes, reads and
//! counts, determinism and the digest, and the size of a node. The other tests are in child
//! modules, by concern: `datatree_write_tests.rs` (single client writes and their watch
//! triggers), `datatree_apply_tests.rs` (multi, /zookeeper/config and reconfig),
//! `datatree_acl_tests.rs` (ACLs) and `datatree_lifetime_tests.rs` (sessions and ephemerals,
//! container and TTL reaping).

use super::*;
use crate::proto::codec;
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, MultiOp, ReconfigRequest, Request,
    SetAclRequest, SetDataRequest,
};
use crate::proto::response::{OpResult, ReplyHeader, Response};
use crate::proto::OpCode;
use crate::tree::{Applied, LeaderView, Txn};

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

#[path = "datatree_write_tests.rs"]
mod write_tests;

#[path = "datatree_apply_tests.rs"]
mod apply_tests;

#[path = "datatree_acl_tests.rs"]
mod acl_tests;

#[path = "datatree_lifetime_tests.rs"]
mod lifetime_tests;

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

/// The names `get_children_encoded` gives for `path`, decoded as a client would, checked
/// against `get_children` (which builds them afresh every time).
fn encoded_children(t: &DataTree, path: &str) -> Vec<String> {
    let (names, stat) = t.get_children_encoded(path, &[]).unwrap();
    let (expected, expected_stat) = t.get_children(path, &[]).unwrap();
    assert_eq!(stat, expected_stat);
    let mut frame = bytes::BytesMut::new();
    let reply = Response::ChildrenEncoded {
        names,
        stat: Some(stat),
    };
    codec::encode_reply(&mut frame, &ReplyHeader::new(7, 9, None), &reply);
    let (header, body) = codec::decode_reply_header(&frame[4..]).unwrap();
    assert_eq!((header.xid, header.zxid, header.err), (7, 9, 0));
    let decoded = codec::decode_response(OpCode::GetChildren2, body).unwrap();
    let Response::GetChildren2 { children, stat: s } = decoded else {
        panic!("not a getChildren2 reply: {decoded:?}");
    };
    assert_eq!(s, stat);
    assert_eq!(
        children, expected,
        "encoded list of {path} differs from the tree's"
    );
    children
}

#[test]
fn encoded_children_follow_every_change() {
    let mut h = H::new();
    h.create("/big", None, 0).unwrap();
    h.create("/small", None, 0).unwrap();
    h.create("/small/x", None, 0).unwrap();
    assert_eq!(encoded_children(&h.t, "/small"), vec!["x"]);
    assert!(encoded_children(&h.t, "/big").is_empty());
    let n = CACHED_LIST_MIN + 10;
    for i in 0..n {
        h.create(&format!("/big/c{i:03}"), None, 0).unwrap();
        // Read between creates once the list is long enough to be kept.
        if i >= CACHED_LIST_MIN {
            assert_eq!(encoded_children(&h.t, "/big").len(), i + 1);
        }
    }
    assert_eq!(encoded_children(&h.t, "/big").len(), n);
    h.delete("/big/c005", -1).unwrap();
    let after = encoded_children(&h.t, "/big");
    assert_eq!(after.len(), n - 1);
    assert!(!after.contains(&"c005".to_string()));
    // A failed multi undoes its create and delete: the list read afterwards is the old one.
    let r = h.req(Request::Multi(vec![
        MultiOp::Create {
            op: OpCode::Create,
            req: CreateRequest {
                path: "/big/new".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl: -1,
            },
        },
        MultiOp::Delete(DeleteRequest {
            path: "/big/c006".into(),
            version: -1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/nope".into(),
            version: -1,
        }),
    ]));
    assert!(r.is_ok(), "a failed multi still answers: {r:?}");
    assert_eq!(encoded_children(&h.t, "/big"), after);
    // Down to nothing and up again.
    for name in after {
        h.delete(&format!("/big/{name}"), -1).unwrap();
    }
    assert!(encoded_children(&h.t, "/big").is_empty());
    h.create("/big/again", None, 0).unwrap();
    assert_eq!(encoded_children(&h.t, "/big"), vec!["again"]);
    assert_eq!(h.t.get_children_encoded("/nope", &[]), Err(ZkError::NoNode));
}

/// Child names are ordered, compared and looked up as the strings they hold, whether kept
/// inline or boxed, and the names' order is `snapshot_bytes`' (canonical) order.
#[test]
fn child_names_behave_as_their_strings() {
    let long = "n".repeat(INLINE_NAME + 1);
    let at_limit = "m".repeat(INLINE_NAME);
    let mut names = vec![
        "b".to_string(),
        "".to_string(),
        "a-0000000001".to_string(),
        "é".to_string(),
        long.clone(),
        at_limit.clone(),
        "a".to_string(),
        format!("{at_limit}z"),
    ];
    let set: BTreeSet<Name> = names.iter().map(|n| Name::new(n)).collect();
    names.sort();
    let listed: Vec<String> = set.iter().map(|n| n.to_string()).collect();
    assert_eq!(listed, names);
    for n in &names {
        assert!(set.contains(n.as_str()), "{n:?} is found by &str");
        assert_eq!(&*Name::new(n), n.as_str());
    }
    assert!(matches!(Name::new(&at_limit), Name::Inline { .. }));
    assert!(matches!(Name::new(&long), Name::Heap(_)));
    assert_eq!(std::mem::size_of::<Name>(), 24);
}

/// The snapshot walk's order (`walked_past`), by which copies of written nodes are skipped.
#[test]
fn walk_order_compares_names_not_strings() {
    for (path, cursor, past) in [
        ("/", "", true),
        ("/a", "", false),
        ("/a", "/a", true),
        ("/a", "/a/b", true),
        ("/a/b", "/a", false),
        ("/a/b", "/a-c", true),
        ("/a-c", "/a/b", false),
        ("/a/b/c", "/a/c", true),
        ("/b", "/a/z/z", false),
        ("/zookeeper/quota", "/zookeeper", false),
    ] {
        assert_eq!(
            super::walked_past(path, cursor),
            past,
            "{path} walked at {cursor:?}"
        );
    }
}
