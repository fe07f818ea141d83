//! Authentication between servers: a shared-secret challenge-response on every quorum-port
//! connection, before any other frame is read.
//!
//! With `keeperd.quorum.secretFile` set, every member holds the same secret (at least 16
//! bytes). A connection is accepted only from a peer that proves it knows the secret, and a
//! peer sends nothing to an acceptor that has not proven the same. Both sides contribute a
//! fresh random nonce, so a recorded handshake cannot be replayed, and each MAC binds the
//! direction, both server ids and both nonces:
//!
//! ```text
//! connector -> acceptor   AuthHello := u64 from | u64 to | 32 B nonce_c
//! acceptor  -> connector  Challenge := 32 B nonce_a | 32 B HMAC-SHA256(secret,
//!                             "keeperd acceptor" | to | from | nonce_c | nonce_a)
//! connector -> acceptor   Proof     := 32 B HMAC-SHA256(secret,
//!                             "keeperd connector" | from | to | nonce_a | nonce_c)
//! ```
//! (ids as u64 big-endian). MACs are compared in constant time. The secret authenticates
//! membership of the ensemble, not a particular server id: any holder of the secret can
//! claim any id, as any holder of a ZooKeeper quorum SASL password can. Traffic is not
//! encrypted (see docs/security.md).

use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::config::secret::{parse_secret, read_secret};

/// Nonces and MACs are this long.
pub const LEN: usize = 32;
pub use crate::config::secret::MIN_SECRET;

const ACCEPTOR: &[u8] = b"keeperd acceptor";
const CONNECTOR: &[u8] = b"keeperd connector";

/// The ensemble's shared secret. Its Debug output never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct QuorumSecret(Arc<[u8]>);

impl std::fmt::Debug for QuorumSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuorumSecret({} bytes)", self.0.len())
    }
}

impl QuorumSecret {
    /// A secret from bytes; trailing whitespace (a file's final newline) is not part of it.
    pub fn new(bytes: &[u8]) -> Result<QuorumSecret, String> {
        parse_secret(bytes).map(|s| QuorumSecret(s.into()))
    }

    pub fn from_file(path: &Path) -> Result<QuorumSecret, String> {
        read_secret(path).map(|s| QuorumSecret(s.into()))
    }

    fn mac(&self, role: &[u8], a: u64, b: u64, n1: &[u8; LEN], n2: &[u8; LEN]) -> Hmac<Sha256> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(role);
        m.update(&a.to_be_bytes());
        m.update(&b.to_be_bytes());
        m.update(n1);
        m.update(n2);
        m
    }

    /// A key for session passwords derived from the secret (never the secret itself, so a
    /// password reveals nothing usable on the quorum port).
    pub fn session_key(&self) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"keeperd session key");
        m.finalize().into_bytes().to_vec()
    }

    /// The acceptor's MAC (`me` accepts a connection that says it is `from`).
    pub fn acceptor_mac(&self, me: u64, from: u64, nc: &[u8; LEN], na: &[u8; LEN]) -> [u8; LEN] {
        self.mac(ACCEPTOR, me, from, nc, na)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The connector's MAC (`me` connected to `to`).
    pub fn connector_mac(&self, me: u64, to: u64, na: &[u8; LEN], nc: &[u8; LEN]) -> [u8; LEN] {
        self.mac(CONNECTOR, me, to, na, nc)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks, in constant time, an acceptor MAC received by the connector `me`.
    pub fn check_acceptor(
        &self,
        to: u64,
        me: u64,
        nc: &[u8; LEN],
        na: &[u8; LEN],
        mac: &[u8; LEN],
    ) -> bool {
        self.mac(ACCEPTOR, to, me, nc, na).verify_slice(mac).is_ok()
    }

    /// Checks, in constant time, a connector MAC received by the acceptor `me`.
    pub fn check_connector(
        &self,
        from: u64,
        me: u64,
        na: &[u8; LEN],
        nc: &[u8; LEN],
        mac: &[u8; LEN],
    ) -> bool {
        self.mac(CONNECTOR, from, me, na, nc)
            .verify_slice(mac)
            .is_ok()
    }
}

/// A fresh random nonce.
pub fn nonce() -> [u8; LEN] {
    let mut n = [0u8; LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed_checked_and_never_printed() {
        let s = QuorumSecret::new(b"0123456789abcdef\n").expect("16 bytes");
        assert_eq!(format!("{s:?}"), "QuorumSecret(16 bytes)");
        assert!(QuorumSecret::new(b"short\n").is_err());
        assert!(QuorumSecret::new(b"                    ").is_err());
    }

    #[test]
    fn macs_bind_role_ids_nonces_and_secret() {
        let s = QuorumSecret::new(b"the ensemble's secret").unwrap();
        let other = QuorumSecret::new(b"another ensemble secret").unwrap();
        let (nc, na) = (nonce(), nonce());
        assert_ne!(nc, na);
        let a = s.acceptor_mac(2, 1, &nc, &na);
        assert!(s.check_acceptor(2, 1, &nc, &na, &a));
        assert!(!other.check_acceptor(2, 1, &nc, &na, &a), "another secret");
        assert!(!s.check_acceptor(3, 1, &nc, &na, &a), "another acceptor id");
        assert!(!s.check_acceptor(2, 1, &na, &nc, &a), "swapped nonces");
        let c = s.connector_mac(1, 2, &na, &nc);
        assert!(s.check_connector(1, 2, &na, &nc, &c));
        assert!(!s.check_connector(3, 2, &na, &nc, &c), "another claimed id");
        // The acceptor's MAC is no proof for the connector's direction (no reflection).
        assert!(!s.check_connector(2, 1, &nc, &na, &a));
        let mut bad = c;
        bad[0] ^= 1;
        assert!(!s.check_connector(1, 2, &na, &nc, &bad));
    }
}
