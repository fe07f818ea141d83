//! Mutual TLS between servers (`sslQuorum=true`, `ssl.quorum.*`): every quorum-port
//! connection, in both directions, completes a TLS handshake in which both sides present a
//! certificate that chains to `ssl.quorum.trustStore`, before any frame is read.
//!
//! Which server a certificate belongs to (`check_peer`), checked once the peer has said
//! which server id it is (inbound: its hello; outbound: the id we dialed):
//! 1. **Host** (`ssl.quorum.hostnameVerification`, default true, ZooKeeper's rule): the
//!    certificate must be valid (subjectAltName IP or DNS name) for the peer's address —
//!    inbound the address the connection comes from, outbound the host of its server.N line.
//!    On one host every server shares 127.0.0.1, so this alone cannot tell them apart.
//! 2. **Server id** (keeperd's addition): a certificate that names server ids — a subject
//!    CN or DNS subjectAltName `server.N` — is accepted only for those ids. A certificate
//!    naming none is accepted for any id on rule 1 alone, as in ZooKeeper.
//!    `keeperd.ssl.quorum.requireServerId=true` refuses such certificates.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme,
};

use super::{provider, store, versions, TlsError, TlsOptions};

/// The TLS settings of the quorum port, built once.
#[derive(Clone)]
pub struct QuorumTls {
    /// Accepting: a client certificate is required and must chain to the trust store.
    pub server: Arc<ServerConfig>,
    /// Dialing: presents our certificate; the peer's must chain to the trust store (its
    /// host is checked by the verifier only when hostname verification is on).
    pub client: Arc<ClientConfig>,
    pub hostname_verification: bool,
    pub require_server_id: bool,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field("hostname_verification", &self.hostname_verification)
            .field("require_server_id", &self.require_server_id)
            .finish()
    }
}

/// Chain verification always; the name check only when hostname verification is on
/// (rustls ties the two together, so a name mismatch is forgiven here when it is off).
#[derive(Debug)]
struct PeerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

impl QuorumTls {
    /// Loads the stores and builds both sides. Both stores are required.
    pub fn new(opts: &TlsOptions, require_server_id: bool) -> Result<QuorumTls, TlsError> {
        let provider = provider(opts)?;
        let versions = versions(opts)?;
        let key_store = opts.key_store.as_ref().ok_or_else(|| {
            TlsError::new(
                "keyStore.location",
                "is not set; with sslQuorum=true every server needs a certificate and key",
            )
        })?;
        let trust_store = opts.trust_store.as_ref().ok_or_else(|| {
            TlsError::new(
                "trustStore.location",
                "is not set; with sslQuorum=true servers verify each other's certificates",
            )
        })?;
        let (certs, key) = store::load_key_store(key_store)?;
        let roots = Arc::new(store::load_trust_store(trust_store)?);
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| TlsError::new("trustStore.location", e.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::new("enabledProtocols", e.to_string()))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| TlsError::new("keyStore.location", e.to_string()))?;
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::new("trustStore.location", e.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::new("enabledProtocols", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PeerVerifier {
                inner,
                check_name: opts.hostname_verification,
            }))
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::new("keyStore.location", e.to_string()))?;
        Ok(QuorumTls {
            server: Arc::new(server),
            client: Arc::new(client),
            hostname_verification: opts.hostname_verification,
            require_server_id,
        })
    }

    /// The name to dial `host` (a server.N host) with: its IP, or its DNS name.
    pub fn server_name(host: &str) -> Option<ServerName<'static>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_string()).ok()
    }

    /// May the holder of `cert` (verified against the trust store) speak as server `id`?
    /// `addr` is the peer's address (inbound) whose host check the handshake did not do;
    /// None when the handshake checked it (outbound). See the module doc for the rule.
    pub fn check_peer(&self, cert: &[u8], id: u64, addr: Option<IpAddr>) -> Result<(), String> {
        if let (Some(ip), true) = (addr, self.hostname_verification) {
            let der = CertificateDer::from(cert);
            let parsed = rustls::server::ParsedCertificate::try_from(&der)
                .map_err(|e| format!("unparsable certificate: {e}"))?;
            rustls::client::verify_server_name(&parsed, &ServerName::IpAddress(ip.into()))
                .map_err(|_| {
                    format!(
                        "its certificate is not valid for {ip}, the address it connects from \
                         (ssl.quorum.hostnameVerification)"
                    )
                })?;
        }
        let ids: Vec<u64> = super::names(cert)
            .iter()
            .filter_map(|n| n.strip_prefix("server.")?.parse().ok())
            .collect();
        if ids.is_empty() {
            if self.require_server_id {
                return Err(
                    "its certificate names no server id (CN or DNS name server.N; \
                            keeperd.ssl.quorum.requireServerId)"
                        .into(),
                );
            }
            return Ok(());
        }
        if ids.contains(&id) {
            Ok(())
        } else {
            Err(format!(
                "it claims server id {id} but its certificate belongs to server {ids:?}"
            ))
        }
    }
}
