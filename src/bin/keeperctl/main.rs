//! keeperctl: a command-line client in the spirit of zkCli.sh, for keeperd or any ZooKeeper.
//!
//! ```text
//! keeperctl [-server host:port[,host:port...][/chroot]] [--auth scheme:credentials]...
//!           [-timeout ms] CMD ARGS [\; CMD ARGS ...]
//! keeperctl 4lw [HOST:PORT] WORD
//! ```
//!
//! Commands and their output follow zkCli.sh (ZooKeeper 3.8) so scripts can switch:
//! `ls [-s] [-w] [-R] path` prints `[a, b]`; `get [-s] [-w] path`; `set [-s] [-v version] path
//! data`; `create [-e] [-s] [-c] [-t ttl] path [data] [acl]` prints `Created /path`;
//! `delete [-v version] path`; `deleteall path`; `stat [-w] path` prints `cZxid = 0x...` lines;
//! `getAcl [-s] path`; `setAcl [-s] [-v version] path acl` (acl like `digest:u:hash:crdwa`,
//! comma-separated); `addauth scheme auth`; `sync path`; `config [-s] [-w]`; `whoami`;
//! `reconfig [-s] [-v version] [-file path | -members list | -add list -remove ids]`
//! prints `Committed new configuration:` and the new `/zookeeper/config` (it needs the super
//! identity or skipACL on the server: `addauth digest super:pw \; reconfig ...`).
//!
//! Several commands share one session when separated by a lone `;` (quote it from the shell)
//! or `--`; that is how `addauth` reaches the commands after it:
//! `keeperctl addauth digest u:p \; create /x data digest:u:HASH:cdrwa`. `--auth scheme:cred`
//! authenticates before the first command instead.
//!
//! Errors go to stderr in zkCli's words (`Node does not exist: /x`) and the exit code is 1;
//! the first failing command stops the rest. Usage errors exit 2.
//!
//! Files: this one holds the frame every command shares (options, `;`-separated commands,
//! the session, flag parsing, errors in zkCli's words, the Stat and watch-event printers)
//! and dispatches each command to its group: `znodes.rs` (ls, get, set, create, delete,
//! deleteall, stat, sync), `acl.rs` (getAcl, setAcl, addauth, whoami), `ensemble.rs`
//! (config, reconfig) and `four_letter.rs` (4lw).

mod acl;
mod backup;
mod bench;
mod bench_conn;
mod ensemble;
mod four_letter;
mod znodes;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use zookeeper_client::{Client, EventType, OneshotWatcher, SessionState, Stat};

const DEFAULT_SERVER: &str = "localhost:2181";
/// zkCli's default session timeout.
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 30_000;
/// Bound on establishing the session, so a dead server fails the command instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect/read bound for four-letter words.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
Usage: keeperctl [-server host:port[,host:port...][/chroot]] [--auth scheme:credentials]...
                 [-timeout ms] CMD ARGS [';' CMD ARGS ...]
       keeperctl 4lw [HOST:PORT] WORD

Commands (as zkCli.sh):
  ls [-s] [-w] [-R] path
  get [-s] [-w] path
  set [-s] [-v version] path data
  create [-e] [-s] [-c] [-t ttl] path [data] [acl]
  delete [-v version] path
  deleteall path
  stat [-w] path
  getAcl [-s] path
  setAcl [-s] [-v version] path acl      acl: scheme:id:perms[,...], perms from crdwa
  addauth scheme auth                    applies to the commands after it (separate with ';')
  sync path
  config [-s] [-w]
  reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]
                                         -v is the hex version= of /zookeeper/config; needs
                                         super auth (addauth digest super:pw) or skipACL
  whoami
  4lw WORD                               four-letter word to the first -server host
  snapshot save FILE                     online backup through the AdminServer (-admin
                                         host:port, default the -server host on 8080);
                                         needs --auth digest:user:pw, super or ALL on /
  bench [--workloads LIST] [--seconds S] [--sessions N] [--window W] [--rate OPS]
        [--value-size B] [--keys K] [--children C] [--root PATH]
                                         load generator; LIST: comma-separated from
                                         create,setData,getData,mix,multi,watch,churn,
                                         children, or all (default); JSON lines on stdout,
                                         a table on stderr (docs/performance.md)

-server defaults to localhost:2181. A lone ';' or '--' separates commands run in one session.
";

