use std::collections::BTreeMap;

use super::*;

fn trig(path: &str, event: EventType) -> WatchTrigger {
    WatchTrigger {
        path: path.to_string(),
        event,
    }
}

fn fire(r: &mut WatchRegistry, path: &str, e: EventType) -> Vec<i64> {
    let out = r.trigger(&trig(path, e));
    for (_, ev) in &out {
        assert_eq!(ev.event_type, e);
        assert_eq!(ev.state, KeeperState::SyncConnected);
        assert_eq!(ev.path, path);
    }
    out.into_iter().map(|(s, _)| s).collect()
}

#[test]
fn data_watch_fires_once_on_data_change() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDataChanged), vec![1]);
    assert!(fire(&mut r, "/a", EventType::NodeDataChanged).is_empty());
    assert_eq!(r.path_count(), 0);
    assert_eq!(r.session_count(), 0);
}

#[test]
fn exists_watch_on_missing_node_fires_node_created() {
    let mut r = WatchRegistry::new();
    r.add(7, "/x", WatchKind::Data);
    assert_eq!(fire(&mut r, "/x", EventType::NodeCreated), vec![7]);
    assert_eq!(r.watch_count(), 0);
}

#[test]
fn child_watch_only_sees_children_changed_and_deleted() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Child);
    assert!(fire(&mut r, "/a", EventType::NodeDataChanged).is_empty());
    assert!(fire(&mut r, "/a", EventType::NodeCreated).is_empty());
    assert_eq!(fire(&mut r, "/a", EventType::NodeChildrenChanged), vec![1]);
    assert!(fire(&mut r, "/a", EventType::NodeChildrenChanged).is_empty());

    r.add(1, "/a", WatchKind::Child);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDeleted), vec![1]);
    assert_eq!(r.watch_count(), 0);
}

#[test]
fn data_watch_ignores_children_changed() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    assert!(fire(&mut r, "/a", EventType::NodeChildrenChanged).is_empty());
    assert_eq!(r.kinds(1, "/a"), vec![WatchKind::Data]);
}

#[test]
fn node_deleted_delivers_once_per_session_and_consumes_both() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/a", WatchKind::Child);
    r.add(2, "/a", WatchKind::Child);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDeleted), vec![1, 2]);
    assert_eq!(r.watch_count(), 0);
    assert!(r.by_session().is_empty());
}

#[test]
fn one_shot_consumption_keeps_other_kinds() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/a", WatchKind::Child);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDataChanged), vec![1]);
    assert_eq!(r.kinds(1, "/a"), vec![WatchKind::Child]);
    assert_eq!(fire(&mut r, "/a", EventType::NodeChildrenChanged), vec![1]);
    assert!(r.kinds(1, "/a").is_empty());
}

#[test]
fn persistent_gets_every_event_on_the_path_and_stays() {
    let mut r = WatchRegistry::new();
    r.add(1, "/p", WatchKind::Persistent);
    for e in [
        EventType::NodeCreated,
        EventType::NodeDataChanged,
        EventType::NodeChildrenChanged,
        EventType::NodeDeleted,
        EventType::NodeCreated,
    ] {
        assert_eq!(fire(&mut r, "/p", e), vec![1], "{e:?}");
    }
    // Not below the path.
    assert!(fire(&mut r, "/p/c", EventType::NodeCreated).is_empty());
    assert_eq!(r.kinds(1, "/p"), vec![WatchKind::Persistent]);
}

#[test]
fn persistent_with_one_shot_gives_one_event_and_keeps_persistent() {
    let mut r = WatchRegistry::new();
    r.add(1, "/p", WatchKind::Persistent);
    r.add(1, "/p", WatchKind::Data);
    assert_eq!(fire(&mut r, "/p", EventType::NodeDataChanged), vec![1]);
    assert_eq!(r.kinds(1, "/p"), vec![WatchKind::Persistent]);
}

