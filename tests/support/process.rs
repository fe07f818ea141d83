//! The keeperd and keeperctl binaries as processes: one-shot runs under a deadline, and
//! [`Node`], one keeperd server process (`start-foreground` in its own directory) that a
//! test starts, kills -9, stops, pauses and resumes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fourlw::{four_letter_word_blocking, Ready};

pub const KEEPERD: &str = env!("CARGO_BIN_EXE_keeperd");
pub const KEEPERCTL: &str = env!("CARGO_BIN_EXE_keeperctl");

/// How long a one-shot [`run`] may take.
pub const RUN_DEADLINE: Duration = Duration::from_secs(30);

/// What a one-shot run printed, and its exit code (None when a signal ended it).
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exited with status 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `bin args` in `dir` with the zkEnv variables cleared, killing it past
/// [`RUN_DEADLINE`].
pub fn run(dir: &Path, bin: &str, args: &[&str]) -> Output {
    run_env(dir, bin, args, &[])
}

/// [`run`] with the variables `env` set.
pub fn run_env(dir: &Path, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(dir)
        .env_remove("ZOOCFGDIR")
        .env_remove("ZOOCFG")
        .env_remove("ZOOPIDFILE")
        .env_remove("ZOO_LOG_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    if wait_for_exit(&mut child, RUN_DEADLINE, Duration::from_millis(20)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{bin} {args:?} did not finish within {RUN_DEADLINE:?}");
    }
    let out = child.wait_with_output().expect("output");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Sends `sig` to `child` (not yet reaped, so its pid cannot have been reused).
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Polls `child` every `poll` until it exits (its status) or `limit` has passed (None).
pub fn wait_for_exit(child: &mut Child, limit: Duration, poll: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(poll);
    }
}

/// One keeperd server: `keeperd start-foreground zoo.cfg` in `dir`, its output appended to
/// `dir/server.log`. Dropping it kills the process.
pub struct Node {
    pub id: u64,
    pub dir: PathBuf,
    pub client_port: u16,
    pub child: Option<Child>,
}

impl Node {
    /// Server `id` in `dir` (which holds or will hold its zoo.cfg) on `client_port`; not
    /// started.
    pub fn new(id: u64, dir: &Path, client_port: u16) -> Node {
        Node {
            id,
            dir: dir.to_path_buf(),
            client_port,
            child: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn start(&mut self) {
        self.start_with_env(&[]);
    }

    /// `start` with extra environment variables (e.g. LD_PRELOAD for fault injection).
    pub fn start_with_env(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let child = Command::new(KEEPERD)
            .args(["start-foreground", "zoo.cfg"])
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (what `keeperd stop` sends), then waits up to 10 s for the process to end
    /// before killing it.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let Some(mut c) = self.child.take() else {
            return;
        };
        if wait_for_exit(&mut c, Duration::from_secs(10), Duration::from_millis(20)).is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            signal(c, sig);
        }
    }

    /// SIGSTOP, then waits (up to 2 s) until every thread of the process is stopped: kill(2)
    /// returns before a thread busy in the kernel (a write, an fdatasync) has stopped, and a
    /// test that then sends a request must know the paused server cannot answer it.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let Some(c) = &self.child else { return };
        let tasks = PathBuf::from(format!("/proc/{}/task", c.id()));
        let stopped = || {
            let Ok(dir) = std::fs::read_dir(&tasks) else {
                return true; // exited
            };
            dir.flatten().all(|t| {
                // stat is "pid (comm) S ...": the state follows the last ')'.
                std::fs::read_to_string(t.path().join("stat")).map_or(true, |stat| {
                    stat.rsplit_once(')').is_some_and(|(_, rest)| {
                        matches!(
                            rest.trim_start().chars().next(),
                            Some('T' | 't' | 'Z' | 'X')
                        )
                    })
                })
            })
        };
        let start = Instant::now();
        while !stopped() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Blocks (for tests without a runtime) until the server is `ready`; panics when the
    /// process exits first or after `limit`.
    pub fn wait_ready_blocking(&mut self, ready: Ready, limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("keeperd exited before serving: {status}");
            }
            if four_letter_word_blocking(self.client_port, ready.word())
                .is_ok_and(|reply| ready.seen_in(&reply))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "keeperd did not serve on port {} within {limit:?}",
            self.client_port
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}

/// A standalone server in `dir` (zoo.cfg there, log in `dir/server.log`) on a free client
/// port, its dataDir at `data_dir`, with `extra` zoo.cfg lines; not started.
pub fn standalone(dir: &Path, data_dir: &Path, extra: &str) -> Node {
    let port = super::ports::free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n{extra}\n",
            data_dir.display()
        ),
    )
    .unwrap();
    Node::new(1, dir, port)
}
