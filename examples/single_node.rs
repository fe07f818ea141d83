//! Starts a standalone keeperd on a free loopback port, talks to it with a real ZooKeeper
//! client, prints what it saw, and stops.
//!
//! ```text
//! cargo run --example single_node
//! ```

use std::time::Duration;

use keeperd::config::Config;
use zookeeper_client as zk;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let config = Config {
        client_port: 0,
        client_port_address: Some([127, 0, 0, 1].into()),
        data_dir: data.path().to_path_buf(),
        ..Config::default()
    };
    let server = keeperd::server::start(config).await?;
    let addr = format!("127.0.0.1:{}", server.local_addr.port());
    println!("keeperd listening on {addr}");

    let client = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&addr)
        .await?;
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let (stat, _) = client.create("/hello", b"world", &open).await?;
    println!("created /hello at zxid 0x{:x}", stat.czxid);
    let (data, stat) = client.get_data("/hello").await?;
    println!(
        "get /hello -> {:?} (version {}, dataLength {})",
        String::from_utf8_lossy(&data),
        stat.version,
        stat.data_length
    );
    println!("ls / -> {:?}", client.list_children("/").await?);
    drop(client);
    server.shutdown().await;
    Ok(())
}
