//! zoo.cfg keys -> `Config`, following QuorumPeerConfig.parseProperties and
//! setupQuorumPeerConfig: the same defaults (tickTime 3000 when absent from a file, session
//! timeouts 2x/20x tickTime, snapRetainCount at least 3), the same fatal cases, and the same
//! order of decisions (server list, then myid, then the client port from this server's line,
//! then peerType from the list).
//!
//! Keys ZooKeeper does not parse itself become system properties prefixed with `zookeeper.`
//! (snapCount, forceSync, skipACL, 4lw.commands.whitelist, admin.*, authProvider.N,
//! DigestAuthenticationProvider.superDigest, ...). Operators write them both with and without
//! that prefix, so both spellings are accepted here.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::properties::{self, Entry};
use super::{Config, ConfigError, PeerType, ServerSpec, Whitelist, FOUR_LETTER_WORDS};

/// ZooKeeperServer.DEFAULT_TICK_TIME: what a zoo.cfg without tickTime gets.
const ZK_DEFAULT_TICK_TIME_MS: u32 = 3000;
/// PurgeTxnLog refuses to keep fewer snapshots than this; ZooKeeper raises smaller values.
const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// SyncRequestProcessor needs at least 2.
const MIN_SNAP_COUNT: u64 = 2;

/// Keys ZooKeeper acts on that keeperd accepts but does not implement (TLS, SASL between
/// peers, local sessions, ...). They go to `extra` with a warning naming them as ignored.
const ZK_KEYS_NOT_IMPLEMENTED: &[&str] = &[
    "secureClientPortAddress",
    "observerMasterPort",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "connectToLearnerMasterLimit",
    "syncEnabled",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "quorum.auth.enableSasl",
    "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
    "quorum.cnxn.threads.size",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "multiAddress.reachabilityCheckEnabled",
    "oraclePath",
    "admin.serverAddress",
    "admin.idleTimeout",
    "admin.commandURL",
    "maxCnxns",
    "commitLogCount",
    "preAllocSize",
    "fsync.warningthresholdms",
    "serverCnxnFactory",
    "ssl.keyStore.location",
    "ssl.keyStore.password",
    "ssl.trustStore.location",
    "ssl.trustStore.password",
    "ssl.clientAuth",
    "ssl.quorum.keyStore.location",
    "ssl.quorum.keyStore.password",
    "ssl.quorum.trustStore.location",
    "ssl.quorum.trustStore.password",
    "ssl.quorum.hostnameVerification",
    "ssl.hostnameVerification",
    "audit.enable",
    "snapshot.trust.empty",
    "digest.enabled",
    "enforceQuota",
    "leaderServes",
    "cnxTimeout",
    "electionPortBindRetry",
    "minSessionTimeout.enabled",
    "jvm.pause.monitor",
];

/// Keys ZooKeeper reads as `zookeeper.<key>` system properties; both spellings map here.
const SYSTEM_PROPERTY_KEYS: &[&str] = &[
    "snapCount",
    "forceSync",
    "globalOutstandingLimit",
    "skipACL",
    "4lw.commands.whitelist",
    "admin.enableServer",
    "admin.serverPort",
    "DigestAuthenticationProvider.superDigest",
    "superDigest",
    "jute.maxbuffer",
];

/// Builds errors that point into one file.
struct Here<'a> {
    file: &'a Path,
}

impl Here<'_> {
    fn at(&self, entry: &Entry, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: Some(self.file.to_path_buf()),
            line: Some(entry.line),
            key: Some(entry.key.clone()),
            message: message.into(),
        }
    }

    fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: Some(self.file.to_path_buf()),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    fn entries(&self, text: &str) -> Result<Vec<Entry>, ConfigError> {
        properties::parse(text).map_err(|e| ConfigError {
            file: Some(self.file.to_path_buf()),
            line: Some(e.line),
            key: None,
            message: e.message,
        })
    }
}

