//! Wire-level tests of the client port: bytes a real client would never send, pipelining,
//! and four-letter words. The frames are built with keeperd's own jute codec, which is
//! checked byte-for-byte against ZooKeeper's layouts in its unit tests.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use keeperd::config::Whitelist;
use keeperd::proto::codec::{
    decode_response, decode_watcher_event, encode_connect_request, encode_request,
};
use keeperd::proto::connect::ConnectRequest;
use keeperd::proto::request::{CreateRequest, Request, SetDataRequest};
use keeperd::proto::response::Response;
use keeperd::proto::{Acl, EventType, OpCode, ZkError};
use support::*;

fn create(path: &str) -> Request {
    Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: path.into(),
            data: Some(bytes::Bytes::from_static(b"d")),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    }
}

/// The answer to `word`, which must come within 10 s.
async fn answer(addr: std::net::SocketAddr, word: &str) -> String {
    four_letter_word(addr.port(), word, Duration::from_secs(10))
        .await
        .unwrap()
}

#[tokio::test]
async fn handshake_with_and_without_the_read_only_byte() {
    bounded(async {
        let srv = start().await;
        let (_raw, resp) = Raw::session(srv.local_addr).await;
        assert_ne!(resp.session_id, 0);
        assert_eq!(resp.timeout_ms, 5000);
        assert_eq!(resp.passwd.len(), 16);
        assert_eq!(resp.read_only, Some(false));

        // A 3.4 client sends no readOnly byte and must get none back.
        let mut old = Raw::open(srv.local_addr).await;
        let resp = old
            .handshake(ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: 6000,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: None,
            })
            .await;
        assert_eq!(resp.read_only, None);
        assert_eq!(resp.timeout_ms, 6000);
        srv.shutdown().await;
    })
    .await;
}