#[test]
fn recursive_fires_on_path_and_descendants_but_not_children_changed() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::PersistentRecursive);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDataChanged), vec![1]);
    assert_eq!(fire(&mut r, "/a/b", EventType::NodeCreated), vec![1]);
    assert_eq!(fire(&mut r, "/a/b/c", EventType::NodeDataChanged), vec![1]);
    assert_eq!(fire(&mut r, "/a/b/c", EventType::NodeDeleted), vec![1]);
    assert!(fire(&mut r, "/a", EventType::NodeChildrenChanged).is_empty());
    assert!(fire(&mut r, "/a/b", EventType::NodeChildrenChanged).is_empty());
    // A sibling sharing the prefix is not below /a.
    assert!(fire(&mut r, "/ab", EventType::NodeCreated).is_empty());
    assert_eq!(r.kinds(1, "/a"), vec![WatchKind::PersistentRecursive]);
}

#[test]
fn recursive_on_root_sees_everything() {
    let mut r = WatchRegistry::new();
    r.add(3, "/", WatchKind::PersistentRecursive);
    assert_eq!(fire(&mut r, "/x", EventType::NodeCreated), vec![3]);
    assert_eq!(fire(&mut r, "/x/y/z", EventType::NodeDeleted), vec![3]);
    assert_eq!(fire(&mut r, "/", EventType::NodeDataChanged), vec![3]);
}

#[test]
fn one_shot_on_ancestor_does_not_fire_for_descendant() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/a", WatchKind::Persistent);
    r.add(2, "/", WatchKind::PersistentRecursive);
    assert_eq!(fire(&mut r, "/a/b", EventType::NodeCreated), vec![2]);
    assert_eq!(
        r.kinds(1, "/a"),
        vec![WatchKind::Data, WatchKind::Persistent]
    );
}

#[test]
fn at_most_one_event_per_session_across_path_and_ancestors() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a/b", WatchKind::Data);
    r.add(1, "/a/b", WatchKind::Child);
    r.add(1, "/a/b", WatchKind::Persistent);
    r.add(1, "/a", WatchKind::PersistentRecursive);
    r.add(1, "/", WatchKind::PersistentRecursive);
    r.add(2, "/a", WatchKind::PersistentRecursive);
    let out = r.trigger(&trig("/a/b", EventType::NodeDeleted));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].0, 1);
    assert_eq!(out[1].0, 2);
    assert_eq!(
        out[0].1,
        WatcherEvent {
            event_type: EventType::NodeDeleted,
            state: KeeperState::SyncConnected,
            path: "/a/b".into()
        }
    );
}

#[test]
fn non_trigger_event_types_fire_nothing() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Persistent);
    assert!(fire(&mut r, "/a", EventType::None).is_empty());
    assert!(fire(&mut r, "/a", EventType::DataWatchRemoved).is_empty());
}

#[test]
fn remove_session_forgets_everything_including_recursive() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/b", WatchKind::PersistentRecursive);
    r.add(2, "/a", WatchKind::Data);
    r.remove_session(1);
    r.remove_session(99);
    assert_eq!(r.session_count(), 1);
    assert_eq!(r.path_count(), 1);
    assert!(fire(&mut r, "/b/c", EventType::NodeCreated).is_empty());
    assert_eq!(r.recursive, 0);
    assert_eq!(fire(&mut r, "/a", EventType::NodeDeleted), vec![2]);
}