/// Settings whose final value depends on others; resolved after all keys are read.
#[derive(Default)]
struct Pending {
    data_dir: Option<PathBuf>,
    tick_time: Option<(u32, usize)>,
    min_session_timeout: Option<(u32, usize)>,
    max_session_timeout: Option<(u32, usize)>,
    init_limit: Option<u32>,
    sync_limit: Option<u32>,
    client_port: Option<(u16, usize)>,
    client_port_address: Option<Entry>,
    peer_type: Option<PeerType>,
    dynamic_config_file: Option<Entry>,
    quorum_secret_file: Option<Entry>,
    /// server.N lines with the line they came from, in file order.
    servers: Vec<(ServerSpec, usize)>,
    first_server_line: Option<Entry>,
}

pub(super) fn parse(
    text: &str,
    file: &Path,
    source: Option<PathBuf>,
    source_dir: &Path,
) -> Result<Config, ConfigError> {
    let here = Here { file };
    let entries = here.entries(text)?;
    let mut config = Config {
        source,
        ..Config::default()
    };
    let mut pending = Pending::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();

    for entry in &entries {
        if let Some(previous) = seen.insert(entry.key.clone(), entry.line) {
            if !entry.key.starts_with("server.") {
                tracing::warn!(
                    "{}:{}: {} is set again (first at line {}); the last value wins",
                    file.display(),
                    entry.line,
                    entry.key,
                    previous
                );
            }
        }
        refuse_unimplemented_security(&here, entry)?;
        apply_key(&here, entry, &mut config, &mut pending)?;
    }

    resolve(&here, source_dir, config, pending)
}

/// Fail closed: a key that turns on a protection keeperd does not implement yet (TLS, SASL,
/// enforced authentication, an authentication provider it cannot load) stops start-up, so
/// nobody believes a server is protected while anyone can connect. Turning them off (false,
/// 0, empty) is accepted.
fn refuse_unimplemented_security(here: &Here, entry: &Entry) -> Result<(), ConfigError> {
    let key = entry.key.strip_prefix("zookeeper.").unwrap_or(&entry.key);
    let value = entry.value.trim();
    let on = value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("yes");
    let what = match key {
        "sslQuorum" | "portUnification" | "client.portUnification" if on => "TLS",
        "quorum.auth.enableSasl"
        | "quorum.auth.serverRequireSasl"
        | "quorum.auth.learnerRequireSasl"
            if on =>
        {
            "SASL authentication between servers"
        }
        "enforce.auth.enabled" | "sessionRequireClientSASLAuth" if on => {
            "enforced client authentication"
        }
        "requireClientAuthScheme" | "enforce.auth.schemes" if !value.is_empty() => {
            "enforced client authentication"
        }
        "secureClientPort" if !value.is_empty() && value != "0" => "TLS for clients",
        k if k.starts_with("authProvider.")
            && !value.ends_with(".DigestAuthenticationProvider")
            && !value.ends_with(".IPAuthenticationProvider") =>
        {
            "this authentication provider (digest and ip are built in)"
        }
        _ => return Ok(()),
    };
    Err(here.at(
        entry,
        format!(
            "{value:?}: keeperd does not implement {what} yet; refusing to start rather \
             than run without the protection this line asks for (see docs/security.md)"
        ),
    ))
}

/// Strips `zookeeper.` from keys ZooKeeper reads as system properties.
fn canonical_key(key: &str) -> &str {
    match key.strip_prefix("zookeeper.") {
        Some(rest)
            if SYSTEM_PROPERTY_KEYS.contains(&rest)
                || rest.starts_with("authProvider.")
                || rest.starts_with("4lw.") =>
        {
            rest
        }
        _ => key,
    }
}

