//! `keeperd.linearizableReads=true` on a three-node ensemble of real keeperd processes: a
//! follower cut off from the rest answers no read (the client sees ConnectionLoss) where
//! without the key it answers from its stale replica; a deposed leader never answers with the
//! value it had before it was replaced; and a write acknowledged by one server is seen by a
//! read on another one right after, with no sync.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use keeperd::proto::codec::decode_response;
use keeperd::proto::request::Request;
use keeperd::proto::response::Response;
use keeperd::proto::OpCode;
use support::*;
use zookeeper_client as zk;

const LIMIT: Duration = Duration::from_secs(120);
const ON: &str = "keeperd.linearizableReads=true\nmaxSessionTimeout=60000\n";
const OFF: &str = "maxSessionTimeout=60000\n";

fn socket(cluster: &Cluster, id: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], cluster.port(id)))
}

fn get_data(path: &str) -> Request {
    Request::GetData {
        path: path.into(),
        watch: false,
    }
}

/// A raw session on server `id` with a 60 s timeout (so pausing other servers does not
/// expire it).
async fn raw_session(cluster: &Cluster, id: u64) -> Raw {
    let mut raw = Raw::open(socket(cluster, id)).await;
    let resp = raw.handshake(new_session_request(60_000)).await;
    assert!(resp.timeout_ms > 0, "session refused by server {id}");
    raw
}

/// The answer to the getData sent with `xid`: Some(data), or None when the server closed
/// the connection without answering (what a client reports as ConnectionLoss).
async fn data_reply(raw: &mut Raw, xid: i32) -> Option<Vec<u8>> {
    let frame = raw.frame().await?;
    let (h, body) = keeperd::proto::codec::decode_reply_header(&frame).unwrap();
    assert_eq!((h.xid, h.err), (xid, 0));
    match decode_response(OpCode::GetData, body).unwrap() {
        Response::GetData { data, .. } => Some(data.map(|d| d.to_vec()).unwrap_or_default()),
        other => panic!("unexpected {other:?}"),
    }
}

/// What a follower answers a read with once it has missed a write and both other servers
/// are stopped: F is paused while the leader and the other follower commit "v2", then
/// those two are paused, the read is sent, and F is resumed. Returns the answer (None:
/// connection closed without one), how long it took, and the cluster (all resumed) with F.
async fn read_on_a_cut_off_follower(extra: &str) -> (Option<Vec<u8>>, Duration, Cluster, u64) {
    let mut cluster = Cluster::start(3, extra);
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let f = (1..=3).find(|&i| i != leader).unwrap();
    let other = (1..=3).find(|&i| i != leader && i != f).unwrap();
    let on_leader = connect(&cluster.node(leader).addr(), Duration::from_secs(30)).await;
    on_leader.create("/x", b"v1", &open()).await.unwrap();
    let mut raw = raw_session(&cluster, f).await;
    raw.send(1, &Request::Sync { path: "/x".into() }).await;
    raw.frame().await.expect("sync answered");
    raw.send(2, &get_data("/x")).await;
    assert_eq!(data_reply(&mut raw, 2).await.as_deref(), Some(&b"v1"[..]));

    cluster.node(f).pause();
    on_leader.set_data("/x", b"v2", None).await.unwrap();
    cluster.node(leader).pause();
    cluster.node(other).pause();
    raw.send(3, &get_data("/x")).await;
    let t0 = Instant::now();
    cluster.node(f).resume();
    let answer = data_reply(&mut raw, 3).await;
    let took = t0.elapsed();
    cluster.node(leader).resume();
    cluster.node(other).resume();
    (answer, took, cluster, f)
}

/// With the key on, a follower without a leader or quorum answers no read: the connection
/// closes, either when the barrier's hold timeout (2 x syncLimit x tickTime = 2 s here)
/// runs out or sooner, when the follower notices it has not heard from a leader for
/// syncLimit ticks and drops its clients; the client sees ConnectionLoss, never the value
/// it missed the update of. The follower itself stays up: once the others are back, a new
/// session on it reads the write it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_answers_no_read_with_the_key_on() {
    tokio::time::timeout(LIMIT, async {
        let (answer, took, mut cluster, f) = read_on_a_cut_off_follower(ON).await;
        assert_eq!(
            answer, None,
            "a follower without a quorum answered a read (after {took:?})"
        );
        let on_f = connect(&cluster.node(f).addr(), Duration::from_secs(30)).await;
        let (data, _) = on_f.get_data("/x").await.unwrap();
        assert_eq!(
            data, b"v2",
            "the follower, back in the quorum, reads the missed write"
        );
    })
    .await
    .expect("test exceeded its time bound");
}

/// Without the key (ZooKeeper's semantics) the same follower answers at once from its
/// replica; the value is the one it had before it was cut off unless the leader's last
/// messages reached it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_follower_answers_from_its_replica_with_the_key_off() {
    tokio::time::timeout(LIMIT, async {
        let (answer, took, _, _) = read_on_a_cut_off_follower(OFF).await;
        let data = answer.expect("the follower answers without the key");
        assert!(data == b"v1" || data == b"v2", "{data:?}");
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        eprintln!(
            "key off: the cut-off follower answered {:?} in {took:?}",
            String::from_utf8_lossy(&data)
        );
    })
    .await
    .expect("test exceeded its time bound");
}

