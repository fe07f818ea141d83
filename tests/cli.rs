//! The keeperd and keeperctl binaries, for what needs no working server: messages and exit
//! codes of the zkServer.sh-style verbs, config errors, pid-file handling, and the client's
//! four-letter-word path against a stub listener. Every child process runs under a deadline.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command};

use support::{free_port, run, run_env, Node, Ready, KEEPERCTL, KEEPERD, RUN_DEADLINE};

/// A temp dir with a valid standalone zoo.cfg on an unused port.
fn setup() -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    std::fs::write(
        dir.path().join("zoo.cfg"),
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\n",
            data.display()
        ),
    )
    .unwrap();
    (dir, port)
}

/// A process that lives until killed, standing in for a running server.
fn sleeper() -> Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

#[test]
fn version_mirrors_zookeeper_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), KEEPERD, &["version"]);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stdout
            .starts_with("Apache ZooKeeper, version 3.8.0-keeperd-"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), KEEPERD, &["--help"]);
    assert_eq!(out.code, Some(0));
    for verb in [
        "start",
        "start-foreground",
        "stop",
        "restart",
        "status",
        "version",
    ] {
        assert!(
            out.stdout.contains(verb),
            "{verb} missing from {}",
            out.stdout
        );
    }
    let out = run(dir.path(), KEEPERD, &["frobnicate"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("unknown command \"frobnicate\""),
        "{}",
        out.stderr
    );
}

