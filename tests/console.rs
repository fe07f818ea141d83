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
use support::webdriver::Browser;
use support::*;
use zookeeper_client as zk;

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

/// An in-process server with its AdminServer (and so the console) on a loopback port.
async fn start_with_console() -> TestServer {
    start_with(Config {
        admin_enable_server: true,
        admin_server_address: "127.0.0.1".into(),
        admin_server_port: 0,
        ..test_config()
    })
    .await
}

#[tokio::test]
async fn console_browses_a_znode_a_client_just_wrote() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let srv = start_with_console().await;
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

/// Kafka 2.8's registrations under `/kafka01`, written as its brokers and controller write
/// them (KafkaZkClient's JSON): two brokers (ephemeral), the controller, one topic with two
/// partitions, a reassignment in progress and a topic marked for deletion.
async fn kafka_znodes(c: &zk::Client) {
    let nodes: &[(&str, &str)] = &[
        ("/kafka01", ""),
        ("/kafka01/cluster", ""),
        (
            "/kafka01/cluster/id",
            r#"{"version":"1","id":"7rVJ5e-uQ2yZb3mW3Zq6tA"}"#,
        ),
        ("/kafka01/brokers", ""),
        ("/kafka01/brokers/ids", ""),
        ("/kafka01/brokers/topics", ""),
        (
            "/kafka01/brokers/topics/orders",
            r#"{"version":2,"partitions":{"1":[2,1],"0":[1,2]},"adding_replicas":{"1":[1]},"removing_replicas":{}}"#,
        ),
        ("/kafka01/brokers/topics/orders/partitions", ""),
        ("/kafka01/brokers/topics/orders/partitions/0", ""),
        (
            "/kafka01/brokers/topics/orders/partitions/0/state",
            r#"{"controller_epoch":3,"leader":1,"version":1,"leader_epoch":5,"isr":[1,2]}"#,
        ),
        ("/kafka01/brokers/topics/orders/partitions/1", ""),
        (
            "/kafka01/brokers/topics/orders/partitions/1/state",
            r#"{"controller_epoch":3,"leader":2,"version":1,"leader_epoch":2,"isr":[2]}"#,
        ),
        ("/kafka01/controller_epoch", "3"),
        ("/kafka01/admin", ""),
        ("/kafka01/admin/delete_topics", ""),
        ("/kafka01/admin/delete_topics/old-events", ""),
    ];
    for (path, data) in nodes {
        c.create(path, data.as_bytes(), &open()).await.unwrap();
    }
    for id in [1, 2] {
        let reg = format!(
            r#"{{"listener_security_protocol_map":{{"PLAINTEXT":"PLAINTEXT"}},"endpoints":["PLAINTEXT://127.0.0.1:{}"],"jmx_port":-1,"features":{{}},"host":"127.0.0.1","timestamp":"1796569041033","port":{},"version":5,"rack":"rack-{id}"}}"#,
            9091 + id,
            9091 + id
        );
        c.create(
            &format!("/kafka01/brokers/ids/{id}"),
            reg.as_bytes(),
            &ephemeral(),
        )
        .await
        .unwrap();
    }
    c.create(
        "/kafka01/controller",
        br#"{"version":1,"brokerid":2,"timestamp":"1796569041100"}"#,
        &ephemeral(),
    )
    .await
    .unwrap();
}

/// Logs the console in as digest `user:password` and waits until the header shows it.
async fn log_in(b: &Browser, user_password: &str) {
    b.fill("#login", user_password).await;
    b.click("#login-button").await;
    let user = user_password.split(':').next().unwrap();
    b.wait_text("#who", &format!("digest {user}")).await;
}

