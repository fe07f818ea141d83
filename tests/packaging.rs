//! Running keeperd as a service: systemd's notification protocol spoken by the real binary
//! (the test plays systemd's part: it binds the NOTIFY_SOCKET datagram socket and reads what
//! the server sends), and the Debian package built by scripts/build-deb: its contents, its
//! unit, and its packaged zoo.cfg running the packaged binary.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{four_letter_word_blocking, free_port, signal, wait_for_exit, KEEPERD};

const LIMIT: Duration = Duration::from_secs(20);

/// Datagrams received on `socket` until `until` returns true for one of them (returned,
/// with all received so far), or the deadline.
fn receive_until(
    socket: &UnixDatagram,
    limit: Duration,
    until: impl Fn(&str) -> bool,
) -> (Option<String>, Vec<String>) {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.push(text.clone());
            if until(&text) {
                return (Some(text), seen);
            }
        }
    }
    (None, seen)
}

fn standalone_cfg(dir: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    cfg
}

fn notify_run(socket_env: &str, socket: &UnixDatagram, dir: &Path) {
    let port = free_port();
    let cfg = standalone_cfg(dir, port);
    let mut child = Command::new(KEEPERD)
        .arg("start-foreground")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", socket_env)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id() as i32);

    let (ready, seen) = receive_until(socket, LIMIT, |m| m.lines().any(|l| l == "READY=1"));
    let ready = ready.unwrap_or_else(|| panic!("no READY=1 within {LIMIT:?}; got {seen:?}"));
    // Ready means clients are served already.
    assert_eq!(
        four_letter_word_blocking(port, "ruok").unwrap(),
        "imok",
        "ruok at READY=1"
    );
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=Mode: standalone, serving clients"),
        "{ready:?}"
    );
    assert!(
        ready
            .lines()
            .any(|l| l == format!("MAINPID={}", child.id())),
        "{ready:?}"
    );

    // WatchdogSec=0.2s: pings at least every 100 ms.
    let (ping, seen) = receive_until(socket, Duration::from_secs(2), |m| {
        m.lines().any(|l| l == "WATCHDOG=1")
    });
    assert!(ping.is_some(), "no WATCHDOG=1; got {seen:?}");

    signal(&child, libc::SIGTERM);
    let (stopping, seen) = receive_until(socket, LIMIT, |m| m.lines().any(|l| l == "STOPPING=1"));
    assert!(stopping.is_some(), "no STOPPING=1 on SIGTERM; got {seen:?}");
    let status = wait_for_exit(&mut child, LIMIT, Duration::from_millis(50))
        .expect("keeperd did not exit after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// Starts `bin start-foreground cfg` (no NOTIFY_SOCKET) and waits until it answers ruok.
fn serve(bin: &Path, cfg: &Path, port: u16) -> (std::process::Child, KillOnDrop) {
    let child = Command::new(bin)
        .arg("start-foreground")
        .arg(cfg)
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id() as i32);
    let deadline = Instant::now() + LIMIT;
    while four_letter_word_blocking(port, "ruok").ok().as_deref() != Some("imok") {
        assert!(
            Instant::now() < deadline,
            "{} is not serving {}",
            bin.display(),
            cfg.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, guard)
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on a pid we started; harmless if it already exited.
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
        }
    }
}

#[test]
fn under_systemd_it_notifies_ready_status_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    notify_run(path.to_str().unwrap(), &socket, tmp.path());
}

#[test]
fn an_abstract_notify_socket_works_too() {
    use std::os::linux::net::SocketAddrExt;
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("keeperd-test-{}-{}", std::process::id(), free_port());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&addr).unwrap();
    notify_run(&format!("@{name}"), &socket, tmp.path());
}

#[test]
fn without_notify_socket_nothing_is_sent_and_it_serves() {
    // Type=simple or a shell: no NOTIFY_SOCKET, the server just runs.
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = standalone_cfg(tmp.path(), port);
    let (mut child, _guard) = serve(Path::new(KEEPERD), &cfg, port);
    signal(&child, libc::SIGTERM);
    let status = wait_for_exit(&mut child, LIMIT, Duration::from_millis(50)).unwrap();
    assert!(status.success());
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_debian_package_installs_binaries_unit_config_and_runs_the_packaged_config() {
    let tmp = tempfile::tempdir().unwrap();
    // The test binaries are built already (cargo test builds the bins first).
    let deb = output(
        Command::new(repo().join("scripts/build-deb"))
            .arg(tmp.path().join("out"))
            .env("KEEPERD_DEB_NO_BUILD", "1"),
    );
    let deb = PathBuf::from(deb.trim());
    assert!(deb.exists(), "{deb:?}");

    let info = output(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Package: keeperd"), "{info}");
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    let contents = output(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/keeperd",
        "./usr/bin/keeperctl",
        "./lib/systemd/system/keeperd.service",
        "./etc/keeperd/zoo.cfg",
        "./var/lib/keeperd/",
        "./var/log/keeperd/",
        "./usr/share/doc/keeperd/zoo.cfg.example",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing from the package:\n{contents}"
        );
    }
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(&deb)
            .arg("conffiles"),
    );
    assert_eq!(conffiles.trim(), "/etc/keeperd/zoo.cfg");

    let root = tmp.path().join("root");
    output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));

    // The unit starts the packaged binary on the packaged config.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/keeperd.service")).unwrap();
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/bin/keeperd start-foreground /etc/keeperd/zoo.cfg"),
        "{unit}"
    );
    assert!(unit.lines().any(|l| l == "Type=notify"), "{unit}");

    // The packaged zoo.cfg, with only dataDir and clientPort moved into the test's reach,
    // runs the packaged binary.
    let packaged = std::fs::read_to_string(root.join("etc/keeperd/zoo.cfg")).unwrap();
    assert!(packaged.lines().any(|l| l == "dataDir=/var/lib/keeperd"));
    assert!(packaged.lines().any(|l| l == "clientPort=2181"));
    let port = free_port();
    let data = tmp.path().join("data");
    let cfg = packaged
        .replace(
            "dataDir=/var/lib/keeperd",
            &format!("dataDir={}", data.display()),
        )
        .replace("clientPort=2181", &format!("clientPort={port}"));
    let cfg_path = tmp.path().join("zoo.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let (mut child, _guard) = serve(&root.join("usr/bin/keeperd"), &cfg_path, port);
    let srvr = four_letter_word_blocking(port, "srvr").unwrap();
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let status = output(
        Command::new(root.join("usr/bin/keeperd"))
            .arg("status")
            .arg(&cfg_path),
    );
    assert!(status.contains("Mode: standalone"), "{status}");
    signal(&child, libc::SIGTERM);
    let exit = wait_for_exit(&mut child, LIMIT, Duration::from_millis(50)).unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze not found (scripts/setup installs systemd)");
    };
    assert!(probe.status.success());
    // verify checks that ExecStart's binary exists: point it at the built one.
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("packaging/keeperd.service"))
        .unwrap()
        .replace("/usr/bin/keeperd", KEEPERD);
    let path = tmp.path().join("keeperd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lines about the host's other units (a container has odd ones) are not ours.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("keeperd.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{text}");
}