/// A leader paused long enough to be replaced, then resumed, still believes it leads. With
/// the key on, a read it was sent while paused waits for the new leader's commit index: it
/// answers the value written through the new leader (or closes the connection), never the
/// value it had when it was paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_never_answers_with_its_old_value_with_the_key_on() {
    tokio::time::timeout(LIMIT, async {
        let mut cluster = Cluster::start(3, ON);
        let old = cluster.wait_leader(Duration::from_secs(30)).await;
        let others: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
        let on_other = connect(&cluster.node(others[0]).addr(), Duration::from_secs(30)).await;
        on_other.create("/x", b"v1", &open()).await.unwrap();
        let mut raw = raw_session(&cluster, old).await;
        raw.send(1, &get_data("/x")).await;
        assert_eq!(data_reply(&mut raw, 1).await.as_deref(), Some(&b"v1"[..]));

        cluster.node(old).pause();
        let new = cluster
            .wait_leader_among(&others, "3", "1", Duration::from_secs(30))
            .await;
        assert_ne!(new, old);
        on_other.set_data("/x", b"v2", None).await.unwrap();
        raw.send(2, &get_data("/x")).await;
        cluster.node(old).resume();
        let answer = data_reply(&mut raw, 2).await;
        assert_ne!(
            answer.as_deref(),
            Some(&b"v1"[..]),
            "the deposed leader answered with its stale value"
        );
    })
    .await
    .expect("test exceeded its time bound");
}

/// With the key on, a write acknowledged on one server is visible to a read on another
/// right after, with no sync: 200 pairs over getData, exists and getChildren, between the
/// leader and a follower and between the two followers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_write_is_read_on_any_other_server_at_once_with_the_key_on() {
    tokio::time::timeout(LIMIT, async {
        let cluster = Cluster::start(3, ON);
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
        let mut clients = vec![];
        for n in &cluster.nodes {
            clients.push(connect(&n.addr(), Duration::from_secs(30)).await);
        }
        let client = |id: u64| &clients[(id - 1) as usize];
        client(leader).create("/k", b"0", &open()).await.unwrap();
        let pairs = [
            (leader, followers[0]),
            (leader, followers[1]),
            (followers[0], followers[1]),
            (followers[1], leader),
        ];
        for i in 0..200usize {
            let (a, b) = pairs[i % pairs.len()];
            let (w, r) = (client(a), client(b));
            match i % 3 {
                0 => {
                    let stat = w
                        .set_data("/k", i.to_string().as_bytes(), None)
                        .await
                        .unwrap();
                    let (data, seen) = r.get_data("/k").await.unwrap();
                    assert_eq!(
                        (data, seen.version),
                        (i.to_string().into_bytes(), stat.version),
                        "pair {i}: getData on {b} after setData on {a}"
                    );
                }
                1 => {
                    let stat = w
                        .set_data("/k", i.to_string().as_bytes(), None)
                        .await
                        .unwrap();
                    let seen = r.check_stat("/k").await.unwrap().expect("/k exists");
                    assert_eq!(
                        seen.version, stat.version,
                        "pair {i}: exists on {b} after setData on {a}"
                    );
                }
                _ => {
                    let child = format!("c{i}");
                    w.create(&format!("/k/{child}"), b"", &open())
                        .await
                        .unwrap();
                    let children = r.list_children("/k").await.unwrap();
                    assert!(
                        children.contains(&child),
                        "pair {i}: getChildren on {b} after create on {a}: {children:?}"
                    );
                }
            }
        }
    })
    .await
    .expect("test exceeded its time bound");
}

/// What a client library reports for a read on a follower whose leader and other follower
/// are paused, with the key on: ConnectionLoss (the zookeeper-client crate's view of the
/// connection the server closed), not the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_library_sees_connection_loss_on_a_cut_off_server_with_the_key_on() {
    tokio::time::timeout(LIMIT, async {
        let mut cluster = Cluster::start(3, ON);
        let leader = cluster.wait_leader(Duration::from_secs(30)).await;
        let f = (1..=3).find(|&i| i != leader).unwrap();
        let on_f = connect(&cluster.node(f).addr(), Duration::from_secs(30)).await;
        on_f.create("/y", b"y", &open()).await.unwrap();
        assert_eq!(on_f.get_data("/y").await.unwrap().0, b"y");
        for id in (1..=3).filter(|&i| i != f) {
            cluster.node(id).pause();
        }
        let t = Instant::now();
        let r = on_f.get_children("/").await;
        if r.is_ok() {
            eprintln!("DEBUG took {:?} leader {leader} f {f}", t.elapsed());
            for n in &cluster.nodes {
                eprintln!("==== node\n{}", n.log());
            }
        }
        assert!(
            matches!(r, Err(zk::Error::ConnectionLoss)),
            "getChildren on a follower without a quorum: {r:?}"
        );
        for id in (1..=3).filter(|&i| i != f) {
            cluster.node(id).resume();
        }
    })
    .await
    .expect("test exceeded its time bound");
}