#[test]
fn broken_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.cfg"),
        "# comment\ntickTime=2000\ndataDir=data\nclientPort=abc\n",
    )
    .unwrap();
    for verb in ["start-foreground", "start", "status"] {
        let out = run(dir.path(), KEEPERD, &[verb, "bad.cfg"]);
        assert_ne!(out.code, Some(0), "{verb}");
        assert!(
            out.stderr
                .contains("bad.cfg:4: clientPort: \"abc\" is not a port number"),
            "{verb}: {}",
            out.stderr
        );
    }
    // --config works the same as the positional file.
    let out = run(dir.path(), KEEPERD, &["--config", "bad.cfg"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("bad.cfg:4: clientPort"),
        "{}",
        out.stderr
    );

    std::fs::write(
        dir.path().join("nodir.cfg"),
        "tickTime=2000\nclientPort=2181\n",
    )
    .unwrap();
    let out = run(dir.path(), KEEPERD, &["start-foreground", "nodir.cfg"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("nodir.cfg: dataDir is not set"),
        "{}",
        out.stderr
    );
}

#[test]
fn stop_without_pid_file() {
    let (dir, _) = setup();
    let out = run(dir.path(), KEEPERD, &["stop", "zoo.cfg"]);
    let pid_file = dir.path().join("data").join("zookeeper_server.pid");
    assert_eq!(
        out.stdout,
        format!(
            "Stopping zookeeper ... no zookeeper to stop (could not find file {})\n",
            pid_file.display()
        )
    );
    // zkServer.sh exits 0 here as well.
    assert_eq!(out.code, Some(0));
    assert!(
        out.stderr.contains("Using config: zoo.cfg"),
        "{}",
        out.stderr
    );

    // Embedded default config: the pid file is under ./keeperd-data.
    let out = run(dir.path(), KEEPERD, &["stop"]);
    assert!(
        out.stdout
            .contains("could not find file keeperd-data/zookeeper_server.pid"),
        "{}",
        out.stdout
    );
}

#[test]
fn stop_signals_the_pid_file_process_and_waits() {
    let (dir, _) = setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = sleeper();
    let pid_file = data.join("zookeeper_server.pid");
    std::fs::write(&pid_file, server.id().to_string()).unwrap();
    let out = run(dir.path(), KEEPERD, &["stop", "zoo.cfg"]);
    assert_eq!(out.stdout, "Stopping zookeeper ... STOPPED\n");
    assert_eq!(out.code, Some(0));
    let status = server.wait().unwrap();
    assert!(!status.success(), "sleep should have been terminated");
    assert!(!pid_file.exists());

    // A stale pid file (process gone) is cleaned up.
    std::fs::write(&pid_file, status_free_pid().to_string()).unwrap();
    let out = run(dir.path(), KEEPERD, &["stop", "zoo.cfg"]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.ends_with("STOPPED\n"), "{}", out.stdout);
    assert!(!pid_file.exists());
}

/// The pid of a process that has exited and been reaped.
fn status_free_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn start_refuses_when_the_pid_file_names_a_live_process() {
    let (dir, _) = setup();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = sleeper();
    std::fs::write(data.join("zookeeper_server.pid"), server.id().to_string()).unwrap();
    let out = run(dir.path(), KEEPERD, &["start", "zoo.cfg"]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        out.stdout,
        format!(
            "Starting zookeeper ... already running as process {}.\n",
            server.id()
        )
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn zoopidfile_overrides_the_pid_file() {
    let (dir, _) = setup();
    let pid_file = dir.path().join("run").join("zk.pid");
    let out = run_env(
        dir.path(),
        KEEPERD,
        &["stop", "zoo.cfg"],
        &[("ZOOPIDFILE", pid_file.to_str().unwrap())],
    );
    assert!(
        out.stdout
            .contains(&format!("could not find file {}", pid_file.display())),
        "{}",
        out.stdout
    );
}

#[test]
fn status_with_nothing_listening() {
    let (dir, port) = setup();
    let out = run(dir.path(), KEEPERD, &["status", "zoo.cfg"]);
    assert_eq!(
        out.stdout,
        format!(
            "Client port found: {port}. Client address: localhost. Client SSL: false.\n\
             Error contacting service. It is probably not running.\n"
        )
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn status_finds_zoo_cfg_through_zoocfgdir() {
    let (dir, port) = setup();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run_env(
        elsewhere.path(),
        KEEPERD,
        &["status"],
        &[("ZOOCFGDIR", dir.path().to_str().unwrap())],
    );
    assert!(
        out.stdout
            .starts_with(&format!("Client port found: {port}.")),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn status_prints_the_mode_line_from_srvr() {
    let (dir, port) = setup();
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let stub = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut word = [0u8; 4];
        conn.read_exact(&mut word).unwrap();
        assert_eq!(&word, b"srvr");
        conn.write_all(b"Zookeeper version: 3.8.0\nZxid: 0x0\nMode: follower\nNode count: 5\n")
            .unwrap();
    });
    let out = run(dir.path(), KEEPERD, &["status", "zoo.cfg"]);
    stub.join().unwrap();
    assert!(out.stdout.ends_with("\nMode: follower\n"), "{}", out.stdout);
    assert_eq!(out.code, Some(0));
}

#[test]
fn keeperctl_4lw_prints_the_reply() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stub = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut word = [0u8; 4];
        conn.read_exact(&mut word).unwrap();
        assert_eq!(&word, b"ruok");
        conn.write_all(b"imok").unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{port}");
    let out = run(dir.path(), KEEPERCTL, &["4lw", &target, "ruok"]);
    stub.join().unwrap();
    assert_eq!(out.stdout, "imok");
    assert_eq!(out.code, Some(0));
}

#[test]
fn keeperctl_fails_cleanly_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("127.0.0.1:{}", free_port());
    let out = run(dir.path(), KEEPERCTL, &["-server", &server, "ls", "/"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!("cannot connect to {server}")),
        "{}",
        out.stderr
    );
    let out = run(dir.path(), KEEPERCTL, &["4lw", &server, "ruok"]);
    assert_eq!(out.code, Some(1));
    // Usage errors are caught before connecting and exit 2.
    let out = run(dir.path(), KEEPERCTL, &["-server", &server, "ls"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("ls: wrong number of arguments"),
        "{}",
        out.stderr
    );
    let out = run(
        dir.path(),
        KEEPERCTL,
        &["-server", &server, "setAcl", "/x", "world:anyone"],
    );
    assert_eq!(out.code, Some(2));
}

#[test]
fn keeperctl_reconfig_usage_errors_come_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: every case below must fail before a connection is tried.
    let server = format!("127.0.0.1:{}", free_port());
    let usage_line = "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]";
    let cases: &[(&[&str], &str)] = &[
        (&["reconfig"], usage_line),
        (&["reconfig", "-s", "-v", "100000000"], usage_line),
        (
            &["reconfig", "-members", "server.1=h:1:2;3", "-remove", "2"],
            "Can't use -file or -members together with -add or -remove (mixing incremental \
             and non-incremental modes is not allowed)",
        ),
        (
            &[
                "reconfig",
                "-members",
                "server.1=h:1:2;3",
                "-file",
                "dyn.cfg",
            ],
            "Can't use -file and -members together (conflicting non-incremental modes)",
        ),
        (
            &["reconfig", "-v", "0x100000000", "-remove", "3"],
            "-v must be followed by a long (configuration version)",
        ),
        (
            &["reconfig", "-remove"],
            "Missing argument for option: remove",
        ),
        (
            &["reconfig", "-x", "-remove", "3"],
            "Unrecognized option: -x",
        ),
    ];
    for (args, message) in cases {
        let mut argv = vec!["-server", server.as_str()];
        argv.extend_from_slice(args);
        let out = run(dir.path(), KEEPERCTL, &argv);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!("{message}\n")),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("Usage: keeperctl"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    // -file is read before connecting too; its errors are zkCli's (exit 1, not usage).
    std::fs::write(dir.path().join("dyn.cfg"), "server.1=h:1:2;3\nfoo=bar\n").unwrap();
    let out = run(
        dir.path(),
        KEEPERCTL,
        &["-server", &server, "reconfig", "-file", "dyn.cfg"],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "Error processing dyn.cfgUnrecognised parameter: foo\n"
    );
    let out = run(
        dir.path(),
        KEEPERCTL,
        &["-server", &server, "reconfig", "-file", "missing.cfg"],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr,
        "Error processing missing.cfgmissing.cfg (No such file or directory)\n"
    );
}

#[test]
fn keeperctl_reconfig_against_a_server_with_reconfig_disabled() {
    // Standalone with reconfigEnabled unset (false): the server refuses every reconfig
    // with ReconfigDisabled, which zkCli prints as below.
    let (dir, port) = setup();
    let mut server = Node::new(1, dir.path(), port);
    server.start();
    server.wait_ready_blocking(Ready::Serving, RUN_DEADLINE);
    let target = format!("127.0.0.1:{port}");
    // The second is refused before permissions are looked at: super does not change the
    // answer, and the command after it does not run (the first failing command stops the
    // rest).
    for args in [
        &[
            "reconfig",
            "-add",
            "server.4=127.0.0.1:2888:3888;127.0.0.1:2181",
        ][..],
        &[
            "--auth",
            "digest:super:pw",
            "reconfig",
            "-remove",
            "3",
            ";",
            "ls",
            "/",
        ],
    ] {
        let mut argv = vec!["-server", &target];
        argv.extend_from_slice(args);
        let out = run(dir.path(), KEEPERCTL, &argv);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, "KeeperErrorCode = Reconfig is disabled\n");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }

    let out = run(dir.path(), KEEPERCTL, &["-server", &target, "config", "-s"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("\ncZxid = 0x"), "{}", out.stdout);
}