#[test]
fn check_and_remove_match_by_watcher_type() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/a", WatchKind::Child);
    r.add(1, "/p", WatchKind::Persistent);
    r.add(1, "/r", WatchKind::PersistentRecursive);

    // check only
    assert!(r.remove(1, "/a", WatcherType::Data, false));
    assert!(r.remove(1, "/a", WatcherType::Children, false));
    assert!(!r.remove(1, "/a", WatcherType::Persistent, false));
    assert!(!r.remove(1, "/p", WatcherType::Data, false));
    assert!(!r.remove(1, "/p", WatcherType::Children, false));
    assert!(r.remove(1, "/p", WatcherType::Persistent, false));
    assert!(!r.remove(1, "/p", WatcherType::PersistentRecursive, false));
    assert!(r.remove(1, "/r", WatcherType::PersistentRecursive, false));
    assert!(r.remove(1, "/r", WatcherType::Any, false));
    assert!(!r.remove(2, "/a", WatcherType::Any, false));
    assert!(!r.remove(1, "/zz", WatcherType::Any, false));
    // A recursive watch on an ancestor is not a watch on the child path.
    assert!(!r.remove(1, "/r/c", WatcherType::Any, false));
    assert_eq!(r.watch_count(), 1 + 1 + 2 + 1);

    // remove
    assert!(r.remove(1, "/a", WatcherType::Data, true));
    assert_eq!(r.kinds(1, "/a"), vec![WatchKind::Child]);
    assert!(!r.remove(1, "/a", WatcherType::Data, true));
    assert!(r.remove(1, "/a", WatcherType::Any, true));
    assert!(r.kinds(1, "/a").is_empty());
    assert!(r.remove(1, "/r", WatcherType::PersistentRecursive, true));
    assert_eq!(r.recursive, 0);
    assert!(fire(&mut r, "/r/x", EventType::NodeCreated).is_empty());
    assert!(r.remove(1, "/p", WatcherType::Persistent, true));
    assert_eq!(r.watch_count(), 0);
    assert_eq!(r.session_count(), 0);
    assert_eq!(r.path_count(), 0);
}

#[test]
fn duplicate_registration_is_one_watch() {
    let mut r = WatchRegistry::new();
    r.add(1, "/a", WatchKind::PersistentRecursive);
    r.add(1, "/a", WatchKind::PersistentRecursive);
    r.add(1, "/a", WatchKind::Data);
    r.add(1, "/a", WatchKind::Data);
    assert_eq!(r.watch_count(), 1);
    assert_eq!(r.recursive, 1);
    assert!(r.remove(1, "/a", WatcherType::Any, true));
    assert_eq!(r.recursive, 0);
}

/// The state the reference server (ZooKeeper 3.8.0) was put in for the fixtures in
/// `admin`: one session doing `get -w /a`, `ls -w /a`, `stat -w /nope`, `addWatch /c`,
/// `addWatch -m PERSISTENT_RECURSIVE /a`. It answered wchs "1 connections watching 3 paths /
/// Total watches:3", listed /a, /c, /nope in wchc/wchp (not the getChildren watch), and
/// mntr zk_watch_count 5.
#[test]
fn counts_match_reference_server() {
    let mut r = WatchRegistry::new();
    let s = 0x10000061ec70000;
    r.add(s, "/a", WatchKind::Data);
    r.add(s, "/a", WatchKind::Child);
    r.add(s, "/nope", WatchKind::Data);
    r.add(s, "/c", WatchKind::Persistent);
    r.add(s, "/a", WatchKind::PersistentRecursive);
    assert_eq!(
        r.summary(),
        WatchSummary {
            connections: 1,
            paths: 3,
            total: 3
        }
    );
    assert_eq!(r.watch_count(), 5);
    assert_eq!(
        r.by_session(),
        vec![(s, vec!["/a".to_string(), "/c".into(), "/nope".into()])]
    );
    assert_eq!(
        r.by_path(),
        vec![
            ("/a".to_string(), vec![s]),
            ("/c".to_string(), vec![s]),
            ("/nope".to_string(), vec![s])
        ]
    );
}

#[test]
fn child_only_watches_are_not_listed_in_wchc() {
    let mut r = WatchRegistry::new();
    r.add(5, "/k", WatchKind::Child);
    assert_eq!(r.summary(), WatchSummary::default());
    assert!(r.by_session().is_empty());
    assert!(r.by_path().is_empty());
    assert_eq!(r.watch_count(), 1);
    assert_eq!(r.session_count(), 1);
    assert_eq!(r.path_count(), 1);
}

#[test]
fn listings_are_sorted() {
    let mut r = WatchRegistry::new();
    r.add(9, "/b", WatchKind::Data);
    r.add(2, "/b", WatchKind::Data);
    r.add(2, "/a", WatchKind::Data);
    assert_eq!(
        r.by_session(),
        vec![
            (2, vec!["/a".to_string(), "/b".to_string()]),
            (9, vec!["/b".to_string()])
        ]
    );
    assert_eq!(
        r.by_path(),
        vec![("/a".to_string(), vec![2]), ("/b".to_string(), vec![2, 9])]
    );
    assert_eq!(
        r.summary(),
        WatchSummary {
            connections: 2,
            paths: 2,
            total: 3
        }
    );
}