fn apply_key(
    here: &Here,
    entry: &Entry,
    config: &mut Config,
    pending: &mut Pending,
) -> Result<(), ConfigError> {
    let value = entry.value.as_str();
    match canonical_key(&entry.key) {
        "dataDir" => {
            if value.is_empty() {
                return Err(here.at(entry, "is empty; it must name a directory"));
            }
            pending.data_dir = Some(PathBuf::from(value));
        }
        "dataLogDir" => {
            config.data_log_dir = (!value.is_empty()).then(|| PathBuf::from(value));
        }
        "clientPort" => {
            let port = port_or_zero(here, entry)?;
            pending.client_port = (port != 0).then_some((port, entry.line));
        }
        "clientPortAddress" => {
            pending.client_port_address = (!value.is_empty()).then(|| entry.clone());
        }
        "secureClientPort" => {
            let port = port_or_zero(here, entry)?;
            config.secure_client_port = (port != 0).then_some(port);
        }
        "clientPortListenBacklog" => {
            config.client_port_listen_backlog = int(here, entry)?.clamp(-1, i32::MAX as i64) as i32
        }
        "tickTime" => {
            let tick = non_negative_u32(here, entry)?;
            if tick == 0 {
                return Err(here.at(entry, "must be greater than 0 (milliseconds per tick)"));
            }
            pending.tick_time = Some((tick, entry.line));
        }
        "maxClientCnxns" => config.max_client_cnxns = non_negative_u32(here, entry)?,
        "minSessionTimeout" => {
            pending.min_session_timeout = session_timeout(here, entry)?.map(|t| (t, entry.line))
        }
        "maxSessionTimeout" => {
            pending.max_session_timeout = session_timeout(here, entry)?.map(|t| (t, entry.line))
        }
        "initLimit" => pending.init_limit = Some(non_negative_u32(here, entry)?),
        "syncLimit" => pending.sync_limit = Some(non_negative_u32(here, entry)?),
        "electionAlg" => {
            if int(here, entry)? != 3 {
                return Err(here.at(
                    entry,
                    format!("{value:?} is not supported; only 3 (fast leader election) is"),
                ));
            }
        }
        "quorumListenOnAllIPs" => config.quorum_listen_on_all_ips = strict_bool(here, entry)?,
        "peerType" => pending.peer_type = Some(peer_type(here, entry, value)?),
        "dynamicConfigFile" => {
            pending.dynamic_config_file = (!value.is_empty()).then(|| entry.clone());
        }
        "autopurge.snapRetainCount" => {
            let count = int(here, entry)?;
            config.autopurge_snap_retain_count = if count < MIN_SNAP_RETAIN_COUNT as i64 {
                tracing::warn!(
                    "{}:{}: autopurge.snapRetainCount {} is below {}; using {}",
                    here.file.display(),
                    entry.line,
                    count,
                    MIN_SNAP_RETAIN_COUNT,
                    MIN_SNAP_RETAIN_COUNT
                );
                MIN_SNAP_RETAIN_COUNT
            } else {
                u32::try_from(count).unwrap_or(u32::MAX)
            };
        }
        "autopurge.purgeInterval" => {
            // ZooKeeper treats any value <= 0 as "autopurge off".
            config.autopurge_purge_interval_hours =
                int(here, entry)?.clamp(0, u32::MAX as i64) as u32;
        }
        "standaloneEnabled" => config.standalone_enabled = strict_bool(here, entry)?,
        "reconfigEnabled" => config.reconfig_enabled = strict_bool(here, entry)?,
        "metricsProvider.className" => {
            config.metrics_provider_class = (!value.is_empty()).then(|| value.to_string())
        }
        "metricsProvider.httpPort" => config.metrics_http_port = port(here, entry)?,
        "snapCount" => {
            let count = int(here, entry)?;
            config.snap_count = if count < MIN_SNAP_COUNT as i64 {
                tracing::warn!(
                    "{}:{}: snapCount {} is below {}; using {}",
                    here.file.display(),
                    entry.line,
                    count,
                    MIN_SNAP_COUNT,
                    MIN_SNAP_COUNT
                );
                MIN_SNAP_COUNT
            } else {
                count as u64
            };
        }
        "forceSync" => config.force_sync = yes_no(here, entry)?,
        "globalOutstandingLimit" => {
            config.global_outstanding_limit = non_negative_u32(here, entry)?
        }
        "skipACL" => config.skip_acl = yes_no(here, entry)?,
        "keeperd.quorum.secretFile" => {
            pending.quorum_secret_file = (!value.is_empty()).then(|| entry.clone())
        }
        "4lw.commands.whitelist" => config.four_letter_whitelist = whitelist(here, entry),
        "admin.enableServer" => config.admin_enable_server = strict_bool(here, entry)?,
        "admin.serverPort" => config.admin_server_port = port(here, entry)?,
        "DigestAuthenticationProvider.superDigest" | "superDigest" => match value.split_once(':') {
            Some((user, digest)) if !user.is_empty() && !digest.is_empty() => {
                config.super_digest = Some(value.to_string())
            }
            _ => {
                return Err(here.at(
                    entry,
                    format!("{value:?} is not of the form user:base64(sha1(user:password))"),
                ))
            }
        },
        "jute.maxbuffer" => {
            let n = java_decode_int(value)
                .ok_or_else(|| here.at(entry, format!("{value:?} is not a number of bytes")))?;
            if n <= 0 {
                return Err(here.at(entry, format!("{value:?} must be greater than 0")));
            }
            config.jute_maxbuffer = n as usize;
        }
        key if key.starts_with("authProvider.") => {
            config
                .auth_providers
                .insert(key["authProvider.".len()..].to_string(), value.to_string());
        }
        key if key.starts_with("server.") => {
            let spec = server_line(here, entry)?;
            if let Some((previous, line)) = pending.servers.iter().find(|(s, _)| s.id == spec.id) {
                return Err(here.at(
                    entry,
                    format!(
                        "duplicate server id {} (already defined at line {} as {})",
                        spec.id, line, previous
                    ),
                ));
            }
            pending
                .first_server_line
                .get_or_insert_with(|| entry.clone());
            pending.servers.push((spec, entry.line));
        }
        key if key.starts_with("group.") || key.starts_with("weight.") => {
            return Err(here.at(
                entry,
                "hierarchical quorums (group.N / weight.N) are not supported by keeperd",
            ));
        }
        // Read by the server from `extra` (ContainerManager's check interval).
        "znode.container.checkIntervalMs" | "zookeeper.znode.container.checkIntervalMs" => {
            let key = "znode.container.checkIntervalMs".to_string();
            config.extra.insert(key, value.to_string());
        }
        key => {
            if ZK_KEYS_NOT_IMPLEMENTED.contains(&key) || key.starts_with("metricsProvider.") {
                tracing::warn!(
                    "{}:{}: {} is a ZooKeeper setting keeperd does not implement; ignored",
                    here.file.display(),
                    entry.line,
                    key
                );
            } else {
                tracing::warn!(
                    "{}:{}: unknown key {}; kept (shown by conf) but not used",
                    here.file.display(),
                    entry.line,
                    key
                );
            }
            config.extra.insert(entry.key.clone(), value.to_string());
        }
    }
    Ok(())
}

