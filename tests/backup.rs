//! Online backup and restore: `keeperctl snapshot save` through the AdminServer's
//! `snapshot` command while a writer runs, refused without the right identity and past the
//! rate limit; `keeperd restore` of the file into three empty dataDirs; the 3-node ensemble
//! started from them serves exactly the backup's znodes (to the Rust client, and to
//! ZooKeeper's zkCli.sh); a corrupt or truncated backup, or a dataDir in use, is refused.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use zookeeper_client as zk;

const LIMIT: Duration = Duration::from_secs(120);

/// `user:base64(sha1(user:password))`, as ZooKeeper's DigestAuthenticationProvider.
fn digest_of(user_password: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let user = user_password.split(':').next().unwrap();
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

fn keeperctl(args: &[&str]) -> std::process::Output {
    Command::new(KEEPERCTL).args(args).output().unwrap()
}

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn restore(dir: &Path, file: &Path) -> std::process::Output {
    Command::new(KEEPERD)
        .current_dir(dir)
        .arg("restore")
        .arg(file)
        .arg("zoo.cfg")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_into_an_ensemble_that_serves_it() {
    tokio::time::timeout(LIMIT, run())
        .await
        .expect("test timed out");
}

async fn run() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    std::fs::write(
        tmp.path().join("zoo.cfg"),
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n\
             admin.snapshot.intervalInMS=60000\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    let _server = Server(
        Command::new(KEEPERD)
            .arg("start-foreground")
            .arg(tmp.path().join("zoo.cfg"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_serving(port, tmp.path()).await;
    let addr = format!("127.0.0.1:{port}");
    let client = connect(&addr, Duration::from_secs(10)).await;
    client.create("/backup", b"root", &open()).await.unwrap();
    for i in 0..200 {
        let data = format!("value-{i}-{}", "x".repeat(i % 50));
        client
            .create(&format!("/backup/k{i:03}"), data.as_bytes(), &open())
            .await
            .unwrap();
    }
    // Only alice may take backups: ALL on / for her, READ for everyone else.
    client.auth("digest", b"alice:pw").await.unwrap();
    let acl = vec![
        zk::Acl::new(
            zk::Permission::ALL,
            zk::AuthId::new("digest", &digest_of("alice:pw")),
        ),
        zk::Acl::new(zk::Permission::READ, zk::AuthId::new("world", "anyone")),
    ];
    client.set_acl("/", &acl, None).await.unwrap();

    // A writer keeps going while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            let c = connect(&addr, Duration::from_secs(10)).await;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let path = format!("/backup/k{:03}", n % 200);
                c.set_data(&path, format!("load-{n}").as_bytes(), None)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let file = tmp.path().join("backup.snap");
    let file_s = file.to_str().unwrap();
    let admin_s = format!("127.0.0.1:{admin}");
    let base = ["-server", addr.as_str(), "-admin", admin_s.as_str()];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        keeperctl(&a)
    };
    let none = with(&["snapshot", "save", file_s]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("--auth digest"));
    let bob = with(&["--auth", "digest:bob:pw", "snapshot", "save", file_s]);
    assert!(!bob.status.success());
    assert!(
        String::from_utf8_lossy(&bob.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&bob.stderr)
    );
    assert!(!file.exists(), "a refused backup wrote a file");
    let alice = with(&["--auth", "digest:alice:pw", "snapshot", "save", file_s]);
    let out = String::from_utf8_lossy(&alice.stdout);
    assert!(
        alice.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    assert!(
        out.contains("saved") && out.contains("last zxid 0x"),
        "{out}"
    );
    let again = with(&["--auth", "digest:alice:pw", "snapshot", "save", file_s]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("429"),
        "rate limit: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes > 0);

    // What the backup holds, read by keeperd's own dump of the file.
    let dump = Command::new(KEEPERD)
        .args(["dump-snapshot", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(dump.status.success());
    let mut expected = std::collections::BTreeMap::new();
    for line in String::from_utf8(dump.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(path) = v["node"].as_str().filter(|p| p.starts_with("/backup")) {
            expected.insert(
                path.to_string(),
                v["data"]["text"].as_str().unwrap_or("").to_string(),
            );
        }
    }
    assert_eq!(expected.len(), 201);

    // Corrupt and truncated copies are refused, the dataDir left empty.
    let bytes = std::fs::read(&file).unwrap();
    let mut cluster = Cluster::prepare(3, "");
    cluster.write_members_cfg(1, &[1, 2, 3]);
    let n1 = cluster.nodes[0].dir.clone();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for (name, bad) in [
        ("flipped", flipped),
        ("cut", bytes[..bytes.len() - 7].to_vec()),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bad).unwrap();
        let out = restore(&n1, &path);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} restored");
        assert!(err.contains("restore:"), "{name}: {err}");
        assert!(
            !cluster.data_dir(1).join("version-2").exists(),
            "{name}: {err}"
        );
    }

    for id in 1..=3 {
        cluster.write_members_cfg(id, &[1, 2, 3]);
        let dir = cluster.nodes[(id - 1) as usize].dir.clone();
        let out = restore(&dir, &file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A dataDir that holds something is refused.
    let again = restore(&n1, &file);
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    cluster.start_members(&[1, 2, 3]).await;
    for id in 1..=3 {
        cluster.wait_serving(id, Duration::from_secs(30)).await;
    }
    let restored = connect(&cluster.connect_string(), Duration::from_secs(10)).await;
    let children = restored.list_children("/backup").await.unwrap();
    assert_eq!(children.len(), 200);
    for (path, data) in &expected {
        let (got, _) = restored.get_data(path).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&got), *data, "{path}");
    }
    // The backup's ACL on / came back too.
    let (acl, _) = restored.get_acl("/").await.unwrap();
    assert_eq!(acl.len(), 2, "{acl:?}");

    // ZooKeeper's own zkCli.sh reads it from the restored ensemble.
    let (path, data) = expected.iter().nth(7).unwrap();
    let zkcli = Command::new("/usr/share/zookeeper/bin/zkCli.sh")
        .args([
            "-server",
            &format!("127.0.0.1:{}", cluster.port(2)),
            "get",
            path,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&zkcli.stdout);
    assert!(text.lines().any(|l| l == data), "zkCli get {path}: {text}");
}
