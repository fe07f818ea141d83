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

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use zookeeper_client::{
    Acl, Acls, AuthId, Client, CreateMode, EnsembleUpdate, EventType, OneshotWatcher, Permission,
    SessionState, Stat,
};

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
    auth: Vec<(String, String)>,
    session_timeout: Duration,
    commands: Vec<Vec<String>>,
}

fn parse_options(args: Vec<String>) -> Result<Options, Failure> {
    let mut server = DEFAULT_SERVER.to_string();
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
    if options.commands[0][0] == "4lw" {
        if options.commands.len() > 1 {
            return report(Failure::usage("4lw cannot be combined with other commands"));
        }
        return match four_letter_command(&options.server, &options.commands[0][1..]) {
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
        return parse_reconfig(&command[1..]).map(|_| ());
    }
    let parsed = parse_command(command)?;
    match command[0].as_str() {
        "setAcl" => parse_acl(&parsed.args[1]).map(|_| ()),
        "create" if parsed.args.len() == 3 => parse_acl(&parsed.args[2]).map(|_| ()),
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

async fn execute(client: &Client, command: &[String]) -> Result<(), Failure> {
    if command[0] == "reconfig" {
        return reconfig(client, parse_reconfig(&command[1..])?).await;
    }
    let p = parse_command(command)?;
    let path = p.args.first().map(String::as_str).unwrap_or("/");
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock, text: &str| {
        let _ = writeln!(out, "{text}");
    };
    match command[0].as_str() {
        "ls" | "ls2" => {
            if p.has('R') {
                let mut nodes = subtree(client, path).await?;
                // zkCli prints depth first (ZKUtil.visitSubTreeDFS), children in name order.
                nodes.sort_by(|a, b| {
                    let segments = |p: &str| -> Vec<String> {
                        p.split('/')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    segments(a).cmp(&segments(b))
                });
                for node in nodes {
                    print(&mut out, &node);
                }
                return Ok(());
            }
            let (mut children, stat, watcher) = if p.has('w') {
                let (c, s, w) = client
                    .get_and_watch_children(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (c, s, Some(w))
            } else {
                let (c, s) = client
                    .get_children(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (c, s, None)
            };
            children.sort();
            print(&mut out, &format!("[{}]", children.join(", ")));
            if p.has('s') || command[0] == "ls2" {
                print(&mut out, &format_stat(&stat));
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "get" => {
            let (data, stat, watcher) = if p.has('w') {
                let (d, s, w) = client
                    .get_and_watch_data(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (d, s, Some(w))
            } else {
                let (d, s) = client.get_data(path).await.map_err(|e| explain(e, path))?;
                (d, s, None)
            };
            print(&mut out, &String::from_utf8_lossy(&data));
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "set" => {
            let stat = client
                .set_data(path, p.args[1].as_bytes(), p.version)
                .await
                .map_err(|e| explain(e, path))?;
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
        }
        "create" => {
            let mode = match (p.has('e'), p.has('s'), p.has('c')) {
                (_, _, true) => CreateMode::Container,
                (true, true, _) => CreateMode::EphemeralSequential,
                (true, false, _) => CreateMode::Ephemeral,
                (false, true, _) => CreateMode::PersistentSequential,
                (false, false, _) => CreateMode::Persistent,
            };
            let data = p.args.get(1).map(String::as_bytes).unwrap_or_default();
            let acl_list = match p.args.get(2) {
                Some(text) => parse_acl(text)?,
                None => vec![Acl::new(Permission::ALL, AuthId::anyone())],
            };
            let mut options = mode.with_acls(Acls::new(&acl_list));
            if let Some(ttl) = p.ttl {
                options = options.with_ttl(Duration::from_millis(ttl));
            }
            let (_, sequence) = client
                .create(path, data, &options)
                .await
                .map_err(|e| explain(e, path))?;
            let created = if p.has('s') {
                format!("{path}{sequence}")
            } else {
                path.to_string()
            };
            print(&mut out, &format!("Created {created}"));
        }
        "delete" | "rmr" => {
            client
                .delete(path, p.version)
                .await
                .map_err(|e| explain(e, path))?;
        }
        "deleteall" => {
            let nodes = subtree(client, path).await?;
            // Deepest first, so every node is a leaf when its turn comes.
            for node in nodes.iter().rev() {
                if node == "/" {
                    continue;
                }
                match client.delete(node, None).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(explain(e, node)),
                }
            }
        }
        "stat" => {
            let (stat, watcher) = if p.has('w') {
                let (s, w) = client
                    .check_and_watch_stat(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (s, Some(w))
            } else {
                (
                    client
                        .check_stat(path)
                        .await
                        .map_err(|e| explain(e, path))?,
                    None,
                )
            };
            match stat {
                Some(stat) => print(&mut out, &format_stat(&stat)),
                None if watcher.is_none() => {
                    return Err(Failure::op(format!("Node does not exist: {path}")))
                }
                None => print(&mut out, &format!("Node does not exist: {path}")),
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "getAcl" => {
            let (acls, stat) = client.get_acl(path).await.map_err(|e| explain(e, path))?;
            for acl in &acls {
                print(&mut out, &format!("'{},'{}", acl.scheme(), acl.id()));
                print(&mut out, &format!(": {}", perm_letters(acl.permission())));
            }
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
        }
        "setAcl" => {
            let acls = parse_acl(&p.args[1])?;
            let targets = if p.has('R') {
                subtree(client, path).await?
            } else {
                vec![path.to_string()]
            };
            for target in &targets {
                let stat = client
                    .set_acl(target, &acls, p.version)
                    .await
                    .map_err(|e| explain(e, target))?;
                if p.has('s') && target == path {
                    print(&mut out, &format_stat(&stat));
                }
            }
        }
        "addauth" => {
            let (scheme, auth) = (&p.args[0], &p.args[1]);
            client
                .auth(scheme, auth.as_bytes())
                .await
                .map_err(|e| Failure::op(format!("addauth {scheme}: {e}")))?;
        }
        "sync" => {
            client.sync(path).await.map_err(|e| explain(e, path))?;
            print(&mut out, "Sync is OK");
        }
        "config" => {
            let (data, stat, watcher) = if p.has('w') {
                let (d, s, w) = client
                    .get_and_watch_config()
                    .await
                    .map_err(|e| explain(e, CONFIG_NODE))?;
                (d, s, Some(w))
            } else {
                let (d, s) = client
                    .get_config()
                    .await
                    .map_err(|e| explain(e, CONFIG_NODE))?;
                (d, s, None)
            };
            print(&mut out, &String::from_utf8_lossy(&data));
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "whoami" => {
            let users = client
                .list_auth_users()
                .await
                .map_err(|e| Failure::op(format!("whoami: {e}")))?;
            print(&mut out, "Auth scheme: User");
            for user in users {
                print(&mut out, &format!("{}: {}", user.scheme(), user.user()));
            }
        }
        other => return Err(Failure::usage(format!("unknown command: {other}"))),
    }
    Ok(())
}

const CONFIG_NODE: &str = "/zookeeper/config";

/// zkCli's usage line for reconfig.
const RECONFIG_USAGE: &str = "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]";

/// A parsed `reconfig` command.
#[derive(Debug, PartialEq)]
struct Reconfig {
    /// `-s`: print the Stat of /zookeeper/config after the new configuration.
    stat: bool,
    /// `-v`: the configuration version (hex, as in `version=`) the change applies to.
    version: Option<i64>,
    change: Change,
}

#[derive(Debug, PartialEq)]
enum Change {
    /// `-add` servers (comma-separated lines) and `-remove` ids (comma-separated).
    Incremental {
        add: Option<String>,
        remove: Option<String>,
    },
    /// `-members` or the server lines of `-file`: the whole new membership.
    Members(String),
}

/// zkCli's reconfig options. Repeated `-add`/`-remove` are joined with commas (zkCli uses
/// only the first); stray words are refused (zkCli ignores them).
fn parse_reconfig(args: &[String]) -> Result<Reconfig, Failure> {
    let mut stat = false;
    let mut version = None;
    let mut file: Option<String> = None;
    let mut members: Option<String> = None;
    let mut add: Vec<String> = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let option = arg.as_str();
        let mut value = || {
            iter.next().cloned().ok_or_else(|| {
                Failure::usage(format!(
                    "Missing argument for option: {}",
                    option.trim_start_matches('-')
                ))
            })
        };
        match option {
            "-s" => stat = true,
            "-v" => {
                let text = value()?;
                let v = i64::from_str_radix(&text, 16).map_err(|_| {
                    Failure::usage("-v must be followed by a long (configuration version)")
                })?;
                version = Some(v);
            }
            "-file" => file = Some(value()?),
            "-members" => members = Some(value()?),
            "-add" => add.push(value()?),
            "-remove" => remove.push(value()?),
            other if other.starts_with('-') => {
                return Err(Failure::usage(format!("Unrecognized option: {other}")))
            }
            other => {
                return Err(Failure::usage(format!(
                    "reconfig: unexpected argument {other:?}"
                )))
            }
        }
    }
    let incremental = !add.is_empty() || !remove.is_empty();
    if (file.is_some() || members.is_some()) && incremental {
        return Err(Failure::usage(
            "Can't use -file or -members together with -add or -remove (mixing incremental \
             and non-incremental modes is not allowed)",
        ));
    }
    let change = match (file, members) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "Can't use -file and -members together (conflicting non-incremental modes)",
            ))
        }
        (Some(path), None) => Change::Members(read_dynamic_config(&path)?),
        (None, Some(list)) => Change::Members(list),
        (None, None) if incremental => Change::Incremental {
            add: (!add.is_empty()).then(|| add.join(",")),
            remove: (!remove.is_empty()).then(|| remove.join(",")),
        },
        (None, None) => return Err(Failure::usage(RECONFIG_USAGE)),
    };
    Ok(Reconfig {
        stat,
        version,
        change,
    })
}

/// The server lines of a dynamic config file (`server.N=`, and `group.N=`/`weight.N=` of
/// hierarchical quorums), comma-joined as reconfig's member list. Blank lines, `#` comments
/// and `version=` are skipped; anything else is refused, in zkCli's words.
fn read_dynamic_config(path: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let reason = e.to_string();
        let reason = reason.split(" (os error").next().unwrap_or(&reason);
        Failure::op(format!("Error processing {path}{path} ({reason})"))
    })?;
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = key.trim();
        if key == "version" {
            continue;
        }
        if !["server.", "group.", "weight."]
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            return Err(Failure::op(format!(
                "Error processing {path}Unrecognised parameter: {key}"
            )));
        }
        lines.push(format!("{key}={}", value.trim()));
    }
    Ok(lines.join(","))
}

async fn reconfig(client: &Client, request: Reconfig) -> Result<(), Failure> {
    let result = match &request.change {
        Change::Incremental { add, remove } => {
            let update = EnsembleUpdate::Incremental {
                joinings: add.as_deref().into_iter(),
                leavings: remove.as_deref().into_iter(),
            };
            client.update_ensemble(update, request.version).await
        }
        Change::Members(list) => {
            let update = EnsembleUpdate::New {
                ensemble: Some(list.as_str()).into_iter(),
            };
            client.update_ensemble(update, request.version).await
        }
    };
    let (data, stat) = result.map_err(explain_reconfig)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Committed new configuration:");
    let _ = writeln!(out, "{}", String::from_utf8_lossy(&data));
    if request.stat {
        let _ = writeln!(out, "{}", format_stat(&stat));
    }
    Ok(())
}

/// What zkCli prints for a refused reconfig.
fn explain_reconfig(e: zookeeper_client::Error) -> Failure {
    use zookeeper_client::Error as E;
    Failure::op(match e {
        E::NoAuth => "Insufficient permission : ".to_string(),
        E::BadVersion => "version No is not valid : ".to_string(),
        E::BadArguments(_) => "Arguments are not valid : ".to_string(),
        E::ReconfigDisabled => "KeeperErrorCode = Reconfig is disabled".to_string(),
        E::Unimplemented => "KeeperErrorCode = Unimplemented".to_string(),
        E::MarshallingError => "KeeperErrorCode = MarshallingError".to_string(),
        E::ConnectionLoss => "KeeperErrorCode = ConnectionLoss".to_string(),
        // The client library has no names for these two codes.
        E::UnexpectedErrorCode(-13) => "No quorum of new config is connected and up-to-date \
            with the leader of last committed config - try invoking reconfiguration after new \
            servers are connected and synced"
            .to_string(),
        E::UnexpectedErrorCode(-14) => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_string()
        }
        other => format!("reconfig: {other}"),
    })
}

/// `path` and every node below it, breadth first (ZKUtil.listSubTreeBFS).
async fn subtree(client: &Client, path: &str) -> Result<Vec<String>, Failure> {
    let mut nodes = vec![path.to_string()];
    let mut i = 0;
    while i < nodes.len() {
        let node = nodes[i].clone();
        let mut children = match client.list_children(&node).await {
            Ok(c) => c,
            // Deleted meanwhile: nothing below it to visit.
            Err(zookeeper_client::Error::NoNode) if i > 0 => Vec::new(),
            Err(e) => return Err(explain(e, &node)),
        };
        children.sort();
        for child in children {
            let full = if node.ends_with('/') {
                format!("{node}{child}")
            } else {
                format!("{node}/{child}")
            };
            nodes.push(full);
        }
        i += 1;
    }
    Ok(nodes)
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

/// zkCli's `scheme:id:perms[,scheme:id:perms]`; the id may contain ':' (digest user:hash).
fn parse_acl(text: &str) -> Result<Vec<Acl>, Failure> {
    let mut acls = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (Some(first), Some(last)) = (part.find(':'), part.rfind(':')) else {
            return Err(Failure::usage(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        };
        if first == last {
            return Err(Failure::usage(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        }
        let scheme = &part[..first];
        let id = &part[first + 1..last];
        let perms = parse_perms(&part[last + 1..])?;
        acls.push(Acl::new(perms, AuthId::new(scheme, id)));
    }
    if acls.is_empty() {
        return Err(Failure::usage("empty acl"));
    }
    Ok(acls)
}

fn parse_perms(letters: &str) -> Result<Permission, Failure> {
    let mut perms = Permission::NONE;
    for c in letters.chars() {
        perms = perms
            | match c.to_ascii_lowercase() {
                'r' => Permission::READ,
                'w' => Permission::WRITE,
                'c' => Permission::CREATE,
                'd' => Permission::DELETE,
                'a' => Permission::ADMIN,
                _ => {
                    return Err(Failure::usage(format!(
                        "unknown permission {c:?}: use letters from crdwa"
                    )))
                }
            };
    }
    Ok(perms)
}

/// ZKUtil.getPermString order: c d r w a.
fn perm_letters(perms: Permission) -> String {
    [
        (Permission::CREATE, 'c'),
        (Permission::DELETE, 'd'),
        (Permission::READ, 'r'),
        (Permission::WRITE, 'w'),
        (Permission::ADMIN, 'a'),
    ]
    .into_iter()
    .filter(|(p, _)| perms.has(*p))
    .map(|(_, c)| c)
    .collect()
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

/// `4lw [HOST:PORT] WORD`: without HOST:PORT, the first host of -server.
fn four_letter_command(server: &str, args: &[String]) -> Result<(), Failure> {
    let (target, word) = match args {
        [word] => {
            let first = server.split('/').next().unwrap_or(server);
            (first.split(',').next().unwrap_or(first).to_string(), word)
        }
        [target, word] => (target.clone(), word),
        _ => return Err(Failure::usage("4lw: expected [HOST:PORT] WORD")),
    };
    if word.len() != 4 {
        return Err(Failure::usage(format!(
            "4lw: {word:?} is not a four-letter word"
        )));
    }
    let (host, port) = split_host_port(&target)
        .ok_or_else(|| Failure::usage(format!("4lw: {target:?} is not HOST:PORT")))?;
    let reply = four_letter_word(&host, port, word)
        .map_err(|e| Failure::op(format!("cannot send {word} to {target}: {e}")))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// `host`, `host:port`, `[v6]:port`; port defaults to 2181.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 2181,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => Some((s.to_string(), 2181)),
        None => Some((s.to_string(), 2181)),
    }
}

fn four_letter_word(host: &str, port: u16, word: &str) -> std::io::Result<String> {
    keeperd::admin::four_letter_word(host, port, word, FOUR_LETTER_TIMEOUT)
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
    fn acls_like_zkcli() {
        let acls = parse_acl("world:anyone:cdrwa,digest:u:abc=:rw,ip:10.0.0.0/8:r").unwrap();
        assert_eq!(acls.len(), 3);
        assert_eq!((acls[1].scheme(), acls[1].id()), ("digest", "u:abc="));
        assert_eq!(perm_letters(acls[0].permission()), "cdrwa");
        assert_eq!(perm_letters(acls[1].permission()), "rw");
        assert_eq!(acls[2].id(), "10.0.0.0/8");
        assert!(parse_acl("world:anyone").is_err());
        assert!(parse_acl("world:anyone:x").is_err());
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

    #[test]
    fn reconfig_options_like_zkcli() {
        let parse = |s: &str| parse_reconfig(&s.split(' ').map(String::from).collect::<Vec<_>>());
        let r = parse("-s -v 100000003 -add server.4=h:1:2;3 -remove 3,5").unwrap();
        assert!(r.stat);
        assert_eq!(r.version, Some(0x1_0000_0003));
        assert_eq!(
            r.change,
            Change::Incremental {
                add: Some("server.4=h:1:2;3".into()),
                remove: Some("3,5".into())
            }
        );
        let r = parse("-add server.4=h:1:2;3 -add server.5=h:4:5;6").unwrap();
        assert_eq!(
            r.change,
            Change::Incremental {
                add: Some("server.4=h:1:2;3,server.5=h:4:5;6".into()),
                remove: None
            }
        );
        let r = parse("-members server.1=h:1:2;3,server.2=h:4:5;6").unwrap();
        assert_eq!(
            r.change,
            Change::Members("server.1=h:1:2;3,server.2=h:4:5;6".into())
        );
        let usage = |s: &str| {
            let f = parse(s).unwrap_err();
            assert!(f.usage, "{s}");
            f.message
        };
        assert_eq!(usage("-s"), RECONFIG_USAGE);
        assert_eq!(usage("-v 1"), RECONFIG_USAGE);
        assert!(usage("-members a -add b").starts_with("Can't use -file or -members together"));
        assert!(usage("-members a -file b").starts_with("Can't use -file and -members"));
        assert_eq!(
            usage("-v 0x10 -remove 3"),
            "-v must be followed by a long (configuration version)"
        );
        assert_eq!(usage("-remove"), "Missing argument for option: remove");
        assert_eq!(usage("-x"), "Unrecognized option: -x");
        assert!(usage("-remove 3 extra").contains("unexpected argument"));
    }

    #[test]
    fn reconfig_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dyn");
        std::fs::write(
            &path,
            "# new members\n\nserver.1=h:1:2:participant;h:3\n server.2 = h:4:5;6 \nversion=100000000\n",
        )
        .unwrap();
        let path = path.to_str().unwrap().to_string();
        assert_eq!(
            read_dynamic_config(&path).unwrap(),
            "server.1=h:1:2:participant;h:3,server.2=h:4:5;6"
        );
        std::fs::write(&path, "server.1=h:1:2;3\nfoo=bar\n").unwrap();
        let f = read_dynamic_config(&path).unwrap_err();
        assert_eq!(
            f.message,
            format!("Error processing {path}Unrecognised parameter: foo")
        );
        assert!(!f.usage);
        let missing = format!("{path}.missing");
        assert_eq!(
            read_dynamic_config(&missing).unwrap_err().message,
            format!("Error processing {missing}{missing} (No such file or directory)")
        );
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("h:2182"), Some(("h".into(), 2182)));
        assert_eq!(split_host_port("h"), Some(("h".into(), 2181)));
        assert_eq!(split_host_port("[::1]:2183"), Some(("::1".into(), 2183)));
        assert_eq!(split_host_port("h:x"), None);
    }
}
