//! `server.N` lines: `host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]`, as
//! zoo.cfg, a dynamic config file, /zookeeper/config and a reconfig request write them; and
//! the dynamic config file (`dynamicConfigFile`), which holds only such lines and takes its
//! version from its name.

use std::path::Path;

use super::Here;
use crate::config::properties::Entry;
use crate::config::{ConfigError, PeerType, ServerSpec};

/// A dynamic config file holds only `server.N` lines; its version is its name's hex suffix.
pub(super) fn parse_dynamic_file(
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
pub(super) fn server_line(here: &Here, entry: &Entry) -> Result<ServerSpec, ConfigError> {
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

pub(super) fn peer_type(here: &Here, entry: &Entry, value: &str) -> Result<PeerType, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "participant" => Ok(PeerType::Participant),
        "observer" => Ok(PeerType::Observer),
        _ => Err(here.at(
            entry,
            format!("{value:?} is not a peer type (participant or observer)"),
        )),
    }
}
