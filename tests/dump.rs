//! `keeperd dump-snapshot` and `keeperd dump-log` (zkSnapShotToolkit / zkTxnLogToolkit):
//! on the ZooKeeper 3.8 dataDirs of tests/zkdata compared with ZooKeeper's own
//! SnapshotFormatter and TxnLogToolkit (Debian's zookeeper.jar), and on keeperd's files
//! after a known sequence of client operations.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{connect, ephemeral, free_port, open, run, wait_serving, KEEPERD};

const ZK_CLASSPATH: &str =
    "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar";

fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zkdata");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let v2 = dir.unwrap().path().join("version-2");
        let Ok(entries) = std::fs::read_dir(&v2) else {
            continue;
        };
        for f in entries {
            let path = f.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
            {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no {prefix} fixtures under {}",
        root.display()
    );
    files
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn java(class: &str, file: &Path) -> String {
    stdout_of(
        Command::new("java")
            .args(["-cp", ZK_CLASSPATH, class])
            .arg(file),
    )
}

/// (header, node blocks as a set, session lines as a set, last zxid line).
fn snapshot_parts(text: &str) -> (String, BTreeSet<String>, BTreeSet<String>, String) {
    let parts: Vec<&str> = text.split("----\n").collect();
    assert!(parts.len() >= 3, "{text}");
    let n = parts.len();
    (
        parts[0].to_string(),
        parts[1..n - 2].iter().map(|s| s.to_string()).collect(),
        parts[n - 2].lines().map(str::to_string).collect(),
        parts[n - 1].to_string(),
    )
}

#[test]
fn dump_snapshot_agrees_with_zookeepers_snapshot_formatter_on_every_fixture() {
    for file in fixtures("snapshot.") {
        let zk = java("org.apache.zookeeper.server.SnapshotFormatter", &file);
        let ours = stdout_of(Command::new(KEEPERD).arg("dump-snapshot").arg(&file));
        let (zk_head, zk_nodes, zk_sessions, zk_last) = snapshot_parts(&zk);
        let (head, nodes, sessions, last) = snapshot_parts(&ours);
        let name = file.display();
        assert_eq!(head, zk_head, "{name}");
        assert_eq!(nodes, zk_nodes, "{name}: node blocks differ");
        assert_eq!(sessions, zk_sessions, "{name}: sessions differ");
        assert_eq!(last, zk_last, "{name}");
    }
}

/// (zxid, session, cxid, type) of every record TxnLogToolkit prints.
fn zk_log_records(text: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(at) = line.find(" session 0x") else {
            continue;
        };
        let words: Vec<&str> = line[at + 1..].split_whitespace().collect();
        // session S cxid C zxid Z TYPE ...
        if words.len() >= 7 && words[2] == "cxid" && words[4] == "zxid" {
            out.push((
                words[5].to_string(),
                words[1].to_string(),
                words[3].to_string(),
                words[6].to_string(),
            ));
        }
    }
    out
}

fn our_log_records(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .map(|line| {
            let mut f = std::collections::HashMap::new();
            let mut kind = "";
            for w in line.split_whitespace() {
                match w.split_once('=') {
                    Some((k, v)) if kind.is_empty() => {
                        f.insert(k, v);
                    }
                    _ if kind.is_empty() => kind = w,
                    _ => {}
                }
            }
            (
                f["zxid"].to_string(),
                f["session"].to_string(),
                f["cxid"].to_string(),
                kind.to_string(),
            )
        })
        .collect()
}

#[test]
fn dump_log_lists_the_same_records_as_zookeepers_txn_log_toolkit() {
    let mut total = 0;
    for file in fixtures("log.") {
        let zk = zk_log_records(&java(
            "org.apache.zookeeper.server.persistence.TxnLogToolkit",
            &file,
        ));
        let ours = our_log_records(&stdout_of(Command::new(KEEPERD).arg("dump-log").arg(&file)));
        assert_eq!(ours, zk, "{}", file.display());
        total += ours.len();
    }
    assert!(total > 50, "only {total} records in the fixtures");
}