fn stat(mzxid: i64, pzxid: i64) -> Stat {
    Stat {
        mzxid,
        pzxid,
        ..Stat::default()
    }
}

fn names(events: &[WatcherEvent]) -> Vec<(EventType, &str)> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.state, KeeperState::SyncConnected);
            (e.event_type, e.path.as_str())
        })
        .collect()
}

#[test]
fn set_watches_follows_datatree_set_watches() {
    let nodes: BTreeMap<&str, Stat> = [
        ("/old", stat(5, 5)),
        ("/changed", stat(11, 5)),
        ("/kids", stat(5, 12)),
        ("/here", stat(1, 1)),
    ]
    .into_iter()
    .collect();
    let lookup = |p: &str| nodes.get(p).copied();
    let sw = SetWatches {
        relative_zxid: 10,
        data_watches: vec!["/old".into(), "/changed".into(), "/gone".into()],
        exist_watches: vec!["/here".into(), "/notyet".into()],
        child_watches: vec!["/old".into(), "/kids".into(), "/gone2".into()],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/r".into()],
    };
    let mut r = WatchRegistry::new();
    let fired = r.set_watches_with(4, &sw, lookup);
    assert_eq!(
        names(&fired),
        vec![
            (EventType::NodeDataChanged, "/changed"),
            (EventType::NodeDeleted, "/gone"),
            (EventType::NodeCreated, "/here"),
            (EventType::NodeChildrenChanged, "/kids"),
            (EventType::NodeDeleted, "/gone2"),
        ]
    );
    assert_eq!(r.kinds(4, "/old"), vec![WatchKind::Data, WatchKind::Child]);
    assert_eq!(r.kinds(4, "/notyet"), vec![WatchKind::Data]);
    assert_eq!(r.kinds(4, "/p"), vec![WatchKind::Persistent]);
    assert_eq!(r.kinds(4, "/r"), vec![WatchKind::PersistentRecursive]);
    for p in ["/changed", "/gone", "/here", "/kids", "/gone2"] {
        assert!(r.kinds(4, p).is_empty(), "{p}");
    }
    // Re-registered watches behave like fresh ones.
    assert_eq!(fire(&mut r, "/notyet", EventType::NodeCreated), vec![4]);
    assert_eq!(fire(&mut r, "/r/x", EventType::NodeCreated), vec![4]);
}

#[test]
fn set_watches_zxid_equal_to_relative_registers() {
    let lookup = |_: &str| Some(stat(10, 10));
    let sw = SetWatches {
        relative_zxid: 10,
        data_watches: vec!["/a".into()],
        child_watches: vec!["/a".into()],
        ..SetWatches::default()
    };
    let mut r = WatchRegistry::new();
    assert!(r.set_watches_with(1, &sw, lookup).is_empty());
    assert_eq!(r.kinds(1, "/a"), vec![WatchKind::Data, WatchKind::Child]);
}

#[test]
fn set_watches_through_datatree_delegates() {
    // A fresh tree has no /a and no /b: data watch fires NodeDeleted, exist watch registers.
    let tree = DataTree::new(Default::default());
    let sw = SetWatches {
        relative_zxid: 0,
        data_watches: vec!["/a".into()],
        exist_watches: vec!["/b".into()],
        ..SetWatches::default()
    };
    let mut r = WatchRegistry::new();
    let fired = r.set_watches(1, &sw, &tree);
    assert_eq!(names(&fired), vec![(EventType::NodeDeleted, "/a")]);
    assert_eq!(r.kinds(1, "/b"), vec![WatchKind::Data]);
}

#[test]
fn ancestors() {
    let v: Vec<&str> = ancestors_of("/a/b/c").collect();
    assert_eq!(v, vec!["/a/b", "/a", "/"]);
    assert_eq!(ancestors_of("/a").collect::<Vec<_>>(), vec!["/"]);
    assert_eq!(ancestors_of("/").count(), 0);
    assert_eq!(ancestors_of("").count(), 0);
    assert_eq!(ancestors_of("a/b").count(), 0);
}
