//! End-to-end tests of a single keeperd node over TCP with a real ZooKeeper client
//! (the `zookeeper-client` crate).

mod support;

use std::time::Duration;

use support::*;
use zookeeper_client as zk;

#[tokio::test]
async fn create_get_set_delete_with_stat_semantics() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;

        let (stat, _) = c.create("/a", b"hello", &open()).await.unwrap();
        assert_eq!(stat.version, 0);
        assert_eq!(stat.czxid, stat.mzxid);
        assert_eq!(stat.czxid, stat.pzxid);
        assert_eq!(stat.data_length, 5);
        assert_eq!(stat.num_children, 0);
        assert_eq!(stat.ephemeral_owner, 0);

        let (data, got) = c.get_data("/a").await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(got, stat);

        let s1 = c.set_data("/a", b"world!", Some(0)).await.unwrap();
        assert_eq!(s1.version, 1);
        assert!(s1.mzxid > stat.mzxid);
        assert_eq!(s1.czxid, stat.czxid);
        assert_eq!(s1.data_length, 6);
        assert_eq!(
            c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        // -1 matches any version.
        let s2 = c.set_data("/a", b"y", None).await.unwrap();
        assert_eq!(s2.version, 2);

        assert_eq!(
            c.create("/a", b"", &open()).await.unwrap_err(),
            zk::Error::NodeExists
        );
        assert_eq!(
            c.create("/missing/child", b"", &open()).await.unwrap_err(),
            zk::Error::NoNode
        );

        // Children move the parent's cversion, pzxid and numChildren.
        let (child, _) = c.create("/a/b", b"", &open()).await.unwrap();
        let parent = c.check_stat("/a").await.unwrap().unwrap();
        assert_eq!(parent.cversion, 1);
        assert_eq!(parent.num_children, 1);
        assert_eq!(parent.pzxid, child.czxid);
        assert_eq!(parent.version, 2, "children do not change the data version");

        assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
        assert_eq!(
            c.delete("/a/b", Some(7)).await.unwrap_err(),
            zk::Error::BadVersion
        );
        c.delete("/a/b", Some(0)).await.unwrap();
        let parent = c.check_stat("/a").await.unwrap().unwrap();
        assert_eq!(parent.cversion, 2);
        assert_eq!(parent.num_children, 0);
        assert!(parent.pzxid > child.czxid);
        c.delete("/a", None).await.unwrap();
        assert_eq!(c.check_stat("/a").await.unwrap(), None);
        assert_eq!(c.get_data("/a").await.unwrap_err(), zk::Error::NoNode);

        let (children, _) = c.get_children("/").await.unwrap();
        assert_eq!(children, vec!["zookeeper".to_string()]);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn sequential_names_follow_parent_cversion() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        c.create("/q", b"", &open()).await.unwrap();
        let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        let (_, s0) = c.create("/q/item-", b"", &seq).await.unwrap();
        let (_, s1) = c.create("/q/item-", b"", &seq).await.unwrap();
        assert_eq!(s0.to_string(), "0000000000");
        assert_eq!(s1.to_string(), "0000000001");
        c.delete("/q/item-0000000000", None).await.unwrap();
        // The suffix counts child creations (ZooKeeper 3.8 keeps deletes out of the stored
        // counter), while the cversion clients see also moves on deletes.
        let (_, s2) = c.create("/q/item-", b"", &seq).await.unwrap();
        assert_eq!(s2.to_string(), "0000000002");
        let q = c.check_stat("/q").await.unwrap().unwrap();
        assert_eq!((q.cversion, q.num_children), (4, 2));
        let mut children = c.list_children("/q").await.unwrap();
        children.sort();
        assert_eq!(children, vec!["item-0000000001", "item-0000000002"]);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn ephemerals_belong_to_their_session_and_vanish_on_close() {
    bounded(async {
        let srv = start().await;
        let watcher = client(&srv).await;
        let owner = client(&srv).await;
        owner.create("/brokers", b"", &open()).await.unwrap();
        let (stat, _) = owner
            .create("/brokers/1", b"{\"host\":\"h1\"}", &ephemeral())
            .await
            .unwrap();
        assert_eq!(stat.ephemeral_owner, owner.session_id().0);
        assert_eq!(
            owner
                .create("/brokers/1/x", b"", &open())
                .await
                .unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        assert_eq!(
            owner.list_ephemerals("/").await.unwrap(),
            vec!["/brokers/1".to_string()]
        );

        let (_, _, children_w) = watcher.get_and_watch_children("/brokers").await.unwrap();
        let (_, _, data_w) = watcher.get_and_watch_data("/brokers/1").await.unwrap();
        drop(owner); // closes the session
        let ev = data_w.changed().await;
        assert_eq!(ev.event_type, zk::EventType::NodeDeleted);
        assert_eq!(ev.path, "/brokers/1");
        let ev = children_w.changed().await;
        assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
        assert_eq!(ev.path, "/brokers");
        assert!(watcher.list_children("/brokers").await.unwrap().is_empty());
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_session_expires_and_its_ephemerals_go() {
    bounded(async {
        let srv = start().await;
        let observer = client(&srv).await;
        let silent = connector(Duration::from_millis(400))
            .with_detached()
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        assert_eq!(silent.session_timeout(), Duration::from_millis(400));
        silent.create("/e", b"", &ephemeral()).await.unwrap();
        let session = silent.session().clone();
        // Kill the connection without closing the session: the client stops pinging.
        drop(silent);
        eventually(
            "ephemeral of the expired session removed",
            Duration::from_secs(5),
            || async { observer.check_stat("/e").await.unwrap().is_none() },
        )
        .await;
        // Reconnecting with the old id and password is refused as expired.
        let err = zk::Client::connector()
            .with_session(session)
            .with_server_version(3, 8, 0)
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap_err();
        assert_eq!(err, zk::Error::SessionExpired);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn session_timeout_is_clamped_to_the_configured_range() {
    bounded(async {
        let srv = start().await;
        let low = connector(Duration::from_millis(50))
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        assert_eq!(low.session_timeout(), Duration::from_millis(200));
        let high = connector(Duration::from_secs(60))
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        assert_eq!(high.session_timeout(), Duration::from_secs(10));
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn reconnect_with_id_and_password_keeps_ephemerals() {
    bounded(async {
        let srv = start().await;
        let first = connector(Duration::from_secs(5))
            .with_detached()
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        first.create("/mine", b"", &ephemeral()).await.unwrap();
        let session = first.session().clone();
        let id = first.session_id();
        drop(first);
        let second = zk::Client::connector()
            .with_session(session)
            .with_server_version(3, 8, 0)
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        assert_eq!(second.session_id(), id);
        let stat = second.check_stat("/mine").await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, id.0);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn watches_fire_once_with_the_right_types() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        let w = client(&srv).await;

        // exists on a missing node registers a watch that fires NodeCreated.
        let (stat, created) = w.check_and_watch_stat("/n").await.unwrap();
        assert!(stat.is_none());
        c.create("/n", b"1", &open()).await.unwrap();
        let ev = created.changed().await;
        assert_eq!(ev.event_type, zk::EventType::NodeCreated);
        assert_eq!(ev.path, "/n");

        let (_, _, changed) = w.get_and_watch_data("/n").await.unwrap();
        c.set_data("/n", b"2", None).await.unwrap();
        assert_eq!(
            changed.changed().await.event_type,
            zk::EventType::NodeDataChanged
        );
        // The watch was consumed: the next change must not produce an event for it, and the
        // client sees the new data after the event.
        let (data, _) = w.get_data("/n").await.unwrap();
        assert_eq!(data, b"2");

        let (_, _, child) = w.get_and_watch_children("/n").await.unwrap();
        c.create("/n/c", b"", &open()).await.unwrap();
        let ev = child.changed().await;
        assert_eq!(ev.event_type, zk::EventType::NodeChildrenChanged);
        assert_eq!(ev.path, "/n");

        let (_, _, deleted) = w.get_and_watch_data("/n/c").await.unwrap();
        c.delete("/n/c", None).await.unwrap();
        assert_eq!(
            deleted.changed().await.event_type,
            zk::EventType::NodeDeleted
        );

        // getData on a missing node fails and registers nothing.
        assert!(w.get_and_watch_data("/nope").await.is_err());
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn persistent_recursive_watch_sees_the_subtree() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        let w = client(&srv).await;
        c.create("/kafka01", b"", &open()).await.unwrap();
        let mut watcher = w
            .watch("/kafka01", zk::AddWatchMode::PersistentRecursive)
            .await
            .unwrap();
        c.create("/kafka01/brokers", b"", &open()).await.unwrap();
        c.set_data("/kafka01/brokers", b"x", None).await.unwrap();
        c.delete("/kafka01/brokers", None).await.unwrap();
        let mut got = vec![];
        for _ in 0..3 {
            let ev = watcher.changed().await;
            got.push((ev.event_type, ev.path));
        }
        assert_eq!(
            got,
            vec![
                (zk::EventType::NodeCreated, "/kafka01/brokers".to_string()),
                (
                    zk::EventType::NodeDataChanged,
                    "/kafka01/brokers".to_string()
                ),
                (zk::EventType::NodeDeleted, "/kafka01/brokers".to_string()),
            ]
        );
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn multi_is_atomic_and_reports_the_failing_op() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        c.create("/controller_epoch", b"0", &open()).await.unwrap();

        // Kafka's controller election: create the ephemeral and bump the epoch, fenced.
        let mut m = c.new_multi_writer();
        m.add_create("/controller", b"{\"brokerid\":1}", &ephemeral())
            .unwrap();
        m.add_set_data("/controller_epoch", b"1", Some(0)).unwrap();
        let results = m.commit().await.unwrap();
        assert_eq!(results.len(), 2);
        let (czxid, mzxid) = match (&results[0], &results[1]) {
            (
                zk::MultiWriteResult::Create { path, stat },
                zk::MultiWriteResult::SetData { stat: epoch },
            ) => {
                assert_eq!(path, "/controller");
                assert_eq!(epoch.version, 1);
                (stat.czxid, epoch.mzxid)
            }
            other => panic!("unexpected results {other:?}"),
        };
        assert_eq!(czxid, mzxid, "all ops of a multi share one zxid");

        // A losing contender: its create fails, nothing of the multi is applied.
        let mut m = c.new_multi_writer();
        m.add_create("/other", b"", &open()).unwrap();
        m.add_create("/controller", b"", &ephemeral()).unwrap();
        m.add_set_data("/controller_epoch", b"2", Some(1)).unwrap();
        match m.commit().await.unwrap_err() {
            zk::MultiWriteError::OperationFailed { index, source } => {
                assert_eq!(index, 1);
                assert_eq!(source, zk::Error::NodeExists);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.check_stat("/other").await.unwrap(), None);
        assert_eq!(c.get_data("/controller_epoch").await.unwrap().0, b"1");

        // check + op fencing with a stale version.
        let mut m = c.new_multi_writer();
        m.add_check_version("/controller_epoch", 0).unwrap();
        m.add_set_data("/controller", b"x", None).unwrap();
        match m.commit().await.unwrap_err() {
            zk::MultiWriteError::OperationFailed { index, source } => {
                assert_eq!((index, source), (0, zk::Error::BadVersion));
            }
            other => panic!("unexpected {other:?}"),
        }

        // multiRead: independent per-op results.
        let mut r = c.new_multi_reader();
        r.add_get_data("/controller_epoch").unwrap();
        r.add_get_children("/").unwrap();
        r.add_get_data("/missing").unwrap();
        let results = r.commit().await.unwrap();
        assert_eq!(results.len(), 3);
        match &results[0] {
            zk::MultiReadResult::Data { data, .. } => assert_eq!(data, b"1"),
            other => panic!("unexpected {other:?}"),
        }
        match &results[2] {
            zk::MultiReadResult::Error { err } => assert_eq!(*err, zk::Error::NoNode),
            other => panic!("unexpected {other:?}"),
        }
        // getChildren inside multiRead lists what plain getChildren lists, also for a list
        // long enough to be served from the node's cached encoding, and after it changes.
        c.create("/many", b"", &open()).await.unwrap();
        for i in 0..100 {
            c.create(&format!("/many/child-{i}"), b"", &open())
                .await
                .unwrap();
        }
        let listed = |results: &[zk::MultiReadResult], i: usize| match &results[i] {
            zk::MultiReadResult::Children { children } => children.clone(),
            other => panic!("unexpected {other:?}"),
        };
        for round in 0..3 {
            if round == 2 {
                c.create("/many/late", b"", &open()).await.unwrap();
                c.delete("/many/child-7", None).await.unwrap();
            }
            let mut r = c.new_multi_reader();
            r.add_get_children("/").unwrap();
            r.add_get_children("/many").unwrap();
            r.add_get_children("/many").unwrap();
            let results = r.commit().await.unwrap();
            assert_eq!(listed(&results, 0), c.list_children("/").await.unwrap());
            let many = c.list_children("/many").await.unwrap();
            assert_eq!(many.len(), 100);
            assert_eq!(many.contains(&"late".to_string()), round == 2);
            assert_eq!(listed(&results, 1), many);
            assert_eq!(listed(&results, 2), many);
        }
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn digest_acls_are_enforced() {
    bounded(async {
        let srv = start().await;
        let owner = zk::Client::connector()
            .with_server_version(3, 8, 0)
            .with_auth("digest", b"alice:secret")
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        let stranger = client(&srv).await;
        let creator_all = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        owner
            .create("/private", b"s3cret", &creator_all)
            .await
            .unwrap();
        assert_eq!(owner.get_data("/private").await.unwrap().0, b"s3cret");
        assert_eq!(
            stranger.get_data("/private").await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger.set_data("/private", b"x", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        assert_eq!(
            stranger
                .create("/private/child", b"", &open())
                .await
                .unwrap_err(),
            zk::Error::NoAuth
        );
        // exists is not ACL-checked.
        assert!(stranger.check_stat("/private").await.unwrap().is_some());
        let (acl, _) = owner.get_acl("/private").await.unwrap();
        assert_eq!(acl.len(), 1);
        assert_eq!(acl[0].scheme(), "digest");
        assert!(acl[0].id().starts_with("alice:"));

        // world read-only.
        let read_only = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
        owner.create("/ro", b"r", &read_only).await.unwrap();
        assert_eq!(stranger.get_data("/ro").await.unwrap().0, b"r");
        assert_eq!(
            stranger.set_data("/ro", b"w", None).await.unwrap_err(),
            zk::Error::NoAuth
        );
        // "auth" ACL without any authenticated identity is invalid.
        assert_eq!(
            stranger.create("/x", b"", &creator_all).await.unwrap_err(),
            zk::Error::InvalidAcl
        );
        let users = owner.list_auth_users().await.unwrap();
        assert!(users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user().starts_with("alice")));
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn containers_are_reaped_after_their_last_child_goes() {
    bounded(async {
        let mut cfg = test_config();
        cfg.extra
            .insert("znode.container.checkIntervalMs".into(), "50".into());
        let srv = start_with(cfg).await;
        let c = client(&srv).await;
        let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
        c.create("/lock", b"", &container).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            c.check_stat("/lock").await.unwrap().is_some(),
            "a container that never had children stays"
        );
        c.create("/lock/x", b"", &open()).await.unwrap();
        c.delete("/lock/x", None).await.unwrap();
        eventually("empty container reaped", Duration::from_secs(5), || async {
            c.check_stat("/lock").await.unwrap().is_none()
        })
        .await;
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn misc_reads_sync_and_descendant_count() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        c.create("/t", b"", &open()).await.unwrap();
        c.create("/t/a", b"", &open()).await.unwrap();
        c.create("/t/a/b", b"", &open()).await.unwrap();
        assert_eq!(c.count_descendants_number("/t").await.unwrap(), 2);
        c.sync("/t").await.unwrap();
        // Null data is not empty data: a Rust client sees both as empty, so compare stats.
        let (_, stat) = c.get_data("/t").await.unwrap();
        assert_eq!(stat.data_length, 0);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn chroot_clients_see_relative_paths() {
    bounded(async {
        let srv = start().await;
        let root = client(&srv).await;
        root.create("/kafka01", b"", &open()).await.unwrap();
        let chrooted = zk::Client::connector()
            .with_server_version(3, 8, 0)
            .connect(&format!("{}/kafka01", connect_string(srv.local_addr)))
            .await
            .unwrap();
        chrooted.create("/brokers", b"", &open()).await.unwrap();
        chrooted.create("/brokers/ids", b"", &open()).await.unwrap();
        assert_eq!(
            root.list_children("/kafka01/brokers").await.unwrap(),
            vec!["ids".to_string()]
        );
        assert_eq!(
            chrooted.list_children("/brokers").await.unwrap(),
            vec!["ids".to_string()]
        );
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn data_and_sessions_survive_a_restart() {
    bounded(async {
        let srv = start().await;
        let c = client(&srv).await;
        c.create("/durable", b"v1", &open()).await.unwrap();
        let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        c.create("/durable/s-", b"", &seq).await.unwrap();
        c.set_data("/durable", b"v2", None).await.unwrap();
        let owner = connector(Duration::from_secs(10))
            .with_detached()
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        owner
            .create("/durable/eph", b"", &ephemeral())
            .await
            .unwrap();
        let session = owner.session().clone();
        let owner_id = owner.session_id();
        let before = c.check_stat("/durable").await.unwrap().unwrap();
        drop(owner);
        drop(c);

        let srv = srv.restart().await;
        let c = client(&srv).await;
        let (data, stat) = c.get_data("/durable").await.unwrap();
        assert_eq!(data, b"v2");
        assert_eq!(stat, before, "Stat survives byte for byte");
        // The sequence counter continues where it was.
        let (_, next) = c.create("/durable/s-", b"", &seq).await.unwrap();
        assert_eq!(next.to_string(), "0000000002");
        // New writes get larger zxids (a new term).
        let (s2, _) = c.create("/after", b"", &open()).await.unwrap();
        assert!(s2.czxid > before.mzxid);
        assert!((s2.czxid >> 32) > (before.mzxid >> 32), "epoch moved on");

        // The session is still there: reconnecting with id + password keeps the ephemeral.
        let again = zk::Client::connector()
            .with_session(session)
            .with_server_version(3, 8, 0)
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        assert_eq!(again.session_id(), owner_id);
        let stat = c.check_stat("/durable/eph").await.unwrap().unwrap();
        assert_eq!(stat.ephemeral_owner, owner_id.0);
        // Closing it now removes the ephemeral, as before the restart.
        drop(again);
        eventually(
            "ephemeral removed on close",
            Duration::from_secs(5),
            || async { c.check_stat("/durable/eph").await.unwrap().is_none() },
        )
        .await;
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_session_that_does_not_come_back_after_a_restart_expires() {
    bounded(async {
        let srv = start().await;
        let owner = connector(Duration::from_millis(500))
            .with_detached()
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        owner.create("/orphan", b"", &ephemeral()).await.unwrap();
        drop(owner);
        let srv = srv.restart().await;
        let c = client(&srv).await;
        assert!(c.check_stat("/orphan").await.unwrap().is_some());
        eventually(
            "restored session expires",
            Duration::from_secs(5),
            || async { c.check_stat("/orphan").await.unwrap().is_none() },
        )
        .await;
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn snapshots_are_taken_every_snap_count_and_shown_in_mntr() {
    bounded(async {
        let mut cfg = test_config();
        cfg.snap_count = 50;
        let srv = start_with(cfg).await;
        let c = client(&srv).await;
        for i in 0..300 {
            c.create(&format!("/s{i}"), b"0123456789", &open())
                .await
                .unwrap();
        }
        let port = srv.local_addr.port();
        eventually("a snapshot is written", Duration::from_secs(10), || async {
            let m = mntr(port).await;
            m.get("zk_snap_count").is_some_and(|v| v != "0")
                && m.get("zk_last_snapshot_size").is_some_and(|v| v != "0")
        })
        .await;
        let m = mntr(port).await;
        // The log was compacted behind the retained snapshots.
        let first: u64 = m["zk_log_first_index"].parse().unwrap();
        assert!(first > 1, "log compacted: {m:?}");
        assert!(m["zk_fsync_count"].parse::<u64>().unwrap() > 0);
        // And a restart comes back from snapshot + log with everything.
        drop(c);
        let srv = srv.restart().await;
        let c = client(&srv).await;
        assert_eq!(c.list_children("/").await.unwrap().len(), 301);
        srv.shutdown().await;
    })
    .await;
}

/// The snapshot files in `data_dir`'s snapshot directory: (zxid, the zxid of the file it is a
/// delta over, if it is one). Read from the files themselves: "KPRSNAP1", the metadata's
/// length and the metadata, the data's length, then the data, which a delta starts with
/// "KPRDELTA" and its base's zxid.
fn snapshot_files(data_dir: &std::path::Path) -> Vec<(u64, Option<u64>)> {
    let dir = data_dir.join("keeperd").join("snapshots");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(zxid) = name
            .strip_prefix("snapshot.")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let bytes = std::fs::read(e.path()).unwrap();
        assert_eq!(&bytes[..8], b"KPRSNAP1", "{name}");
        let meta_len = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let data = &bytes[12 + meta_len + 8..];
        let base = (&data[..8] == b"KPRDELTA")
            .then(|| u64::from_be_bytes(data[8..16].try_into().unwrap()));
        out.push((zxid, base));
    }
    out.sort();
    out
}

/// Snapshots merged from the one before are written as deltas over it (only the nodes
/// changed since, the rest by reference); purging keeps the files the kept ones stand on,
/// and a restart reads the newest delta back through its chain: every value is there.
#[tokio::test]
async fn snapshots_are_written_as_deltas_and_a_restart_reads_them() {
    bounded(async {
        let mut cfg = test_config();
        cfg.snap_count = 200;
        cfg.autopurge_purge_interval_hours = 1;
        cfg.autopurge_snap_retain_count = 3;
        let srv = start_with(cfg).await;
        let data_dir = srv.server.shared.config().data_dir.clone();
        let c = client(&srv).await;
        for i in 0..400 {
            c.create(&format!("/d{i}"), b"first", &open())
                .await
                .unwrap();
        }
        let mut expected = vec![b"first".to_vec(); 400];
        let mut seen_deltas = 0;
        for round in 0..40 {
            // A few hundred changes to a few nodes: most of each snapshot is unchanged.
            for k in 0..60 {
                let i = (round * 37 + k * 11) % 400;
                let value = format!("round {round} change {k}").into_bytes();
                c.set_data(&format!("/d{i}"), &value, None).await.unwrap();
                expected[i] = value;
            }
            let files = snapshot_files(&data_dir);
            seen_deltas = seen_deltas.max(files.iter().filter(|f| f.1.is_some()).count());
            // Every delta's base is there.
            for (zxid, base) in &files {
                if let Some(b) = base {
                    assert!(
                        files.iter().any(|f| f.0 == *b),
                        "snapshot {zxid:x} is a delta over {b:x}, which is gone: {files:x?}"
                    );
                }
            }
        }
        let files = snapshot_files(&data_dir);
        assert!(seen_deltas > 0, "no delta written: {files:x?}");
        // The newest file may be whole (a chain ends every few): write until it is a delta.
        let mut n = 0;
        while snapshot_files(&data_dir)
            .last()
            .is_some_and(|f| f.1.is_none())
        {
            let i = n % 400;
            let value = format!("extra {n}").into_bytes();
            c.set_data(&format!("/d{i}"), &value, None).await.unwrap();
            expected[i] = value;
            n += 1;
            assert!(n < 5_000, "the newest snapshot stays whole");
        }
        drop(c);
        let srv = srv.restart().await;
        let c = client(&srv).await;
        for (i, value) in expected.iter().enumerate() {
            let (got, _) = c.get_data(&format!("/d{i}")).await.unwrap();
            assert_eq!(&got, value, "/d{i} after the restart");
        }
        srv.shutdown().await;
    })
    .await;
}

/// clientPortListenBacklog sizes the client port's accept queue (`ss` shows a listening
/// socket's maximum backlog as its Send-Q; iproute2 comes with scripts/setup) and `conf`
/// shows it.
#[tokio::test]
async fn client_port_listen_backlog_sizes_the_accept_queue() {
    bounded(async {
        let mut cfg = test_config();
        cfg.client_port_listen_backlog = 7;
        let srv = start_with(cfg).await;
        let port = srv.local_addr.port();
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .expect("ss (iproute2) runs");
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let send_q = line.split_whitespace().nth(2).map(str::to_string);
        assert_eq!(send_q.as_deref(), Some("7"), "ss: {line:?}");
        let conf = four_letters(port, "conf").await.expect("conf answers");
        assert!(conf.contains("clientPortListenBacklog=7"), "{conf}");
    })
    .await;
}
