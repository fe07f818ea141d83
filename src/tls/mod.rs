//! TLS for the client port (`secureClientPort`) and between servers (`sslQuorum`), configured
//! with ZooKeeper 3.8's keys (X509Util, ClientX509Util `zookeeper.ssl.*`, QuorumX509Util
//! `zookeeper.ssl.quorum.*`) and its defaults:
//!
//! | key (after the prefix) | ZooKeeper 3.8 default | here |
//! |---|---|---|
//! | `keyStore.location`, `.password`, `.passwordPath`, `.type` | none | PEM or PKCS12 (JKS refused with the conversion command) |
//! | `trustStore.location`, `.password`, `.passwordPath`, `.type` | the JVM's cacerts | PEM or PKCS12; required to verify peers |
//! | `clientAuth` | `need` | need / want / none |
//! | `protocol` | `TLSv1.2` | TLSv1.2 or TLSv1.3 |
//! | `enabledProtocols` | `protocol` alone | the listed ones rustls has |
//! | `ciphersuites` | the ECDHE AES-GCM and AES-CBC suites | those rustls has (GCM, ChaCha20) |
//! | `hostnameVerification` | true | quorum: the peer's address must be in its certificate |
//!
//! Everything here is built once at start-up; zoo.cfg parsing builds it too, to turn a bad
//! keystore into an error naming its line. The crypto provider is ring.
//!
//! Children: `store` (key and trust stores), `dn` (a certificate's subject as ZooKeeper
//! names x509 clients), `quorum` (mutual TLS between servers and the rule binding a
//! certificate to a server id).

mod dn;
pub mod quorum;
mod store;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, SupportedProtocolVersion};

pub use dn::{names, subject_dn};

/// One key store or trust store from zoo.cfg.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreOptions {
    pub location: PathBuf,
    /// `*.password`, or the contents of `*.passwordPath` (which wins, as in ZooKeeper).
    pub password: String,
    /// `*.type` as written (PEM, PKCS12, JKS, ...); None: decided from the file name.
    pub kind: Option<String>,
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("location", &self.location)
            .field("password", &"<redacted>")
            .field("kind", &self.kind)
            .finish()
    }
}

/// `ssl.clientAuth`: whether a TLS server asks its clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for; a client without one is served anonymously.
    Want,
    /// Required: a client without a valid certificate fails the handshake.
    Need,
}

/// The settings of one prefix (`ssl.` for clients, `ssl.quorum.` between servers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// `ssl.` or `ssl.quorum.`: how messages name the keys.
    pub prefix: &'static str,
    pub key_store: Option<StoreOptions>,
    pub trust_store: Option<StoreOptions>,
    pub client_auth: ClientAuth,
    /// `enabledProtocols`, else `protocol` (default TLSv1.2), as Java names them.
    pub protocols: Vec<String>,
    /// `ciphersuites` as IANA/Java names; None: ZooKeeper's default list.
    pub cipher_suites: Option<Vec<String>>,
    pub hostname_verification: bool,
}

impl TlsOptions {
    /// ZooKeeper's defaults for `prefix`, with no stores.
    pub fn new(prefix: &'static str) -> TlsOptions {
        TlsOptions {
            prefix,
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocols: vec!["TLSv1.2".into()],
            cipher_suites: None,
            hostname_verification: true,
        }
    }
}

/// Something wrong with the TLS settings: `key` is the key at fault, without its prefix
/// (`keyStore.password`), so the caller can name the zoo.cfg line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(key: &'static str, message: impl Into<String>) -> TlsError {
        TlsError {
            key,
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for TlsError {}

/// ZooKeeper 3.8's default `ciphersuites` on Java 9+ (X509Util.DEFAULT_CIPHERS_JAVA9). The
/// CBC ones are not in rustls; the GCM ones are what a Java client negotiates anyway.
const ZK_DEFAULT_CIPHERS: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
];

