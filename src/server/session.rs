//! Session ids, passwords and liveness.
//!
//! The session table itself is replicated (it lives in the tree); this module holds what is
//! local to the server: how new ids are minted, how passwords are derived, and when each
//! session was last heard from (the expiry clock).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Mints session ids the way ZooKeeper does: the top byte is the server id, the next 40 bits
/// come from the start-up wall clock, and ids increment from there. Distinct servers never
/// collide; a restarted server starts from a later clock.
#[derive(Debug)]
pub struct SessionIdGen {
    next: i64,
}

impl SessionIdGen {
    pub fn new(server_id: u64, now_ms: i64) -> SessionIdGen {
        let mut next = (((now_ms as u64) << 24) >> 8) as i64;
        next |= (server_id << 56) as i64;
        if next == i64::MIN {
            next += 1;
        }
        SessionIdGen { next }
    }

    pub fn next_id(&mut self) -> i64 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if self.next == i64::MIN || self.next == 0 {
            self.next = 1;
        }
        id
    }
}

/// The 16-byte session password: HMAC-SHA256 of the id under the ensemble's session secret
/// (`session_secret`), so every server can check a reconnect without storing passwords and
/// nobody without the secret can compute another session's password.
pub fn password(secret: &[u8], session_id: i64) -> [u8; 16] {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"keeperd session password");
    m.update(&session_id.to_be_bytes());
    let d = m.finalize().into_bytes();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// A constant anyone can read in this source: the session secret of an ensemble that has no
/// quorum secret (as predictable as ZooKeeper's own passwords; docs/security.md).
const PUBLIC_SECRET: &[u8] = b"keeperd without a quorum secret";

/// The secret session passwords derive from: the quorum secret when zoo.cfg has one (every
/// member holds it); standalone, a random one kept in `dataDir/keeperd/session.secret`
/// (created at the first start, 0600); otherwise a public constant, said in the log.
pub fn session_secret(
    quorum: Option<&crate::consensus::peer_auth::QuorumSecret>,
    distributed: bool,
    data_dir: &std::path::Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(q) = quorum {
        return Ok(q.session_key());
    }
    if distributed {
        tracing::warn!(
            "session passwords derive from a public constant: without \
             keeperd.quorum.secretFile a client that knows a session id can compute its \
             password (as in ZooKeeper)"
        );
        return Ok(PUBLIC_SECRET.to_vec());
    }
    let dir = data_dir.join(crate::consensus::storage::STATE_DIR);
    let path = dir.join("session.secret");
    match std::fs::read(&path) {
        Ok(s) if s.len() >= 16 => return Ok(s),
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is shorter than 16 bytes",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(&dir)?;
    let mut secret = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let tmp = dir.join("session.secret.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&secret)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    crate::consensus::storage::sync_dir(&dir).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(secret)
}

/// The password ZooKeeper gives a session: 16 bytes from `java.util.Random` seeded with
/// `id ^ 0xB3415C00` (ZooKeeperServer.generatePasswd, superSecret). Accepted for sessions
/// imported from ZooKeeper's data, whose clients already hold it.
pub fn zk_password(session_id: i64) -> [u8; 16] {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ 0xB341_5C00) as u64 ^ MULTIPLIER) & MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        // Random.nextInt(): the top 32 of 48 bits; nextBytes takes its bytes low first.
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        let mut v = (seed >> 16) as u32;
        for b in chunk {
            *b = v as u8;
            v >>= 8;
        }
    }
    out
}

/// When each session this server tracks was last heard from, and its timeout.
#[derive(Debug, Default)]
pub struct Liveness {
    sessions: HashMap<i64, (Instant, Duration)>,
}

impl Liveness {
    pub fn track(&mut self, session_id: i64, timeout: Duration, now: Instant) {
        self.sessions.insert(session_id, (now, timeout));
    }

    pub fn touch(&mut self, session_id: i64, now: Instant) {
        if let Some(entry) = self.sessions.get_mut(&session_id) {
            entry.0 = now;
        }
    }

    /// Every tracked session was heard from now (a new leader's grace period).
    pub fn touch_all(&mut self, now: Instant) {
        for entry in self.sessions.values_mut() {
            entry.0 = now;
        }
    }

    pub fn forget(&mut self, session_id: i64) {
        self.sessions.remove(&session_id);
    }

    /// Sessions not heard from for longer than their timeout, sorted.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut out: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, (seen, timeout))| now.saturating_duration_since(*seen) > *timeout)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_server_id_and_increment() {
        let mut g = SessionIdGen::new(3, 1_700_000_000_000);
        let a = g.next_id();
        let b = g.next_id();
        assert_eq!((a as u64) >> 56, 3);
        assert_eq!(b, a + 1);
    }

    #[test]
    fn zk_password_is_what_java_util_random_gives() {
        // From `new java.util.Random(id ^ 0xB3415C00L).nextBytes(new byte[16])` on Java 17.
        for (id, hex) in [
            (0x1_0000_0000_0001_i64, "054cc74a37327db215e702e20c73f005"),
            (0x1_00ab_cdef_0001, "76b39f6d54c3bc4f6ebe2fdff1198ecf"),
            (-5, "d47144b5e45e45c49c3b7fdcd66257ba"),
        ] {
            let got: String = zk_password(id).iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex, "session {id:#x}");
        }
    }

    #[test]
    fn password_depends_on_id_and_secret() {
        assert_eq!(password(b"s1", 5), password(b"s1", 5));
        assert_ne!(password(b"s1", 5), password(b"s1", 6));
        assert_ne!(password(b"s1", 5), password(b"s2", 5));
    }

    #[test]
    fn a_standalone_secret_is_random_kept_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let a = session_secret(None, false, d.path()).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(session_secret(None, false, d.path()).unwrap(), a, "kept");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            session_secret(None, false, other.path()).unwrap(),
            a,
            "random"
        );
        let meta = std::fs::metadata(d.path().join("keeperd/session.secret")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let q = crate::consensus::peer_auth::QuorumSecret::new(b"a quorum secret here").unwrap();
        let from_quorum = session_secret(Some(&q), true, d.path()).unwrap();
        assert_eq!(
            session_secret(Some(&q), true, other.path()).unwrap(),
            from_quorum
        );
        assert_ne!(from_quorum, a);
    }

    #[test]
    fn expiry_follows_touches() {
        let t0 = Instant::now();
        let mut l = Liveness::default();
        l.track(1, Duration::from_millis(100), t0);
        l.track(2, Duration::from_millis(100), t0);
        l.touch(2, t0 + Duration::from_millis(90));
        assert!(l.expired(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(l.expired(t0 + Duration::from_millis(150)), vec![1]);
        l.forget(1);
        assert!(l.expired(t0 + Duration::from_millis(150)).is_empty());
    }
}
