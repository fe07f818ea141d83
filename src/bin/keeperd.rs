//! keeperd: the server binary, a drop-in for zkServer.sh.
//!
//! ```text
//! keeperd [--config FILE|DIR] [start|start-foreground|stop|restart|status|version] [CFG]
//! ```
//!
//! Verbs, messages, the pid file and exit codes follow zkServer.sh (ZooKeeper 3.8), so scripts
//! and runbooks written against it keep working:
//! - no verb: run in the foreground (like start-foreground);
//! - `start`: re-executes itself as `start-foreground CFG` in a new session, output to
//!   `$ZOO_LOG_DIR/keeperd.log` (rotated; else dataDir; early output and panics in
//!   keeperd.out), pid in `$ZOOPIDFILE` or
//!   `$dataDir/zookeeper_server.pid`; `Starting zookeeper ... STARTED`;
//! - `stop`: SIGTERM to the pid in the pid file, then waits for the process to exit;
//! - `status`: `srvr` on the client port, prints its `Mode:` line;
//! - `version`: `Apache ZooKeeper, version <3.8.0-keeperd-x.y.z>`.
//! - `import`: a dry run of taking over ZooKeeper's dataDir (docs/migration.md): what would
//!   be loaded; nothing is written;
//! - `export-zk DIR`: keeperd's state (server stopped) as a ZooKeeper dataDir in DIR.
//!
//! Which config: CFG or `--config` (a file, or a directory holding `$ZOOCFG`, default
//! zoo.cfg, as zkServer.sh's `--config <conf-dir>`); a bare file name that is not in the
//! working directory is looked up in `$ZOOCFGDIR`. With neither, `$ZOOCFGDIR`/`$ZOOCFG` if
//! either is set (as zkEnv.sh), else the embedded default config (standalone on 2181, dataDir
//! ./keeperd-data).
//!
//! Exit codes: 0 ok; 1 a verb failed (as zkServer.sh); 2 bad usage or invalid config (as
//! ZooKeeper's "Invalid config, exiting abnormally").

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keeperd::config::{properties, Config, ConfigError};
use keeperd::logging::LogConfig;

/// jemalloc rather than glibc malloc: the write path allocates per request (decode, txn,
/// entry, reply) from several threads, and glibc's arenas cost ~25% more CPU per create in
/// `keeperctl bench` (docs/performance.md, "Finding 4").
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start-up: a background thread returns freed pages to the
/// OS after about a second even while the server is idle (glibc needed `malloc_trim` after
/// recovery; jemalloc otherwise purges only when it is called again).
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// What `version` and the daemon log report: the ZooKeeper release keeperd speaks, then ours.
const VERSION: &str = concat!("3.8.0-keeperd-", env!("CARGO_PKG_VERSION"));

/// How long `stop` waits for the server to exit after SIGTERM (override: ZOO_STOP_TIMEOUT,
/// seconds).
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `start` watches the new process before declaring it STARTED (zkServer.sh: 1 s).
const START_GRACE: Duration = Duration::from_secs(1);

/// Connect/read timeout for `status` (ZooKeeper's FourLetterWordMain uses 5 s).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "\
Usage: keeperd [--config <file|conf-dir>] [start|start-foreground|stop|restart|status|version] [CFG]
       keeperd import [CFG]
       keeperd export-zk DIR [CFG]
       keeperd dump-snapshot [--json] [CFG | snapshot.<zxid>]
       keeperd dump-log [--json] [CFG | log.<zxid>]
       keeperd cleanup [-n N] [--dry-run] [CFG]
       keeperd restore FILE [CFG]

  (no verb)          run in the foreground, like start-foreground
  start-foreground   run in the foreground; logs to stderr (RUST_LOG, default info), or to
                     keeperd.log.file / $KEEPERD_LOG_FILE (rotated; SIGHUP reopens it)
  start              run in the background; log to $ZOO_LOG_DIR/keeperd.log (else dataDir;
                     rotated), early output to keeperd.out there,
                     pid to $ZOOPIDFILE (else dataDir/zookeeper_server.pid)
  stop               SIGTERM the server named by the pid file and wait for it to exit
  restart            stop, then start
  status             ask the server (srvr) and print its Mode: line
  version            print the version
  import             dry run of taking over ZooKeeper's files in dataDir/dataLogDir: prints
                     the snapshot and logs it would read, the last zxid, znodes, sessions
                     and the digest check; changes nothing (start-up does the import)
  export-zk DIR      with keeperd stopped: writes its state as a ZooKeeper 3.8 dataDir in
                     DIR (version-2/snapshot.<zxid>, currentEpoch, acceptedEpoch; copy myid)
                     for going back to ZooKeeper with every write made on keeperd
  dump-snapshot      (zkSnapShotToolkit.sh) every znode's Stat and each session, as
                     ZooKeeper's SnapshotFormatter prints them: keeperd's state (server
                     stopped) or ZooKeeper's newest snapshot in dataDir, or the file given
  restore FILE       a backup (keeperctl snapshot save, or a ZooKeeper snapshot) checked and
                     placed in an empty dataDir; the next start takes it over
  cleanup -n N       (zkCleanup.sh) keep the N (>= 3, default 3) newest snapshots, remove
                     older ones and ZooKeeper logs no kept snapshot needs; --dry-run lists
  dump-log           (zkTxnLogToolkit.sh) one line per logged write: zxid, time, session,
                     type, path; keeperd's log or ZooKeeper's logs, or the file given

