//! The TLS keys (`ssl.*` for `secureClientPort`, `ssl.quorum.*` for `sslQuorum=true`) onto
//! `tls::TlsOptions`, with ZooKeeper 3.8's defaults, then a trial build of each TLS
//! configuration so that a bad keystore path, type or password stops start-up with the
//! zoo.cfg line at fault. `ssl.*` keys without `secureClientPort`, and `ssl.quorum.*` keys
//! without `sslQuorum=true`, are kept and do nothing, as in ZooKeeper.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::resolve::locate;

use super::{Here, Pending};
use crate::config::properties::Entry;
use crate::config::{Config, ConfigError};
use crate::tls::{quorum::QuorumTls, ClientAuth, StoreOptions, TlsError, TlsOptions};

pub(super) fn resolve(
    here: &Here,
    source_dir: &Path,
    config: &mut Config,
    pending: &Pending,
) -> Result<(), ConfigError> {
    let keys = &pending.ssl;
    if let Some(port_entry) = &pending.secure_client_port {
        let opts = options(here, source_dir, keys, "ssl.")?;
        crate::tls::client_port_config(&opts)
            .map_err(|e| at_key(here, keys, "ssl.", port_entry, e))?;
        config.client_tls = Some(opts);
    }
    if let Some(entry) = &pending.secure_client_port_address {
        config.secure_client_port_address =
            Some(
                entry.value.trim().parse::<IpAddr>().map_err(|_| {
                    here.at(entry, format!("{:?} is not an IP address", entry.value))
                })?,
            );
    }
    if let Some(on_entry) = &pending.ssl_quorum {
        let opts = options(here, source_dir, keys, "ssl.quorum.")?;
        if opts.client_auth != ClientAuth::Need {
            tracing::warn!(
                "ssl.quorum.clientAuth: keeperd always requires a certificate from every \
                 server (need)"
            );
        }
        QuorumTls::new(&opts, config.quorum_tls_require_server_id)
            .map_err(|e| at_key(here, keys, "ssl.quorum.", on_entry, e))?;
        config.quorum_tls = Some(opts);
    }
    Ok(())
}

/// The line of the key a `TlsError` is about, else the line that turned TLS on.
fn at_key(
    here: &Here,
    keys: &BTreeMap<String, Entry>,
    prefix: &str,
    fallback: &Entry,
    e: TlsError,
) -> ConfigError {
    let full = format!("{prefix}{}", e.key);
    // A password read from a file is reported at the passwordPath line.
    let path_key = full.replace(".password", ".passwordPath");
    let entry = keys
        .get(&path_key)
        .filter(|_| full.ends_with(".password"))
        .or_else(|| keys.get(&full))
        .or_else(|| {
            // protocol and enabledProtocols decide together.
            (e.key == "enabledProtocols")
                .then(|| keys.get(&format!("{prefix}protocol")))
                .flatten()
        });
    match entry {
        Some(entry) => here.at(entry, e.message),
        None => here.at(fallback, format!("{full}: {}", e.message)),
    }
}

fn options(
    here: &Here,
    source_dir: &Path,
    keys: &BTreeMap<String, Entry>,
    prefix: &'static str,
) -> Result<TlsOptions, ConfigError> {
    let get = |k: &str| {
        keys.get(&format!("{prefix}{k}"))
            .filter(|e| !e.value.trim().is_empty())
    };
    let mut opts = TlsOptions::new(prefix);
    opts.key_store = store(here, source_dir, "keyStore", &get)?;
    opts.trust_store = store(here, source_dir, "trustStore", &get)?;
    if let Some(e) = get("clientAuth") {
        opts.client_auth = match e.value.trim().to_ascii_lowercase().as_str() {
            "need" => ClientAuth::Need,
            "want" => ClientAuth::Want,
            "none" => ClientAuth::None,
            _ => return Err(here.at(e, format!("{:?} is not need, want or none", e.value))),
        };
    }
    if let Some(e) = get("protocol") {
        opts.protocols = vec![e.value.trim().to_string()];
    }
    if let Some(e) = get("enabledProtocols") {
        opts.protocols = e.value.split(',').map(|p| p.trim().to_string()).collect();
    }
    if let Some(e) = get("ciphersuites") {
        opts.cipher_suites = Some(e.value.split(',').map(|c| c.trim().to_string()).collect());
    }
    if let Some(e) = get("hostnameVerification") {
        // Boolean.parseBoolean: only "true" (any case) is true.
        opts.hostname_verification = e.value.trim().eq_ignore_ascii_case("true");
    }
    Ok(opts)
}

/// `<store>.location`, `.password` / `.passwordPath`, `.type`.
fn store<'a>(
    here: &Here,
    source_dir: &Path,
    store: &str,
    get: &impl Fn(&str) -> Option<&'a Entry>,
) -> Result<Option<StoreOptions>, ConfigError> {
    let Some(location) = get(&format!("{store}.location")) else {
        return Ok(None);
    };
    let mut password = get(&format!("{store}.password"))
        .map(|e| e.value.clone())
        .unwrap_or_default();
    if let Some(e) = get(&format!("{store}.passwordPath")) {
        let path = locate(Path::new(e.value.trim()), source_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| here.at(e, format!("cannot read {}: {err}", path.display())))?;
        password = text.trim_end_matches(['\r', '\n']).to_string();
    }
    Ok(Some(StoreOptions {
        location: locate(Path::new(location.value.trim()), source_dir),
        password,
        kind: get(&format!("{store}.type")).map(|e| e.value.trim().to_string()),
    }))
}