/// A session's password cannot be computed from its id: only the password the server gave
/// (HMAC under this server's own random secret) takes the session over; ZooKeeper's formula
/// and keeperd's former one (SHA-1 of a constant and the id) get the expired reply. The
/// password survives a restart (the secret is kept in the dataDir).
#[tokio::test]
async fn session_passwords_are_not_computable_from_the_id() {
    bounded(async {
        let srv = start().await;
        let (_victim, resp) = Raw::session(srv.local_addr).await;
        let id = resp.session_id;
        let reconnect = |passwd: Vec<u8>| {
            let addr = srv.local_addr;
            async move {
                let mut raw = Raw::open(addr).await;
                raw.handshake(ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: 0,
                    timeout_ms: 5000,
                    session_id: id,
                    passwd,
                    read_only: Some(false),
                })
                .await
            }
        };
        let old_keeperd = {
            use sha1::{Digest, Sha1};
            let mut h = Sha1::new();
            h.update(0x6b65_6570_6572_6421u64.to_be_bytes());
            h.update(id.to_be_bytes());
            h.finalize()[..16].to_vec()
        };
        let zookeeper = keeperd::server::session::zk_password(id).to_vec();
        for guess in [old_keeperd, zookeeper, vec![0; 16]] {
            let r = reconnect(guess).await;
            assert_eq!(
                (r.session_id, r.timeout_ms),
                (0, 0),
                "a guessed password worked"
            );
        }
        let r = reconnect(resp.passwd.clone()).await;
        assert_eq!(r.session_id, id, "the real password works");
        let srv = srv.restart().await;
        let mut raw = Raw::open(srv.local_addr).await;
        let r = raw
            .handshake(ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: 5000,
                session_id: id,
                passwd: resp.passwd.clone(),
                read_only: Some(false),
            })
            .await;
        assert_eq!(r.session_id, id, "the password survives a restart");
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_or_expired_session_gets_the_expired_reply() {
    bounded(async {
        let srv = start().await;
        let mut raw = Raw::open(srv.local_addr).await;
        let resp = raw
            .handshake(ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout_ms: 5000,
                session_id: 0x1234,
                passwd: vec![7; 16],
                read_only: Some(false),
            })
            .await;
        assert_eq!((resp.timeout_ms, resp.session_id), (0, 0));
        assert_eq!(resp.passwd, vec![0; 16]);
        assert!(raw.frame().await.is_none(), "server closes after the reply");
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_ahead_of_the_server_is_refused() {
    bounded(async {
        let srv = start().await;
        let mut raw = Raw::open(srv.local_addr).await;
        let mut out = BytesMut::new();
        encode_connect_request(
            &mut out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0x7fff_0000_0000,
                timeout_ms: 5000,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            },
        );
        raw.send_bytes(&out).await;
        assert!(raw.frame().await.is_none(), "connection closed, no session");
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn pipelined_replies_come_back_in_request_order() {
    bounded(async {
        let srv = start().await;
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        // Writes and reads interleaved without waiting: xids must come back in order and
        // each read must see the writes sent before it.
        let mut xid = 1;
        for i in 0..50 {
            raw.send(xid, &create(&format!("/n{i}"))).await;
            xid += 1;
            raw.send(
                xid,
                &Request::GetData {
                    path: format!("/n{i}"),
                    watch: false,
                },
            )
            .await;
            xid += 1;
        }
        for expect in 1..xid {
            let (h, body) = raw.reply().await;
            assert_eq!(h.xid, expect);
            assert_eq!(h.err, 0, "xid {expect}");
            if expect % 2 == 0 {
                match decode_response(OpCode::GetData, &body).unwrap() {
                    Response::GetData { data, .. } => assert_eq!(data.as_deref(), Some(&b"d"[..])),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_watch_event_arrives_before_the_reply_that_shows_the_change() {
    bounded(async {
        let srv = start().await;
        let (mut w, _) = Raw::session(srv.local_addr).await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(1, &create("/x")).await;
        assert_eq!(c.reply().await.0.err, 0);
        w.send(
            1,
            &Request::GetData {
                path: "/x".into(),
                watch: true,
            },
        )
        .await;
        assert_eq!(w.reply().await.0.xid, 1);
        c.send(
            2,
            &Request::SetData(SetDataRequest {
                path: "/x".into(),
                data: None,
                version: -1,
            }),
        )
        .await;
        assert_eq!(c.reply().await.0.err, 0);
        w.send(
            2,
            &Request::GetData {
                path: "/x".into(),
                watch: false,
            },
        )
        .await;
        let (h, body) = w.reply().await;
        assert_eq!((h.xid, h.zxid, h.err), (-1, -1, 0), "notification first");
        let ev = decode_watcher_event(&body).unwrap();
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDataChanged, "/x")
        );
        let (h, body) = w.reply().await;
        assert_eq!(h.xid, 2);
        match decode_response(OpCode::GetData, &body).unwrap() {
            // Null data set above stays null.
            Response::GetData { data, stat } => {
                assert_eq!(data, None);
                assert_eq!(stat.data_length, 0);
            }
            other => panic!("unexpected {other:?}"),
        }
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_opcode_is_unimplemented_and_the_session_lives_on() {
    bounded(async {
        let srv = start().await;
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        // xid 5, opcode 999, some body.
        let mut frame = vec![0, 0, 0, 12];
        frame.extend_from_slice(&5i32.to_be_bytes());
        frame.extend_from_slice(&999i32.to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        raw.send_bytes(&frame).await;
        let (h, _) = raw.reply().await;
        assert_eq!((h.xid, h.err), (5, ZkError::Unimplemented.code()));
        raw.send(6, &create("/still-alive")).await;
        let (h, _) = raw.reply().await;
        assert_eq!((h.xid, h.err), (6, 0));
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn malformed_body_answers_marshalling_error() {
    bounded(async {
        let srv = start().await;
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        // getData (4) whose path length claims 1000 bytes but carries 2.
        let mut body = Vec::new();
        body.extend_from_slice(&9i32.to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&1000i32.to_be_bytes());
        body.extend_from_slice(b"/a");
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        raw.send_bytes(&frame).await;
        let (h, _) = raw.reply().await;
        assert_eq!((h.xid, h.err), (9, ZkError::MarshallingError.code()));
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_not_the_server() {
    bounded(async {
        let mut cfg = test_config();
        cfg.jute_maxbuffer = 1024;
        let srv = start_with(cfg).await;
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        raw.send_bytes(&(1i32 << 20).to_be_bytes()).await;
        assert!(raw.frame().await.is_none(), "connection closed");
        // A negative length too.
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        raw.send_bytes(&(-5i32).to_be_bytes()).await;
        assert!(raw.frame().await.is_none(), "connection closed");
        // Garbage instead of a handshake.
        let mut raw = Raw::open(srv.local_addr).await;
        raw.send_bytes(&[0, 0, 0, 3, 1, 2, 3]).await;
        assert!(raw.frame().await.is_none(), "connection closed");
        // The server still serves.
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        raw.send(1, &create("/ok")).await;
        assert_eq!(raw.reply().await.0.err, 0);
        assert_eq!(answer(srv.local_addr, "ruok").await, "imok");
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn four_letter_words_answer_like_zookeeper() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        c.create("/kafka01", b"", &open()).await.unwrap();
        let _watch = c.check_and_watch_stat("/kafka01").await.unwrap();

        assert_eq!(answer(srv.local_addr, "ruok").await, "imok");
        assert_eq!(answer(srv.local_addr, "isro").await, "rw");

        let srvr = answer(srv.local_addr, "srvr").await;
        let lines: Vec<&str> = srvr.lines().collect();
        assert!(
            lines[0].starts_with("Zookeeper version: 3.8.0-keeperd"),
            "{srvr}"
        );
        assert!(lines.iter().any(|l| l.starts_with("Latency min/avg/max: ")));
        assert!(lines.contains(&"Mode: standalone"), "{srvr}");
        assert!(lines.iter().any(|l| l.starts_with("Zxid: 0x")));
        // ZooKeeper counts / twice (also under the alias ""): / /zookeeper /zookeeper/quota
        // /zookeeper/config /kafka01 make 6, as 3.8 reports.
        assert!(lines.contains(&"Node count: 6"), "{srvr}");

        let mntr = answer(srv.local_addr, "mntr").await;
        let kv: std::collections::HashMap<&str, &str> =
            mntr.lines().filter_map(|l| l.split_once('\t')).collect();
        assert_eq!(kv.get("zk_server_state"), Some(&"standalone"), "{mntr}");
        assert_eq!(kv.get("zk_znode_count"), Some(&"6"));
        assert_eq!(kv.get("zk_watch_count"), Some(&"1"));
        assert!(kv.get("zk_version").unwrap().starts_with("3.8.0-keeperd"));
        for key in [
            "zk_avg_latency",
            "zk_packets_received",
            "zk_num_alive_connections",
            "zk_outstanding_requests",
            "zk_ephemerals_count",
            "zk_approximate_data_size",
            "zk_open_file_descriptor_count",
            "zk_uptime",
        ] {
            assert!(kv.contains_key(key), "mntr lacks {key}:\n{mntr}");
            if key != "zk_avg_latency" {
                kv[key].parse::<u64>().expect("numeric");
            }
        }

        let stat = answer(srv.local_addr, "stat").await;
        assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
        let wchs = answer(srv.local_addr, "wchs").await;
        assert!(
            wchs.starts_with("1 connections watching 1 paths\nTotal watches:1"),
            "{wchs}"
        );
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn words_outside_the_whitelist_are_refused_but_srvr_always_answers() {
    bounded(async {
        let mut cfg = test_config();
        cfg.four_letter_whitelist = Whitelist::Only(vec!["ruok".into()]);
        let srv = start_with(cfg).await;
        assert_eq!(
            answer(srv.local_addr, "mntr").await,
            "mntr is not executed because it is not in the whitelist.\n"
        );
        assert_eq!(answer(srv.local_addr, "ruok").await, "imok");
        assert!(answer(srv.local_addr, "srvr")
            .await
            .contains("Mode: standalone"));
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_read_between_two_writes_sees_the_first_and_not_the_second() {
    bounded(async {
        let srv = start().await;
        let (mut raw, _) = Raw::session(srv.local_addr).await;
        for round in 0..20 {
            let path = format!("/r{round}");
            // All three frames in one segment, so the server decodes them together and both
            // writes are in flight before the read's turn comes.
            let mut out = BytesMut::new();
            encode_request(&mut out, 1, &create(&path));
            encode_request(
                &mut out,
                2,
                &Request::Exists {
                    path: path.clone(),
                    watch: false,
                },
            );
            encode_request(
                &mut out,
                3,
                &Request::Delete(keeperd::proto::request::DeleteRequest {
                    path: path.clone(),
                    version: -1,
                }),
            );
            raw.send_bytes(&out).await;
            assert_eq!(raw.reply().await.0.err, 0);
            let (h, _) = raw.reply().await;
            assert_eq!(
                (h.xid, h.err),
                (2, 0),
                "round {round}: exists must see the create"
            );
            assert_eq!(raw.reply().await.0.err, 0);
        }
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_between_pipelined_writes_see_exactly_the_writes_before_them() {
    bounded(async {
        let srv = start().await;
        check_reads_between_pipelined_writes(srv.local_addr, "/pipelined", 300).await;
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn set_watches_after_reconnect_fires_what_was_missed_and_rearms_the_rest() {
    bounded(async {
        let srv = start().await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(1, &create("/seen")).await;
        c.send(2, &create("/gone")).await;
        c.send(3, &create("/kept")).await;
        for _ in 0..3 {
            assert_eq!(c.reply().await.0.err, 0);
        }
        // The watcher's view: last zxid it saw is the one of the third create.
        let (mut w, hello) = Raw::session(srv.local_addr).await;
        w.send(
            1,
            &Request::Exists {
                path: "/kept".into(),
                watch: false,
            },
        )
        .await;
        let seen_zxid = w.reply().await.0.zxid;
        drop(w);

        // While it is away: /seen changes, /gone is deleted, /new appears.
        c.send(
            4,
            &Request::SetData(SetDataRequest {
                path: "/seen".into(),
                data: None,
                version: -1,
            }),
        )
        .await;
        c.send(
            5,
            &Request::Delete(keeperd::proto::request::DeleteRequest {
                path: "/gone".into(),
                version: -1,
            }),
        )
        .await;
        c.send(6, &create("/new")).await;
        for _ in 0..3 {
            assert_eq!(c.reply().await.0.err, 0);
        }

        // Reconnect with the same session and re-send its watches relative to seen_zxid.
        let mut w = Raw::open(srv.local_addr).await;
        let again = w
            .handshake(ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: seen_zxid,
                timeout_ms: 5000,
                session_id: hello.session_id,
                passwd: hello.passwd.clone(),
                read_only: Some(false),
            })
            .await;
        assert_eq!(again.session_id, hello.session_id);
        w.send(
            -8,
            &Request::SetWatches(keeperd::proto::request::SetWatches {
                relative_zxid: seen_zxid,
                data_watches: vec!["/seen".into(), "/gone".into(), "/kept".into()],
                exist_watches: vec!["/new".into()],
                child_watches: vec![],
                persistent_watches: vec![],
                persistent_recursive_watches: vec![],
            }),
        )
        .await;
        let mut events = vec![];
        loop {
            let (h, body) = w.reply().await;
            if h.xid == -1 {
                let ev = decode_watcher_event(&body).unwrap();
                events.push((ev.event_type, ev.path));
            } else {
                assert_eq!((h.xid, h.err), (-8, 0));
                break;
            }
        }
        events.sort();
        assert_eq!(
            events,
            vec![
                (EventType::NodeCreated, "/new".to_string()),
                (EventType::NodeDeleted, "/gone".to_string()),
                (EventType::NodeDataChanged, "/seen".to_string()),
            ]
        );
        // /kept did not change, so its watch is armed again and fires on the next change.
        c.send(
            7,
            &Request::SetData(SetDataRequest {
                path: "/kept".into(),
                data: None,
                version: -1,
            }),
        )
        .await;
        assert_eq!(c.reply().await.0.err, 0);
        let (h, body) = w.reply().await;
        assert_eq!(h.xid, -1);
        let ev = decode_watcher_event(&body).unwrap();
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDataChanged, "/kept")
        );
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn check_and_remove_watches_answer_nowatcher_when_there_is_none() {
    bounded(async {
        let srv = start().await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(1, &create("/w")).await;
        assert_eq!(c.reply().await.0.err, 0);
        let check = |remove| Request::RemoveWatches {
            path: "/w".into(),
            watcher_type: keeperd::proto::WatcherType::Data,
            remove,
        };
        c.send(2, &check(false)).await;
        assert_eq!(c.reply().await.0.err, ZkError::NoWatcher.code());
        c.send(
            3,
            &Request::GetData {
                path: "/w".into(),
                watch: true,
            },
        )
        .await;
        assert_eq!(c.reply().await.0.err, 0);
        c.send(4, &check(false)).await;
        assert_eq!(c.reply().await.0.err, 0, "checkWatches finds it");
        c.send(5, &check(true)).await;
        assert_eq!(c.reply().await.0.err, 0, "removeWatches removes it");
        c.send(6, &check(false)).await;
        assert_eq!(c.reply().await.0.err, ZkError::NoWatcher.code());
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn set_acl_checks_and_bumps_aversion() {
    bounded(async {
        let srv = start().await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(1, &create("/a")).await;
        assert_eq!(c.reply().await.0.err, 0);
        let set_acl = |version| {
            Request::SetAcl(keeperd::proto::request::SetAclRequest {
                path: "/a".into(),
                acl: Acl::read_unsafe(),
                version,
            })
        };
        c.send(2, &set_acl(5)).await;
        assert_eq!(c.reply().await.0.err, ZkError::BadVersion.code());
        c.send(3, &set_acl(0)).await;
        let (h, body) = c.reply().await;
        assert_eq!(h.err, 0);
        match decode_response(OpCode::SetAcl, &body).unwrap() {
            Response::Stat(stat) => assert_eq!(stat.aversion, 1),
            other => panic!("unexpected {other:?}"),
        }
        // Now read-only for everyone: setData is refused, getACL still answers.
        c.send(
            4,
            &Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: None,
                version: -1,
            }),
        )
        .await;
        assert_eq!(c.reply().await.0.err, ZkError::NoAuth.code());
        c.send(5, &Request::GetAcl { path: "/a".into() }).await;
        let (h, body) = c.reply().await;
        assert_eq!(h.err, 0);
        match decode_response(OpCode::GetAcl, &body).unwrap() {
            Response::GetAcl { acl, stat } => {
                assert_eq!(acl, Acl::read_unsafe());
                assert_eq!(stat.aversion, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn ttl_nodes_expire_and_close_session_removes_ephemerals() {
    bounded(async {
        let mut cfg = test_config();
        cfg.extra
            .insert("znode.container.checkIntervalMs".into(), "50".into());
        let srv = start_with(cfg).await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(
            1,
            &Request::Create {
                op: OpCode::CreateTtl,
                req: CreateRequest {
                    path: "/ttl".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 5,
                    ttl: 100,
                },
            },
        )
        .await;
        let (h, body) = c.reply().await;
        assert_eq!(h.err, 0);
        match decode_response(OpCode::CreateTtl, &body).unwrap() {
            Response::Create2 { path, stat } => {
                assert_eq!(path, "/ttl");
                assert_eq!(stat.ephemeral_owner, 0, "TTL nodes show no owner");
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut gone = false;
        for xid in 2..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.send(
                xid,
                &Request::Exists {
                    path: "/ttl".into(),
                    watch: false,
                },
            )
            .await;
            if c.reply().await.0.err == ZkError::NoNode.code() {
                gone = true;
                break;
            }
        }
        assert!(gone, "TTL node reaped");

        // closeSession: reply, then the server closes; the ephemeral is gone for others.
        c.send(
            300,
            &Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path: "/eph".into(),
                    data: None,
                    acl: Acl::open_unsafe(),
                    flags: 1,
                    ttl: -1,
                },
            },
        )
        .await;
        assert_eq!(c.reply().await.0.err, 0);
        c.send(301, &Request::CloseSession).await;
        assert_eq!(c.reply().await.0.xid, 301);
        assert!(c.frame().await.is_none(), "closed after closeSession");
        let (mut o, _) = Raw::session(srv.local_addr).await;
        o.send(
            1,
            &Request::Exists {
                path: "/eph".into(),
                watch: false,
            },
        )
        .await;
        assert_eq!(o.reply().await.0.err, ZkError::NoNode.code());
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn add_watch_answers_an_error_response_body_like_zookeeper() {
    bounded(async {
        let srv = start().await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(
            1,
            &Request::AddWatch {
                path: "/".into(),
                mode: keeperd::proto::AddWatchMode::PersistentRecursive,
            },
        )
        .await;
        let (h, body) = c.reply().await;
        assert_eq!((h.xid, h.err), (1, 0));
        // ZooKeeper 3.8 sends ErrorResponse{0} (4 bytes); the Java client reads it.
        assert_eq!(body, vec![0, 0, 0, 0]);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reconfig_is_refused_while_reconfig_is_disabled() {
    bounded(async {
        let srv = start().await;
        let (mut c, _) = Raw::session(srv.local_addr).await;
        c.send(
            1,
            &Request::Reconfig(keeperd::proto::request::ReconfigRequest {
                joining_servers: Some("server.4=127.0.0.1:2888:3888;2181".into()),
                leaving_servers: None,
                new_members: None,
                cur_config_id: -1,
            }),
        )
        .await;
        let (h, _) = c.reply().await;
        assert_eq!((h.xid, h.err), (1, ZkError::ReconfigDisabled.code()));
        // The session is unharmed.
        c.send(2, &create("/after-reconfig")).await;
        assert_eq!(c.reply().await.0.err, 0);
        srv.shutdown().await;
    })
    .await;
}