CFG is a zoo.cfg. Without one: $ZOOCFGDIR/$ZOOCFG when either is set, else the embedded default
config (standalone, clientPort=2181, dataDir=./keeperd-data).
Environment: ZOOCFGDIR, ZOOCFG, ZOOPIDFILE, ZOO_LOG_DIR, ZOO_STOP_TIMEOUT, RUST_LOG,
KEEPERD_LOG_FILE, KEEPERD_LOG_FORMAT=json.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Start,
    StartForeground,
    Stop,
    Restart,
    Status,
    Version,
    Help,
    Import,
    ExportZk,
    DumpSnapshot,
    DumpLog,
    Cleanup,
    Restore,
}

struct Args {
    verb: Verb,
    config: Option<PathBuf>,
    /// export-zk's DIR; dump-snapshot's / dump-log's ZooKeeper file.
    target: Option<PathBuf>,
    /// dump-*: JSON lines.
    json: bool,
    /// cleanup: -n N (snapshots kept) and --dry-run.
    keep: usize,
    dry_run: bool,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut verb = None;
    let mut config = None;
    let mut target = None;
    let mut json = false;
    let mut keep = 3;
    let mut dry_run = false;
    let mut set_config = |path: String| -> Result<(), String> {
        if config.replace(PathBuf::from(path)).is_some() {
            return Err("more than one config file given".into());
        }
        Ok(())
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => verb = Some(Verb::Help),
            "-V" | "--version" => verb = Some(Verb::Version),
            "-n" if verb == Some(Verb::Cleanup) => {
                let n = args.next().ok_or("-n needs a number of snapshots")?;
                keep = n
                    .parse()
                    .map_err(|_| format!("-n {n:?}: not a number of snapshots"))?;
            }
            "--dry-run" if verb == Some(Verb::Cleanup) => dry_run = true,
            "--json" | "-json" if matches!(verb, Some(Verb::DumpSnapshot | Verb::DumpLog)) => {
                json = true
            }
            "--config" | "-c" => {
                set_config(args.next().ok_or("--config needs a file or directory")?)?
            }
            a if a.starts_with("--config=") => set_config(a["--config=".len()..].to_string())?,
            a if verb.is_none() && !a.starts_with('-') => {
                verb = Some(match a {
                    "start" => Verb::Start,
                    "start-foreground" => Verb::StartForeground,
                    "stop" => Verb::Stop,
                    "restart" => Verb::Restart,
                    "status" => Verb::Status,
                    "version" => Verb::Version,
                    "import" => Verb::Import,
                    "export-zk" => Verb::ExportZk,
                    "dump-snapshot" => Verb::DumpSnapshot,
                    "dump-log" => Verb::DumpLog,
                    "cleanup" => Verb::Cleanup,
                    "restore" => Verb::Restore,
                    // `keeperd zoo.cfg`: a config file where a verb could be.
                    other if Path::new(other).exists() => {
                        set_config(other.to_string())?;
                        Verb::StartForeground
                    }
                    other => return Err(format!("unknown command {other:?}")),
                })
            }
            a if matches!(verb, Some(Verb::ExportZk | Verb::Restore))
                && target.is_none()
                && !a.starts_with('-') =>
            {
                target = Some(PathBuf::from(a))
            }
            // One of ZooKeeper's files (by its name) rather than a zoo.cfg.
            a if matches!(verb, Some(Verb::DumpSnapshot | Verb::DumpLog))
                && target.is_none()
                && is_zk_file(a) =>
            {
                target = Some(PathBuf::from(a))
            }
            a if !a.starts_with('-') => set_config(a.to_string())?,
            a => return Err(format!("unknown option {a:?}")),
        }
    }
    if verb == Some(Verb::ExportZk) && target.is_none() {
        return Err("export-zk needs a target directory".into());
    }
    if verb == Some(Verb::Restore) && target.is_none() {
        return Err("restore needs a backup file".into());
    }
    Ok(Args {
        verb: verb.unwrap_or(Verb::StartForeground),
        config,
        target,
        json,
        keep,
        dry_run,
    })
}

