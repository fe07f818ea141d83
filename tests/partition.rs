//! Network partitions between real keeperd processes: every quorum connection goes through
//! a proxy (`support::proxy`) that cuts, one way or both, and heals the links between
//! members. A leader cut off from the majority acknowledges no write, the majority elects
//! another and goes on, nothing acknowledged is lost, and after healing every member holds
//! the same tree.
//! How the links are routed through the proxy: `support::proxied`.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::proxied::Proxied;
use support::proxy::Link;
use support::*;
use zookeeper_client as zk;

/// The bound of each test.
const LIMIT: Duration = Duration::from_secs(90);
/// tickTime=200, syncLimit=5: a 1 s election timeout, a 2 s hold timeout.
const TICK_MS: u64 = 200;
const ELECTION: Duration = Duration::from_millis(TICK_MS * 5);

/// Three members behind the proxy, with the tests' timing.
async fn start() -> Proxied {
    Proxied::start(Cluster::prepare(3, "")).await
}

/// Creates `path` through `c` within `limit`; Ok(()) only when the server acknowledged it.
async fn create(c: &zk::Client, path: &str, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, c.create(path, path.as_bytes(), &open())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Writes `/p/{prefix}{i}` through `c` until `n` are acknowledged (retrying a failed one
/// under a new name, as its outcome is unknown), within `limit`; returns the acknowledged.
async fn write_acked(c: &zk::Client, prefix: &str, n: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut acked = vec![];
    let mut i = 0;
    while acked.len() < n {
        assert!(
            Instant::now() < deadline,
            "{prefix}: {} of {n} writes acknowledged within {limit:?}",
            acked.len()
        );
        let path = format!("/p/{prefix}{i}");
        i += 1;
        if create(c, &path, Duration::from_secs(5)).await.is_ok() {
            acked.push(path);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    acked
}

/// Waits until every member reports the same tree digest (`hash`) and has the same
/// children of /p; returns those children.
async fn converge(cluster: &Cluster, limit: Duration) -> BTreeSet<String> {
    let deadline = Instant::now() + limit;
    loop {
        let mut digests = BTreeSet::new();
        for n in &cluster.nodes {
            digests.insert(digest(n.client_port).await);
        }
        if digests.len() == 1 && !digests.contains(&None) {
            let mut trees = vec![];
            for n in &cluster.nodes {
                let c = connect(&n.addr(), Duration::from_secs(10)).await;
                c.sync("/p").await.unwrap();
                let kids: BTreeSet<String> =
                    c.list_children("/p").await.unwrap().into_iter().collect();
                trees.push(kids);
            }
            if trees.iter().all(|t| *t == trees[0]) {
                return trees.swap_remove(0);
            }
        }
        if Instant::now() > deadline {
            panic!(
                "members did not converge within {limit:?}: digests {digests:?}\n{}",
                cluster.dump_logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_kept(tree: &BTreeSet<String>, acked: &[String]) {
    for path in acked {
        let name = path.strip_prefix("/p/").unwrap();
        assert!(tree.contains(name), "acknowledged {path} was lost");
    }
}

/// Writes through `c` (a session on the cut-off member only) every 100 ms until `stop`;
/// returns (acknowledged, failed) paths.
async fn minority_writes(c: Arc<zk::Client>, stop: Arc<Mutex<bool>>) -> (Vec<String>, Vec<String>) {
    let (mut acked, mut failed) = (vec![], vec![]);
    let mut i = 0;
    while !*stop.lock().unwrap() {
        let path = format!("/p/minority{i}");
        i += 1;
        match create(&c, &path, Duration::from_secs(4)).await {
            Ok(()) => acked.push(path),
            Err(_) => failed.push(path),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (acked, failed)
}

/// Waits until the session of `c` (cut off, expired by the majority) learns SessionExpired.
async fn learns_expired(c: &zk::Client, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match c.check_stat("/p").await {
            Err(zk::Error::SessionExpired) => return,
            other => assert!(
                Instant::now() < deadline,
                "the cut-off session still answers {other:?} after healing"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until member `id` stops serving clients (`srvr` names no mode).
async fn wait_not_serving(cluster: &Cluster, id: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    while mode(cluster.port(id)).await.is_some() {
        assert!(
            start.elapsed() < limit,
            "server {id} still serves {limit:?} after being cut off\n{}",
            cluster.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Waits until `path` no longer exists as `c` reads it (a failed read is no answer).
async fn gone(c: &zk::Client, path: &str, limit: Duration) {
    let start = Instant::now();
    while !matches!(c.check_stat(path).await, Ok(None)) {
        assert!(
            start.elapsed() < limit,
            "{path} still exists after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many children of /p a session reads (a local read, no sync); None when it gets no
/// answer.
async fn children(c: &zk::Client) -> Option<usize> {
    let kids = tokio::time::timeout(Duration::from_secs(2), c.list_children("/p")).await;
    kids.ok()?.ok().map(|k| k.len())
}

/// Which of the leader's links to the followers a test cuts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    BothWays,
    /// What the leader sends is lost; it still hears the followers.
    Outbound,
    /// What the leader receives is lost; what it sends still arrives.
    Inbound,
}

/// The leader is cut off from both followers (`cut`); the followers elect another leader
/// and take writes, the old one acknowledges none and stops leading (and, when it hears
/// nobody, serving); after healing every member holds the same tree with every
/// acknowledged write.
async fn leader_cut_off(cut_how: Cut) {
    let e = start().await;
    e.assert_routed();
    let old = e.cluster.wait_leader(Duration::from_secs(10)).await;
    let followers = e.others(old);
    let on_old = Arc::new(connect(&e.cluster.hosts(&[old]), Duration::from_secs(6)).await);
    let on_majority = connect(&e.cluster.hosts(&followers), Duration::from_secs(20)).await;
    on_old.create("/p", b"", &open()).await.unwrap();
    let mut acked = write_acked(&on_old, "before", 5, Duration::from_secs(10)).await;
    acked.extend(write_acked(&on_majority, "before-majority", 5, Duration::from_secs(10)).await);
    on_old.create("/eph", b"", &ephemeral()).await.unwrap();

    for &f in &followers {
        if cut_how != Cut::Inbound {
            e.proxy.set(old, f, Link::Blackhole);
        }
        if cut_how != Cut::Outbound {
            e.proxy.set(f, old, Link::Blackhole);
        }
    }
    let cut = Instant::now();
    let stop = Arc::new(Mutex::new(false));
    let minority = tokio::spawn(minority_writes(on_old.clone(), stop.clone()));

    let new = e
        .cluster
        .wait_leader_among(&followers, "3", "1", Duration::from_secs(20))
        .await;
    let elected = cut.elapsed();
    acked.extend(write_acked(&on_majority, "during", 20, Duration::from_secs(20)).await);
    // The old leader's session cannot reach the majority: it expires there, and its
    // ephemeral goes, after the session timeout (ZooKeeper's behaviour).
    gone(&on_majority, "/eph", Duration::from_secs(20)).await;
    let expired_at = cut.elapsed();
    // The old leader hears no follower: it loses its lease (check-quorum), steps down and
    // stops serving, as a ZooKeeper server without a quorum does: its clients are
    // disconnected. (Cut inbound only, its heartbeats still arrive: the followers elect
    // only once it has stepped down and gone quiet.) Cut outbound only, it hears the new
    // leader and follows it, but that leader does not hear it and says so in its
    // heartbeats: it does not serve either (docs/replication.md, Partitions).
    let after = wait_not_serving(&e.cluster, old, 10 * ELECTION).await;
    let stopped = format!("stopped serving {after:?} after that");
    // Long enough for the writes it held to be given up (hold and forward timeouts).
    tokio::time::sleep(Duration::from_secs(6)).await;
    *stop.lock().unwrap() = true;
    let (minority_acked, minority_failed) = minority.await.unwrap();
    assert!(
        minority_acked.is_empty(),
        "the cut-off leader acknowledged {minority_acked:?}"
    );
    assert!(!minority_failed.is_empty());

    e.proxy.heal();
    let healed = Instant::now();
    e.cluster
        .wait_membership("3", "2", Duration::from_secs(20))
        .await;
    let tree = converge(&e.cluster, Duration::from_secs(20)).await;
    assert_kept(&tree, &acked);
    if cut_how == Cut::BothWays {
        // The old leader's own log entries after the cut never reached anyone. (Cut
        // inbound only, they reached the followers and the next leader may commit them:
        // their clients were told ConnectionLoss, an unknown outcome.)
        for path in &minority_failed {
            let name = path.strip_prefix("/p/").unwrap();
            assert!(!tree.contains(name), "{path} failed but was applied");
        }
    }
    // The client of the old leader learns that its session expired.
    learns_expired(&on_old, Duration::from_secs(20)).await;
    // A session on the healed member writes again.
    let again = connect(&e.cluster.hosts(&[old]), Duration::from_secs(10)).await;
    let after = write_acked(&again, "after", 3, Duration::from_secs(10)).await;
    let tree = converge(&e.cluster, Duration::from_secs(20)).await;
    assert_kept(&tree, &acked);
    assert_kept(&tree, &after);
    e.assert_routed();
    eprintln!(
        "leader {old} cut off ({cut_how:?}): {new} elected after {elected:?}, {old} {stopped}, \
         {} writes failed on it; its session's ephemeral gone {expired_at:?} after the cut; \
         converged {:?} after healing",
        minority_failed.len(),
        healed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_both_ways_acknowledges_nothing_and_the_majority_goes_on() {
    tokio::time::timeout(LIMIT, leader_cut_off(Cut::BothWays))
        .await
        .expect("test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_messages_are_lost_one_way_is_replaced() {
    tokio::time::timeout(LIMIT, leader_cut_off(Cut::Outbound))
        .await
        .expect("test took too long");
}

/// A leader that can send but hears nobody (a one-way cut towards it) must not go on
/// leading: its heartbeats keep the followers from electing, so unless it steps down the
/// ensemble takes no write at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_hears_nobody_steps_down_and_the_majority_goes_on() {
    tokio::time::timeout(LIMIT, leader_cut_off(Cut::Inbound))
        .await
        .expect("test took too long");
}

/// The bound within which a member the leader does not hear stops serving: the leader
/// marks its next heartbeat once it has heard nothing for syncLimit x tickTime (the election
/// timeout), and heartbeats go every tickTime / 2; plus 0.5 s for a loaded machine.
const UNHEARD_BOUND: Duration = Duration::from_millis(TICK_MS * 5 + TICK_MS / 2 + 500);
/// A member that does not serve closes its client connections after tickTime; plus 0.5 s.
const CLOSE_BOUND: Duration = Duration::from_millis(TICK_MS + 500);

/// Reads `/p` through `c` (a session whose only server is the cut-off member) until a read
/// fails; the last answer must come within `limit`, and the next few reads must fail too.
/// Returns when the last answer came.
async fn reads_stop(c: &zk::Client, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = Duration::ZERO;
    while children(c).await.is_some() {
        last = start.elapsed();
        assert!(
            last < limit,
            "a session on the cut-off member still reads {last:?} after it stopped serving"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            children(c).await,
            None,
            "the cut-off member served a read again"
        );
    }
    last
}

/// A follower that hears the leader but whose own messages are lost (the link to the leader
/// cut one way): raft-rs on its own keeps it following, answering reads from a replica that
/// no longer moves, for sessions whose touches no longer reach the leader. The leader marks
/// its heartbeats once it has not heard from it within syncLimit x tickTime (ZooKeeper's
/// leader drops such a follower); the follower stops serving and closes its connections,
/// a client whose connect string names another member moves there with its session, a
/// client with nowhere else to go gets no answers and, after healing, SessionExpired. The
/// leader stays the leader, nothing acknowledged is lost, and after healing the follower
/// serves again with every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_the_leader_cannot_hear_stops_serving_and_its_clients_move() {
    tokio::time::timeout(LIMIT, async {
        let e = Proxied::start(Cluster::prepare(3, "maxSessionTimeout=10000")).await;
        e.assert_routed();
        let leader = e.cluster.wait_leader(Duration::from_secs(10)).await;
        let (mute, other) = (e.others(leader)[0], e.others(leader)[1]);
        let writer = connect(&e.cluster.hosts(&[leader, other]), Duration::from_secs(8)).await;
        // Connect strings are tried in order: both sessions start on the mute member.
        let moving = connect(&e.cluster.hosts(&[mute, other]), Duration::from_secs(8)).await;
        let pinned = connect(&e.cluster.hosts(&[mute]), Duration::from_secs(4)).await;
        writer.create("/p", b"", &open()).await.unwrap();
        let mut acked = write_acked(&writer, "before", 5, Duration::from_secs(10)).await;
        acked.extend(write_acked(&moving, "through-mute", 3, Duration::from_secs(10)).await);
        moving.create("/eph", b"", &ephemeral()).await.unwrap();
        let session = moving.session_id();
        pinned.sync("/p").await.unwrap();
        assert_eq!(children(&pinned).await, Some(acked.len()));

        e.proxy.set(mute, leader, Link::Blackhole);
        let cut = Instant::now();
        let stopped = wait_not_serving(&e.cluster, mute, UNHEARD_BOUND).await;
        // Meanwhile the moving session goes on at the other member: same session, its
        // ephemeral kept, writes acknowledged.
        let (last_read, (moved, moved_at)) =
            tokio::join!(reads_stop(&pinned, CLOSE_BOUND), async {
                let moved = write_acked(&moving, "moved", 3, Duration::from_secs(10)).await;
                (moved, cut.elapsed())
            });
        acked.extend(moved);
        assert_eq!(moving.session_id(), session);
        moving.sync("/eph").await.unwrap();
        let eph = moving.check_stat("/eph").await.unwrap().expect("/eph kept");
        assert_eq!(eph.ephemeral_owner, session.0);
        acked.extend(write_acked(&writer, "during", 20, Duration::from_secs(20)).await);
        // Past the pinned session's timeout: the leader expires it.
        let cut_for = Duration::from_secs(6);
        tokio::time::sleep(cut_for.saturating_sub(cut.elapsed())).await;
        assert_eq!(
            mode(e.cluster.port(mute)).await,
            None,
            "{mute} serves while cut off"
        );
        assert_eq!(e.cluster.leader_among(&[leader, other]).await, Some(leader));

        e.proxy.heal();
        let healed = Instant::now();
        e.cluster.wait_serving(mute, Duration::from_secs(10)).await;
        let serving_again = healed.elapsed();
        // A new session on it alone sees every acknowledged write with a plain read.
        let fresh = connect(&e.cluster.hosts(&[mute]), Duration::from_secs(4)).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while children(&fresh).await != Some(acked.len()) {
            assert!(
                Instant::now() < deadline,
                "{mute} serves old data after healing"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let current = healed.elapsed();
        learns_expired(&pinned, Duration::from_secs(10)).await;
        e.cluster
            .wait_membership("3", "2", Duration::from_secs(20))
            .await;
        let tree = converge(&e.cluster, Duration::from_secs(20)).await;
        assert_kept(&tree, &acked);
        assert!(
            writer.check_stat("/eph").await.unwrap().is_some(),
            "/eph lost"
        );
        assert_eq!(e.cluster.leader_among(&[leader]).await, Some(leader));
        e.assert_routed();
        eprintln!(
            "{mute} -> leader {leader} cut: {mute} stopped serving {stopped:?} after the cut, \
             its pinned session's last read answered {last_read:?} after that; the moving session \
             wrote again on {other} {moved_at:?} after the cut; healed: serving again after \
             {serving_again:?}, every write readable there after {current:?}"
        );
    })
    .await
    .expect("test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_follower_catches_up_after_healing() {
    tokio::time::timeout(LIMIT, async {
        let e = start().await;
        let leader = e.cluster.wait_leader(Duration::from_secs(10)).await;
        let lonely = e.others(leader)[0];
        let rest = e.others(lonely);
        let c = connect(&e.cluster.hosts(&rest), Duration::from_secs(20)).await;
        c.create("/p", b"", &open()).await.unwrap();
        let mut acked = write_acked(&c, "before", 5, Duration::from_secs(10)).await;
        // Refused, not silent: its connections close at once.
        e.proxy.partition(&[lonely], &rest, Link::Refuse);
        wait_not_serving(&e.cluster, lonely, 10 * ELECTION).await;
        acked.extend(write_acked(&c, "during", 200, Duration::from_secs(30)).await);
        // The others still lead and write; the lonely one has none of it.
        assert_eq!(e.cluster.leader_among(&rest).await, Some(leader));
        e.proxy.heal();
        e.cluster
            .wait_membership("3", "2", Duration::from_secs(20))
            .await;
        let tree = converge(&e.cluster, Duration::from_secs(20)).await;
        assert_kept(&tree, &acked);
        e.assert_routed();
    })
    .await
    .expect("test took too long");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_link_still_replicates() {
    tokio::time::timeout(LIMIT, async {
        let e = start().await;
        let leader = e.cluster.wait_leader(Duration::from_secs(10)).await;
        let c = connect(&e.cluster.hosts(&[leader]), Duration::from_secs(20)).await;
        c.create("/p", b"", &open()).await.unwrap();
        for f in e.others(leader) {
            e.proxy
                .set(leader, f, Link::Delay(Duration::from_millis(150)));
        }
        let start = Instant::now();
        let acked = write_acked(&c, "slow", 5, Duration::from_secs(20)).await;
        // A write commits once a follower has it: at least one delayed hop.
        assert!(start.elapsed() >= Duration::from_millis(5 * 150));
        e.proxy.heal();
        let tree = converge(&e.cluster, Duration::from_secs(20)).await;
        assert_kept(&tree, &acked);
        assert_eq!(e.cluster.leader_among(&[leader]).await, Some(leader));
    })
    .await
    .expect("test took too long");
}
