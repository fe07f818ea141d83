//! One zoo.cfg key at a time: `apply_key` maps each key (in either spelling, with or without
//! `zookeeper.`) onto `Config`, or onto `Pending` when its final value depends on other keys;
//! the lists of keys ZooKeeper knows that keeperd accepts and ignores; and the value syntaxes
//! ZooKeeper reads them with (Integer.parseInt, parseBoolean, yes/no, Integer.decode, ports,
//! the 4lw whitelist).

use std::path::PathBuf;

use super::servers::{peer_type, server_line};
use super::{Here, Pending};
use crate::config::properties::Entry;
use crate::config::{Config, ConfigError, Whitelist, FOUR_LETTER_WORDS};

/// PurgeTxnLog refuses to keep fewer snapshots than this; ZooKeeper raises smaller values.
const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// SyncRequestProcessor needs at least 2.
const MIN_SNAP_COUNT: u64 = 2;

/// Keys ZooKeeper acts on that keeperd accepts but does not implement (TLS, SASL between
/// peers, local sessions, ...). They go to `extra` with a warning naming them as ignored.
const ZK_KEYS_NOT_IMPLEMENTED: &[&str] = &[
    "observerMasterPort",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "connectToLearnerMasterLimit",
    "syncEnabled",
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
    "maxCnxns",
    "commitLogCount",
    "preAllocSize",
    "fsync.warningthresholdms",
    "serverCnxnFactory",
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
    "admin.snapshot.enabled",
    "admin.snapshot.intervalInMS",
    "admin.serverPort",
    "admin.serverAddress",
    "admin.idleTimeout",
    "admin.commandURL",
    "DigestAuthenticationProvider.superDigest",
    "superDigest",
    "jute.maxbuffer",
];

/// Strips `zookeeper.` from keys ZooKeeper reads as system properties.
fn canonical_key(key: &str) -> &str {
    match key.strip_prefix("zookeeper.") {
        Some(rest)
            if SYSTEM_PROPERTY_KEYS.contains(&rest)
                || rest.starts_with("authProvider.")
                || rest.starts_with("4lw.")
                || rest.starts_with("ssl.")
                || rest == "sslQuorum"
                || rest == "X509AuthenticationProvider.superUser" =>
        {
            rest
        }
        _ => key,
    }
}

pub(super) fn apply_key(
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
            pending.secure_client_port = (port != 0).then(|| entry.clone());
        }
        "secureClientPortAddress" => {
            pending.secure_client_port_address = (!value.is_empty()).then(|| entry.clone());
        }
        "sslQuorum" => pending.ssl_quorum = strict_bool(here, entry)?.then(|| entry.clone()),
        "keeperd.ssl.quorum.requireServerId" => {
            config.quorum_tls_require_server_id = strict_bool(here, entry)?
        }
        "X509AuthenticationProvider.superUser" => {
            config.x509_super_user = (!value.is_empty()).then(|| value.to_string())
        }
        key if key.starts_with("ssl.") => {
            pending.ssl.insert(key.to_string(), entry.clone());
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
        "metricsProvider.httpHost" => config.metrics_http_host = host(here, entry)?,
        "metricsProvider.exportJvmInfo" => {
            // There is no JVM: nothing to export, nothing to warn about.
            config.extra.insert(entry.key.clone(), value.to_string());
        }
        "keeperd.prometheus.enabled" => config.prometheus_enabled = strict_bool(here, entry)?,
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
        "keeperd.linearizableReads" => config.linearizable_reads = strict_bool(here, entry)?,
        "4lw.commands.whitelist" => config.four_letter_whitelist = whitelist(here, entry),
        "admin.enableServer" => config.admin_enable_server = strict_bool(here, entry)?,
        "admin.serverPort" => config.admin_server_port = port(here, entry)?,
        "admin.serverAddress" => config.admin_server_address = host(here, entry)?,
        "admin.idleTimeout" => {
            let ms = int(here, entry)?;
            if ms <= 0 {
                return Err(here.at(entry, format!("{value:?} must be a positive number of ms")));
            }
            config.admin_idle_timeout_ms = ms as u32;
        }
        "admin.snapshot.enabled" => config.admin_snapshot_enabled = strict_bool(here, entry)?,
        "admin.snapshot.intervalInMS" => {
            let ms = value
                .parse::<u64>()
                .map_err(|_| here.at(entry, format!("{value:?} is not a number of ms")))?;
            config.admin_snapshot_interval_ms = ms;
        }
        "admin.commandURL" => {
            if !value.starts_with('/') || value.contains(char::is_whitespace) {
                return Err(here.at(entry, format!("{value:?} is not a URL path (/commands)")));
            }
            config.admin_command_url = value.trim_end_matches('/').to_string();
            if config.admin_command_url.is_empty() {
                return Err(here.at(entry, "must not be / alone (the probes live there)"));
            }
        }
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
        key if key.starts_with("keeperd.log.") => config
            .log
            .apply(&key["keeperd.log.".len()..], value)
            .map_err(|e| here.at(entry, e))?,
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

/// A host name or address to bind (checked for shape only; resolved when binding).
fn host(here: &Here, entry: &Entry) -> Result<String, ConfigError> {
    let v = entry.value.trim();
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    if !ok {
        return Err(here.at(entry, format!("{v:?} is not a host name or address")));
    }
    Ok(v.to_string())
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
