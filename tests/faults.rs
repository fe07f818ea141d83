//! Fail-stop: a server whose storage fails stops, with a non-zero exit and one clear log
//! line, instead of answering `ruok` and reads while it can no longer replicate or persist;
//! nothing it acknowledged is lost once it restarts with room on the disk.
//!
//! Hostile clients: one that pipelines reads of a large znode and never reads the replies
//! is held back by TCP; the server's memory stays bounded and other clients are served.
//!
//! The full disk is a small tmpfs mounted by the test (root only: CI runs as root; elsewhere
//! the test says it is skipped and why).

mod support;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use keeperd::proto::codec::{encode_connect_request, encode_request};
use keeperd::proto::request::Request;
use support::tmpfs::Tmpfs;
use support::{
    four_letters, new_session_request, open, standalone, try_connect, wait_serving, Node, KEEPERD,
};
use tokio::io::AsyncWriteExt;
use zookeeper_client as zk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_server_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("6m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    tokio::time::timeout(Duration::from_secs(120), run_full_disk(&disk))
        .await
        .expect("full-disk test exceeded its 120 s bound");
}

async fn run_full_disk(disk: &Tmpfs) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut server = standalone(dir, &disk.dir.join("data"), "");
    let port = server.client_port;
    server.start();
    wait_serving(port, dir).await;
    let c = try_connect(&server.addr(), Duration::from_secs(5))
        .await
        .expect("connect");
    let value = vec![7u8; 1000];
    let mut acked = vec![];
    let mut failed = None;
    for i in 0..20_000u32 {
        let path = format!("/n{i:06}");
        match c.create(&path, &value, &open()).await {
            Ok(_) => acked.push(path),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let failed = failed.expect("6 MB of disk fills before 20 MB of writes");
    eprintln!("{} creates acknowledged, then: {failed}", acked.len());
    assert!(acked.len() > 100, "some writes fit first");

    // The process ends on its own with a non-zero status and says why.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept running on a full disk; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.child = None;
    assert!(!status.success(), "exit status {status}");
    let log = server.log();
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("the consensus node stopped"), "{log}");

    // With room again it restarts, and every acknowledged create is there.
    disk.grow("64m");
    server.start();
    wait_serving(port, dir).await;
    let c = try_connect(&server.addr(), Duration::from_secs(5))
        .await
        .expect("reconnect");
    for path in &acked {
        let (data, _) = c.get_data(path).await.unwrap_or_else(|e| {
            panic!("acknowledged {path} is gone after the restart: {e}");
        });
        assert_eq!(data, value, "{path}");
    }
    c.create("/after", b"", &open())
        .await
        .expect("writes go on");
    server.stop();
}

/// A standalone server on a fresh dataDir (plus `extra` zoo.cfg lines), serving, where a
/// client has created a 1 MB znode `/big`; and the server's RSS then.
struct BigZnode {
    _tmp: tempfile::TempDir,
    server: Node,
    client: zk::Client,
    pid: u32,
    before: u64,
}

async fn server_with_big_znode(extra: &str) -> BigZnode {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut server = standalone(dir, &dir.join("data"), extra);
    let port = server.client_port;
    server.start();
    wait_serving(port, dir).await;
    let pid = server.child.as_ref().unwrap().id();
    let client = try_connect(&server.addr(), Duration::from_secs(20))
        .await
        .expect("connect");
    client
        .create("/big", &vec![b'x'; 1000 * 1000], &open())
        .await
        .expect("1 MB znode");
    let before = rss_mib(pid);
    BigZnode {
        _tmp: tmp,
        server,
        client,
        pid,
        before,
    }
}

/// A raw client's connect request (new session, 30 s).
fn handshake() -> BytesMut {
    let mut out = BytesMut::new();
    encode_connect_request(&mut out, &new_session_request(30_000));
    out
}

/// Resident memory of a process, from /proc.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

/// ZooKeeper 3.8 under this client stays near its heap; keeperd without backpressure
/// buffered every reply (1 GB after 1,000 requests, killed at 2,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_cannot_exhaust_memory() {
    tokio::time::timeout(Duration::from_secs(120), run_non_reader())
        .await
        .expect("non-reading client test exceeded its 120 s bound");
}

