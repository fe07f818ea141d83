//! The keys of client SASL and enforced authentication, from zoo.cfg and from the JVM `-D`
//! options ZooKeeper reads as system properties (SERVER_JVMFLAGS, JVMFLAGS, java.env), and
//! the JAAS file they lead to. Resolved into `ClientAuth` after every line is read, with
//! ZooKeeper 3.8's rules (AuthenticationHelper, ServerCnxnFactory.configureSaslLogin,
//! SaslServerCallbackHandler) and keeperd's stricter ones where ZooKeeper would run without
//! the protection asked for:
//!
//! - a JAAS file that is named but missing or unparsable stops start-up (as in ZooKeeper);
//! - SASL asked for (`authProvider.N=...SASLAuthenticationProvider`, or sasl enforced) with
//!   no JAAS file or no `Server` section stops start-up (ZooKeeper starts and refuses every
//!   SASL login);
//! - a `Server` section with a login module other than DigestLoginModule (Kerberos) stops
//!   start-up: keeperd has DIGEST-MD5 only;
//! - `requireClientAuthScheme=sasl`, which Kafka guides print but no ZooKeeper release reads,
//!   enforces SASL as `sessionRequireClientSASLAuth=true` does; other values stop start-up.

use std::path::{Path, PathBuf};

use super::resolve::locate;
use crate::config::jaas::{self, JvmProperties, DIGEST_LOGIN_MODULE};
use crate::config::properties::Entry;
use crate::config::{ClientAuth, ConfigError, SaslUsers};

/// Where a setting came from: a zoo.cfg line, or a JVM option (file = its source, no line).
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    line: Option<usize>,
    key: String,
    value: String,
}

impl Origin {
    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: Some(self.file.clone()),
            line: self.line,
            key: Some(self.key.clone()),
            message: message.into(),
        }
    }
}

/// The JVM options that are client-auth settings: the JAAS file, and the `zookeeper.*`
/// system properties below.
const JAAS_PROPERTY: &str = "java.security.auth.login.config";

#[derive(Debug, Default)]
pub(super) struct AuthPending {
    sasl_provider: Option<Origin>,
    enforce_enabled: Option<(bool, Origin)>,
    enforce_schemes: Option<Origin>,
    session_require_sasl: Option<(bool, Origin)>,
    require_client_auth_scheme: Option<Origin>,
    /// keeperd.jaasConfigFile (zoo.cfg) wins over java.security.auth.login.config (JVM).
    jaas_file_key: Option<Origin>,
    jaas_file_jvm: Option<Origin>,
    section: Option<String>,
    super_users: Vec<(String, String)>,
    super_password: Option<String>,
    allow_failed: bool,
}

/// Java's Boolean.parseBoolean: true only for "true", any case.
fn java_bool(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("true")
}

impl AuthPending {
    /// Takes the client-auth settings among the JVM options (before zoo.cfg's lines, which
    /// override them as ZooKeeper's System.setProperty of zoo.cfg keys does).
    pub(super) fn apply_jvm(&mut self, jvm: &JvmProperties) -> Result<(), ConfigError> {
        for p in &jvm.0 {
            let origin = Origin {
                file: PathBuf::from(&p.source),
                line: None,
                key: format!("-D{}", p.name),
                value: p.value.clone(),
            };
            if p.name == JAAS_PROPERTY {
                self.jaas_file_jvm = Some(origin);
            } else if let Some(key) = p.name.strip_prefix("zookeeper.") {
                self.apply(key, origin)?;
            }
        }
        Ok(())
    }

    /// A zoo.cfg line. True when the key is one of ours and nothing else needs it.
    pub(super) fn apply_entry(&mut self, file: &Path, entry: &Entry) -> Result<bool, ConfigError> {
        let key = entry.key.strip_prefix("zookeeper.").unwrap_or(&entry.key);
        let origin = Origin {
            file: file.to_path_buf(),
            line: Some(entry.line),
            key: entry.key.clone(),
            value: entry.value.trim().to_string(),
        };
        if key == "keeperd.jaasConfigFile" {
            self.jaas_file_key = (!origin.value.is_empty()).then_some(origin);
            return Ok(true);
        }
        self.apply(key, origin)
    }

