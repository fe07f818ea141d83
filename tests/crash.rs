//! Durability under `kill -9`: a writer does acknowledged creates and sets as fast as it can,
//! the server process is killed at a random moment, restarted on the same dataDir, and every
//! acknowledged write must be there. The tree digest (`hash`) must also be identical across a
//! further clean restart, i.e. replaying the log is deterministic.

mod support;

use std::time::{Duration, Instant};

use support::{digest_of, four_letters, open, standalone, try_connect, wait_serving, Rng};
use zookeeper_client as zk;

/// A client of the server on `port` with a 1 s session (one attempt: the server serves).
async fn connect(port: u16) -> zk::Client {
    try_connect(&format!("127.0.0.1:{port}"), Duration::from_secs(1))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    tokio::time::timeout(Duration::from_secs(300), run_crash_rounds(20))
        .await
        .expect("crash test exceeded its 300 s bound");
}

async fn run_crash_rounds(rounds: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut server = standalone(
        dir,
        &dir.join("data"),
        "4lw.commands.whitelist=*\nsnapCount=500",
    );
    let port = server.client_port;
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    eprintln!("crash test seed {seed} (set CRASH_SEED to replay)");
    let mut rng = Rng::from_state(seed);
    // path -> last acknowledged value
    let mut acked: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    server.start();
    wait_serving(port, dir).await;
    {
        let c = connect(port).await;
        c.create("/crash", b"", &open()).await.unwrap();
        acked.insert("/crash".into(), vec![]);
    }
    let mut next = 0u64;
    for round in 0..rounds {
        let c = connect(port).await;
        let kill_after = Duration::from_millis(20 + rng.next() % 300);
        // Eight writers pipeline creates and sets on their own paths while the server is
        // killed under them: writes in flight at the kill may or may not be durable; every
        // one whose reply arrived must be.
        // (path, value, acknowledged): the one write a writer had in flight when the
        // connection broke is reported unacknowledged — it may or may not have been applied.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Vec<u8>, bool)>();
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..8u64 {
            let c = c.clone();
            let tx = tx.clone();
            let base = next + w * 1_000_000;
            writers.spawn(async move {
                for k in 0.. {
                    let i = base + k;
                    let path = format!("/crash/n{i:010}");
                    let value = format!("v{i}-{round}").into_bytes();
                    let (target, res) = if k % 3 == 2 {
                        let target = format!("/crash/n{:010}", i - 1);
                        let r = c.set_data(&target, &value, None).await.map(|_| ());
                        (target, r)
                    } else {
                        let r = c.create(&path, &value, &open()).await.map(|_| ());
                        (path, r)
                    };
                    match res {
                        Ok(()) => {
                            let _ = tx.send((target, value, true));
                        }
                        // The create it followed was not acknowledged.
                        Err(zk::Error::NoNode) => {}
                        Err(_) => {
                            let _ = tx.send((target, value, false));
                            return;
                        }
                    }
                }
            });
        }
        drop(tx);
        next += 8 * 1_000_000;
        tokio::time::sleep(kill_after).await;
        server.kill9();
        drop(c);
        let mut in_flight: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        while let Some((p, v, ok)) = rx.recv().await {
            if ok {
                acked.insert(p, v);
            } else {
                in_flight.insert(p, v);
            }
        }
        while writers.join_next().await.is_some() {}
        server.start();
        wait_serving(port, dir).await;
        let c = connect(port).await;
        let mut landed = vec![];
        for (path, value) in &acked {
            match c.get_data(path).await {
                Ok((data, _)) if &data == value => {}
                Ok((data, _)) if in_flight.get(path) == Some(&data) => {
                    // The unacknowledged write landed: from now on it is the value to keep.
                    landed.push((path.clone(), data));
                }
                Ok((data, _)) => panic!(
                    "round {round}: acknowledged value of {path} lost: {:?} instead of {:?} \
                     (seed {seed})",
                    String::from_utf8_lossy(&data),
                    String::from_utf8_lossy(value)
                ),
                Err(e) => panic!("round {round}: acknowledged {path} missing: {e} (seed {seed})"),
            }
        }
        acked.extend(landed);
    }
    // Replay is deterministic: the digest survives a clean restart unchanged. First let the
    // sessions of killed rounds expire, so nothing changes the tree during the restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mntr = four_letters(port, "mntr").await.unwrap_or_default();
        if mntr.lines().any(|l| l == "zk_global_sessions\t0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions did not expire:\n{mntr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = four_letters(port, "hash").await.unwrap();
    server.stop();
    server.start();
    wait_serving(port, dir).await;
    let after = four_letters(port, "hash").await.unwrap();
    assert!(digest_of(&before).is_some(), "hash output: {before:?}");
    assert_eq!(
        digest_of(&before),
        digest_of(&after),
        "tree digest changed across a restart"
    );
    server.stop();
    // The rounds recovered from snapshots merged from the one before (most nodes copied
    // from it, not read from the tree), deltas over it among them, as well as from whole
    // ones.
    let merged = server
        .log()
        .lines()
        .filter_map(|l| {
            l.split_once(" nodes, ")?
                .1
                .split_once(" copied ")?
                .0
                .parse()
                .ok()
        })
        .filter(|&copied: &u64| copied > 0)
        .count();
    assert!(merged > 0, "no snapshot was merged from the previous one");
    // Merged snapshots are written as deltas over the previous file (a few in a row).
    let deltas = server
        .log()
        .lines()
        .filter(|l| l.contains(" copied by reference to "))
        .count();
    assert!(deltas > 0, "no snapshot was written as a delta");
    eprintln!(
        "{} acknowledged znodes checked over {rounds} kill -9 rounds ({merged} snapshots \
         merged, {deltas} of them deltas)",
        acked.len()
    );
}
