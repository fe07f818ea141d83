//! Key stores and trust stores as ZooKeeper names them (`ssl[.quorum].keyStore.*`,
//! `ssl[.quorum].trustStore.*`): PEM files and PKCS#12 files (what Java 17's keytool makes by
//! default: PBES2 with AES-256 and an HmacSHA256 MAC, read by the p12-keystore crate). JKS
//! and JCEKS files are recognised by their magic number and refused with the keytool command
//! that converts them.
//!
//! The type comes from `*.type` when set, else from the file name as ZooKeeper's
//! `KeyStoreFileType.fromFilename` decides it (`.pem`, `.p12`/`.pfx`, `.jks`, `.bcfks`).

use std::path::Path;

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{StoreOptions, TlsError};

/// Which store a message is about: the key names in errors depend on it.
#[derive(Clone, Copy)]
pub(super) enum Store {
    Key,
    Trust,
}

impl Store {
    fn key(self, suffix: &'static str) -> &'static str {
        match (self, suffix) {
            (Store::Key, "location") => "keyStore.location",
            (Store::Key, "password") => "keyStore.password",
            (Store::Key, _) => "keyStore.type",
            (Store::Trust, "location") => "trustStore.location",
            (Store::Trust, "password") => "trustStore.password",
            (Store::Trust, _) => "trustStore.type",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pem,
    Pkcs12,
}

/// `*.type`, else the file name's extension (ZooKeeper's rule), decides the format.
fn kind(which: Store, opts: &StoreOptions, bytes: &[u8]) -> Result<Kind, TlsError> {
    let location = opts.location.display().to_string();
    let declared = opts.kind.as_deref().map(str::to_ascii_uppercase);
    let by_name = || {
        let lower = location.to_ascii_lowercase();
        [".pem", ".crt", ".p12", ".pfx", ".jks", ".bcfks"]
            .into_iter()
            .find(|ext| lower.ends_with(ext))
            .map(|ext| match ext {
                ".pem" | ".crt" => "PEM",
                ".p12" | ".pfx" => "PKCS12",
                ".jks" => "JKS",
                _ => "BCFKS",
            })
    };
    let name = match declared.as_deref() {
        Some(t) => t.to_string(),
        None => by_name()
            .ok_or_else(|| {
                TlsError::new(
                    which.key("type"),
                    format!(
                        "cannot tell the format of {location} from its name (.pem, .p12, .pfx); \
                         set {} to PEM or PKCS12",
                        which.key("type")
                    ),
                )
            })?
            .to_string(),
    };
    // A Java keystore is refused whatever it was declared as: its magic number says so.
    let magic = bytes.get(..4);
    let java_magic = magic == Some(&[0xfe, 0xed, 0xfe, 0xed]) || magic == Some(&[0xce; 4]);
    if name == "JKS" || java_magic {
        // Blame the type line when it said JKS, else the file.
        let key = if declared.is_some() && !java_magic {
            "type"
        } else {
            "location"
        };
        return Err(TlsError::new(
            which.key(key),
            format!(
                "{location} is a JKS (Java) keystore, which keeperd does not read; convert it \
                 to PKCS12 with: keytool -importkeystore -srckeystore {location} \
                 -destkeystore {location}.p12 -deststoretype pkcs12, then point {} at the \
                 .p12 file",
                which.key("location")
            ),
        ));
    }
    match name.as_str() {
        "PEM" => Ok(Kind::Pem),
        "PKCS12" => Ok(Kind::Pkcs12),
        "BCFKS" => Err(TlsError::new(
            which.key("type"),
            format!("{location}: BCFKS keystores are not supported; use PKCS12 or PEM"),
        )),
        other => Err(TlsError::new(
            which.key("type"),
            format!("{other:?} is not a keystore type keeperd reads (PEM, PKCS12)"),
        )),
    }
}

fn read(which: Store, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::new(
            which.key("location"),
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

fn open_pkcs12(which: Store, opts: &StoreOptions, bytes: &[u8]) -> Result<KeyStore, TlsError> {
    use p12_keystore::error::Error;
    KeyStore::from_pkcs12(bytes, &opts.password, Pkcs12ImportPolicy::Relaxed).map_err(|e| {
        let location = opts.location.display();
        match e {
            // The integrity MAC (or, without one, the padding of what was decrypted) is
            // wrong: the password is.
            Error::MacError(_) | Error::UnpadError => TlsError::new(
                which.key("password"),
                format!("wrong password for {location} (the PKCS12 integrity check failed)"),
            ),
            e => TlsError::new(
                which.key("location"),
                format!("{location} is not a PKCS12 file keeperd can read: {e}"),
            ),
        }
    })
}

/// The certificate chain (leaf first) and private key of a key store.
pub(super) fn load_key_store(
    opts: &StoreOptions,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let which = Store::Key;
    let bytes = read(which, &opts.location)?;
    let location = opts.location.display();
    match kind(which, opts, &bytes)? {
        Kind::Pem => {
            if bytes
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY")
            {
                return Err(TlsError::new(
                    which.key("location"),
                    format!(
                        "{location} holds an encrypted PEM private key, which keeperd does \
                         not decrypt; use a PKCS12 keystore, or decrypt it with \
                         openssl pkcs8 -topk8 -nocrypt"
                    ),
                ));
            }
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::new(which.key("location"), format!("{location}: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
                TlsError::new(
                    which.key("location"),
                    format!("{location}: no usable private key ({e})"),
                )
            })?;
            if certs.is_empty() {
                return Err(TlsError::new(
                    which.key("location"),
                    format!("{location} has a private key but no certificate"),
                ));
            }
            Ok((certs, key))
        }
        Kind::Pkcs12 => {
            let store = open_pkcs12(which, opts, &bytes)?;
            let (_, chain) = store.private_key_chain().ok_or_else(|| {
                TlsError::new(
                    which.key("location"),
                    format!("{location} holds no private key with its certificate"),
                )
            })?;
            if chain.certs().is_empty() {
                return Err(TlsError::new(
                    which.key("location"),
                    format!("{location}: the private key has no certificate"),
                ));
            }
            let certs = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            let key = PrivateKeyDer::try_from(chain.key().as_der().to_vec())
                .map_err(|e| TlsError::new(which.key("location"), format!("{location}: {e}")))?;
            Ok((certs, key))
        }
    }
}

/// Every certificate of a trust store, as trust anchors.
pub(super) fn load_trust_store(opts: &StoreOptions) -> Result<RootCertStore, TlsError> {
    let which = Store::Trust;
    let bytes = read(which, &opts.location)?;
    let location = opts.location.display();
    let certs: Vec<CertificateDer<'static>> = match kind(which, opts, &bytes)? {
        Kind::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::new(which.key("location"), format!("{location}: {e}")))?,
        Kind::Pkcs12 => {
            let store = open_pkcs12(which, opts, &bytes)?;
            let mut certs = Vec::new();
            for (_, entry) in store.entries() {
                match entry {
                    KeyStoreEntry::Certificate(c) => certs.push(c.as_der().to_vec().into()),
                    KeyStoreEntry::PrivateKeyChain(chain) => {
                        certs.extend(chain.certs().iter().map(|c| c.as_der().to_vec().into()))
                    }
                    KeyStoreEntry::Secret(_) => {}
                }
            }
            certs
        }
    };
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::new(
            which.key("location"),
            format!("{location} holds no usable certificate ({ignored} unparsable)"),
        ));
    }
    Ok(roots)
}