async fn run_non_reader() {
    let BigZnode {
        _tmp,
        mut server,
        client: c,
        pid,
        before,
    } = server_with_big_znode("maxSessionTimeout=60000\n4lw.commands.whitelist=*").await;
    let port = server.client_port;
    let big = vec![b'x'; 1000 * 1000];

    // The attacker: a session, then 2,000 pipelined getData of /big (2 GB of replies) and
    // not one byte read back.
    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut out = handshake();
    for xid in 1..=2000 {
        encode_request(
            &mut out,
            xid,
            &Request::GetData {
                path: "/big".into(),
                watch: false,
            },
        );
    }
    // The server stops reading once its backlog is full: the rest stays in TCP buffers.
    let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&out)).await;
    // A second one puts a write before each read: with a write in flight the reads are
    // held, carried by the next write and executed when it applies, ahead of their turn
    // (at most 32 per connection).
    c.create("/small", b"", &open()).await.expect("/small");
    let mut s2 = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut out = handshake();
    for xid in 1..=2000 {
        let set = Request::SetData(keeperd::proto::request::SetDataRequest {
            path: "/small".into(),
            data: Some(bytes::Bytes::from_static(b"w")),
            version: -1,
        });
        encode_request(&mut out, 2 * xid, &set);
        let get = Request::GetData {
            path: "/big".into(),
            watch: false,
        };
        encode_request(&mut out, 2 * xid + 1, &get);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), s2.write_all(&out)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = rss_mib(pid);
    eprintln!(
        "RSS {before} MiB before, {during} MiB with 4,000 unread 1 MB replies asked for on two \
         connections, one with writes between them"
    );
    assert!(
        during < before + 100,
        "memory grew from {before} to {during} MiB for a client that does not read"
    );

    // Everyone else is served meanwhile.
    let t0 = Instant::now();
    let (data, _) = c.get_data("/big").await.expect("another client reads");
    assert_eq!(data.len(), big.len());
    c.create("/still-writing", b"", &open())
        .await
        .expect("writes go on");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let stat = four_letters(port, "stat").await.expect("stat answers");
    assert!(stat.contains("Mode: standalone"), "{stat}");

    // The attackers go; the server is fine.
    drop(s);
    drop(s2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(four_letters(port, "ruok").await.as_deref(), Some("imok"));
    server.stop();
}

/// Idle connections up to the open-files limit used to make the next write of the raft log
/// fail (`Too many open files`), which stopped replication for good. Client connections now
/// stop at the limit less a reserve: the server refuses the excess and keeps writing,
/// snapshotting and serving the clients it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_refuses_clients_not_writes() {
    tokio::time::timeout(Duration::from_secs(120), run_fd_exhaustion())
        .await
        .expect("fd exhaustion test exceeded its 120 s bound");
}

async fn run_fd_exhaustion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = standalone(
        dir,
        &dir.join("data"),
        "maxClientCnxns=0\nsnapCount=50\n4lw.commands.whitelist=*",
    )
    .client_port;
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    // 320 descriptors in all (soft and hard): 64 for clients after the 256 kept back.
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=320:320")
        .arg(KEEPERD)
        .args(["start-foreground", "zoo.cfg"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prlimit (util-linux) runs keeperd");
    wait_serving(port, dir).await;
    let c = try_connect(&format!("127.0.0.1:{port}"), Duration::from_secs(20))
        .await
        .expect("connect");

    // 400 idle connections from a client that never says hello.
    let mut idle = vec![];
    for _ in 0..400 {
        if let Ok(Ok(s)) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Writes go on, enough of them for several snapshots (each a new file).
    for i in 0..300 {
        c.create(&format!("/n{i}"), b"v", &open())
            .await
            .unwrap_or_else(|e| panic!("write {i} failed with idle connections open: {e}"));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server exited:\n{}",
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    assert!(log.contains("refusing new ones"), "{log}");
    assert!(!log.contains("Too many open files"), "{log}");

    // Once the idle ones go, new clients are served again.
    drop(idle);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = try_connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10))
        .await
        .expect("a new client after the idle ones left");
    assert_eq!(d.get_data("/n299").await.expect("read").0, b"v");
    let _ = child.kill();
    let _ = child.wait();
}

/// One multiRead of 55,000 getData of a 1 MB znode asks for 55 GB of reply: refused with
/// MarshallingError before it is built (ZooKeeper builds it and dies); the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_multi_read_is_refused_not_built() {
    tokio::time::timeout(Duration::from_secs(120), run_huge_multi_read())
        .await
        .expect("multiRead test exceeded its 120 s bound");
}

async fn read_frame(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.expect("frame length");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.expect("frame body");
    body
}

async fn run_huge_multi_read() {
    use keeperd::proto::request::ReadOp;
    let BigZnode {
        _tmp,
        mut server,
        client: _c,
        pid,
        before,
    } = server_with_big_znode("jute.maxbuffer=4194304").await;

    let mut s = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut out = handshake();
    let ops: Vec<ReadOp> = (0..55_000)
        .map(|_| ReadOp::GetData {
            path: "/big".into(),
        })
        .collect();
    encode_request(&mut out, 1, &Request::MultiRead(ops));
    encode_request(
        &mut out,
        2,
        &Request::Exists {
            path: "/big".into(),
            watch: false,
        },
    );
    s.write_all(&out).await.unwrap();
    let _hello = read_frame(&mut s).await;
    let (h, _) = keeperd::proto::codec::decode_reply_header(&read_frame(&mut s).await).unwrap();
    assert_eq!(
        (h.xid, h.err),
        (1, keeperd::proto::ZkError::MarshallingError.code())
    );
    let (h, _) = keeperd::proto::codec::decode_reply_header(&read_frame(&mut s).await).unwrap();
    assert_eq!((h.xid, h.err), (2, 0), "the session goes on");
    let after = rss_mib(pid);
    eprintln!("RSS {before} MiB before, {after} MiB after a 55 GB multiRead");
    assert!(after < before + 100, "{before} -> {after} MiB");
    server.stop();
}
