//! Measures what a restart costs: building a tree of N znodes with 100-byte values by applying
//! txns, its resident memory, `snapshot_bytes`, and then, in a fresh process as after a
//! restart, reading the snapshot file, `from_snapshot_bytes` and replaying a log tail of
//! encoded setData entries (decode + apply) on the restored tree.
//!
//! ```text
//! cargo run --release --example snapshot_bench -- 1000000 [tail, default 100000]
//! ```
//! Nodes are /bench/PPPP/CCCCC with 1000 children per parent. RSS is read from
//! /proc/self/status, so the numbers include the allocator's slack.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use keeperd::proto::request::{CreateRequest, Request, SetDataRequest};
use keeperd::proto::{Acl, OpCode};
use keeperd::tree::{DataTree, TreeOptions, Txn};

const SESSION: i64 = 0x1000;
const PER_PARENT: usize = 1000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn create(zxid: i64, path: String, data: &[u8]) -> (i64, Txn) {
    (
        zxid,
        Txn::Client {
            session_id: SESSION,
            time_ms: 1_700_000_000_000 + zxid,
            auth: Vec::new(),
            request: Request::Create {
                op: OpCode::Create,
                req: CreateRequest {
                    path,
                    data: Some(Bytes::copy_from_slice(data)),
                    acl: Acl::open_unsafe(),
                    flags: 0,
                    ttl: -1,
                },
            },
        },
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--restart") {
        restart(&args[1..]);
        return;
    }
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let tail: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let value = [b'v'; 100];

    let rss0 = rss_kib();
    let start = Instant::now();
    let mut tree = DataTree::new(TreeOptions::default());
    let mut zxid = 1;
    tree.apply(
        zxid,
        &Txn::CreateSession {
            session_id: SESSION,
            timeout_ms: 30_000,
        },
    );
    let apply = |tree: &mut DataTree, (z, txn): (i64, Txn)| {
        let a = tree.apply(z, &txn);
        assert!(a.result.is_ok(), "{txn:?}: {:?}", a.result);
    };
    zxid += 1;
    apply(&mut tree, create(zxid, "/bench".into(), b""));
    for p in 0..n.div_ceil(PER_PARENT) {
        zxid += 1;
        apply(&mut tree, create(zxid, format!("/bench/{p:04}"), b""));
        for c in 0..PER_PARENT.min(n - p * PER_PARENT) {
            zxid += 1;
            apply(
                &mut tree,
                create(zxid, format!("/bench/{p:04}/{c:05}"), &value),
            );
        }
    }
    let build = start.elapsed();
    let rss1 = rss_kib();
    let nodes = tree.node_count() - 1;
    println!("znodes                {nodes} ({n} leaves with 100-byte values)");
    println!(
        "build by apply        {:.0} ms ({:.0} ns/txn)",
        ms(build),
        build.as_secs_f64() * 1e9 / (zxid as f64)
    );
    println!(
        "RSS                   {:.1} MiB before, {:.1} MiB after: {:.0} bytes/znode",
        mib(rss0),
        mib(rss1),
        (rss1 - rss0) as f64 * 1024.0 / nodes as f64
    );

    let t = Instant::now();
    let digest = tree.digest();
    println!("digest                {:.0} ms", ms(t.elapsed()));

    let t = Instant::now();
    let snap = tree.snapshot_bytes();
    let save = t.elapsed();
    println!(
        "snapshot_bytes        {:.0} ms, {:.1} MiB ({:.0} bytes/znode)",
        ms(save),
        snap.len() as f64 / 1048576.0,
        snap.len() as f64 / nodes as f64
    );
    let file: PathBuf = std::env::temp_dir().join(format!("snapshot_bench.{}", std::process::id()));
    if let Err(e) = std::fs::write(&file, &snap) {
        eprintln!("writing {}: {e}", file.display());
        std::process::exit(1);
    }
    drop(snap);
    drop(tree);

    // The restart happens in a new process, so the load does not run on this heap.
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("--restart")
            .arg(&file)
            .arg(format!("{digest:x}"))
            .arg(n.to_string())
            .arg(tail.to_string())
            .arg(zxid.to_string())
            .status()
    });
    let _ = std::fs::remove_file(&file);
    match status {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("restart process failed: {other:?}");
            std::process::exit(1);
        }
    }
}

/// `--restart FILE DIGEST N TAIL ZXID`: what a restarting server does with the snapshot.
fn restart(args: &[String]) {
    let [file, digest, n, tail, zxid] = args else {
        eprintln!("usage: --restart FILE DIGEST N TAIL ZXID");
        std::process::exit(2);
    };
    let parse = |s: &String| s.parse::<usize>().unwrap_or(0);
    let (n, tail, zxid) = (parse(n), parse(tail), parse(zxid) as i64);
    let value = [b'v'; 100];

    // A log tail as the consensus layer would hand it over: encoded entries.
    let mut entries = Vec::with_capacity(tail);
    for i in 0..tail {
        let leaf = (i * 7919) % n.max(1);
        let txn = Txn::Client {
            session_id: SESSION,
            time_ms: 1_800_000_000_000 + i as i64,
            auth: Vec::new(),
            request: Request::SetData(SetDataRequest {
                path: format!("/bench/{:04}/{:05}", leaf / PER_PARENT, leaf % PER_PARENT),
                data: Some(Bytes::copy_from_slice(&value)),
                version: -1,
            }),
        };
        let mut buf = BytesMut::new();
        txn.encode(&mut buf);
        entries.push(buf.freeze());
    }

    let rss0 = rss_kib();
    let t = Instant::now();
    let snap = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("reading {file}: {e}");
            std::process::exit(1);
        }
    };
    let read = t.elapsed();
    let t = Instant::now();
    let mut tree = match DataTree::from_snapshot_bytes(&snap, TreeOptions::default()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("load failed: {e}");
            std::process::exit(1);
        }
    };
    let load = t.elapsed();
    let resnap_same = tree.snapshot_bytes() == snap;
    drop(snap);
    let rss1 = rss_kib();
    let nodes = tree.node_count() - 1;
    println!("read snapshot file    {:.0} ms (page cache)", ms(read));
    println!("from_snapshot_bytes   {:.0} ms", ms(load));
    println!(
        "RSS after load        {:.1} MiB: restored tree {:.0} bytes/znode",
        mib(rss1),
        (rss1 - rss0) as f64 * 1024.0 / nodes as f64
    );
    let same = format!("{:x}", tree.digest()) == *digest;
    println!("digest equal          {}", if same { "yes" } else { "NO" });
    println!(
        "re-snapshot equal     {}",
        if resnap_same { "yes" } else { "NO" }
    );

    let t = Instant::now();
    for (i, e) in entries.iter().enumerate() {
        let txn = match Txn::decode(e) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("decode failed: {e}");
                std::process::exit(1);
            }
        };
        let a = tree.apply(zxid + 1 + i as i64, &txn);
        assert!(a.result.is_ok());
    }
    let replay = t.elapsed();
    println!(
        "replay {tail} setData  {:.0} ms (decode + apply)",
        ms(replay)
    );
    println!(
        "restart               {:.0} ms (read + load + replay)",
        ms(read + load + replay)
    );
    if !same || !resnap_same {
        std::process::exit(1);
    }
}
