//! `keeperctl bench` against a real keeperd: every workload for about a second, then the
//! counts it printed are checked against the server's state, read with the
//! `zookeeper-client` crate: acknowledged creates are the znodes that exist, acknowledged
//! setData operations are the versions the keys advanced by, churned ephemerals are gone,
//! and an open-loop run sends at the rate asked for.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{connect, standalone, Ready, KEEPERCTL};
use zookeeper_client as zk;

/// Bound on one keeperctl bench run (8 one-second workloads plus set-up and drain).
const BENCH_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `keeperctl -server addr bench ARGS` and returns its JSON lines by workload name.
fn bench(addr: &str, args: &[&str]) -> Vec<Value> {
    let mut child = Command::new(KEEPERCTL)
        .args(["-server", addr, "bench"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > BENCH_DEADLINE {
            let _ = child.kill();
            panic!("keeperctl bench ran longer than {BENCH_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "keeperctl bench failed: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect()
}

fn by_name<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["workload"] == name)
        .unwrap_or_else(|| panic!("no {name} line in {lines:?}"))
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// Sum of the data versions of the children of `parent`, and how many there are.
async fn versions(client: &zk::Client, parent: &str) -> (u64, u64) {
    let names = client.list_children(parent).await.unwrap();
    let mut sum = 0u64;
    for chunk in names.chunks(512) {
        let stats = chunk.iter().map(|n| {
            let path = format!("{parent}/{n}");
            let client = client.clone();
            async move { client.check_stat(&path).await.unwrap().unwrap().version }
        });
        for v in join_all(stats).await {
            sum += v as u64;
        }
    }
    (sum, names.len() as u64)
}

async fn join_all<F: std::future::Future + Send + 'static>(
    futs: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_counts_match_the_servers_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = standalone(dir.path(), &dir.path().join("data"), "");
    node.start();
    node.wait_ready_blocking(Ready::Serving, Duration::from_secs(20));
    let addr = node.addr();

    let a = addr.clone();
    let lines = tokio::task::spawn_blocking(move || {
        bench(
            &a,
            &[
                "--seconds",
                "1",
                "--sessions",
                "4",
                "--window",
                "8",
                "--children",
                "2000",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(lines.len(), 8, "{lines:?}");
    for l in &lines {
        assert_eq!(count(l, "error_count"), 0, "{l}");
        assert!(count(l, "ok") > 0, "{l}");
        assert!(l["latency_ms"]["p50"].as_f64().unwrap() > 0.0 || l["workload"] == "watch");
    }
    let base = lines[0]["base"].as_str().unwrap().to_string();
    let client = connect(&addr, Duration::from_secs(10)).await;

    // Every acknowledged create exists, and nothing else.
    let create = by_name(&lines, "create");
    let (key_versions, keys) = versions(&client, &format!("{base}/k")).await;
    assert_eq!(keys, count(create, "ok"));
    assert_eq!(keys, count(create, "created"));

    // Each multi created one node and set one key's data.
    let multi = by_name(&lines, "multi");
    let (_, multis) = versions(&client, &format!("{base}/m")).await;
    assert_eq!(multis, count(multi, "ok"));

    // setData, the mix, multi and watch all wrote the created keys: the versions add up.
    let set_data: u64 = lines.iter().map(|l| count(l, "set_data_acked")).sum();
    assert_eq!(
        count(by_name(&lines, "setData"), "set_data_acked"),
        count(by_name(&lines, "setData"), "ok")
    );
    assert!(count(by_name(&lines, "mix"), "set_data_acked") > 0);
    assert_eq!(key_versions, set_data);

    // Churned sessions were closed, so their ephemerals are gone.
    let (_, ephemerals) = versions(&client, &format!("{base}/e")).await;
    assert_eq!(ephemerals, 0);
    assert_eq!(
        client
            .list_children(&format!("{base}/c"))
            .await
            .unwrap()
            .len(),
        2000
    );

    // Open loop: 2,000 ops/s for a second sends about 2,000 requests, not as many as fit.
    let a = addr.clone();
    let open = tokio::task::spawn_blocking(move || {
        bench(
            &a,
            &[
                "--workloads",
                "getData",
                "--seconds",
                "1",
                "--rate",
                "2000",
                "--keys",
                "100",
            ],
        )
    })
    .await
    .unwrap();
    let ok = count(&open[0], "ok");
    assert_eq!(open[0]["mode"], "open");
    assert!((1900..=2000).contains(&ok), "open loop did {ok} ops");
    node.stop();
}
