//! zoo.cfg (+ myid, + dynamic config) parsing and validation, in one place. The rest of the
//! server takes the parsed `Config`.
//!
//! What this module owns:
//! - the Java-properties syntax ZooKeeper reads zoo.cfg with (`properties`),
//! - the mapping of every zoo.cfg key real deployments use onto `Config`, with ZooKeeper's
//!   defaults and its validation rules, plus `$dataDir/myid` and `dynamicConfigFile` (`parse`,
//!   a directory: the driver in `parse/mod.rs`, one key at a time in `keys`, `server.N` lines
//!   and the dynamic file in `servers`, what depends on several keys in `resolve`),
//! - the `conf` four-letter word's rendering of the running configuration (`conf`),
//! - client SASL and enforced authentication (`parse/client_auth.rs`), with the JAAS file and
//!   the JVM `-D` options (java.env, SERVER_JVMFLAGS, JVMFLAGS) they come from (`jaas`).
//!
//! Invariants of a `Config` returned by `Config::from_file` / `Config::parse_str`:
//! - `servers.is_empty()` exactly when the server runs standalone (a single participant with
//!   `standaloneEnabled=true` is standalone, as in ZooKeeper, and its line is dropped);
//! - when `servers` is not empty, `my_id` is `Some` and names one of them, `peer_type` matches
//!   that server's line, and `client_port` is the one that server serves clients on;
//! - `client_port != 0`; `min_session_timeout_ms <= max_session_timeout_ms`;
//!   `autopurge_snap_retain_count >= 3`.
//!
//! Keys ZooKeeper knows but keeperd does not act on, and keys nobody knows, land in `extra`
//! with a warning: ZooKeeper accepts unknown keys too (as system properties), so refusing
//! them would break drop-in replacement.

mod conf;
mod membership;

pub use conf::dir_size;
pub use membership::Membership;
pub mod jaas;
mod parse;
pub mod properties;
pub mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Role of a server in the ensemble (server.N=...:participant|observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Participant,
    Observer,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub peer_type: PeerType,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
}

/// 4lw.commands.whitelist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whitelist {
    /// The key is absent. ZooKeeper 3.4 then answered every word and 3.5.3+ only `srvr`;
    /// keeperd answers the read-only monitoring words (`DEFAULT_WORDS`), so the probes,
    /// exporters and runbooks of a 3.4-era zoo.cfg keep working, while the words that list
    /// sessions, clients' watches or the environment, or that reset counters, stay off.
    Default,
    /// `*`.
    All,
    /// Lower-case four-letter words; `srvr` is always allowed regardless.
    Only(Vec<String>),
}

/// The words enabled when zoo.cfg has no `4lw.commands.whitelist` line: what liveness probes
/// (`ruok`, `isro`), `zkServer.sh status` of 3.4 (`stat`) and 3.5+ (`srvr`), mntr-based
/// exporters and runbooks (`mntr`, `conf`), and capacity checks (`wchs`: counts only, `dirs`:
/// sizes only) ask. Off: `cons`, `dump`, `wchc`, `wchp` (session ids, client addresses,
/// ephemeral paths), `envi` (host, user, paths), `crst`, `srst`, `stmk` (change state),
/// `gtmk`, `hash` (list them to enable them).
pub const DEFAULT_WORDS: [&str; 8] = [
    "ruok", "srvr", "stat", "mntr", "conf", "isro", "wchs", "dirs",
];

impl Whitelist {
    pub fn allows(&self, word: &str) -> bool {
        word == "srvr"
            || match self {
                Whitelist::Default => DEFAULT_WORDS.contains(&word),
                Whitelist::All => true,
                Whitelist::Only(words) => words.iter().any(|w| w == word),
            }
    }

