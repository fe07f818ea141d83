//! An in-process keeperd on a loopback port with its own temporary dataDir, a connected
//! client for it, and the time bounds of the tests that use it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use keeperd::config::{Config, Whitelist};
use keeperd::server::RunningServer;
use zookeeper_client as zk;

use super::client::try_connect;

/// Every test's own time bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn test_config() -> Config {
    Config {
        client_port: 0,
        client_port_address: Some([127, 0, 0, 1].into()),
        tick_time_ms: 100,
        min_session_timeout_ms: 200,
        max_session_timeout_ms: 10_000,
        four_letter_whitelist: Whitelist::All,
        // Tests that want the AdminServer turn it on with port 0; the default (on, 8080)
        // would have every in-process server race for one port.
        admin_enable_server: false,
        ..Config::default()
    }
}

/// An in-process server with its own temporary dataDir (removed when dropped).
pub struct TestServer {
    pub local_addr: SocketAddr,
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Stops the server and starts a new one on the same dataDir and config.
    pub async fn restart(self) -> TestServer {
        let config = self.server.shared.config().clone();
        self.server.shutdown().await;
        let server = keeperd::server::start(config)
            .await
            .expect("server restarts");
        TestServer {
            local_addr: server.local_addr,
            server,
            dir: self.dir,
        }
    }
}

pub async fn start() -> TestServer {
    start_with(test_config()).await
}

pub async fn start_with(mut config: Config) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    config.data_dir = dir.path().join("data");
    let server = keeperd::server::start(config).await.expect("server starts");
    TestServer {
        local_addr: server.local_addr,
        server,
        dir,
    }
}

pub fn connect_string(addr: SocketAddr) -> String {
    format!("127.0.0.1:{}", addr.port())
}

/// A client of `srv` with a 5 s session (one attempt: the server is up).
pub async fn client(srv: &TestServer) -> zk::Client {
    try_connect(&connect_string(srv.local_addr), Duration::from_secs(5))
        .await
        .expect("client connects")
}

/// Runs a test body under the global time bound.
pub async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("test exceeded its time bound");
}

/// Waits (bounded) until `cond` holds, polling.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
