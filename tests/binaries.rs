//! The real `keeperd` process driven by its zkServer.sh-style verbs, and `keeperctl` commands
//! against it, with the output an operator sees. Every child process runs under a deadline.

mod support;

use std::path::Path;

use support::{free_port, run, KEEPERCTL, KEEPERD};

/// Stops the daemon even when an assertion fails half-way.
struct Daemon<'a> {
    dir: &'a Path,
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        let _ = run(self.dir, KEEPERD, &["stop", "zoo.cfg"]);
    }
}

#[test]
fn start_status_keeperctl_and_stop_against_a_real_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             4lw.commands.whitelist=ruok,mntr,srvr\n",
            dir.join("data").display()
        ),
    )
    .unwrap();

    let started = run(dir, KEEPERD, &["start", "zoo.cfg"]);
    assert!(started.ok(), "{}{}", started.stdout, started.stderr);
    assert!(started.stdout.contains("STARTED"), "{}", started.stdout);
    let _daemon = Daemon { dir };
    assert!(dir.join("data/zookeeper_server.pid").exists());

    let again = run(dir, KEEPERD, &["start", "zoo.cfg"]);
    assert!(!again.ok());
    assert!(
        again.stdout.contains("already running as process"),
        "{}",
        again.stdout
    );

    let status = run(dir, KEEPERD, &["status", "zoo.cfg"]);
    assert!(status.ok(), "{}{}", status.stdout, status.stderr);
    assert!(
        status
            .stdout
            .contains(&format!("Client port found: {port}.")),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Mode: standalone"),
        "{}",
        status.stdout
    );

    let server = format!("127.0.0.1:{port}");
    let ctl = |args: &[&str]| {
        let mut full = vec!["-server", server.as_str()];
        full.extend_from_slice(args);
        run(dir, KEEPERCTL, &full)
    };
    assert!(ctl(&["create", "/kafka01"]).ok());
    assert!(ctl(&["create", "/kafka01/brokers"]).ok());
    assert!(ctl(&["create", "/kafka01/brokers/ids"]).ok());
    let chrooted = format!("{server}/kafka01");
    let reg = run(
        dir,
        KEEPERCTL,
        &[
            "-server",
            &chrooted,
            "create",
            "/brokers/ids/1",
            r#"{"host":"h1"}"#,
        ],
    );
    assert!(reg.ok(), "{}{}", reg.stdout, reg.stderr);
    let ls = ctl(&["ls", "/kafka01/brokers/ids"]);
    assert_eq!(ls.stdout.trim(), "[1]", "{}", ls.stderr);
    let get = ctl(&["get", "/kafka01/brokers/ids/1"]);
    assert_eq!(get.stdout.trim(), r#"{"host":"h1"}"#);
    assert!(ctl(&["set", "/kafka01/brokers/ids/1", "v2"]).ok());
    let stat = ctl(&["stat", "/kafka01/brokers/ids/1"]);
    assert!(stat.stdout.contains("dataVersion = 1"), "{}", stat.stdout);
    assert!(stat.stdout.contains("cZxid = 0x"), "{}", stat.stdout);
    let missing = ctl(&["get", "/nope"]);
    assert!(!missing.ok());
    assert!(
        (missing.stdout.clone() + &missing.stderr).contains("Node does not exist: /nope"),
        "{}{}",
        missing.stdout,
        missing.stderr
    );
    // addauth applies to the commands chained after it in the same session.
    let private = ctl(&[
        "addauth",
        "digest",
        "alice:pw",
        ";",
        "create",
        "/private",
        "s",
        "auth::cdrwa",
    ]);
    assert!(private.ok(), "{}{}", private.stdout, private.stderr);
    let denied = ctl(&["get", "/private"]);
    assert!(!denied.ok());
    let acl = ctl(&["addauth", "digest", "alice:pw", ";", "getAcl", "/private"]);
    assert!(acl.stdout.contains("'digest,'alice:"), "{}", acl.stdout);
    assert!(ctl(&["sync", "/kafka01"]).ok());
    assert!(ctl(&["deleteall", "/kafka01"]).ok());
    assert_eq!(ctl(&["ls", "/"]).stdout.trim(), "[private, zookeeper]");

    let ruok = run(dir, KEEPERCTL, &["4lw", &server, "ruok"]);
    assert_eq!(ruok.stdout, "imok");
    let refused = run(dir, KEEPERCTL, &["4lw", &server, "cons"]);
    assert_eq!(
        refused.stdout,
        "cons is not executed because it is not in the whitelist.\n"
    );

    let stopped = run(dir, KEEPERD, &["stop", "zoo.cfg"]);
    assert!(stopped.ok(), "{}{}", stopped.stdout, stopped.stderr);
    assert!(stopped.stdout.contains("STOPPED"), "{}", stopped.stdout);
    assert!(!dir.join("data/zookeeper_server.pid").exists());
    let down = run(dir, KEEPERD, &["status", "zoo.cfg"]);
    assert!(!down.ok());
    assert!((down.stdout + &down.stderr)
        .contains("Error contacting service. It is probably not running."),);
}