/// Everything that needs more than one key: defaults relative to tickTime, the server list
/// (static or dynamic), myid, the client port from this server's line, validation.
fn resolve(
    here: &Here,
    source_dir: &Path,
    mut config: Config,
    pending: Pending,
) -> Result<Config, ConfigError> {
    config.data_dir = pending
        .data_dir
        .ok_or_else(|| here.whole("dataDir is not set"))?;
    if let Some(entry) = &pending.quorum_secret_file {
        let path = locate(Path::new(&entry.value), source_dir);
        crate::consensus::peer_auth::QuorumSecret::from_file(&path)
            .map_err(|why| here.at(entry, why))?;
        config.quorum_secret_file = Some(path);
    }
    if config.data_dir.is_relative() {
        tracing::warn!(
            "dataDir {} is relative; it is resolved against the working directory",
            config.data_dir.display()
        );
    }

    let tick = pending
        .tick_time
        .map_or(ZK_DEFAULT_TICK_TIME_MS, |(t, _)| t);
    config.tick_time_ms = tick;
    config.min_session_timeout_ms = pending
        .min_session_timeout
        .map_or(tick.saturating_mul(2), |(t, _)| t);
    config.max_session_timeout_ms = pending
        .max_session_timeout
        .map_or(tick.saturating_mul(20), |(t, _)| t);
    if config.min_session_timeout_ms > config.max_session_timeout_ms {
        let line = pending
            .min_session_timeout
            .or(pending.max_session_timeout)
            .map(|(_, line)| line);
        return Err(ConfigError {
            file: Some(here.file.to_path_buf()),
            line,
            key: Some("minSessionTimeout".into()),
            message: format!(
                "{} ms must not be larger than maxSessionTimeout ({} ms{})",
                config.min_session_timeout_ms,
                config.max_session_timeout_ms,
                if pending.max_session_timeout.is_none() {
                    ", the default of 20 x tickTime"
                } else {
                    ""
                }
            ),
        });
    }

    if let (Some(addr_entry), None) = (&pending.client_port_address, pending.client_port) {
        // Same rule as ZooKeeper; checked before the server list can supply a port.
        return Err(here.at(addr_entry, "is set but clientPort is not set"));
    }
    if let Some(addr_entry) = &pending.client_port_address {
        config.client_port_address = Some(
            resolve_ip(&addr_entry.value)
                .map_err(|e| here.at(addr_entry, format!("{:?} {}", addr_entry.value, e)))?,
        );
    }

    // The server list: from dynamicConfigFile when set (then zoo.cfg must not have any),
    // else from zoo.cfg itself (the pre-3.5 layout most deployments still use).
    let mut servers = pending.servers;
    let mut servers_file: PathBuf = here.file.to_path_buf();
    if let Some(dyn_entry) = &pending.dynamic_config_file {
        if let Some(first) = &pending.first_server_line {
            return Err(here.at(
                first,
                format!(
                    "must be in the dynamic config file ({}) since dynamicConfigFile is set",
                    dyn_entry.value
                ),
            ));
        }
        let path = locate(Path::new(&dyn_entry.value), source_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| here.at(dyn_entry, format!("cannot read {}: {e}", path.display())))?;
        let (dyn_servers, version) = parse_dynamic_file(&text, &path)?;
        servers = dyn_servers;
        config.config_version = version;
        config.dynamic_config_file = Some(path.clone());
        servers_file = path;
    }

    let participants = servers
        .iter()
        .filter(|(s, _)| s.peer_type == PeerType::Participant)
        .count();
    let observers = servers.len() - participants;
    let servers_error = |message: String| ConfigError {
        file: Some(servers_file.clone()),
        line: None,
        key: None,
        message,
    };
    // Two servers cannot listen on one address (ZooKeeper fails to bind; a reconfig would
    // refuse every later membership with such a pair as BadArguments).
    let mut addresses: Vec<(&str, u16, u64, usize)> = Vec::new();
    for (s, line) in &servers {
        for port in [s.quorum_port, s.election_port] {
            if let Some((_, _, other, other_line)) = addresses
                .iter()
                .find(|(h, p, id, _)| *h == s.host && *p == port && *id != s.id)
            {
                return Err(servers_error(format!(
                    "server.{} (line {line}) and server.{other} (line {other_line}) both use \
                     {}:{port}",
                    s.id, s.host
                )));
            }
            addresses.push((&s.host, port, s.id, *line));
        }
    }
    if participants == 0 {
        if !config.standalone_enabled {
            return Err(servers_error(
                "standaloneEnabled=false needs at least one participant server.N line".into(),
            ));
        }
        if observers > 0 {
            return Err(servers_error(
                "observers without participants is an invalid configuration".into(),
            ));
        }
    } else if participants == 1 && config.standalone_enabled {
        if observers > 0 {
            return Err(servers_error(
                "observers with a single participant need standaloneEnabled=false".into(),
            ));
        }
    } else if participants <= 2 {
        tracing::warn!("no server failure will be tolerated: an ensemble needs at least 3 servers");
    } else if participants % 2 == 0 {
        tracing::warn!("an even number of participants ({participants}) tolerates no more failures than {} would", participants - 1);
    }
    let distributed = !servers.is_empty() && (participants > 1 || !config.standalone_enabled);

    // myid: read whenever present, as ZooKeeper does; required in an ensemble.
    let myid_path = config.data_dir.join("myid");
    config.my_id = read_myid(&myid_path)?;
    let server_ids = || {
        servers
            .iter()
            .map(|(s, _)| s.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if distributed {
        let Some(id) = config.my_id else {
            return Err(ConfigError {
                file: Some(myid_path.clone()),
                line: None,
                key: None,
                message: format!(
                    "myid file is missing: with server.N lines ({}) each server needs its id in \
                     dataDir/myid",
                    server_ids()
                ),
            });
        };
        if !servers.iter().any(|(s, _)| s.id == id) {
            return Err(ConfigError {
                file: Some(myid_path.clone()),
                line: None,
                key: None,
                message: format!(
                    "myid {id} is not among the server ids in {} ({})",
                    servers_file.display(),
                    server_ids()
                ),
            });
        }
    }

    // This server's client port/address may come from its server.N line.
    let mine = config
        .my_id
        .and_then(|id| servers.iter().find(|(s, _)| s.id == id));
    let mut client_port = pending.client_port.map(|(p, _)| p);
    if let Some((spec, line)) = mine {
        if let Some(line_port) = spec.client_port {
            if let Some((static_port, static_line)) = pending.client_port {
                if static_port != line_port {
                    return Err(ConfigError {
                        file: Some(here.file.to_path_buf()),
                        line: Some(static_line),
                        key: Some("clientPort".into()),
                        message: format!(
                            "{static_port} differs from the client port {line_port} in \
                             server.{} ({}:{line})",
                            spec.id,
                            servers_file.display()
                        ),
                    });
                }
            }
            client_port = Some(line_port);
            if let Some(addr) = &spec.client_addr {
                let ip = resolve_ip(addr).map_err(|e| ConfigError {
                    file: Some(servers_file.clone()),
                    line: Some(*line),
                    key: Some(format!("server.{}", spec.id)),
                    message: format!("client address {addr:?} {e}"),
                })?;
                match config.client_port_address {
                    Some(static_ip) if !static_ip.is_unspecified() && static_ip != ip => {
                        return Err(ConfigError {
                            file: Some(here.file.to_path_buf()),
                            line: pending.client_port_address.as_ref().map(|e| e.line),
                            key: Some("clientPortAddress".into()),
                            message: format!(
                                "{static_ip} differs from the client address {addr} in server.{}",
                                spec.id
                            ),
                        });
                    }
                    _ => config.client_port_address = Some(ip),
                }
            }
        }
    }
    config.client_port = match client_port {
        Some(port) => port,
        None if !servers.is_empty() => {
            return Err(here.whole(match config.my_id {
                Some(id) => format!(
                    "clientPort is not set and server.{id} has no client port \
                     (add clientPort=2181 or end the line with ;2181)"
                ),
                None => "clientPort is not set".to_string(),
            }))
        }
        None => return Err(here.whole("clientPort is not set")),
    };

    if distributed {
        config.init_limit = pending.init_limit.filter(|&n| n > 0).ok_or_else(|| {
            here.whole("initLimit is not set (ticks a follower may take to connect and sync)")
        })?;
        config.sync_limit = pending.sync_limit.filter(|&n| n > 0).ok_or_else(|| {
            here.whole("syncLimit is not set (ticks a follower may lag behind the leader)")
        })?;
        let role = mine.map_or(PeerType::Participant, |(s, _)| s.peer_type);
        if let Some(configured) = pending.peer_type {
            if configured != role {
                tracing::warn!(
                    "peerType={configured} does not match this server's line ({role}); using the server line"
                );
            }
        }
        config.peer_type = role;
        config.servers = servers.into_iter().map(|(s, _)| s).collect();
    } else {
        if !servers.is_empty() {
            tracing::warn!(
                "only one participant server.N line and standaloneEnabled=true: running standalone"
            );
        }
        config.init_limit = pending.init_limit.unwrap_or(config.init_limit);
        config.sync_limit = pending.sync_limit.unwrap_or(config.sync_limit);
        config.peer_type = pending.peer_type.unwrap_or(PeerType::Participant);
        config.servers = Vec::new();
    }
    Ok(config)
}

/// A relative path that does not exist from the working directory is tried next to zoo.cfg.
fn locate(path: &Path, source_dir: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() {
        let beside = source_dir.join(path);
        if beside.exists() {
            return beside;
        }
    }
    path.to_path_buf()
}

/// A dynamic config file holds only `server.N` lines; its version is its name's hex suffix.
fn parse_dynamic_file(
    text: &str,
    path: &Path,
) -> Result<(Vec<(ServerSpec, usize)>, u64), ConfigError> {
    let here = Here { file: path };
    let mut servers: Vec<(ServerSpec, usize)> = Vec::new();
    for entry in here.entries(text)? {
        if entry.key == "version" {
            return Err(here.at(&entry, "a dynamic config file must not contain a version"));
        }
        if !entry.key.starts_with("server.") {
            return Err(here.at(
                &entry,
                "is not allowed in a dynamic config file (only server.N lines are)",
            ));
        }
        let spec = server_line(&here, &entry)?;
        if let Some((_, line)) = servers.iter().find(|(s, _)| s.id == spec.id) {
            return Err(here.at(
                &entry,
                format!(
                    "duplicate server id {} (already defined at line {line})",
                    spec.id
                ),
            ));
        }
        servers.push((spec, entry.line));
    }
    let version = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(|e| u64::from_str_radix(e, 16).ok())
        .unwrap_or(0);
    Ok((servers, version))
}

fn read_myid(path: &Path) -> Result<Option<u64>, ConfigError> {
    if !path.is_file() {
        return Ok(None);
    }
    let fail = |message: String| ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        key: None,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let first = text.lines().next().unwrap_or("").trim();
    first.parse::<u64>().map(Some).map_err(|_| {
        fail(format!(
            "{first:?} is not a server id (a non-negative number)"
        ))
    })
}

/// One `server.N` key and its value outside a file (a reconfig request, /zookeeper/config).
pub(crate) fn parse_server_value(key: &str, value: &str) -> Result<ServerSpec, String> {
    if !key.starts_with("server.") {
        return Err(format!("{key:?} is not a server.N key"));
    }
    let entry = Entry {
        key: key.to_string(),
        value: value.trim().to_string(),
        line: 1,
    };
    server_line(
        &Here {
            file: Path::new("<membership>"),
        },
        &entry,
    )
    .map_err(|e| e.message)
}

/// Parses `host:quorumPort:electionPort[:participant|observer][;[clientAddr:]clientPort]`,
/// with IPv6 hosts in brackets.
fn server_line(here: &Here, entry: &Entry) -> Result<ServerSpec, ConfigError> {
    let id_text = &entry.key["server.".len()..];
    let id: u64 = id_text
        .parse()
        .map_err(|_| here.at(entry, format!("{id_text:?} is not a server id (a number)")))?;
    let form =
        "expected host:quorumPort:electionPort[:participant|observer][;[clientAddress:]clientPort]";
    let bad = |why: &str| here.at(entry, format!("{:?}: {why}; {form}", entry.value));

    let mut halves = entry.value.split(';');
    let server_part = halves.next().unwrap_or("").trim();
    let client_part = halves.next().map(str::trim);
    if halves.next().is_some() {
        return Err(bad(
            "more than one ';' (separate plain/secure client addresses are not supported)",
        ));
    }
    if server_part.contains('|') {
        return Err(bad("multiple addresses per server ('|') are not supported"));
    }
    let parts = split_leading_host(server_part).map_err(|why| bad(&why))?;
    if parts.len() < 3 || parts.len() > 4 {
        return Err(bad("wrong number of ':'-separated fields"));
    }
    if parts[0].is_empty() {
        return Err(bad("empty host"));
    }
    let quorum_port = parse_port(&parts[1]).ok_or_else(|| bad("bad quorum port"))?;
    let election_port = parse_port(&parts[2]).ok_or_else(|| bad("bad election port"))?;
    let peer_type = match parts.get(3) {
        None => PeerType::Participant,
        Some(role) => peer_type(here, entry, role)?,
    };
    let (client_addr, client_port) = match client_part {
        None => (None, None),
        Some(client) => {
            let pieces = split_leading_host(client).map_err(|why| bad(&why))?;
            match pieces.as_slice() {
                [port] => (
                    None,
                    Some(parse_port(port).ok_or_else(|| bad("bad client port"))?),
                ),
                [host, port] if !host.is_empty() => (
                    Some(host.clone()),
                    Some(parse_port(port).ok_or_else(|| bad("bad client port"))?),
                ),
                _ => return Err(bad("client part must be port or address:port")),
            }
        }
    };
    Ok(ServerSpec {
        id,
        host: parts[0].clone(),
        quorum_port,
        election_port,
        peer_type,
        client_addr,
        client_port,
    })
}

/// `[v6::addr]:a:b` -> ["v6::addr", "a", "b"]; `host:a:b` -> ["host", "a", "b"].
fn split_leading_host(s: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest
            .split_once("]:")
            .ok_or_else(|| "starts with '[' but has no matching ']:'".to_string())?;
        let mut out = vec![host.to_string()];
        out.extend(tail.split(':').map(|p| p.trim().to_string()));
        Ok(out)
    } else {
        Ok(s.split(':').map(|p| p.trim().to_string()).collect())
    }
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

fn peer_type(here: &Here, entry: &Entry, value: &str) -> Result<PeerType, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "participant" => Ok(PeerType::Participant),
        "observer" => Ok(PeerType::Observer),
        _ => Err(here.at(
            entry,
            format!("{value:?} is not a peer type (participant or observer)"),
        )),
    }
}

