//! Membership changes on real keeperd processes on 127.0.0.1 while a client writes: the
//! ZooKeeper 3.4 rolling procedure (grow 3 -> 5 and shrink 5 -> 3 by rolling restarts),
//! dynamic reconfig (add a server, remove the leader), and the leader killed -9 in the middle
//! of adding a server either way; empty new servers never form a group of their own. No
//! acknowledged write may be lost. Every wait is bounded.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use zookeeper_client as zk;

const LIMIT: Duration = Duration::from_secs(110);

/// The session timeout of every client here.
const SESSION_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Tally {
    acked: Vec<String>,
    connection_loss: u64,
    other_errors: Vec<String>,
}

/// Whether `e` says the connection broke under the request (its outcome is unknown), which
/// zookeeper-client reports three ways: ConnectionLoss (the server closed the socket), "no
/// response from connection in N ms" (it went silent, e.g. while restarting), or the socket's
/// own error (a server killed -9 resets the connection: "Connection reset by peer").
fn is_connection_loss(e: &zk::Error) -> bool {
    match e {
        zk::Error::ConnectionLoss => true,
        zk::Error::Custom(_) => {
            let text = e.to_string();
            text.starts_with("no response from connection")
                || ["Connection reset by peer", "Broken pipe"]
                    .iter()
                    .any(|m| text.contains(m))
        }
        _ => false,
    }
}