    fn apply(&mut self, key: &str, origin: Origin) -> Result<bool, ConfigError> {
        let value = origin.value.clone();
        match key {
            k if k.starts_with("authProvider.") => {
                if value.ends_with(".SASLAuthenticationProvider") {
                    self.sasl_provider = Some(origin);
                }
                // Also kept in Config::auth_providers.
                return Ok(false);
            }
            "enforce.auth.enabled" => self.enforce_enabled = Some((java_bool(&value), origin)),
            "enforce.auth.schemes" => self.enforce_schemes = Some(origin),
            "sessionRequireClientSASLAuth" => {
                self.session_require_sasl = Some((java_bool(&value), origin))
            }
            "requireClientAuthScheme" => {
                if !value.is_empty() && value != "sasl" {
                    return Err(origin.error(format!(
                        "{value:?}: keeperd knows requireClientAuthScheme=sasl only (which it \
                         enforces like sessionRequireClientSASLAuth=true); refusing to start \
                         rather than guess (see docs/security.md)"
                    )));
                }
                self.require_client_auth_scheme = (!value.is_empty()).then_some(origin);
            }
            "sasl.serverconfig" => self.section = Some(value),
            "SASLAuthenticationProvider.superPassword" => self.super_password = Some(value),
            "allowSaslFailedClients" => self.allow_failed = java_bool(&value),
            k if k == "superUser" || k.starts_with("superUser.") => {
                self.super_users.retain(|(key, _)| key != k);
                if !value.is_empty() {
                    self.super_users.push((k.to_string(), value));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn resolve(self, source_dir: &Path) -> Result<ClientAuth, ConfigError> {
        let mut auth = ClientAuth {
            sasl_provider: self.sasl_provider.is_some(),
            super_users: self.super_users.into_iter().map(|(_, v)| v).collect(),
            super_password: self.super_password,
            allow_sasl_failed_clients: self.allow_failed,
            ..ClientAuth::default()
        };

        // AuthenticationHelper.initConfigurations.
        let session_require = self
            .session_require_sasl
            .as_ref()
            .filter(|(on, _)| *on)
            .map(|(_, o)| o)
            .or(self.require_client_auth_scheme.as_ref());
        let enforced: Option<(Vec<String>, &Origin)> = if let Some(origin) = session_require {
            Some((vec!["sasl".to_string()], origin))
        } else if let Some((true, origin)) = &self.enforce_enabled {
            let schemes = match &self.enforce_schemes {
                Some(s) => java_split_commas(&s.value),
                None => Vec::new(),
            };
            if schemes.is_empty() {
                return Err(origin.error(
                    "is true, so enforce.auth.schemes must be configured (ZooKeeper refuses \
                     to start too)",
                ));
            }
            Some((schemes, self.enforce_schemes.as_ref().unwrap_or(origin)))
        } else {
            None
        };
        let mut enforce_origin = None;
        if let Some((schemes, at)) = enforced {
            // AuthenticationHelper.validateConfiguredProperties: each scheme has a provider.
            for scheme in &schemes {
                let available = matches!(scheme.as_str(), "digest" | "ip")
                    || (scheme == "sasl" && auth.sasl_provider);
                if !available {
                    let hint = if scheme == "sasl" {
                        " (add authProvider.1=org.apache.zookeeper.server.auth.\
                         SASLAuthenticationProvider)"
                    } else {
                        " (keeperd has digest, ip and, with SASLAuthenticationProvider, sasl)"
                    };
                    return Err(at.error(format!(
                        "authentication scheme {scheme:?} is not available{hint}"
                    )));
                }
            }
            auth.enforce_schemes = schemes;
            enforce_origin = Some(at.clone());
        }

        // ServerCnxnFactory.configureSaslLogin / SaslServerCallbackHandler.
        let sasl_asked = self
            .sasl_provider
            .clone()
            .or_else(|| enforce_origin.filter(|_| auth.sasl_required()));
        let section = self.section.unwrap_or_else(|| "Server".to_string());
        let jaas = self
            .jaas_file_key
            .as_ref()
            .map(|o| (o, locate(Path::new(&o.value), source_dir)))
            .or_else(|| {
                self.jaas_file_jvm
                    .as_ref()
                    .map(|o| (o, PathBuf::from(&o.value)))
            });
        let Some((origin, path)) = jaas else {
            if let Some(asked) = sasl_asked {
                return Err(asked.error(format!(
                    "SASL needs a JAAS file with a {section:?} section, and none is configured: \
                     set -D{JAAS_PROPERTY}=FILE in SERVER_JVMFLAGS (or conf/java.env), or \
                     keeperd.jaasConfigFile=FILE in zoo.cfg"
                )));
            }
            return Ok(auth);
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            origin.error(format!("cannot read the JAAS file {}: {e}", path.display()))
        })?;
        let sections = jaas::parse(&text).map_err(|e| ConfigError {
            file: Some(path.clone()),
            line: None,
            key: None,
            message: format!("not a valid JAAS file: {e}"),
        })?;
        let Some(found) = sections.iter().find(|s| s.name == section) else {
            if let Some(asked) = sasl_asked {
                return Err(asked.error(format!(
                    "SASL needs the JAAS file {} to have a {section:?} section, and it has none",
                    path.display()
                )));
            }
            tracing::warn!(
                "JAAS file {} has no {:?} section: clients cannot authenticate with SASL",
                path.display(),
                section
            );
            return Ok(auth);
        };
        let mut users = std::collections::BTreeMap::new();
        for module in &found.modules {
            if module.class != DIGEST_LOGIN_MODULE {
                return Err(ConfigError {
                    file: Some(path.clone()),
                    line: None,
                    key: None,
                    message: format!(
                        "section {section:?} uses the login module {}: keeperd serves SASL \
                         DIGEST-MD5 with {DIGEST_LOGIN_MODULE} only (no Kerberos/GSSAPI); \
                         refusing to start",
                        module.class
                    ),
                });
            }
            for (key, value) in &module.options {
                if let Some(user) = key.strip_prefix("user_") {
                    users.insert(user.to_string(), value.clone());
                }
            }
        }
        if users.is_empty() {
            tracing::warn!(
                "JAAS file {} section {:?} names no user_NAME=\"password\": no client can \
                 authenticate with SASL",
                path.display(),
                section
            );
        }
        auth.sasl_users = Some(SaslUsers(users));
        auth.jaas = Some((path, section));
        Ok(auth)
    }
}

/// Java's `s.split(",")` then trim: empty strings at the end are dropped, others kept.
fn java_split_commas(s: &str) -> Vec<String> {
    let mut parts: Vec<&str> = s.split(',').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.iter().map(|p| p.trim().to_string()).collect()
}
