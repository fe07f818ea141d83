//! setData throughput and latency, and the longest stall a client sees meanwhile.
//!
//! SESSIONS sessions each keep WINDOW setData requests of VALUE_BYTES outstanding on random
//! znodes among the first KEYS that `examples/load.rs` created (/load/PPPP/CCCCC), for SECONDS.
//! Meanwhile two probes run one request at a time on their own sessions: a setData writer and
//! a getData reader. With snapCount below the number of writes, the server writes snapshots
//! during the run, and the probes' max latency is the longest pause a snapshot caused.
//!
//! ```text
//! cargo run --release --example load -- HOST:PORT KEYS
//! cargo run --release --example setdata -- HOST:PORT KEYS [SECONDS] [SESSIONS] [WINDOW] [VALUE_BYTES]
//! ```
//! Prints ops/s, the load's latency percentiles (p50/p99/p99.9/max), and for each probe its
//! count, p99, max and how many requests took over 50 ms.

use std::time::{Duration, Instant};

use zookeeper_client as zk;

async fn connect(addr: &str) -> Result<zk::Client, zk::Error> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .with_server_version(3, 8, 0)
        .connect(addr)
        .await
}

fn key(i: usize) -> String {
    format!("/load/{:04}/{:05}", i / 1000, i % 1000)
}

/// A small xorshift generator: the keys need to be spread, not unpredictable.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn summary(name: &str, lat: &mut [Duration], secs: f64) {
    if lat.is_empty() {
        println!("{name}: no requests");
        return;
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let slow = lat
        .iter()
        .filter(|d| **d > Duration::from_millis(50))
        .count();
    println!(
        "{name}: {} ops in {secs:.1} s = {:.0} ops/s; latency ms p50 {:.2} p99 {:.2} \
         p99.9 {:.2} max {:.2}; {slow} over 50 ms",
        lat.len(),
        lat.len() as f64 / secs,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(pct(0.999)),
        ms(lat[lat.len() - 1]),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: setdata HOST:PORT KEYS [SECONDS] [SESSIONS] [WINDOW] [VALUE_BYTES]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let keys: usize = args[2].parse()?;
    let arg = |i: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        args.get(i)
            .map(|s| s.parse())
            .transpose()
            .map(|v| v.unwrap_or(default))
    };
    let secs = arg(3, 10)?;
    let sessions = arg(4, 8)? as usize;
    let window = arg(5, 16)? as usize;
    let value = vec![b'v'; arg(6, 128)? as usize];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();

    let mut load = tokio::task::JoinSet::new();
    for s in 0..sessions {
        let client = connect(&addr).await?;
        let value = value.clone();
        load.spawn(async move {
            let mut lat = Vec::new();
            let mut set = tokio::task::JoinSet::new();
            let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (s as u64 + 1);
            while Instant::now() < deadline {
                while set.len() < window {
                    let c = client.clone();
                    let v = value.clone();
                    let path = key(next(&mut rng) as usize % keys);
                    set.spawn(async move {
                        let t = Instant::now();
                        c.set_data(&path, &v, None).await.map(|_| t.elapsed())
                    });
                }
                if let Some(r) = set.join_next().await {
                    lat.push(r.expect("task")?);
                }
            }
            while let Some(r) = set.join_next().await {
                lat.push(r.expect("task")?);
            }
            Ok::<_, zk::Error>(lat)
        });
    }
    let writer = connect(&addr).await?;
    let reader = connect(&addr).await?;
    let probe_value = value.clone();
    let write_probe = tokio::spawn(async move {
        let mut lat = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            writer.set_data(&key(0), &probe_value, None).await?;
            lat.push(t.elapsed());
            if t.elapsed() > Duration::from_millis(50) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                eprintln!(
                    "probe setData took {:?}, done at unix {:.3}",
                    t.elapsed(),
                    now.as_secs_f64()
                );
            }
        }
        Ok::<_, zk::Error>(lat)
    });
    let read_probe = tokio::spawn(async move {
        let mut lat = Vec::new();
        while Instant::now() < deadline {
            let t = Instant::now();
            reader.get_data(&key(1)).await?;
            lat.push(t.elapsed());
            // 1 ms resolution without flooding the server with reads.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok::<_, zk::Error>(lat)
    });

    let mut all = Vec::new();
    while let Some(r) = load.join_next().await {
        all.extend(r.expect("task")?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    summary(&format!("setData {sessions}x{window}"), &mut all, elapsed);
    summary("probe setData", &mut write_probe.await??, elapsed);
    summary("probe getData", &mut read_probe.await??, elapsed);
    Ok(())
}
