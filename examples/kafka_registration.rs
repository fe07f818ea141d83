//! The ZooKeeper traffic of a Kafka 2.8 broker start-up, against an in-process keeperd:
//! chroot creation, persistent top-level paths, checked-ephemeral broker registration via
//! multi, and controller election fenced by /controller_epoch.
//!
//! ```text
//! cargo run --example kafka_registration
//! ```

use std::time::Duration;

use keeperd::config::Config;
use zookeeper_client as zk;

async fn ensure(client: &zk::Client, path: &str) -> Result<(), zk::Error> {
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.create(path, b"", &open).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e),
    }
}

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
    let base = format!("127.0.0.1:{}", server.local_addr.port());

    // Kafka first creates its chroot without the chroot in the connect string.
    let bootstrap = zk::Client::connect(&base).await?;
    ensure(&bootstrap, "/kafka01").await?;
    drop(bootstrap);

    let broker = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(18))
        .connect(&format!("{base}/kafka01"))
        .await?;
    for p in [
        "/brokers",
        "/brokers/ids",
        "/brokers/topics",
        "/config",
        "/config/changes",
    ] {
        ensure(&broker, p).await?;
    }

    // Registration: multi[create ephemeral with null data, setData payload version 0].
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let payload =
        br#"{"endpoints":["PLAINTEXT://host1:9092"],"host":"host1","port":9092,"version":5}"#;
    let mut m = broker.new_multi_writer();
    m.add_create("/brokers/ids/1", b"", &ephemeral)?;
    m.add_set_data("/brokers/ids/1", payload, Some(0))?;
    let results = m.commit().await?;
    if let zk::MultiWriteResult::SetData { stat } = &results[1] {
        println!("broker 1 registered, broker epoch (czxid) = {}", stat.czxid);
    }

    // Controller election fenced by the epoch's version.
    ensure(&broker, "/controller_epoch").await?;
    let (_, epoch_stat) = broker.get_data("/controller_epoch").await?;
    let mut m = broker.new_multi_writer();
    m.add_create("/controller", br#"{"version":1,"brokerid":1}"#, &ephemeral)?;
    m.add_set_data("/controller_epoch", b"1", Some(epoch_stat.version))?;
    m.commit().await?;
    println!("broker 1 is the controller");
    println!(
        "/brokers/ids -> {:?}",
        broker.list_children("/brokers/ids").await?
    );

    drop(broker);
    server.shutdown().await;
    Ok(())
}
