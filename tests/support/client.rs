//! Sessions of the `zookeeper-client` crate against the servers under test, and the create
//! options the tests use.

use std::time::{Duration, Instant};

use zookeeper_client as zk;

/// How long [`connect`] retries while the servers start.
pub const CONNECT_RETRY: Duration = Duration::from_secs(20);

/// A connector asking for `session_timeout`, telling the client it talks to ZooKeeper 3.8.0
/// (what keeperd answers as).
pub fn connector(session_timeout: Duration) -> zk::Connector {
    zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_server_version(3, 8, 0)
}

/// One attempt to get a session from `addr` (a connect string).
pub async fn try_connect(addr: &str, session_timeout: Duration) -> Result<zk::Client, zk::Error> {
    connector(session_timeout).connect(addr).await
}

/// A client of `addr` with `session_timeout`, retrying for [`CONNECT_RETRY`] while the
/// servers start.
pub async fn connect(addr: &str, session_timeout: Duration) -> zk::Client {
    let deadline = Instant::now() + CONNECT_RETRY;
    loop {
        match try_connect(addr, session_timeout).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A persistent node anyone may do anything with.
pub fn open() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// An ephemeral node anyone may do anything with.
pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}
