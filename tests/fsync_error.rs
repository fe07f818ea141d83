//! An fsync that fails (EIO) on one member of a 3-node ensemble: that member exits non-zero
//! with a log line naming the failure (it never continues after a failed fsync), the other
//! two go on acknowledging writes, nothing acknowledged is lost, and once the disk is
//! healthy again the member restarts and catches up. The failure is injected with a small
//! LD_PRELOAD library (built by the test with cc) whose fsync, fdatasync and
//! sync_file_range fail with EIO while a trigger file exists.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const LIMIT: Duration = Duration::from_secs(120);

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <fcntl.h>

static int failing(void) {
    const char *t = getenv("FAILSYNC_TRIGGER");
    return t && access(t, F_OK) == 0;
}
int fsync(int fd) {
    if (failing()) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
int fdatasync(int fd) {
    if (failing()) { errno = EIO; return -1; }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
int sync_file_range(int fd, off_t off, off_t n, unsigned int flags) {
    if (failing()) { errno = EIO; return -1; }
    int (*real)(int, off_t, off_t, unsigned int) =
        (int (*)(int, off_t, off_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    return real(fd, off, n, flags);
}
"#;

fn build_shim(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("failsync.c");
    let lib = dir.join("libfailsync.so");
    std::fs::write(&src, SHIM).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .expect("cc (gcc) is needed to build the fault-injection library");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_error_stops_the_member_the_others_go_on_and_it_rejoins() {
    tokio::time::timeout(LIMIT, run())
        .await
        .expect("test timed out");
}

async fn run() {
    let mut cluster = Cluster::prepare(3, "");
    let lib = build_shim(cluster.tmp.path());
    let trigger = cluster.tmp.path().join("fail-fsync-now");
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap().to_string()),
        ("FAILSYNC_TRIGGER", trigger.to_str().unwrap().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for id in 1..=3 {
        cluster.write_members_cfg(id, &[1, 2, 3]);
    }
    cluster.node(1).start();
    cluster.node(2).start();
    cluster.node(3).start_with_env(&env);
    cluster.wait_leader(Duration::from_secs(30)).await;
    for id in 1..=3 {
        cluster.wait_serving(id, Duration::from_secs(30)).await;
    }

    // Writes go to members 1 and 2 only, so a client is never stuck on the failing one.
    let client = connect(&cluster.hosts(&[1, 2]), Duration::from_secs(10)).await;
    client.create("/fsync", b"", &open()).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let path = format!("/fsync/before-{i}");
        client.create(&path, b"x", &open()).await.unwrap();
        acknowledged.push(path);
    }

    std::fs::write(&trigger, b"").unwrap();
    let failed_at = Instant::now();
    let mut i = 0;
    // Member 3 must exit at its next fsync; the others keep acknowledging meanwhile.
    let status = loop {
        let path = format!("/fsync/during-{i}");
        i += 1;
        if client.create(&path, b"y", &open()).await.is_ok() {
            acknowledged.push(path);
        }
        let child = cluster.node(3).child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(30),
            "member 3 still runs after its fsync failed:\n{}",
            cluster.log(3)
        );
    };
    assert!(!status.success(), "exit status {status:?}");
    let log = cluster.log(3);
    assert!(
        log.contains("Input/output error") || log.contains("os error 5"),
        "no log line names the failure:\n{log}"
    );
    cluster.node(3).child = None;
    for j in 0..20 {
        let path = format!("/fsync/after-{j}");
        client.create(&path, b"z", &open()).await.unwrap();
        acknowledged.push(path);
    }

    // The disk is healthy again: the member restarts and catches up.
    std::fs::remove_file(&trigger).unwrap();
    cluster.node(3).start_with_env(&env);
    cluster.wait_serving(3, Duration::from_secs(30)).await;
    let on3 = connect(&cluster.hosts(&[3]), Duration::from_secs(10)).await;
    on3.sync("/fsync").await.unwrap();
    let children = on3.list_children("/fsync").await.unwrap();
    for path in &acknowledged {
        let name = path.rsplit('/').next().unwrap();
        assert!(
            children.iter().any(|c| c == name),
            "{path} acknowledged but missing on the rejoined member"
        );
    }
    // 20 before, 20 after, and at least one while member 3 was failing.
    assert!(acknowledged.len() > 40, "{}", acknowledged.len());
}
