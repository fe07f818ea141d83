//! Runs the Python compatibility suite in `tests/compat/` against the keeperd
//! binary this build produced, one `#[test]` per suite file.
//!
//! Each test runs `python3 -m pytest tests/compat/<file> -q -x` with
//! `KEEPERD_BIN` pointing at `target/<profile>/keeperd`, prints pytest's output,
//! and fails if pytest fails, runs no test (exit 5, or nothing passed), or
//! outlives its time limit. Which servers the suite starts is up to the
//! environment: `COMPAT_SERVER=keeperd|zookeeper|both` (see conftest.py) is
//! passed through. The files run one at a time: each starts its own servers
//! and JVMs, and on a 2-core machine running them side by side only makes
//! timing-sensitive waits flaky.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use support::{signal, wait_for_exit, KEEPERD};

/// Serialises the suite files (cargo runs `#[test]`s of one binary in parallel).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Upper bound for one suite file; pytest-timeout bounds each test inside it.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Grace period between SIGINT (pytest tears fixtures down, stopping servers)
/// and SIGKILL when a run overstays its limit.
const INTERRUPT_GRACE: Duration = Duration::from_secs(30);

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Everything the suite needs from the machine, checked up front so a missing
/// install reads as "run scripts/setup" rather than as a failing test.
fn check_prerequisites() {
    let mut missing = Vec::new();
    match Command::new(python())
        .args(["-c", "import kazoo, pytest, pytest_timeout"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => missing.push(format!(
            "python modules kazoo/pytest/pytest-timeout ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => missing.push(format!("{} ({e})", python())),
    }
    for file in [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/zookeeper/bin/zkCli.sh",
    ] {
        if !Path::new(file).exists() {
            missing.push(file.to_string());
        }
    }
    if Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        missing.push("java".to_string());
    }
    assert!(
        missing.is_empty(),
        "compat suite prerequisites missing: {}; run scripts/setup",
        missing.join(", ")
    );
}

fn timeout() -> Duration {
    std::env::var("COMPAT_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

fn drain(mut stream: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stream.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for the child up to `limit`; then interrupts it, then kills it.
/// Returns the exit status and whether the limit was hit.
fn wait_bounded(child: &mut Child, limit: Duration) -> (ExitStatus, bool) {
    let poll = Duration::from_millis(100);
    if let Some(status) = wait_for_exit(child, limit, poll) {
        return (status, false);
    }
    signal(child, libc::SIGINT);
    if let Some(status) = wait_for_exit(child, INTERRUPT_GRACE, poll) {
        return (status, true);
    }
    let _ = child.kill();
    (child.wait().expect("wait for killed pytest"), true)
}

fn run_suite(file: &str) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check_prerequisites();
    let root = env!("CARGO_MANIFEST_DIR");
    let target = format!("tests/compat/{file}");
    let limit = timeout();
    let mut child = Command::new(python())
        .args(["-m", "pytest", &target, "-q", "-x"])
        .current_dir(root)
        .env("KEEPERD_BIN", KEEPERD)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} -m pytest: {e}; run scripts/setup",
                python()
            )
        });
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let (status, timed_out) = wait_bounded(&mut child, limit);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    println!("--- pytest {target} (stdout) ---\n{stdout}");
    if !stderr.is_empty() {
        println!("--- pytest {target} (stderr) ---\n{stderr}");
    }
    assert!(
        !timed_out,
        "pytest {target} did not finish within {}s (COMPAT_TIMEOUT_SECS); interrupted",
        limit.as_secs()
    );
    match status.code() {
        Some(0) => {}
        Some(5) => panic!("pytest {target} ran no tests (exit 5): that is not a pass"),
        Some(code) => panic!("pytest {target} failed with exit code {code} (output above)"),
        None => panic!("pytest {target} was killed by a signal ({status})"),
    }
    // Exit 0 with everything skipped would also be "no test ran".
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" in "))
        .unwrap_or("");
    assert!(
        summary.contains("passed"),
        "pytest {target} exited 0 but nothing passed: {summary:?}"
    );
}

#[test]
fn compat_4lw() {
    run_suite("test_4lw.py");
}

#[test]
fn compat_zkcli() {
    run_suite("test_zkcli.py");
}

#[test]
fn compat_kazoo() {
    run_suite("test_kazoo.py");
}

#[test]
fn compat_differential() {
    run_suite("test_differential.py");
}

#[test]
fn compat_kafka() {
    run_suite("test_kafka.py");
}

#[test]
fn compat_ensemble() {
    run_suite("test_ensemble.py");
}

#[test]
fn compat_kazoo_suite() {
    run_suite("test_kazoo_suite.py");
}

#[test]
fn compat_curator() {
    run_suite("test_curator.py");
}

#[test]
fn compat_cclient() {
    run_suite("test_cclient.py");
}

#[test]
fn compat_reconfig() {
    run_suite("test_reconfig.py");
}

#[test]
fn compat_migration() {
    run_suite("test_migration.py");
}

#[test]
fn compat_migration_kafka() {
    run_suite("test_migration_kafka.py");
}

#[test]
fn compat_watch_acl() {
    run_suite("test_watch_acl.py");
}

#[test]
fn compat_tls() {
    run_suite("test_tls.py");
}

#[test]
fn compat_tls_quorum() {
    run_suite("test_tls_quorum.py");
}

#[test]
fn compat_sasl() {
    run_suite("test_sasl.py");
}