/// A ZooKeeper snapshot or log file: by name (`snapshot.<zxid>[.gz|.snappy]`, `log.<zxid>`)
/// or by its magic (`ZKSN`, `ZKLG`: a backup saved under any name).
fn is_zk_file(arg: &str) -> bool {
    use std::io::Read;
    let name = Path::new(arg)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if name.starts_with("snapshot.") || name.starts_with("log.") {
        return true;
    }
    let mut magic = [0u8; 4];
    fs::File::open(arg)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"ZKSN" || &magic == b"ZKLG")
}

/// `keeperd restore FILE [CFG]`: a backup becomes the config's new dataDir.
fn restore(file: &Path, path: Option<&Path>) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keeperd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    match keeperd::import::restore(file, &config) {
        Ok(done) => {
            println!(
                "restored {} znodes, {} sessions, last zxid 0x{:x} into {}; start the server \
                 (every member of a new ensemble from the same file) and it takes this state over",
                done.znodes,
                done.sessions,
                done.zxid,
                done.snapshot.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keeperd: restore: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keeperd cleanup -n N [--dry-run]` (zkCleanup.sh).
fn cleanup(path: Option<&Path>, keep: usize, dry_run: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keeperd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    match keeperd::cleanup::cleanup(&config, keep, dry_run) {
        Ok(done) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for p in &done.removed {
                println!("{verb} {}", p.display());
            }
            println!(
                "{} file(s) {verb}, {} kept",
                done.removed.len(),
                done.kept.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keeperd: cleanup: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keeperd dump-snapshot` / `dump-log` (docs/service.md, "Maintenance tools").
fn dump(verb: Verb, file: Option<&Path>, path: Option<&Path>, json: bool) -> ExitCode {
    use keeperd::dump::{dump_log, dump_snapshot, Source};
    let config;
    let source = match file {
        Some(f) => Source::File(f),
        None => {
            config = match load(path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keeperd: invalid config: {e}");
                    return ExitCode::from(2);
                }
            };
            Source::Config(&config)
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = if verb == Verb::DumpSnapshot {
        dump_snapshot(source, json)
            .and_then(|text| out.write_all(text.as_bytes()).map_err(|e| e.to_string()))
    } else {
        dump_log(source, json, &mut out)
    };
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keeperd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("keeperd: {e}");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config_path = match args.verb {
        Verb::Help | Verb::Version => None,
        _ => locate_config(args.config.as_deref()),
    };
    match args.verb {
        Verb::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Verb::Version => {
            println!("Apache ZooKeeper, version {VERSION}");
            ExitCode::SUCCESS
        }
        Verb::StartForeground => start_foreground(config_path.as_deref()),
        Verb::Start => start(config_path.as_deref()),
        Verb::Stop => stop(config_path.as_deref()),
        Verb::Restart => {
            let code = stop(config_path.as_deref());
            // A server that would not stop must not get a twin; "nothing to stop" is fine.
            if code != ExitCode::SUCCESS {
                return code;
            }
            start(config_path.as_deref())
        }
        Verb::Status => status(config_path.as_deref()),
        Verb::Import => import(config_path.as_deref()),
        Verb::DumpSnapshot | Verb::DumpLog => dump(
            args.verb,
            args.target.as_deref(),
            config_path.as_deref(),
            args.json,
        ),
        Verb::Restore => restore(
            args.target.as_deref().expect("checked by parse_args"),
            config_path.as_deref(),
        ),
        Verb::Cleanup => cleanup(config_path.as_deref(), args.keep, args.dry_run),
        Verb::ExportZk => export_zk(
            config_path.as_deref(),
            args.target.as_deref().expect("checked by parse_args"),
        ),
    }
}

/// `keeperd import`: the dry run (see docs/migration.md).
fn import(path: Option<&Path>) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keeperd: invalid config, exiting abnormally: {e}");
            return ExitCode::from(2);
        }
    };
    let log_dir = config.effective_data_log_dir();
    println!(
        "ZooKeeper files: snapshots in {}, logs in {}",
        config.snap_dir().display(),
        config.txn_log_dir().display()
    );
    match keeperd::consensus::storage::has_state(log_dir, &config.data_dir) {
        Ok(true) => println!(
            "keeperd already has state of its own in {}: start-up will not import              (ZooKeeper's files are left alone)",
            keeperd::consensus::storage::log_db_dir(log_dir).display()
        ),
        Ok(false) => {}
        Err(e) => {
            eprintln!("keeperd: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut progress = |msg: &str| eprintln!("{msg}");
    match keeperd::import::load(&config, &mut progress) {
        Ok(None) => {
            println!("no ZooKeeper snapshot or log found: nothing to import");
            ExitCode::SUCCESS
        }
        Ok(Some(imported)) => {
            println!("{}", imported.report);
            if matches!(
                imported.report.digest,
                keeperd::import::DigestCheck::Mismatched { .. }
            ) {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keeperd: cannot import: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `keeperd export-zk DIR`: the way back (see docs/migration.md).
fn export_zk(path: Option<&Path>, out: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keeperd: invalid config, exiting abnormally: {e}");
            return ExitCode::from(2);
        }
    };
    let tree = match keeperd::import::recover(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("keeperd: cannot read keeperd's state (is the server stopped?): {e}");
            return ExitCode::FAILURE;
        }
    };
    match keeperd::import::export(&tree, out) {
        Ok(x) => {
            println!(
                "wrote {} (zxid 0x{:x}, {} znodes, {} sessions) and currentEpoch/acceptedEpoch {}",
                x.snapshot.display(),
                x.zxid,
                x.znodes,
                x.sessions,
                (x.zxid as u64) >> 32
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keeperd: export failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Applies the zkServer.sh/zkEnv.sh lookup rules (see the module docs). None = embedded.
fn locate_config(given: Option<&Path>) -> Option<PathBuf> {
    let cfg_dir = std::env::var_os("ZOOCFGDIR").map(PathBuf::from);
    let cfg_name = std::env::var_os("ZOOCFG").map(PathBuf::from);
    let default_name = || cfg_name.clone().unwrap_or_else(|| PathBuf::from("zoo.cfg"));
    match given {
        Some(path) if path.is_dir() => Some(path.join(default_name())),
        Some(path) => {
            let bare = path.components().count() == 1;
            match &cfg_dir {
                Some(dir) if bare && !path.exists() && dir.join(path).exists() => {
                    Some(dir.join(path))
                }
                _ => Some(path.to_path_buf()),
            }
        }
        None if cfg_dir.is_some() || cfg_name.is_some() => {
            let name = default_name();
            // zkEnv.sh's ZOOCFG may already be a full path (Debian sets it so).
            Some(match &cfg_dir {
                Some(dir) if name.is_relative() => dir.join(name),
                _ => name,
            })
        }
        None => None,
    }
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "(embedded default: standalone, clientPort=2181, dataDir=./keeperd-data)".into(),
    }
}

fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::from_file(p),
        None => Ok(Config::default()),
    }
}

fn pid_file(config: &Config) -> PathBuf {
    std::env::var_os("ZOOPIDFILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| config.pid_file())
}

/// The pid file for `stop` even when the config no longer validates (a missing myid must
/// not make a running server unstoppable): falls back to reading just dataDir, like
/// zkServer.sh's grep.
fn pid_file_leniently(path: Option<&Path>) -> Result<PathBuf, ConfigError> {
    match load(path) {
        Ok(config) => Ok(pid_file(&config)),
        Err(err) => {
            if let Some(p) = std::env::var_os("ZOOPIDFILE") {
                return Ok(PathBuf::from(p));
            }
            let data_dir = path
                .and_then(|p| fs::read_to_string(p).ok())
                .and_then(|text| properties::parse(&text).ok())
                .and_then(|entries| {
                    entries
                        .into_iter()
                        .rev()
                        .find(|e| e.key == "dataDir" && !e.value.is_empty())
                })
                .map(|e| PathBuf::from(e.value));
            match data_dir {
                Some(dir) => Ok(dir.join(keeperd::config::PID_FILE_NAME)),
                None => Err(err),
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Alive = exists and is not a zombie (a zombie has exited; only its parent's wait is due).
fn is_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks whether the process exists; no memory involved.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself contain ") ".
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// The `keeperd.log.*` keys of the config, read before the config is validated so that
/// validation's own warnings go to the configured log. A bad value here is reported by the
/// full load right after.
fn log_config(path: Option<&Path>) -> LogConfig {
    let mut log = LogConfig::default();
    let entries = path
        .and_then(|p| fs::read_to_string(p).ok())
        .and_then(|text| properties::parse(&text).ok())
        .unwrap_or_default();
    for entry in entries {
        if let Some(name) = entry.key.strip_prefix("keeperd.log.") {
            let _ = log.apply(name, &entry.value);
        }
    }
    if std::env::var("KEEPERD_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        log.json = true;
    }
    log
}

/// Sets up logging: `keeperd.log.file`, else `$KEEPERD_LOG_FILE` (which `start` sets to
/// `$ZOO_LOG_DIR/keeperd.log`), else stderr. Returns the SIGHUP reopen flag for a file.
fn init_logging(path: Option<&Path>) -> Result<Option<Arc<AtomicBool>>, String> {
    let log = log_config(path);
    let file = log
        .file
        .clone()
        .or_else(|| std::env::var_os("KEEPERD_LOG_FILE").map(PathBuf::from));
    keeperd::logging::init(&log, file.as_deref()).map_err(|e| {
        format!(
            "cannot open the log file {}: {e}",
            file.as_deref().unwrap_or(Path::new("-")).display()
        )
    })
}

/// SIGHUP reopens the log file (logrotate's `create` mode); without one it is logged and
/// ignored, so a stray hangup never stops the server.
async fn reopen_on_sighup(reopen: Option<Arc<AtomicBool>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        match &reopen {
            Some(flag) => {
                flag.store(true, Ordering::SeqCst);
                tracing::info!("SIGHUP: reopening the log file");
            }
            None => tracing::info!("SIGHUP: logging to stderr, nothing to reopen"),
        }
    }
}

fn start_foreground(path: Option<&Path>) -> ExitCode {
    let reopen = match init_logging(path) {
        Ok(reopen) => reopen,
        Err(e) => {
            eprintln!("keeperd: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("Using config: {}", describe(path));
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keeperd: invalid config, exiting abnormally: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = fs::create_dir_all(&config.data_dir) {
        eprintln!(
            "keeperd: cannot create dataDir {}: {e}",
            config.data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let pid_path = pid_file(&config);
    let me = std::process::id() as i32;
    if let Some(pid) = read_pid(&pid_path) {
        if pid != me && is_alive(pid) {
            eprintln!(
                "keeperd: already running as process {pid} (per {}; delete it if that is not keeperd)",
                pid_path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if let Some(parent) = pid_path.parent() {
        let _ = fs::create_dir_all(parent);
    }
    if let Err(e) = fs::write(&pid_path, me.to_string()) {
        eprintln!("keeperd: cannot write pid file {}: {e}", pid_path.display());
        return ExitCode::FAILURE;
    }
    tracing::info!(
        version = VERSION,
        client_port = config.client_port,
        data_dir = %config.data_dir.display(),
        mode = if config.is_distributed() { "ensemble" } else { "standalone" },
        "starting keeperd"
    );
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .and_then(|rt| {
            rt.block_on(async {
                let hup = tokio::spawn(reopen_on_sighup(reopen));
                let result = keeperd::server::run_until_signal(config).await;
                hup.abort();
                result
            })
        });
    // Only remove the pid file if it is still ours (a later start may have replaced it).
    if read_pid(&pid_path) == Some(me) {
        let _ = fs::remove_file(&pid_path);
    }
    match result {
        Ok(()) => {
            tracing::info!("keeperd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("keeperd failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    print!("Starting zookeeper ... ");
    let _ = std::io::stdout().flush();
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            println!("FAILED TO START");
            eprintln!("keeperd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    let pid_path = pid_file(&config);
    if let Some(pid) = read_pid(&pid_path) {
        if is_alive(pid) {
            println!("already running as process {pid}.");
            return ExitCode::FAILURE;
        }
    }
    match spawn_daemon(path, &config, &pid_path) {
        Ok(()) => {
            println!("STARTED");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("FAILED TO START");
            eprintln!("keeperd: {why}");
            ExitCode::FAILURE
        }
    }
}

fn spawn_daemon(path: Option<&Path>, config: &Config, pid_path: &Path) -> Result<(), String> {
    fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create dataDir {}: {e}", config.data_dir.display()))?;
    let log_dir = std::env::var_os("ZOO_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| config.data_dir.clone());
    fs::create_dir_all(&log_dir)
        .map_err(|e| format!("cannot create log dir {}: {e}", log_dir.display()))?;
    // The server logs to keeperd.log (rotated, docs/service.md) unless zoo.cfg names a log
    // file; keeperd.out keeps only what is printed before logging starts (and panics).
    let log_file = log_dir.join("keeperd.log");
    let log_path = log_dir.join("keeperd.out");
    let log = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;

    let mut cmd = Command::new(exe);
    cmd.arg("start-foreground");
    if let Some(p) = path {
        // Absolute, so the child finds the same file whatever its lookup rules see.
        cmd.arg(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
    }
    if config.log.file.is_none() {
        cmd.env("KEEPERD_LOG_FILE", &log_file);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent; it detaches the
    // server from our terminal and process group so the shell's SIGINT/SIGHUP don't reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let pid = child.id() as i32;
    if let Err(e) = fs::write(pid_path, pid.to_string()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("FAILED TO WRITE PID {}: {e}", pid_path.display()));
    }
    let deadline = Instant::now() + START_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            if read_pid(pid_path) == Some(pid) {
                let _ = fs::remove_file(pid_path);
            }
            return Err(format!(
                "the server exited at once ({status}); see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn stop(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    print!("Stopping zookeeper ... ");
    let _ = std::io::stdout().flush();
    let pid_path = match pid_file_leniently(path) {
        Ok(p) => p,
        Err(e) => {
            println!("FAILED TO STOP");
            eprintln!("keeperd: cannot find the pid file: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !pid_path.is_file() {
        // zkServer.sh exits 0 here too: "already stopped" is not a failure for stop scripts.
        println!(
            "no zookeeper to stop (could not find file {})",
            pid_path.display()
        );
        return ExitCode::SUCCESS;
    }
    let Some(pid) = read_pid(&pid_path) else {
        println!("FAILED TO STOP");
        eprintln!(
            "keeperd: {} does not hold a process id; remove it if no server is running",
            pid_path.display()
        );
        return ExitCode::FAILURE;
    };
    if !is_alive(pid) {
        let _ = fs::remove_file(&pid_path);
        println!("STOPPED");
        eprintln!(
            "keeperd: process {pid} was not running; removed stale {}",
            pid_path.display()
        );
        return ExitCode::SUCCESS;
    }
    // SAFETY: sends SIGTERM to a pid; no memory involved.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        let e = std::io::Error::last_os_error();
        println!("FAILED TO STOP");
        eprintln!("keeperd: cannot signal process {pid}: {e}");
        return ExitCode::FAILURE;
    }
    let timeout = std::env::var("ZOO_STOP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs);
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            println!("FAILED TO STOP");
            eprintln!(
                "keeperd: process {pid} still running {}s after SIGTERM",
                timeout.as_secs()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if read_pid(&pid_path) == Some(pid) {
        let _ = fs::remove_file(&pid_path);
    }
    println!("STOPPED");
    ExitCode::SUCCESS
}

fn status(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let config = match load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keeperd: invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    let address = match config.client_port_address {
        Some(ip) => ip.to_string(),
        None => "localhost".to_string(),
    };
    println!(
        "Client port found: {}. Client address: {address}. Client SSL: false.",
        config.client_port
    );
    let connect_host = match config.client_port_address {
        Some(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => "localhost".to_string(),
    };
    match four_letter_word(&connect_host, config.client_port, "srvr") {
        Ok(reply) => match reply.lines().find(|l| l.starts_with("Mode")) {
            Some(mode) => {
                println!("{}", mode.trim());
                ExitCode::SUCCESS
            }
            None => {
                println!("Error contacting service. It is probably not running.");
                ExitCode::FAILURE
            }
        },
        Err(_) => {
            println!("Error contacting service. It is probably not running.");
            ExitCode::FAILURE
        }
    }
}

fn four_letter_word(host: &str, port: u16, word: &str) -> std::io::Result<String> {
    keeperd::admin::four_letter_word(host, port, word, STATUS_TIMEOUT)
}