/// The console as an operator uses it, in Chromium through WebDriver: a digest login reads
/// a znode the anonymous view cannot, sets its data, creates and deletes a child (each
/// checked with a client), another user's edit is refused by the ACL; the sessions view
/// lists a client's session with its ephemeral; the Kafka view shows the brokers, the
/// controller and the topics; the live plots count the requests. Screenshots of each view
/// go to `target/tmp/console/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logs_in_edits_and_shows_sessions_and_kafka() {
    tokio::time::timeout(Duration::from_secs(170), async {
        let srv = start_with_console().await;
        let anon = client(&srv).await;
        let alice = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(20))
            .with_auth("digest", b"alice:secret")
            .connect(&connect_string(srv.local_addr))
            .await
            .unwrap();
        alice.create("/team", b"", &open()).await.unwrap();
        let only_alice = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        alice
            .create("/team/secret", b"s3cret", &only_alice)
            .await
            .unwrap();
        anon.create("/app", b"", &open()).await.unwrap();
        anon.create("/app/lock-1", b"", &ephemeral()).await.unwrap();
        kafka_znodes(&anon).await;
        let admin: SocketAddr = srv.server.http.admin.unwrap();
        let base = format!("http://{admin}/console");
        let shots = screenshot_dir();

        let b = Browser::start().await;
        b.goto(&format!("{base}#/team/secret")).await;
        b.wait_text("#znode-error", "NoAuth").await;
        assert_eq!(b.text("#data").await, "");

        // Alice logs in: the same znode reads, and it can be changed.
        log_in(&b, "alice:secret").await;
        b.wait_text("#data", "s3cret").await;
        b.wait_text("#acl", "digest:alice:").await;
        b.fill("#edit-data", "rotated").await;
        b.click("#set").await;
        b.wait_text("#edit-result", "set /team/secret: done").await;
        let (data, stat) = alice.get_data("/team/secret").await.unwrap();
        assert_eq!((data.as_slice(), stat.version), (&b"rotated"[..], 1));
        b.wait_text("#edit-version", "1").await;
        // A stale version is refused as a client's would be.
        let answer = http_with(
            admin,
            "POST",
            "/console/api/edit",
            &[
                ("Authorization", "digest alice:secret"),
                ("Content-Type", "application/json"),
            ],
            r#"{"op":"set","path":"/team/secret","data":"x","version":0}"#,
        )
        .await
        .unwrap();
        assert_eq!(answer.json()["error"], "BadVersion", "{}", answer.body);

        b.fill("#child-name", "child").await;
        b.select("#child-acl", "creator").await;
        b.click("#create").await;
        b.wait_text("#edit-result", "create /team/secret/child: done")
            .await;
        let (acl, _) = alice.get_acl("/team/secret/child").await.unwrap();
        assert_eq!(acl.len(), 1);
        assert_eq!(acl[0].scheme(), "digest");
        assert!(acl[0].id().starts_with("alice:"), "{acl:?}");
        assert_eq!(
            anon.get_data("/team/secret/child").await.unwrap_err(),
            zk::Error::NoAuth
        );
        b.screenshot(&shots.join("edit.png")).await;
        // The page moved to the new child: delete it.
        b.wait_text("#crumbs", "child").await;
        b.click("#delete").await;
        b.wait_text("#edit-result", "delete /team/secret/child: done")
            .await;
        assert!(alice
            .check_stat("/team/secret/child")
            .await
            .unwrap()
            .is_none());

        // Another user: the ACL refuses both the read and the edit.
        b.click("#logout").await;
        log_in(&b, "mallory:guess").await;
        b.wait_text("#znode-error", "NoAuth").await;
        b.fill("#edit-data", "owned").await;
        b.click("#set").await;
        b.wait_text("#edit-result", "NoAuth").await;
        let (data, _) = alice.get_data("/team/secret").await.unwrap();
        assert_eq!(data, b"rotated");

        // Sessions: the anonymous client's session, its ephemeral, where it connects from.
        let sid = format!("0x{:x}", anon.session().id().0 as u64);
        b.click("nav a[data-view=sessions]").await;
        let row = format!("tr[data-session=\"{sid}\"]");
        let text = b.wait_text(&row, "/app/lock-1").await;
        assert!(text.contains("127.0.0.1:"), "{text}");
        b.screenshot(&shots.join("sessions.png")).await;

        // Kafka: found under /kafka01 without being told.
        b.click("nav a[data-view=kafka]").await;
        b.wait_text("#kafka-brokers", "PLAINTEXT://127.0.0.1:9093")
            .await;
        let brokers = b.text("#kafka-brokers").await;
        assert!(brokers.contains("PLAINTEXT://127.0.0.1:9092"), "{brokers}");
        assert!(brokers.contains("rack-2"), "{brokers}");
        let controller = b.text("tr[data-broker=\"2\"]").await;
        assert!(controller.contains("controller"), "{controller}");
        assert!(b
            .text("#kafka-controller")
            .await
            .contains("broker 2, epoch 3"));
        let topics = b.text("#kafka-topics").await;
        // orders-0: replicas 1,2, leader 1, isr 1,2; orders-1 is gaining replica 1.
        assert!(topics.contains("orders 0 1,2 1 1,2"), "{topics}");
        assert!(topics.contains("1 2,1 2 2 +1"), "{topics}");
        assert!(b.text("#kafka-deleting").await.contains("old-events"));
        assert!(b
            .text("#kafka-cluster")
            .await
            .contains("7rVJ5e-uQ2yZb3mW3Zq6tA"));
        b.screenshot(&shots.join("kafka.png")).await;

        // Live: reads made now show up as reads per second on the next polls.
        b.click("nav a[data-view=overview]").await;
        // Search by path prefix, then open a result.
        b.fill("#prefix", "/kafka01/brokers/topics/or").await;
        b.click("#search").await;
        let found = b
            .wait_text(
                "#found",
                "/kafka01/brokers/topics/orders/partitions/1/state",
            )
            .await;
        assert!(!found.contains("/kafka01/brokers/ids"), "{found}");
        b.click("#found li:nth-child(1) a").await;
        b.wait_text("#crumbs", "topics / orders").await;
        b.wait_text("#children", "partitions").await;
        for _ in 0..3 {
            for _ in 0..200 {
                anon.get_data("/app").await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        let t0 = std::time::Instant::now();
        while b.eval("return Math.max(0, ...series.reads)").await.as_f64() < Some(50.0) {
            assert!(t0.elapsed() < Duration::from_secs(10), "no reads plotted");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        b.screenshot(&shots.join("overview.png")).await;
        drop(b);
        srv.shutdown().await;
    })
    .await
    .expect("test time bound");
}

/// The console's edit endpoint over plain HTTP: it needs a digest login and a JSON body
/// (so a web page elsewhere cannot post to it without a CORS preflight, never granted),
/// and a malformed login is refused on the read endpoints too.
#[tokio::test]
async fn console_edits_need_a_login_and_json() {
    bounded(async {
        let srv = start_with_console().await;
        let admin: SocketAddr = srv.server.http.admin.unwrap();
        let body = r#"{"op":"create","path":"/x","data":"1"}"#;
        let json = ("Content-Type", "application/json");
        let r = http_with(admin, "POST", "/console/api/edit", &[json], body)
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("digest"));
        let login = ("Authorization", "digest bob:pw");
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        let r = http_with(admin, "POST", "/console/api/edit", &[login, form], body)
            .await
            .unwrap();
        assert_eq!(r.status, 415, "{}", r.body);
        let r = http_with(admin, "POST", "/console/api/edit", &[login, json], "{")
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{}", r.body);
        let bad = ("Authorization", "Basic Ym9iOnB3");
        let r = http_with(admin, "GET", "/console/api/znode?path=/", &[bad], "")
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{}", r.body);
        let c = client(&srv).await;
        assert!(c.check_stat("/x").await.unwrap().is_none());
        // The one accepted form makes the znode, as the client sees it.
        let r = http_with(admin, "POST", "/console/api/edit", &[login, json], body)
            .await
            .unwrap();
        assert_eq!(r.json()["error"], serde_json::Value::Null, "{}", r.body);
        assert_eq!(c.get_data("/x").await.unwrap().0, b"1");
        // Other methods stay refused everywhere else.
        let r = http_with(admin, "POST", "/console/api/znode", &[login, json], body)
            .await
            .unwrap();
        assert_eq!(r.status, 405);
        srv.shutdown().await;
    })
    .await;
}