    /// What start-up logs: which words answer and where that comes from.
    pub fn describe(&self) -> String {
        match self {
            Whitelist::Default => format!(
                "four-letter words enabled: {} (zoo.cfg has no 4lw.commands.whitelist line: \
                 the read-only monitoring words; set 4lw.commands.whitelist to choose, e.g. \
                 \"*\" for all or \"srvr\" for ZooKeeper 3.5+'s default)",
                DEFAULT_WORDS.join(", ")
            ),
            Whitelist::All => "four-letter words enabled: all (4lw.commands.whitelist=*)".into(),
            Whitelist::Only(words) => {
                let mut w: Vec<&str> = words.iter().map(String::as_str).collect();
                if !w.contains(&"srvr") {
                    w.push("srvr");
                }
                format!(
                    "four-letter words enabled: {} (4lw.commands.whitelist; srvr always answers)",
                    w.join(", ")
                )
            }
        }
    }
}

/// The whole parsed configuration. `Default` is the embedded default config used when
/// keeperd starts with no file (standalone on 2181, dataDir ./keeperd-data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from (None for the embedded default).
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress`: where the secure client port binds (every IPv4 interface
    /// when unset).
    pub secure_client_port_address: Option<IpAddr>,
    /// The `ssl.*` settings of the secure client port; Some exactly when
    /// `secure_client_port` is (checked at parse time: the stores load).
    pub client_tls: Option<crate::tls::TlsOptions>,
    /// `sslQuorum=true`: the `ssl.quorum.*` settings of mutual TLS between servers
    /// (checked at parse time).
    pub quorum_tls: Option<crate::tls::TlsOptions>,
    /// `keeperd.ssl.quorum.requireServerId`: a peer certificate must name its server id
    /// (`server.N` as CN or DNS name); see `tls::quorum`.
    pub quorum_tls_require_server_id: bool,
    /// `zookeeper.X509AuthenticationProvider.superUser`: the certificate subject (RFC 2253)
    /// that is super on the secure client port.
    pub x509_super_user: Option<String>,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub snap_count: u64,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub servers: Vec<ServerSpec>,
    /// From $dataDir/myid when servers are configured.
    pub my_id: Option<u64>,
    pub peer_type: PeerType,
    pub four_letter_whitelist: Whitelist,
    /// The AdminServer (HTTP): on by default, as in ZooKeeper.
    pub admin_enable_server: bool,
    pub admin_server_port: u16,
    /// Host or address the AdminServer binds (admin.serverAddress, default 0.0.0.0).
    pub admin_server_address: String,
    /// The path under which commands answer (admin.commandURL, default /commands).
    pub admin_command_url: String,
    /// A connection idle this long is closed (admin.idleTimeout, ms).
    pub admin_idle_timeout_ms: u32,
    /// admin.snapshot.enabled (ZooKeeper 3.9): the AdminServer's `snapshot` command, an
    /// online backup for a super user or one with ALL on `/` (default true).
    pub admin_snapshot_enabled: bool,
    /// admin.snapshot.intervalInMS: at most one snapshot per this many ms (default 5 min).
    pub admin_snapshot_interval_ms: u64,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub dynamic_config_file: Option<PathBuf>,
    pub force_sync: bool,
    pub global_outstanding_limit: u32,
    pub quorum_listen_on_all_ips: bool,
    pub skip_acl: bool,
    /// `user:base64(sha1(user:password))`; authenticating with it grants super.
    pub super_digest: Option<String>,
    /// keeperd.quorum.secretFile: the file holding the ensemble's shared secret (checked at
    /// parse time); servers authenticate each other with it (docs/security.md).
    pub quorum_secret_file: Option<PathBuf>,
    /// keeperd.linearizableReads: in an ensemble, every read first confirms with the leader
    /// (a Raft ReadIndex, as `sync` does) that this server has applied everything committed
    /// when the read arrived, so no server answers from stale data. Off (ZooKeeper's
    /// semantics: reads as fresh as the local replica) by default.
    pub linearizable_reads: bool,
    /// keeperd.log.*: where the log goes and how it rotates (src/logging.rs).
    pub log: crate::logging::LogConfig,
    pub jute_maxbuffer: usize,
    pub metrics_provider_class: Option<String>,
    pub metrics_http_port: u16,
    /// metricsProvider.httpHost (default 0.0.0.0).
    pub metrics_http_host: String,
    /// keeperd.prometheus.enabled: serve /metrics without naming ZooKeeper's provider class.
    pub prometheus_enabled: bool,
    /// `clientPortListenBacklog`: listen(2) backlog for the client port; -1 = OS default.
    /// Shown by `conf`.
    pub client_port_listen_backlog: i32,
    /// `authProvider.N=class`: ZooKeeper auth provider classes by N. Kept so the server can
    /// tell the operator which providers (e.g. SASL for Kafka) it does not implement.
    pub auth_providers: BTreeMap<String, String>,
    /// Client SASL (DIGEST-MD5 from a JAAS `Server` section) and enforced authentication.
    pub client_auth: ClientAuth,
    /// Version of the membership (`version=` in /zookeeper/config): the hex suffix of the
    /// dynamic config file's name (`zoo.cfg.dynamic.100000000`), else 0 as in ZooKeeper.
    pub config_version: u64,
    /// Every key that is not one of the above, kept for `conf` and warned about.
    pub extra: BTreeMap<String, String>,
}

/// ZooKeeper's Prometheus metrics provider, as `metricsProvider.className` names it.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

impl Config {
    /// Whether /metrics is served: zoo.cfg names ZooKeeper's Prometheus provider, or
    /// keeperd.prometheus.enabled=true.
    pub fn prometheus(&self) -> bool {
        self.prometheus_enabled
            || self.metrics_provider_class.as_deref() == Some(PROMETHEUS_PROVIDER)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            source: None,
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from("keeperd-data"),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: None,
            secure_client_port: None,
            secure_client_port_address: None,
            client_tls: None,
            quorum_tls: None,
            quorum_tls_require_server_id: false,
            x509_super_user: None,
            max_client_cnxns: 60,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            snap_count: 100_000,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            servers: vec![],
            my_id: None,
            peer_type: PeerType::Participant,
            four_letter_whitelist: Whitelist::Default,
            admin_enable_server: true,
            admin_server_port: 8080,
            admin_server_address: "0.0.0.0".to_string(),
            admin_command_url: "/commands".to_string(),
            admin_idle_timeout_ms: 30_000,
            admin_snapshot_enabled: true,
            admin_snapshot_interval_ms: 300_000,
            standalone_enabled: true,
            reconfig_enabled: false,
            dynamic_config_file: None,
            force_sync: true,
            global_outstanding_limit: 1000,
            quorum_listen_on_all_ips: false,
            skip_acl: false,
            super_digest: None,
            quorum_secret_file: None,
            linearizable_reads: false,
            log: crate::logging::LogConfig::default(),
            jute_maxbuffer: 0xfffff,
            metrics_provider_class: None,
            metrics_http_port: 7000,
            metrics_http_host: "0.0.0.0".to_string(),
            prometheus_enabled: false,
            client_port_listen_backlog: -1,
            auth_providers: BTreeMap::new(),
            client_auth: ClientAuth::default(),
            config_version: 0,
            extra: BTreeMap::new(),
        }
    }
}

/// Client authentication beyond digest and ip: SASL DIGEST-MD5 as ZooKeeper serves it
/// (ZooKeeperServer.processSasl, SaslServerCallbackHandler, SASLAuthenticationProvider) and
/// enforced authentication (AuthenticationHelper). See docs/security.md.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientAuth {
    /// The users of the JAAS `Server` section (`user_NAME="password"`), when a JAAS file
    /// with that section was found: clients may then authenticate with SASL (opcode 102).
    /// None: no SASL server; a sasl request is answered as ZooKeeper does without one.
    pub sasl_users: Option<SaslUsers>,
    /// The JAAS file and section the users came from, for logs.
    pub jaas: Option<(PathBuf, String)>,
    /// `authProvider.N=...SASLAuthenticationProvider`: `sasl:` ids are valid in ACLs and
    /// match the identity a SASL login gives. Without it, as in ZooKeeper, a SASL login
    /// still adds its identity but `sasl:` ACLs are InvalidACL.
    pub sasl_provider: bool,
    /// `zookeeper.superUser` (and `zookeeper.superUser.*`): SASL users who are also super.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of SASL user
    /// `super`, instead of the JAAS file's.
    pub super_password: Option<String>,
    /// `zookeeper.allowSaslFailedClients=true`: a failed SASL login keeps the connection
    /// (unless SASL is enforced).
    pub allow_sasl_failed_clients: bool,
    /// The schemes of which a connection must hold an identity before any request other
    /// than auth and sasl is served (`enforce.auth.enabled` + `enforce.auth.schemes`, or
    /// `sessionRequireClientSASLAuth=true` for sasl). Empty: nothing is enforced.
    pub enforce_schemes: Vec<String>,
}

impl ClientAuth {
    /// Whether a sasl login failure closes the connection with SESSIONCLOSEDREQUIRESASLAUTH
    /// rather than AUTHFAILED (AuthenticationHelper.isSaslAuthRequired).
    pub fn sasl_required(&self) -> bool {
        self.enforce_schemes.iter().any(|s| s == "sasl")
    }
}

/// DIGEST-MD5 users and passwords. Debug shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SaslUsers(pub BTreeMap<String, String>);

impl fmt::Debug for SaslUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// ZooKeeper's pid file name inside dataDir (zkServer.sh's `$ZOOPIDFILE` default).
pub const PID_FILE_NAME: &str = "zookeeper_server.pid";

/// The subdirectory ZooKeeper keeps snapshots and transaction logs in; `conf` reports dataDir
/// and dataLogDir with it appended, as ZooKeeper does.
pub const VERSION_DIR: &str = "version-2";

/// Every four-letter word ZooKeeper knows, for whitelist validation.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// A configuration that cannot be used. Displays as `file:line: key: message`, with the parts
/// that are known, e.g. `zoo.cfg:7: clientPort: "abc" is not a port number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (zoo.cfg, the dynamic config file or myid), as given.
    pub file: Option<PathBuf>,
    /// 1-based line the offending entry starts on.
    pub line: Option<usize>,
    /// The key at fault, when one is.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": ")?;
        }
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for PeerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeerType::Participant => "participant",
            PeerType::Observer => "observer",
        })
    }
}