/// Failure of one command: the message zkCli would print and whether it is a usage error.
#[derive(Debug)]
struct Failure {
    message: String,
    usage: bool,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: true,
        }
    }

    fn op(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            usage: false,
        }
    }
}

struct Options {
    server: String,
    /// -admin host:port: the AdminServer (snapshot save).
    admin: Option<String>,
    auth: Vec<(String, String)>,
    session_timeout: Duration,
    commands: Vec<Vec<String>>,
}

fn parse_options(args: Vec<String>) -> Result<Options, Failure> {
    let mut server = DEFAULT_SERVER.to_string();
    let mut admin = None;
    let mut auth = Vec::new();
    let mut session_timeout = Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS);
    let mut iter = args.into_iter().peekable();
    while let Some(arg) = iter.peek() {
        match arg.as_str() {
            "-server" | "--server" => {
                iter.next();
                server = iter
                    .next()
                    .ok_or_else(|| Failure::usage("-server needs host:port"))?;
            }
            "-admin" | "--admin" => {
                iter.next();
                admin = Some(
                    iter.next()
                        .ok_or_else(|| Failure::usage("-admin needs host:port"))?,
                );
            }
            "--auth" | "-auth" => {
                iter.next();
                let value = iter
                    .next()
                    .ok_or_else(|| Failure::usage("--auth needs scheme:credentials"))?;
                let (scheme, cred) = value
                    .split_once(':')
                    .ok_or_else(|| Failure::usage("--auth needs scheme:credentials"))?;
                auth.push((scheme.to_string(), cred.to_string()));
            }
            "-timeout" | "--timeout" => {
                iter.next();
                let ms: u64 = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Failure::usage("-timeout needs milliseconds"))?;
                session_timeout = Duration::from_millis(ms);
            }
            "-r" | "-waitforconnection" => {
                // zkCli flags with no effect here: accepted so invocations carry over.
                iter.next();
            }
            _ => break,
        }
    }
    let mut commands: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for arg in iter {
        if arg == ";" || arg == "--" {
            commands.push(std::mem::take(&mut current));
        } else if let Some(stripped) = arg.strip_suffix(';').filter(|_| arg.len() > 1) {
            // `get /a\;` typed without a space before the separator.
            current.push(stripped.to_string());
            commands.push(std::mem::take(&mut current));
        } else {
            current.push(arg);
        }
    }
    commands.push(current);
    commands.retain(|c| !c.is_empty());
    Ok(Options {
        server,
        admin,
        auth,
        session_timeout,
        commands,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty()
        || args
            .iter()
            .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        print!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let options = match parse_options(args) {
        Ok(o) => o,
        Err(f) => return report(f),
    };
    if options.commands.is_empty() {
        return report(Failure::usage("no command given"));
    }
    if options.commands[0][0] == "snapshot" {
        if options.commands.len() > 1 {
            return report(Failure::usage(
                "snapshot cannot be combined with other commands",
            ));
        }
        let admin = backup::admin_address(options.admin.as_deref(), &options.server);
        return match backup::snapshot_command(&admin, &options.auth, &options.commands[0][1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => report(f),
        };
    }
    if options.commands[0][0] == "bench" {
        if options.commands.len() > 1 {
            return report(Failure::usage(
                "bench cannot be combined with other commands",
            ));
        }
        return match bench::bench_command(&options.server, &options.commands[0][1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => report(f),
        };
    }
    if options.commands[0][0] == "4lw" {
        if options.commands.len() > 1 {
            return report(Failure::usage("4lw cannot be combined with other commands"));
        }
        return match four_letter::four_letter_command(&options.server, &options.commands[0][1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => report(f),
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(Failure::op(format!("cannot start runtime: {e}"))),
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(f),
    }
}

fn report(failure: Failure) -> ExitCode {
    eprintln!("{}", failure.message);
    if failure.usage {
        eprint!("{USAGE}");
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

async fn run(options: Options) -> Result<(), Failure> {
    // Validate every command before connecting, so a typo costs no session.
    for command in &options.commands {
        check_command(command)?;
    }
    let mut connector = Client::connector()
        .with_session_timeout(options.session_timeout)
        .with_connection_timeout(FOUR_LETTER_TIMEOUT)
        .with_fail_eagerly();
    for (scheme, cred) in &options.auth {
        connector = connector.with_auth(scheme, cred.as_bytes());
    }
    let client =
        match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(&options.server)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(Failure::op(format!(
                    "cannot connect to {}: {e}",
                    options.server
                )))
            }
            Err(_) => {
                return Err(Failure::op(format!(
                    "cannot connect to {}: timed out after {}s",
                    options.server,
                    CONNECT_TIMEOUT.as_secs()
                )))
            }
        };
    let mut state = client.state_watcher();
    let result = async {
        for command in &options.commands {
            execute(&client, command).await?;
        }
        Ok(())
    }
    .await;
    // Dropping the last handle makes the session task send closeSession; wait for it so
    // ephemerals go away now (as when zkCli exits) rather than at session expiry.
    drop(client);
    let _ = tokio::time::timeout(FOUR_LETTER_TIMEOUT, async {
        while !state.changed().await.is_terminated() {}
    })
    .await;
    result
}

/// Flags (`-s`, `-v 3`, ...) and positional arguments of one command.
struct Parsed {
    flags: Vec<char>,
    version: Option<i32>,
    ttl: Option<u64>,
    args: Vec<String>,
}

impl Parsed {
    fn has(&self, flag: char) -> bool {
        self.flags.contains(&flag)
    }
}

/// Per command: allowed boolean flags, whether -v/-t take values, positional arg count range.
fn spec(name: &str) -> Option<(&'static str, bool, bool, usize, usize)> {
    Some(match name {
        "ls" | "ls2" => ("swR", false, false, 1, 1),
        "get" => ("sw", false, false, 1, 1),
        "set" => ("s", true, false, 2, 2),
        "create" => ("esc", false, true, 1, 3),
        "delete" | "rmr" => ("", true, false, 1, 1),
        "deleteall" => ("", false, false, 1, 1),
        "stat" => ("w", false, false, 1, 1),
        "getAcl" => ("s", false, false, 1, 1),
        "setAcl" => ("sR", true, false, 2, 2),
        "addauth" => ("", false, false, 1, 2),
        "sync" => ("", false, false, 1, 1),
        "config" => ("sw", false, false, 0, 0),
        "whoami" => ("", false, false, 0, 0),
        _ => return None,
    })
}

fn parse_command(command: &[String]) -> Result<Parsed, Failure> {
    let name = command[0].as_str();
    let (flags_allowed, takes_version, takes_ttl, min, max) =
        spec(name).ok_or_else(|| Failure::usage(format!("unknown command: {name}")))?;
    let mut parsed = Parsed {
        flags: Vec::new(),
        version: None,
        ttl: None,
        args: Vec::new(),
    };
    let mut iter = command[1..].iter();
    while let Some(arg) = iter.next() {
        // A path starts with '/', and data may start with '-' once the path is given.
        if parsed.args.is_empty() && arg.starts_with('-') && arg.len() > 1 {
            for flag in arg[1..].chars() {
                match flag {
                    'v' if takes_version => {
                        let v = iter.next().and_then(|v| v.parse().ok()).ok_or_else(|| {
                            Failure::usage(format!("{name}: -v needs a version number"))
                        })?;
                        parsed.version = Some(v);
                    }
                    't' if takes_ttl => {
                        let t = iter.next().and_then(|v| v.parse().ok()).ok_or_else(|| {
                            Failure::usage(format!("{name}: -t needs a ttl in ms"))
                        })?;
                        parsed.ttl = Some(t);
                    }
                    f if flags_allowed.contains(f) => parsed.flags.push(f),
                    f => return Err(Failure::usage(format!("{name}: unknown option -{f}"))),
                }
            }
        } else {
            parsed.args.push(arg.clone());
        }
    }
    if parsed.args.len() < min || parsed.args.len() > max {
        return Err(Failure::usage(format!("{name}: wrong number of arguments")));
    }
    Ok(parsed)
}

fn check_command(command: &[String]) -> Result<(), Failure> {
    if command[0] == "reconfig" {
        return ensemble::parse_reconfig(&command[1..]).map(|_| ());
    }
    let parsed = parse_command(command)?;
    match command[0].as_str() {
        "setAcl" => acl::parse_acl(&parsed.args[1]).map(|_| ()),
        "create" if parsed.args.len() == 3 => acl::parse_acl(&parsed.args[2]).map(|_| ()),
        "addauth" if parsed.args.len() != 2 => {
            Err(Failure::usage("addauth: needs scheme and auth"))
        }
        _ => Ok(()),
    }
}

/// zkCli's wording for server errors about `path`.
fn explain(e: zookeeper_client::Error, path: &str) -> Failure {
    use zookeeper_client::Error as E;
    Failure::op(match e {
        E::NoNode => format!("Node does not exist: {path}"),
        E::NodeExists => format!("Node already exists: {path}"),
        E::NotEmpty => format!("Node not empty: {path}"),
        E::BadVersion => format!("version No is not valid : {path}"),
        E::NoAuth => format!("Insufficient permission : {path}"),
        E::InvalidAcl => format!("Acl is not valid : {path}"),
        E::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {path}"),
        E::AuthFailed => "Authentication failed".to_string(),
        E::BadArguments(why) => format!("{why}: {path}"),
        other => format!("{other}: {path}"),
    })
}

/// Runs one command: `reconfig` has its own option syntax; the others go through
/// `parse_command` and then to their group.
async fn execute(client: &Client, command: &[String]) -> Result<(), Failure> {
    if command[0] == "reconfig" {
        return ensemble::reconfig(client, ensemble::parse_reconfig(&command[1..])?).await;
    }
    let p = parse_command(command)?;
    let path = p.args.first().map(String::as_str).unwrap_or("/");
    match command[0].as_str() {
        "getAcl" | "setAcl" | "addauth" | "whoami" => {
            acl::execute(client, &command[0], &p, path).await
        }
        "config" => ensemble::config(client, &p).await,
        name => znodes::execute(client, name, &p, path).await,
    }
}

/// One line of a command's output.
fn print(out: &mut std::io::StdoutLock, text: &str) {
    let _ = writeln!(out, "{text}");
}

/// Prints the watch event the way zkCli's default watcher does, once it fires.
async fn wait_for(watcher: OneshotWatcher) {
    let event = watcher.changed().await;
    let kind = match event.event_type {
        EventType::Session => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
    };
    let state = match event.session_state {
        SessionState::SyncConnected => "SyncConnected".to_string(),
        other => format!("{other:?}"),
    };
    println!(
        "\nWATCHER::\n\nWatchedEvent state:{state} type:{kind} path:{}",
        event.path
    );
}

/// zkCli's StatPrinter layout; times in UTC in java.util.Date's toString format.
fn format_stat(stat: &Stat) -> String {
    [
        format!("cZxid = 0x{:x}", stat.czxid),
        format!("ctime = {}", java_date(stat.ctime)),
        format!("mZxid = 0x{:x}", stat.mzxid),
        format!("mtime = {}", java_date(stat.mtime)),
        format!("pZxid = 0x{:x}", stat.pzxid),
        format!("cversion = {}", stat.cversion),
        format!("dataVersion = {}", stat.version),
        format!("aclVersion = {}", stat.aversion),
        format!("ephemeralOwner = 0x{:x}", stat.ephemeral_owner),
        format!("dataLength = {}", stat.data_length),
        format!("numChildren = {}", stat.num_children),
    ]
    .join("\n")
}

/// `Thu Jan 01 00:00:00 UTC 1970` for epoch milliseconds (zkCli's date format).
fn java_date(ms: i64) -> String {
    keeperd::admin::java_date(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_700_000_000_123), "Tue Nov 14 22:13:20 UTC 2023");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn commands_split_on_semicolons() {
        let args = [
            "-server",
            "h:1/chroot",
            "addauth",
            "digest",
            "u:p",
            ";",
            "ls",
            "/",
            "--",
            "get",
            "/a;",
        ]
        .map(String::from)
        .to_vec();
        let o = parse_options(args).unwrap();
        assert_eq!(o.server, "h:1/chroot");
        assert_eq!(o.commands.len(), 3);
        assert_eq!(o.commands[2], vec!["get", "/a"]);
    }

    #[test]
    fn command_flags() {
        let cmd = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let p = parse_command(&cmd("set -v 3 /a -data")).unwrap();
        assert_eq!(p.version, Some(3));
        assert_eq!(p.args, vec!["/a", "-data"]);
        let p = parse_command(&cmd("create -e -s /a x")).unwrap();
        assert!(p.has('e') && p.has('s'));
        assert!(parse_command(&cmd("ls -x /")).is_err());
        assert!(parse_command(&cmd("get")).is_err());
        assert!(parse_command(&cmd("frobnicate /")).is_err());
    }
}
