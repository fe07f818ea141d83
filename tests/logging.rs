//! The server's log as an operator keeps it: `keeperd start` logs to a rotated
//! `$ZOO_LOG_DIR/keeperd.log`; `keeperd.log.*` in zoo.cfg rotates by size with a bounded
//! number of files, writes JSON lines, filters by module; SIGHUP reopens the file after
//! logrotate moved it (and never stops the server).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{four_letter_word_blocking, free_port, run_env, signal, wait_for_exit, KEEPERD};

const LIMIT: Duration = Duration::from_secs(20);

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_foreground(cfg: &Path, port: u16) -> Server {
    let child = Command::new(KEEPERD)
        .arg("start-foreground")
        .arg(cfg)
        .env_remove("RUST_LOG")
        .env_remove("KEEPERD_LOG_FILE")
        .env_remove("KEEPERD_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    wait_imok(port);
    server
}

fn wait_imok(port: u16) {
    let deadline = Instant::now() + LIMIT;
    while four_letter_word_blocking(port, "ruok").ok().as_deref() != Some("imok") {
        assert!(Instant::now() < deadline, "server on {port} not serving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_cfg(dir: &Path, port: u16, log_lines: &str) -> std::path::PathBuf {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n{log_lines}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    cfg
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn keeperd_start_logs_to_a_rotated_keeperd_log_not_keeperd_out() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_cfg(tmp.path(), port, "");
    let logs = tmp.path().join("logs");
    let env = [("ZOO_LOG_DIR", logs.to_str().unwrap())];
    let started = run_env(tmp.path(), KEEPERD, &["start", "zoo.cfg"], &env);
    assert!(started.ok(), "{}{}", started.stdout, started.stderr);
    let stop = || run_env(tmp.path(), KEEPERD, &["stop", "zoo.cfg"], &env);
    wait_imok(port);
    wait_until("serving clients in keeperd.log", || {
        read(&logs.join("keeperd.log")).contains("serving clients")
    });
    assert!(
        !read(&logs.join("keeperd.out")).contains("serving clients"),
        "the log went to keeperd.out"
    );
    let stopped = stop();
    assert!(stopped.ok(), "{}{}", stopped.stdout, stopped.stderr);
    assert!(read(&logs.join("keeperd.log")).contains("keeperd stopped"));
    let _ = cfg;
}

/// Opens a session with a raw ConnectRequest and drops the connection.
fn raw_session(port: u16) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    // protocolVersion 0, lastZxidSeen 0, timeOut 10000, sessionId 0, passwd (16 zero bytes).
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&0i64.to_be_bytes());
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[0; 16]);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
}

#[test]
fn size_rotation_keeps_max_backup_index_files_and_json_lines_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = tmp.path().join("log/keeperd.log");
    let cfg = write_cfg(
        tmp.path(),
        port,
        &format!(
            "keeperd.log.file={}\nkeeperd.log.maxFileSize=4KB\nkeeperd.log.maxBackupIndex=2\n\
             keeperd.log.format=json\nkeeperd.log.level=info,keeperd=debug\n",
            log.display()
        ),
    );
    let server = start_foreground(&cfg, port);
    let numbered = |i: u32| {
        let mut p = log.clone().into_os_string();
        p.push(format!(".{i}"));
        std::path::PathBuf::from(p)
    };
    // Every session is logged when created, and its connection at debug when it closes:
    // make enough of them to rotate a few times.
    for _ in 0..200 {
        raw_session(port);
        if numbered(2).exists() && read(&log).len() > 1024 {
            break;
        }
    }
    assert!(numbered(1).exists() && numbered(2).exists(), "no rotation");
    assert!(
        !numbered(3).exists(),
        "more than maxBackupIndex=2 files kept"
    );
    for path in [log.clone(), numbered(1), numbered(2)] {
        let text = read(&path);
        assert!(
            text.len() <= 4096,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                v.get("level").is_some() && v.get("timestamp").is_some(),
                "{line}"
            );
        }
    }
    drop(server);
}

#[test]
fn sighup_reopens_the_log_after_logrotate_moved_it_and_the_server_lives_on() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = tmp.path().join("keeperd.log");
    let cfg = write_cfg(
        tmp.path(),
        port,
        &format!("keeperd.log.file={}\n", log.display()),
    );
    let mut server = start_foreground(&cfg, port);
    wait_until("the first lines", || read(&log).contains("serving clients"));
    let moved = tmp.path().join("keeperd.log.20261206");
    std::fs::rename(&log, &moved).unwrap();
    signal(&server.0, libc::SIGHUP);
    wait_until("a new keeperd.log", || {
        read(&log).contains("SIGHUP: reopening the log file")
    });
    assert!(!read(&moved).contains("SIGHUP"));
    assert_eq!(four_letter_word_blocking(port, "ruok").unwrap(), "imok");
    signal(&server.0, libc::SIGTERM);
    let status = wait_for_exit(&mut server.0, LIMIT, Duration::from_millis(50)).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(read(&log).contains("keeperd stopped"));
}

#[test]
fn a_bad_log_key_stops_start_up_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_cfg(tmp.path(), free_port(), "keeperd.log.maxFileSize=lots\n");
    let out = Command::new(KEEPERD)
        .arg("start-foreground")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("zoo.cfg:5: keeperd.log.maxFileSize") && stderr.contains("not a size"),
        "{stderr}"
    );
}
