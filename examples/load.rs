//! Fills any ZooKeeper-compatible server with N znodes of a fixed value size, pipelining
//! creates, and prints the rate. Used to compare keeperd with ZooKeeper 3.8 on the same data
//! (memory, restart time); see scripts/bench-memory.
//!
//! ```text
//! cargo run --release --example load -- HOST:PORT COUNT [VALUE_BYTES] [IN_FLIGHT]
//! ```
//! Znodes go to /load/PPPP/CCCCC (1000 children per parent).

use std::time::{Duration, Instant};

use futures_like::join_all_bounded;
use zookeeper_client as zk;

mod futures_like {
    use std::future::Future;

    /// Runs the futures from `iter` with at most `limit` in flight; fails fast.
    pub async fn join_all_bounded<F, E>(
        iter: impl Iterator<Item = F>,
        limit: usize,
    ) -> Result<(), E>
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for fut in iter {
            if set.len() >= limit {
                if let Some(r) = set.join_next().await {
                    r.expect("task")?;
                }
            }
            set.spawn(fut);
        }
        while let Some(r) = set.join_next().await {
            r.expect("task")?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: load HOST:PORT COUNT [VALUE_BYTES] [IN_FLIGHT]");
        std::process::exit(2);
    }
    let addr = &args[1];
    let count: usize = args[2].parse()?;
    let value_len: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let in_flight: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .with_server_version(3, 8, 0)
        .connect(addr)
        .await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ensure = |c: zk::Client, p: String| async move {
        match c
            .create(
                &p,
                b"",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await
        {
            Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
            Err(e) => Err(e),
        }
    };
    ensure(client.clone(), "/load".into()).await?;
    let parents = count.div_ceil(1000);
    join_all_bounded(
        (0..parents).map(|p| ensure(client.clone(), format!("/load/{p:04}"))),
        in_flight,
    )
    .await?;
    let value = vec![b'x'; value_len];
    let started = Instant::now();
    join_all_bounded(
        (0..count).map(|i| {
            let c = client.clone();
            let v = value.clone();
            let o = open.clone();
            async move {
                let path = format!("/load/{:04}/{:05}", i / 1000, i % 1000);
                match c.create(&path, &v, &o).await {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }),
        in_flight,
    )
    .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "created {count} znodes of {value_len} bytes in {secs:.1} s ({:.0} creates/s)",
        count as f64 / secs
    );
    Ok(())
}