/// Integer.parseInt: optional sign and decimal digits.
fn int(here: &Here, entry: &Entry) -> Result<i64, ConfigError> {
    let v = &entry.value;
    v.strip_prefix('+')
        .unwrap_or(v)
        .parse::<i32>()
        .map(i64::from)
        .map_err(|_| here.at(entry, format!("{v:?} is not a number")))
}

fn non_negative_u32(here: &Here, entry: &Entry) -> Result<u32, ConfigError> {
    let n = int(here, entry)?;
    u32::try_from(n).map_err(|_| here.at(entry, format!("{:?} must not be negative", entry.value)))
}

/// -1 means "use the default" in ZooKeeper; other negatives are mistakes.
fn session_timeout(here: &Here, entry: &Entry) -> Result<Option<u32>, ConfigError> {
    match int(here, entry)? {
        -1 => Ok(None),
        n => u32::try_from(n).map(Some).map_err(|_| {
            here.at(
                entry,
                format!("{:?} must be a number of milliseconds", entry.value),
            )
        }),
    }
}

/// A port that may be 0 meaning "not set", as ZooKeeper reads clientPort.
fn port_or_zero(here: &Here, entry: &Entry) -> Result<u16, ConfigError> {
    let v = entry.value.strip_prefix('+').unwrap_or(&entry.value);
    v.parse::<u16>()
        .map_err(|_| here.at(entry, format!("{:?} is not a port number", entry.value)))
}

