//! The web console in headless Chromium (Debian's `chromium`, installed by scripts/setup):
//! the page loads from the binary, the znode browser shows a znode a client just wrote, and
//! the ensemble view marks a stopped member. Each run saves screenshots under
//! `target/tmp/console/` (`CARGO_TARGET_TMPDIR`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keeperd::config::Config;
use support::*;

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium missing: run scripts/setup (Debian's chromium package)")
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with a fresh profile; `--dump-dom` prints the DOM after
/// the page's scripts ran for `budget_ms` of virtual time (their fetches included).
async fn chromium_run(url: &str, mode: &[String], budget_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,1100",
        &format!("--virtual-time-budget={budget_ms}"),
        &format!("--user-data-dir={}", profile.path().display()),
    ]);
    cmd.args(mode).arg(url);
    let out = tokio::task::spawn_blocking(move || {
        let child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("chromium starts");
        child.wait_with_output().expect("chromium ends")
    });
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("chromium finished within 60 s")
        .unwrap();
    drop(profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn dom(url: &str) -> String {
    chromium_run(url, &["--dump-dom".to_string()], 3000).await
}

async fn screenshot(url: &str, name: &str) -> PathBuf {
    let path = screenshot_dir().join(name);
    let _ = std::fs::remove_file(&path);
    chromium_run(url, &[format!("--screenshot={}", path.display())], 3000).await;
    assert!(path.exists(), "no screenshot at {}", path.display());
    path
}

#[tokio::test]
async fn console_browses_a_znode_a_client_just_wrote() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let srv = start_with(Config {
            admin_enable_server: true,
            admin_server_address: "127.0.0.1".into(),
            admin_server_port: 0,
            ..test_config()
        })
        .await;
        let c = client(&srv).await;
        c.create("/app", b"", &open()).await.unwrap();
        c.create("/app/settings", br#"{"replicas":3,"zone":"eu-1"}"#, &open())
            .await
            .unwrap();
        c.create("/app/lock-0001", b"", &ephemeral()).await.unwrap();
        let admin: SocketAddr = srv.server.http.admin.unwrap();
        let base = format!("http://{admin}/console");

        let page = dom(&format!("{base}#/app")).await;
        assert!(page.contains(">settings</a>"), "children of /app:\n{page}");
        assert!(page.contains(">lock-0001</a>"), "children of /app:\n{page}");
        assert!(page.contains("(2)"), "child count:\n{page}");
        // The ensemble view: this standalone server, up.
        assert!(page.contains("data-state=\"up\""), "ensemble row:\n{page}");
        assert!(page.contains(">standalone<"), "mode:\n{page}");
        // Live figures from /commands/monitor.
        let znodes = &mntr(srv.local_addr.port()).await["zk_znode_count"];
        assert!(
            page.contains(&format!("znodes {znodes} ")),
            "live line:\n{page}"
        );

        let page = dom(&format!("{base}#/app/settings")).await;
        assert!(
            page.contains("{\"replicas\":3,\"zone\":\"eu-1\"}"),
            "data:\n{page}"
        );
        assert!(page.contains("world:anyone cdrwa"), "acl:\n{page}");

        screenshot(&format!("{base}#/app/settings"), "znode.png").await;
        srv.shutdown().await;
    })
    .await
    .expect("test time bound");
}

#[tokio::test]
async fn console_marks_a_stopped_member() {
    tokio::time::timeout(Duration::from_secs(150), async {
        // Server lines with client addresses (`;127.0.0.1:port`): the members' client
        // ports differ here, and the console finds each member's there.
        let mut cluster = Cluster::prepare(3, "");
        let a1 = free_port();
        let mut servers = String::new();
        for (i, (q, e, c)) in cluster.ports.iter().enumerate() {
            servers.push_str(&format!(
                "server.{}=127.0.0.1:{q}:{e};127.0.0.1:{c}\n",
                i + 1
            ));
        }
        for id in 1..=3u64 {
            let admin = if id == 1 {
                format!("admin.serverAddress=127.0.0.1\nadmin.serverPort={a1}\n")
            } else {
                "admin.enableServer=false\n".to_string()
            };
            let node = &cluster.nodes[(id - 1) as usize];
            std::fs::write(
                node.dir.join("zoo.cfg"),
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                     clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{admin}{servers}",
                    cluster.data_dir(id).display(),
                    node.client_port
                ),
            )
            .unwrap();
            cluster.node(id).start();
        }
        cluster.wait_leader(Duration::from_secs(30)).await;
        let base = format!("http://127.0.0.1:{a1}/console");
        let page = dom(&base).await;
        for id in 1..=3 {
            assert!(
                page.contains(&format!("data-member=\"{id}\" data-state=\"up\"")),
                "member {id} up:\n{page}"
            );
        }
        assert!(page.contains(">leader<"), "a leader row:\n{page}");
        screenshot(&base, "ensemble.png").await;

        cluster.node(3).kill9();
        let t0 = std::time::Instant::now();
        let page = dom(&base).await;
        assert!(
            page.contains("data-member=\"3\" data-state=\"down\""),
            "member 3 down:\n{page}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "marked down after {:?}",
            t0.elapsed()
        );
        screenshot(&base, "ensemble-member-down.png").await;
    })
    .await
    .expect("test time bound");
}
