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
//!
//! This file owns the driver, `parse()`: it reads the lines, warns about repeated keys, stops
//! at any line that asks for a protection keeperd lacks (fail closed), hands each line to
//! `keys`, then `resolve`s what depends on several keys. Its children:
//! - `keys.rs`: one zoo.cfg key at a time onto `Config` (or `Pending` when it depends on
//!   others), the lists of known-but-ignored keys, and the value syntaxes;
//! - `servers.rs`: `server.N` lines (in zoo.cfg, a dynamic config file or a reconfig) and
//!   the dynamic config file itself;
//! - `resolve.rs`: defaults relative to tickTime, the server list, myid, the client port from
//!   this server's line, and the checks across keys.

mod client_auth;
mod keys;
mod resolve;
mod servers;
mod ssl;

pub(crate) use servers::parse_server_value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::jaas::JvmProperties;
use super::properties::{self, Entry};
use super::{Config, ConfigError, PeerType, ServerSpec};

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
    /// `ssl.*` and `ssl.quorum.*` lines by key (without `zookeeper.`).
    ssl: BTreeMap<String, Entry>,
    /// The `secureClientPort` line, when it names a port.
    secure_client_port: Option<Entry>,
    secure_client_port_address: Option<Entry>,
    /// The `sslQuorum=true` line.
    ssl_quorum: Option<Entry>,
    /// server.N lines with the line they came from, in file order.
    servers: Vec<(ServerSpec, usize)>,
    first_server_line: Option<Entry>,
}

pub(super) fn parse(
    text: &str,
    file: &Path,
    source: Option<PathBuf>,
    source_dir: &Path,
    jvm: &JvmProperties,
) -> Result<Config, ConfigError> {
    let here = Here { file };
    let entries = here.entries(text)?;
    let mut config = Config {
        source,
        ..Config::default()
    };
    let mut pending = Pending::default();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut auth = client_auth::AuthPending::default();
    auth.apply_jvm(jvm)?;

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
        if auth.apply_entry(file, entry)? {
            continue;
        }
        keys::apply_key(&here, entry, &mut config, &mut pending)?;
    }

    let mut config = resolve::resolve(&here, source_dir, config, pending)?;
    config.client_auth = auth.resolve(source_dir)?;
    Ok(config)
}

/// Fail closed: a key that turns on a protection keeperd does not implement yet (TLS, SASL
/// between servers, an authentication provider it cannot load) stops start-up, so
/// nobody believes a server is protected while anyone can connect. Turning them off (false,
/// 0, empty) is accepted.
fn refuse_unimplemented_security(here: &Here, entry: &Entry) -> Result<(), ConfigError> {
    let key = entry.key.strip_prefix("zookeeper.").unwrap_or(&entry.key);
    let value = entry.value.trim();
    let on = value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("yes");
    let what = match key {
        "portUnification" | "client.portUnification" if on => {
            "port unification (TLS and plain clients on one port)"
        }
        "quorum.auth.enableSasl"
        | "quorum.auth.serverRequireSasl"
        | "quorum.auth.learnerRequireSasl"
            if on =>
        {
            "SASL authentication between servers"
        }
        "ssl.crl" | "ssl.ocsp" | "ssl.quorum.crl" | "ssl.quorum.ocsp" if on => {
            "certificate revocation checks (CRL, OCSP)"
        }
        "ssl.context.supplier.class" | "ssl.quorum.context.supplier.class" if !value.is_empty() => {
            "custom SSLContext suppliers"
        }
        "ssl.authProvider" if !value.is_empty() && value != "x509" => {
            "an x509 authentication provider other than the built-in x509"
        }
        k if k.starts_with("authProvider.")
            && !value.ends_with(".DigestAuthenticationProvider")
            && !value.ends_with(".IPAuthenticationProvider")
            && !value.ends_with(".X509AuthenticationProvider")
            && !value.ends_with(".SASLAuthenticationProvider") =>
        {
            "this authentication provider (digest, ip, x509 and sasl are built in)"
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