/// Creates /w-NNNNNN continuously through `hosts` until `stop`; a ConnectionLoss moves on
/// to the next path (its outcome is unknown), anything else is recorded as a failure.
fn spawn_writer(
    hosts: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tally: Arc<Mutex<Tally>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = connect(&hosts, SESSION_TIMEOUT).await;
        let mut i = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let path = format!("/w-{i:06}");
            i += 1;
            match tokio::time::timeout(Duration::from_secs(20), c.create(&path, b"x", &open()))
                .await
            {
                Ok(Ok(_)) => tally.lock().unwrap().acked.push(path),
                Ok(Err(e)) if is_connection_loss(&e) => {
                    tally.lock().unwrap().connection_loss += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => tally
                    .lock()
                    .unwrap()
                    .other_errors
                    .push(format!("{path}: {e}")),
                Err(_) => tally
                    .lock()
                    .unwrap()
                    .other_errors
                    .push(format!("{path}: no answer in 20 s")),
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}

/// A running `spawn_writer`.
struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(hosts: String) -> Writer {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let task = spawn_writer(hosts, stop.clone(), tally.clone());
        Writer { stop, tally, task }
    }

    fn acked(&self) -> usize {
        self.tally.lock().unwrap().acked.len()
    }

    /// Waits until `n` writes in all were acknowledged.
    async fn wait_acked(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.acked() < n {
            if Instant::now() > deadline {
                let t = self.tally.lock().unwrap();
                panic!(
                    "the writer has {} acknowledged writes, not {n}, after {limit:?} \
                     ({} ConnectionLoss, errors {:?})",
                    t.acked.len(),
                    t.connection_loss,
                    t.other_errors
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets 50 more writes through after `since` acknowledged ones, stops the writer and
    /// checks that every acknowledged write is on each of `servers`.
    async fn finish_after(self, since: usize, what: &str, ens: &Cluster, servers: &[u64]) -> Tally {
        self.wait_acked(since + 50, Duration::from_secs(20)).await;
        let tally = self.finish().await;
        eprintln!(
            "acknowledged {} writes ({since} {what}), {} ConnectionLoss",
            tally.acked.len(),
            tally.connection_loss
        );
        assert_all_present(ens, servers, &tally.acked).await;
        tally
    }

    /// Stops the writer; asserts that no request failed other than by ConnectionLoss.
    async fn finish(self) -> Tally {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        assert!(
            tally.other_errors.is_empty(),
            "client errors besides ConnectionLoss: {:?}",
            tally.other_errors
        );
        tally
    }
}

/// /zookeeper/config is the same on every server of `on` and lists exactly `members`.
async fn assert_config_lists(ens: &Cluster, on: &[u64], members: &[u64]) {
    let first = ens.config_of(on[0]).await;
    let listed: Vec<u64> = first
        .lines()
        .filter_map(|l| l.strip_prefix("server.")?.split('=').next()?.parse().ok())
        .collect();
    assert_eq!(listed, members, "/zookeeper/config on {}: {first}", on[0]);
    for &id in &on[1..] {
        assert_eq!(
            ens.config_of(id).await,
            first,
            "/zookeeper/config on {id} and {}",
            on[0]
        );
    }
}

async fn assert_all_present(ens: &Cluster, ids: &[u64], acked: &[String]) {
    for &id in ids {
        let c = connect(&ens.nodes[(id - 1) as usize].addr(), SESSION_TIMEOUT).await;
        c.sync("/").await.unwrap();
        for p in acked {
            assert!(
                c.check_stat(p).await.unwrap().is_some(),
                "acknowledged {p} missing on server {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_grows_3_to_5_and_shrinks_back_without_losing_writes() {
    tokio::time::timeout(LIMIT, async {
        let mut ens = Cluster::prepare(5, "");
        let old = [1, 2, 3];
        let all = [1, 2, 3, 4, 5];
        let leader = ens.start_members(&old).await;
        let writer = Writer::start(ens.hosts(&old));

        // New servers with the 5-server zoo.cfg: they wait (the old members do not know them).
        for id in [4, 5] {
            ens.write_members_cfg(id, &all);
            ens.node(id).start();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for id in [4, 5] {
            let port = ens.nodes[id as usize - 1].client_port;
            assert_eq!(mode(port).await, None, "new server {id} serves too early");
        }
        // Followers first, the leader last.
        for id in old.iter().copied().filter(|&id| id != leader) {
            ens.restart_with(id, &all).await;
        }
        ens.restart_with(leader, &all).await;
        let leader5 = ens.wait_membership("5", "4", Duration::from_secs(40)).await;
        for id in [4, 5] {
            ens.wait_serving(id, Duration::from_secs(10)).await;
        }
        let log = ens.nodes[leader5 as usize - 1].log();
        assert!(
            log.contains("membership: adding server 4 as learner"),
            "{log}"
        );
        assert!(
            log.contains("membership: promoting server 5 to voter"),
            "{log}"
        );
        // Every server serves the same five-server /zookeeper/config.
        assert_config_lists(&ens, &all, &all).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let acked_at_5 = writer.tally.lock().unwrap().acked.clone();
        let grown = acked_at_5.len();
        assert!(grown > 50, "the writer made progress: {grown}");
        // Every write acknowledged so far is on all five servers.
        assert_all_present(&ens, &all, &acked_at_5).await;

        // Shrink: 1..3 get the 3-server zoo.cfg, followers first, the leader last.
        let shrink_leader = leader5;
        for id in old.iter().copied().filter(|&id| id != shrink_leader) {
            ens.restart_with(id, &old).await;
        }
        ens.restart_with(shrink_leader, &old).await;
        // Servers 4 and 5 (removed, or still wanting five servers) may not serve meanwhile:
        // look for a leader among 1..3 that reports three voters. If 4 or 5 took over (they
        // reconcile towards their own five-server zoo.cfg), restart it to move leadership on.
        let deadline = Instant::now() + Duration::from_secs(40);
        let leader3 = loop {
            let mut found = None;
            for id in all {
                let port = ens.nodes[id as usize - 1].client_port;
                if mode(port).await.as_deref() == Some("leader") {
                    found = Some(id);
                }
            }
            match found {
                Some(id) if old.contains(&id) => {
                    let m = mntr(ens.nodes[id as usize - 1].client_port).await;
                    if m.get("zk_quorum_size").map(String::as_str) == Some("3") {
                        break id;
                    }
                }
                Some(id) => {
                    ens.node(id).stop();
                    ens.node(id).start();
                }
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "no shrink to 3\n{}",
                ens.dump_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let log = ens.nodes[leader3 as usize - 1].log();
        assert!(log.contains("membership: removing server"), "{log}");
        ens.node(4).stop();
        ens.node(5).stop();
        ens.wait_membership("3", "2", Duration::from_secs(20)).await;
        assert_config_lists(&ens, &old, &old).await;
        // The writer goes on in the three-server ensemble.
        let shrunk = writer.acked();
        writer
            .wait_acked(shrunk + 50, Duration::from_secs(20))
            .await;
        let tally = writer.finish().await;
        eprintln!(
            "acknowledged {} writes ({} at 5 servers), {} ConnectionLoss",
            tally.acked.len(),
            grown,
            tally.connection_loss
        );
        // Every acknowledged write (also those made while shrinking) is on the three left.
        assert_all_present(&ens, &old, &tally.acked).await;
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_empty_new_servers_never_form_a_group_while_the_old_members_are_down() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut ens = Cluster::prepare(5, "");
        for id in [4, 5] {
            ens.write_members_cfg(id, &[1, 2, 3, 4, 5]);
            ens.node(id).start();
        }
        tokio::time::sleep(Duration::from_secs(4)).await;
        for id in [4, 5] {
            let port = ens.nodes[id as usize - 1].client_port;
            assert_eq!(mode(port).await, None, "server {id} serves");
            let log = ens.nodes[id as usize - 1].log();
            assert!(log.contains("not bootstrapping from zoo.cfg"), "{log}");
            assert!(!log.contains("bootstrapping a new ensemble"), "{log}");
            assert!(!log.contains("became leader"), "{log}");
        }
        // No session, so no write, can be made on either.
        for id in [4, 5] {
            let addr = ens.nodes[id as usize - 1].addr();
            let r = tokio::time::timeout(
                Duration::from_secs(3),
                zk::Client::connector()
                    .with_session_timeout(Duration::from_secs(5))
                    .connect(&addr),
            )
            .await;
            assert!(
                !matches!(r, Ok(Ok(_))),
                "a client got a session on server {id}"
            );
        }
    })
    .await
    .expect("test exceeded its time bound");
}

/// What the servers of the reconfig tests add to zoo.cfg: dynamic reconfig on, and no ACL
/// check so a plain session may reconfig.
const DYNAMIC: &str = "reconfigEnabled=true\nskipACL=yes\n";

/// `reconfig -add` / `-remove` through `c`, as zkCli sends it; returns the new config.
async fn reconfig(c: &zk::Client, add: Option<&str>, remove: Option<&str>) -> String {
    let update = zk::EnsembleUpdate::Incremental {
        joinings: add.into_iter(),
        leavings: remove.into_iter(),
    };
    let (data, _) = tokio::time::timeout(Duration::from_secs(10), c.update_ensemble(update, None))
        .await
        .expect("reconfig answered within 10 s")
        .unwrap_or_else(|e| panic!("reconfig add {add:?} remove {remove:?}: {e}"));
    String::from_utf8(data).unwrap()
}

/// When a test kills the leader in the middle of adding server 4.
#[derive(Clone, Copy, Debug, PartialEq)]
enum KillAt {
    /// As soon as the new membership is committed (the reconfig's reply, or
    /// /zookeeper/config listing server 4): as a rule the leader has not added server 4 to
    /// the group yet (it does so at its next tick).
    Committed,
    /// Once the leader has added server 4 as a learner (applied), before it promotes it.
    LearnerAdded,
}

/// Kills leader `id` -9 at `at` (the membership change is committed already), and checks
/// that this is the middle of the change: server 4 not yet a voter. Returns whether the
/// killed leader had added server 4 as a learner.
async fn kill_leader_at(ens: &mut Cluster, id: u64, at: KillAt) -> bool {
    if at == KillAt::LearnerAdded {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ens.log(id).contains("membership: added 4 as learner") {
            assert!(
                Instant::now() < deadline,
                "leader {id} did not add server 4 as a learner\n{}",
                ens.dump_logs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    ens.node(id).kill9();
    let log = ens.log(id);
    assert!(
        !log.contains("promoted 4 to voter"),
        "server 4 was promoted before leader {id} was killed: not the case under test\n{log}"
    );
    log.contains("membership: added 4 as learner")
}

/// 3 servers with reconfig enabled and a writer; server 4 started empty; `reconfig -add
/// server.4` on the leader, which is killed -9 at `at`. The change must complete under a
/// new leader with every acknowledged write kept, and the killed server rejoin the four.
async fn reconfig_add_with_the_leader_killed(at: KillAt) {
    let t0 = Instant::now();
    let mut ens = Cluster::prepare(5, DYNAMIC);
    let old = [1, 2, 3];
    let leader = ens.start_members(&old).await;
    // The reconfig changes /zookeeper/config: wait for the leader's zoo.cfg list in it.
    ens.wait_config(leader, "server.3=", Duration::from_secs(10))
        .await;
    let writer = Writer::start(ens.hosts(&old));
    writer.wait_acked(20, Duration::from_secs(20)).await;

    // Server 4 starts empty with a zoo.cfg listing 1..4: it waits to be added.
    ens.write_members_cfg(4, &[1, 2, 3, 4]);
    ens.node(4).start();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        mode(ens.port(4)).await,
        None,
        "server 4 serves before it is added"
    );

    // reconfig -add server.4 on the leader, then kill -9 the leader.
    let admin = connect(&ens.nodes[leader as usize - 1].addr(), SESSION_TIMEOUT).await;
    let line = ens.reconfig_line(4);
    let config = reconfig(&admin, Some(&line), None).await;
    let learner = kill_leader_at(&mut ens, leader, at).await;
    let acked_at_kill = writer.acked();
    let (q, e, c) = ens.ports[3];
    let line4 = format!("server.4=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}");
    assert!(config.contains(&line4), "{config}");
    eprintln!(
        "[{:?}] reconfig -add 4 committed, leader {leader} killed ({at:?}, server 4 {})",
        t0.elapsed(),
        if learner {
            "a learner"
        } else {
            "not a member yet"
        }
    );

    // A new leader among the two others completes the change: four voters, of which the
    // two others are synced followers (the old leader is down).
    let live: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let rest: Vec<u64> = old.into_iter().filter(|&id| id != leader).collect();
    let new_leader = ens
        .wait_leader_among(&rest, "4", "2", Duration::from_secs(40))
        .await;
    ens.wait_serving(4, Duration::from_secs(10)).await;
    eprintln!("[{:?}] server {new_leader} leads four voters", t0.elapsed());
    let log = ens.log(new_leader);
    assert!(
        log.contains("membership: promoting server 4 to voter"),
        "{log}"
    );
    if !learner {
        assert!(
            log.contains("membership: adding server 4 as learner"),
            "{log}"
        );
    }
    for &id in &live {
        assert_eq!(
            ens.config_of(id).await,
            config,
            "/zookeeper/config on server {id}"
        );
    }

    // Writes go on, and every acknowledged one is on every live server, 4 included.
    let tally = writer
        .finish_after(acked_at_kill, "before the kill", &ens, &live)
        .await;

    // The killed leader restarts (same files) and rejoins as the fourth voter with the new
    // membership, which its dynamic config file now holds too.
    ens.node(leader).start();
    ens.wait_serving(leader, Duration::from_secs(20)).await;
    ens.wait_leader_among(&[1, 2, 3, 4], "4", "3", Duration::from_secs(20))
        .await;
    assert_eq!(ens.config_of(leader).await, config);
    let dir = &ens.nodes[leader as usize - 1].dir;
    let zoo_cfg = std::fs::read_to_string(dir.join("zoo.cfg")).unwrap();
    let dynamic = zoo_cfg
        .lines()
        .find_map(|l| l.strip_prefix("dynamicConfigFile="))
        .unwrap_or_else(|| panic!("zoo.cfg of {leader} has no dynamicConfigFile: {zoo_cfg}"));
    // A relative path is relative to zoo.cfg's directory.
    let dynamic = std::fs::read_to_string(dir.join(dynamic)).unwrap();
    assert!(dynamic.contains(&line4), "{dynamic}");
    assert_all_present(&ens, &[leader], &tally.acked).await;
    eprintln!("[{:?}] done", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_during_reconfig_add_keeps_the_change_and_the_data() {
    tokio::time::timeout(
        LIMIT,
        reconfig_add_with_the_leader_killed(KillAt::Committed),
    )
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_after_reconfig_added_a_learner_keeps_the_change_and_the_data() {
    tokio::time::timeout(
        LIMIT,
        reconfig_add_with_the_leader_killed(KillAt::LearnerAdded),
    )
    .await
    .expect("test exceeded its time bound");
}

/// The rolling growth 3 -> 5 under a writer, with the leader that publishes the 5-server
/// list (a follower restarted with it, elected when the old leader restarts last) killed
/// -9 at `at`. The change must complete under the next leader with no acknowledged write
/// lost, and the killed server rejoin the five.
async fn rolling_add_with_the_leader_killed(at: KillAt) {
    let t0 = Instant::now();
    let mut ens = Cluster::prepare(5, "");
    let old = [1, 2, 3];
    let all = [1, 2, 3, 4, 5];
    let leader = ens.start_members(&old).await;
    // No wait for the first publish before editing zoo.cfg: the published list is stamped
    // with its file's age, so an edit made before it still counts as newer.
    let writer = Writer::start(ens.hosts(&old));
    for id in [4, 5] {
        ens.write_members_cfg(id, &all);
        ens.node(id).start();
    }
    writer.wait_acked(20, Duration::from_secs(20)).await;
    // Followers first; nothing changes yet.
    let followers: Vec<u64> = old.into_iter().filter(|&id| id != leader).collect();
    for &id in &followers {
        ens.restart_with(id, &all).await;
    }
    // The leader last: a follower with the new zoo.cfg takes over and publishes it. Watch
    // /zookeeper/config for server 4 (on the followers: the old leader is restarting).
    let watcher = connect(&ens.hosts(&followers), SESSION_TIMEOUT).await;
    ens.node(leader).stop();
    ens.write_members_cfg(leader, &all);
    ens.node(leader).start();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = tokio::time::timeout(
            Duration::from_secs(1),
            watcher.get_data("/zookeeper/config"),
        )
        .await;
        if let Ok(Ok((data, _))) = got {
            if String::from_utf8_lossy(&data).contains("server.4=") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "/zookeeper/config never listed server 4\n{}",
            ens.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let publisher = ens
        .leader_among(&old)
        .await
        .expect("a leader after the publish");
    let learner = kill_leader_at(&mut ens, publisher, at).await;
    let acked_at_kill = writer.acked();
    eprintln!(
        "[{:?}] server {publisher} published the 5-server list and was killed ({at:?}, \
         server 4 {})",
        t0.elapsed(),
        if learner {
            "a learner"
        } else {
            "not a member yet"
        }
    );
    let killed_log = ens.log(publisher);
    assert!(
        killed_log.contains("membership: publishing zoo.cfg's server list"),
        "{killed_log}"
    );

    // The two other old servers elect a leader that finishes the change: five voters, three
    // synced followers while the killed one is down.
    let rest: Vec<u64> = old.into_iter().filter(|&id| id != publisher).collect();
    let new_leader = ens
        .wait_leader_among(&rest, "5", "3", Duration::from_secs(40))
        .await;
    for id in [4, 5] {
        ens.wait_serving(id, Duration::from_secs(10)).await;
    }
    eprintln!("[{:?}] server {new_leader} leads five voters", t0.elapsed());
    let log = ens.log(new_leader);
    assert!(
        log.contains("membership: promoting server 4 to voter"),
        "{log}"
    );
    assert!(
        log.contains("membership: promoting server 5 to voter"),
        "{log}"
    );
    let live: Vec<u64> = all.into_iter().filter(|&id| id != publisher).collect();
    let tally = writer
        .finish_after(acked_at_kill, "before the kill", &ens, &live)
        .await;

    // The killed server comes back into the five.
    ens.node(publisher).start();
    ens.wait_serving(publisher, Duration::from_secs(20)).await;
    ens.wait_leader_among(&all, "5", "4", Duration::from_secs(20))
        .await;
    assert_all_present(&ens, &[publisher], &tally.acked).await;
    assert_config_lists(&ens, &all, &all).await;
    eprintln!("[{:?}] done", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_while_a_rolling_restart_adds_a_server() {
    tokio::time::timeout(LIMIT, rolling_add_with_the_leader_killed(KillAt::Committed))
        .await
        .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_after_a_rolling_restart_added_a_learner() {
    tokio::time::timeout(
        LIMIT,
        rolling_add_with_the_leader_killed(KillAt::LearnerAdded),
    )
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconfig_remove_the_leader() {
    tokio::time::timeout(LIMIT, async {
        let t0 = Instant::now();
        let mut ens = Cluster::prepare(5, DYNAMIC);
        let four = [1, 2, 3, 4];
        let leader = ens.start_members(&four).await;
        ens.wait_config(leader, "server.4=", Duration::from_secs(10))
            .await;
        ens.wait_leader_among(&four, "4", "3", Duration::from_secs(20))
            .await;
        // The writer may be connected to the leader: it must move on when that one leaves.
        let writer = Writer::start(ens.hosts(&four));
        writer.wait_acked(20, Duration::from_secs(20)).await;

        let rest: Vec<u64> = four.into_iter().filter(|&id| id != leader).collect();
        let admin = connect(&ens.hosts(&rest), SESSION_TIMEOUT).await;
        let config = reconfig(&admin, None, Some(&leader.to_string())).await;
        let acked_at_remove = writer.acked();
        assert!(!config.contains(&format!("server.{leader}=")), "{config}");
        eprintln!("[{:?}] reconfig -remove {leader} committed", t0.elapsed());

        // The leader hands over, the new leader removes it: three voters, all synced.
        let new_leader = ens
            .wait_leader_among(&rest, "3", "2", Duration::from_secs(30))
            .await;
        eprintln!(
            "[{:?}] server {new_leader} leads three voters",
            t0.elapsed()
        );
        let old_log = ens.log(leader);
        assert!(
            old_log.contains(&format!(
                "membership: this server ({leader}) leaves the voters; transferring leadership"
            )),
            "{old_log}"
        );
        let log = ens.log(new_leader);
        assert!(
            log.contains(&format!("membership: removing server {leader}")),
            "{log}"
        );
        // The removed server no longer serves clients.
        let deadline = Instant::now() + Duration::from_secs(10);
        while mode(ens.port(leader)).await.is_some() {
            assert!(
                Instant::now() < deadline,
                "removed server {leader} still serves\n{old_log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for &id in &rest {
            assert_eq!(ens.config_of(id).await, config, "/zookeeper/config on {id}");
        }
        writer
            .finish_after(acked_at_remove, "before the remove", &ens, &rest)
            .await;
        ens.node(leader).stop();
        eprintln!("[{:?}] done", t0.elapsed());
    })
    .await
    .expect("test exceeded its time bound");
}

/// The session-1 flip-flop: a leader still running with an older zoo.cfg must not put the
/// old server list back. Server `newer` gets a zoo.cfg listing 1..4 and is made leader (it
/// publishes the list, 4 joins); then leadership goes to a server whose zoo.cfg, written
/// before that change, lists 1..3. The ensemble must stay at four voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_with_an_older_zoo_cfg_does_not_undo_a_change() {
    tokio::time::timeout(LIMIT, async {
        let mut ens = Cluster::prepare(5, "");
        let old = [1, 2, 3];
        let four = [1, 2, 3, 4];
        let first = ens.start_members(&old).await;
        ens.write_members_cfg(4, &four);
        ens.node(4).start();
        let newer = old.into_iter().find(|&id| id != first).unwrap();
        ens.restart_with(newer, &four).await;
        // Move leadership until `newer` has it: stop whoever else leads, restart it with
        // its (unchanged, older) zoo.cfg.
        move_leadership(&mut ens, &old, &[newer], "3").await;
        // `newer` publishes 1..4; server 4 joins and is promoted.
        ens.wait_leader_among(&[newer], "4", "3", Duration::from_secs(30))
            .await;
        let c = connect(&ens.hosts(&old), SESSION_TIMEOUT).await;
        c.create("/before-handover", b"x", &open()).await.unwrap();
        // Leadership to a server whose zoo.cfg still lists 1..3.
        let stale: Vec<u64> = old.into_iter().filter(|&id| id != newer).collect();
        let l = move_leadership(&mut ens, &four, &stale, "4").await;
        // Many publish and reconcile rounds (tickTime 200): still four voters.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let m = mntr(ens.port(l)).await;
        assert_eq!(
            m.get("zk_quorum_size").map(String::as_str),
            Some("4"),
            "leader {l} changed the membership back: {m:?}\n{}",
            ens.dump_logs()
        );
        assert_config_lists(&ens, &four, &four).await;
        assert!(
            ens.log(l).contains("was edited before its last change"),
            "leader {l} did not say why it kept the configuration\n{}",
            ens.log(l)
        );
        let c = connect(&ens.hosts(&four), SESSION_TIMEOUT).await;
        assert!(c.check_stat("/before-handover").await.unwrap().is_some());
    })
    .await
    .expect("test within its time limit");
}

/// Stops whoever leads among `members` (and restarts it with its zoo.cfg unchanged) until
/// one of `wanted` leads with `quorum` voters; returns it.
async fn move_leadership(ens: &mut Cluster, members: &[u64], wanted: &[u64], quorum: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "none of {wanted:?} led\n{}",
            ens.dump_logs()
        );
        let Some(l) = ens.leader_among(members).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if wanted.contains(&l) {
            return l;
        }
        ens.node(l).stop();
        let running: Vec<u64> = members.iter().copied().filter(|&id| id != l).collect();
        let synced = (members.len() - 2).to_string();
        ens.wait_leader_among(&running, quorum, &synced, Duration::from_secs(20))
            .await;
        ens.node(l).start();
        ens.wait_serving(l, Duration::from_secs(20)).await;
    }
}
