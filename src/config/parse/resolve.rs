//! What needs more than one key, after every line is read (QuorumPeerConfig's
//! setupQuorumPeerConfig order): defaults relative to tickTime, the server list (from zoo.cfg
//! or the dynamic config file), myid, the client port and address from this server's line,
//! and the checks across keys (session timeouts, duplicate addresses, quorum shape, myid
//! among the servers, initLimit/syncLimit in an ensemble).

use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use super::servers::parse_dynamic_file;
use super::{Here, Pending};
use crate::config::{Config, ConfigError, PeerType};

/// ZooKeeperServer.DEFAULT_TICK_TIME: what a zoo.cfg without tickTime gets.
const ZK_DEFAULT_TICK_TIME_MS: u32 = 3000;

/// Everything that needs more than one key: defaults relative to tickTime, the server list
/// (static or dynamic), myid, the client port from this server's line, validation.
pub(super) fn resolve(
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
        crate::config::secret::read_secret(&path).map_err(|why| here.at(entry, why))?;
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
pub(super) fn locate(path: &Path, source_dir: &Path) -> PathBuf {
    if path.is_relative() && !path.exists() {
        let beside = source_dir.join(path);
        if beside.exists() {
            return beside;
        }
    }
    path.to_path_buf()
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