/// Brackets IPv6 literals so `host:port` stays unambiguous.
fn delimit_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl ServerSpec {
    /// One `server.N` key and its value (`host:quorumPort:electionPort[:role][;client]`),
    /// as in zoo.cfg.
    pub fn parse(key: &str, value: &str) -> Result<ServerSpec, String> {
        parse::parse_server_value(key, value)
    }

    /// `host:quorumPort` (IPv6 hosts in brackets): where peers dial this server.
    pub fn quorum_address(&self) -> String {
        format!("{}:{}", delimit_host(&self.host), self.quorum_port)
    }
}

impl fmt::Display for ServerSpec {
    /// The value part of the line as ZooKeeper prints it in `/zookeeper/config` and `conf`:
    /// `host:quorumPort:electionPort:role[;clientAddr:clientPort]`, with the client part only
    /// when the line had one (a port alone means `0.0.0.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            delimit_host(&self.host),
            self.quorum_port,
            self.election_port,
            self.peer_type
        )?;
        if let Some(port) = self.client_port {
            let addr = self.client_addr.as_deref().unwrap_or("0.0.0.0");
            write!(f, ";{}:{}", delimit_host(addr), port)?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates a zoo.cfg, then `$dataDir/myid` and `dynamicConfigFile` if they
    /// apply. Relative paths inside (dataDir, dataLogDir) are relative to the working
    /// directory, as in ZooKeeper.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: None,
            message: format!("cannot read config file: {e}"),
        })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parse::parse(
            &text,
            path,
            Some(path.to_path_buf()),
            dir,
            &jaas::JvmProperties::from_environment(dir),
        )
    }

    /// Parses zoo.cfg text. `source_dir` is the directory the text came from: a relative
    /// `dynamicConfigFile` is looked up there when it does not exist relative to the working
    /// directory. Errors name the text `zoo.cfg`. Reads `$dataDir/myid` like `from_file`.
    pub fn parse_str(text: &str, source_dir: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::parse_str_with(text, source_dir, &jaas::JvmProperties::default())
    }

    /// `parse_str` with the JVM options (`-Dname=value`) that `from_file` takes from
    /// java.env, SERVER_JVMFLAGS and JVMFLAGS.
    pub fn parse_str_with(
        text: &str,
        source_dir: impl AsRef<Path>,
        jvm: &jaas::JvmProperties,
    ) -> Result<Config, ConfigError> {
        parse::parse(text, Path::new("zoo.cfg"), None, source_dir.as_ref(), jvm)
    }

    /// True when this server is part of an ensemble (quorum), false when standalone.
    pub fn is_distributed(&self) -> bool {
        !self.servers.is_empty()
    }

    /// This server's own `server.N` line, in an ensemble.
    pub fn my_server(&self) -> Option<&ServerSpec> {
        let id = self.my_id?;
        self.servers.iter().find(|s| s.id == id)
    }

    /// The address the client port binds to: clientPortAddress (or this server's client
    /// address from its server.N line), else every IPv4 interface. (ZooKeeper binds the
    /// dual-stack wildcard; 0.0.0.0 is chosen here because `[::]` fails on hosts with IPv6
    /// disabled. Set clientPortAddress=:: to serve IPv6 clients.)
    pub fn client_socket_addr(&self) -> SocketAddr {
        let ip = self
            .client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.client_port)
    }

    /// Where the secure client port binds (`secureClientPortAddress`, else every IPv4
    /// interface, as ZooKeeper binds the wildcard), when it is configured.
    pub fn secure_client_socket_addr(&self) -> Option<SocketAddr> {
        let port = self.secure_client_port?;
        let ip = self
            .secure_client_port_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Some(SocketAddr::new(ip, port))
    }

    /// Where the transaction log lives: dataLogDir, else dataDir.
    pub fn effective_data_log_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// `$dataDir/version-2`, the directory ZooKeeper (and `conf`) calls the snapshot dir.
    pub fn snap_dir(&self) -> PathBuf {
        self.data_dir.join(VERSION_DIR)
    }

    /// `$dataLogDir/version-2` (or under dataDir), ZooKeeper's transaction log dir.
    pub fn txn_log_dir(&self) -> PathBuf {
        self.effective_data_log_dir().join(VERSION_DIR)
    }

    /// `$dataDir/zookeeper_server.pid`, zkServer.sh's default `$ZOOPIDFILE`.
    pub fn pid_file(&self) -> PathBuf {
        self.data_dir.join(PID_FILE_NAME)
    }

    /// The membership this zoo.cfg (and its dynamic file) describes. Empty standalone.
    pub fn membership(&self) -> Membership {
        Membership::new(self.servers.iter().cloned(), self.config_version)
    }

    /// The membership as ZooKeeper writes it to `/zookeeper/config` and `conf`: one
    /// `server.N=...` line per server, ordered by id, then `version=<hex>`. Empty standalone.
    pub fn membership_lines(&self) -> Vec<String> {
        if self.servers.is_empty() {
            return Vec::new();
        }
        let m = self.membership();
        let mut lines = m.server_lines();
        lines.push(format!("version={:x}", m.version));
        lines
    }
}

#[cfg(test)]
mod tests;
