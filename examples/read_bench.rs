//! Read latency and throughput of one client against one server of any ZooKeeper-compatible
//! ensemble: COUNT getData of one 100-byte znode one at a time (latency percentiles), then
//! COUNT more with IN_FLIGHT outstanding on the same session (throughput). Used to measure
//! what `keeperd.linearizableReads=true` costs (README.md, "Measured").
//!
//! ```text
//! cargo run --release --example read_bench -- HOST:PORT [COUNT] [IN_FLIGHT]
//! ```
//! Creates /read-bench if it is missing.

use std::time::{Duration, Instant};

use zookeeper_client as zk;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: read_bench HOST:PORT [COUNT] [IN_FLIGHT]");
        std::process::exit(2);
    }
    let addr = &args[1];
    let count: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let in_flight: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .with_server_version(3, 8, 0)
        .connect(addr)
        .await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.create("/read-bench", &[b'x'; 100], &open).await {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e.into()),
    }
    client.sync("/read-bench").await?;

    let mut lat = Vec::with_capacity(count);
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        client.get_data("/read-bench").await?;
        lat.push(t.elapsed());
    }
    let sequential = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "sequential: {count} getData in {:.2} s = {:.0}/s; latency p50 {:?} p99 {:?} max {:?}",
        sequential.as_secs_f64(),
        count as f64 / sequential.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );

    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        if set.len() >= in_flight {
            if let Some(r) = set.join_next().await {
                r??;
            }
        }
        let c = client.clone();
        set.spawn(async move { c.get_data("/read-bench").await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let pipelined = start.elapsed();
    println!(
        "pipelined: {count} getData, {in_flight} in flight, in {:.2} s = {:.0}/s",
        pipelined.as_secs_f64(),
        count as f64 / pipelined.as_secs_f64()
    );
    Ok(())
}