fn port(here: &Here, entry: &Entry) -> Result<u16, ConfigError> {
    match port_or_zero(here, entry)? {
        0 => Err(here.at(entry, "0 is not a usable port number")),
        p => Ok(p),
    }
}

/// QuorumPeerConfig.parseBoolean: exactly true or false, any case.
fn strict_bool(here: &Here, entry: &Entry) -> Result<bool, ConfigError> {
    match entry.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(here.at(
            entry,
            format!("{:?} is not a boolean; use true or false", entry.value),
        )),
    }
}

/// forceSync / skipACL are yes/no in ZooKeeper (skipACL only honours "yes"; true is accepted
/// here too because that is plainly what whoever wrote it meant).
fn yes_no(here: &Here, entry: &Entry) -> Result<bool, ConfigError> {
    match entry.value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(here.at(entry, format!("{:?} is not yes or no", entry.value))),
    }
}

/// Integer.decode, which ZooKeeper uses for jute.maxbuffer: decimal, 0x/0X/# hex.
fn java_decode_int(v: &str) -> Option<i64> {
    let (neg, body) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    let n = if let Some(hex) = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))
        .or_else(|| body.strip_prefix('#'))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    Some(if neg { -n } else { n })
}

fn whitelist(here: &Here, entry: &Entry) -> Whitelist {
    let mut words = Vec::new();
    for word in entry
        .value
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        if word == "*" {
            return Whitelist::All;
        }
        let word = word.to_ascii_lowercase();
        if !FOUR_LETTER_WORDS.contains(&word.as_str()) {
            tracing::warn!(
                "{}:{}: 4lw.commands.whitelist: {:?} is not a four-letter word ZooKeeper knows",
                here.file.display(),
                entry.line,
                word
            );
        }
        if !words.contains(&word) {
            words.push(word);
        }
    }
    Whitelist::Only(words)
}

/// An IP literal, or a host name resolved now (ZooKeeper resolves clientPortAddress at start).
fn resolve_ip(host: &str) -> Result<IpAddr, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    (bare, 0u16)
        .to_socket_addrs()
        .map_err(|e| format!("cannot be resolved: {e}"))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| "resolves to no address".to_string())
}