#[tokio::test(flavor = "multi_thread")]
async fn dumps_of_keeperds_own_files_show_a_known_sequence() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let started = run(dir, KEEPERD, &["start", "zoo.cfg"]);
    assert!(started.ok(), "{}{}", started.stdout, started.stderr);
    wait_serving(port, dir).await;

    let client = connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).await;
    client.create("/dump", b"v0", &open()).await.unwrap();
    client.set_data("/dump", b"v1-longer", None).await.unwrap();
    client
        .create("/dump/eph", b"e", &ephemeral())
        .await
        .unwrap();
    client.create("/gone", b"", &open()).await.unwrap();
    client.delete("/gone", None).await.unwrap();

    // While the server runs its files are locked: a clear error, no hang.
    let busy = Command::new(KEEPERD)
        .args(["dump-log"])
        .arg(dir.join("zoo.cfg"))
        .output()
        .unwrap();
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("another keeperd"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    drop(client);
    let stopped = run(dir, KEEPERD, &["stop", "zoo.cfg"]);
    assert!(stopped.ok(), "{}{}", stopped.stdout, stopped.stderr);

    let log = stdout_of(
        Command::new(KEEPERD)
            .arg("dump-log")
            .arg(dir.join("zoo.cfg")),
    );
    let ops: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let kind_at = l.find(" session=")?;
            let rest = &l[kind_at..];
            let mut words = rest.split_whitespace().skip(1);
            Some(format!("{} {}", words.next()?, words.next().unwrap_or("")))
        })
        .filter(|l| !l.starts_with("setConfig"))
        .collect();
    let want = [
        "createSession timeout=10000",
        "create2 /dump",
        "setData /dump",
        "create2 /dump/eph",
        "create2 /gone",
        "delete /gone",
        "closeSession ",
    ];
    let seen: Vec<&str> = ops.iter().map(|s| s.as_str()).collect();
    let mut at = 0;
    for w in want {
        let found = seen[at..].iter().position(|s| s.trim_end() == w.trim_end());
        let Some(i) = found else {
            panic!("{w:?} not found in order in:\n{log}");
        };
        at += i + 1;
    }
    assert!(
        log.contains("setData /dump dataLength=9 version=-1"),
        "{log}"
    );

    let snap = stdout_of(
        Command::new(KEEPERD)
            .arg("dump-snapshot")
            .arg(dir.join("zoo.cfg")),
    );
    let (_, nodes, sessions, last) = snapshot_parts(&snap);
    let block = nodes
        .iter()
        .find(|b| b.starts_with("/dump\n"))
        .unwrap_or_else(|| panic!("/dump missing:\n{snap}"));
    assert!(block.contains("  dataVersion = 1\n"), "{block}");
    assert!(block.contains("  dataLength = 9\n"), "{block}");
    assert!(
        !nodes
            .iter()
            .any(|b| b.starts_with("/dump/eph\n") || b.starts_with("/gone\n")),
        "the ephemeral went with its closed session, /gone was deleted:\n{snap}"
    );
    // Only the "Session Details" header: the client's session was closed.
    assert_eq!(sessions.len(), 1, "a session is left: {sessions:?}");
    assert!(last.starts_with("Last zxid: 0x"), "{last}");

    let json = stdout_of(
        Command::new(KEEPERD)
            .args(["dump-snapshot", "--json"])
            .arg(dir.join("zoo.cfg")),
    );
    let dump: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["node"] == "/dump")
        .unwrap();
    assert_eq!(dump["data"]["text"], "v1-longer");
    assert_eq!(dump["version"], 1);
}

#[test]
fn cleanup_keeps_three_snapshots_and_what_they_need_and_the_data_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zkdata/default/version-2");
    let v2 = tmp.path().join("data/version-2");
    std::fs::create_dir_all(&v2).unwrap();
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), v2.join(f.file_name())).unwrap();
    }
    std::fs::write(
        tmp.path().join("zoo.cfg"),
        format!(
            "dataDir={}\nclientPort={}\n",
            tmp.path().join("data").display(),
            free_port()
        ),
    )
    .unwrap();
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&v2)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let before = names();
    let import_before = run(tmp.path(), KEEPERD, &["import", "zoo.cfg"]);
    assert!(import_before.ok(), "{}", import_before.stderr);

    let refused = run(tmp.path(), KEEPERD, &["cleanup", "-n", "2", "zoo.cfg"]);
    assert!(
        !refused.ok() && refused.stderr.contains("at least 3"),
        "{}",
        refused.stderr
    );
    assert_eq!(names(), before);

    let done = run(tmp.path(), KEEPERD, &["cleanup", "-n", "3", "zoo.cfg"]);
    assert!(done.ok(), "{}{}", done.stdout, done.stderr);
    let after = names();
    let snapshots: Vec<&String> = after
        .iter()
        .filter(|n| n.starts_with("snapshot."))
        .collect();
    assert_eq!(snapshots.len(), 3, "{after:?}");
    assert!(after.len() < before.len(), "{after:?}");
    // What ZooKeeper would load is unchanged: same last zxid, same digest check.
    let import_after = run(tmp.path(), KEEPERD, &["import", "zoo.cfg"]);
    assert!(import_after.ok(), "{}", import_after.stderr);
    // (The last line, "read in N ms", is a timing.)
    let summary = |out: &str| {
        out.lines()
            .filter(|l| !l.starts_with("read in "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        summary(&import_after.stdout),
        summary(&import_before.stdout)
    );
}