/// The IANA (= Java) name of a rustls suite: rustls spells TLS 1.3 suites `TLS13_...`.
fn iana_name(suite: rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn is_tls13_name(name: &str) -> bool {
    // TLS 1.3 suites name no key exchange: TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256.
    !name.contains("_WITH_")
}

/// rustls' ring provider. Deprecated in rustls for lacking post-quantum key exchange, which
/// neither ZooKeeper 3.8 nor a Java 17 client offers; aws-lc-rs (the other provider) needs
/// cmake and minutes more to build.
#[allow(deprecated)]
fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// ring, with the cipher suites of `ciphersuites` (or ZooKeeper's default list) that it has.
/// ZooKeeper's default list names only TLS 1.2 suites (Java enables its TLS 1.3 suites
/// apart from that list), so TLS 1.3 suites stay on unless `ciphersuites` is set.
fn provider(opts: &TlsOptions) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut p = ring();
    let wanted: Vec<String> = match &opts.cipher_suites {
        Some(list) => list.iter().map(|s| s.trim().to_string()).collect(),
        None => ZK_DEFAULT_CIPHERS.iter().map(|s| s.to_string()).collect(),
    };
    let explicit = opts.cipher_suites.is_some();
    p.cipher_suites.retain(|s| {
        let name = iana_name(*s);
        wanted.contains(&name) || (!explicit && is_tls13_name(&name))
    });
    if p.cipher_suites.is_empty() {
        return Err(TlsError::new(
            "ciphersuites",
            format!(
                "none of {wanted:?} is available; keeperd has {}",
                ring()
                    .cipher_suites
                    .iter()
                    .map(|s| iana_name(*s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ));
    }
    Ok(Arc::new(p))
}

fn versions(opts: &TlsOptions) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let mut out = Vec::new();
    for p in &opts.protocols {
        match p.trim() {
            "TLSv1.2" => out.push(&rustls::version::TLS12),
            "TLSv1.3" => out.push(&rustls::version::TLS13),
            // Java's "TLS" context means "the newest it has".
            "TLS" => out.extend([&rustls::version::TLS13, &rustls::version::TLS12]),
            other => tracing::warn!(
                "{}protocol/enabledProtocols: {other:?} is not offered (keeperd speaks TLSv1.2 \
                 and TLSv1.3)",
                opts.prefix
            ),
        }
    }
    if out.is_empty() {
        return Err(TlsError::new(
            "enabledProtocols",
            format!(
                "{:?} leaves no protocol keeperd speaks (TLSv1.2, TLSv1.3)",
                opts.protocols
            ),
        ));
    }
    Ok(out)
}

fn config_error(key: &'static str) -> impl Fn(rustls::Error) -> TlsError {
    move |e| TlsError::new(key, e.to_string())
}

/// The TLS server of `secureClientPort`.
pub fn client_port_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider(opts)?;
    let versions = versions(opts)?;
    let key_store = opts.key_store.as_ref().ok_or_else(|| {
        TlsError::new(
            "keyStore.location",
            "is not set; the secure client port needs a certificate and key",
        )
    })?;
    let (certs, key) = store::load_key_store(key_store)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(config_error("enabledProtocols"))?;
    let builder = match (opts.client_auth, &opts.trust_store) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, Some(trust)) => {
            let roots = Arc::new(store::load_trust_store(trust)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match auth {
                ClientAuth::Want => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::new("trustStore.location", e.to_string()))?,
            )
        }
        (_, None) => {
            return Err(TlsError::new(
                "trustStore.location",
                "is not set, so client certificates cannot be verified (ssl.clientAuth is \
                 need or want); set it, or set ssl.clientAuth=none",
            ))
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(config_error("keyStore.location"))?;
    Ok(Arc::new(config))
}

/// The peer's own (leaf) certificate of a finished handshake, as DER.
pub fn peer_leaf(conn: &rustls::CommonState) -> Option<Vec<u8>> {
    conn.peer_certificates()?.first().map(|c| c.to_vec())
}

/// The identities a verified client certificate proves on the client port, as
/// X509AuthenticationProvider.handleAuthentication adds them: `x509:<subject>`, and
/// `super` when the subject is `zookeeper.X509AuthenticationProvider.superUser`, in
/// ZooKeeper's order. The super id carries no name, like the digest super user's (whoami
/// shows `super: ` on both servers: ZooKeeper has no provider to name it).
pub fn client_identities(cert_der: &[u8], super_user: Option<&str>) -> Vec<crate::proto::Id> {
    let Some(dn) = subject_dn(cert_der) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    if super_user == Some(dn.as_str()) {
        ids.push(crate::proto::Id::new("super", ""));
    }
    ids.push(crate::proto::Id::new("x509", dn));
    ids
}
