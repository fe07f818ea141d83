//! ACLs: the interned ACL table, ZooKeeper's `fixupACL` and `checkACL`, and the validity and
//! matching rules of the built-in `digest`, `ip`, `x509` and `sasl` authentication providers.
//!
//! The providers ZooKeeper registers by default exist always: `digest` (authenticated) and
//! `ip` (not authenticated). `x509` (authenticated: the RFC 2253 subject of a client
//! certificate verified on the secure client port), which ZooKeeper registers with
//! `authProvider.x509=...X509AuthenticationProvider`, keeperd always has. `sasl`
//! (authenticated; SASLAuthenticationProvider) exists when zoo.cfg registers it
//! (`authProvider.N=...SASLAuthenticationProvider`): the `sasl` flag below. `world:anyone`
//! is special-cased; any other scheme in an ACL is InvalidAcl, as in ZooKeeper where
//! `ProviderRegistry.getServerProvider` finds nothing.

use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::{Acl, Id, ZkError};

/// Index of an ACL list in the `AclTable`. Nodes store this instead of the list itself
/// (ZooKeeper's ReferenceCountedACLCache idea): most trees use a handful of distinct lists.
pub(crate) type AclRef = u32;

/// Deduplicated, reference-counted ACL lists. Slot numbers depend only on the order of
/// intern/release calls, so replicas applying the same log agree; the digest hashes the
/// lists' contents anyway, never slot numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct AclTable {
    /// Slot -> (list, number of nodes using it). A slot with count 0 is free.
    slots: Vec<(Arc<[Acl]>, u32)>,
    /// List -> slot, for deduplication.
    index: HashMap<Arc<[Acl]>, AclRef>,
    /// Free slots, reused before growing (lowest last pushed, deterministic).
    free: Vec<AclRef>,
}

impl AclTable {
    /// Adds one use of `acl`, returning its slot.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> AclRef {
        if let Some(&r) = self.index.get(acl) {
            self.slots[r as usize].1 += 1;
            return r;
        }
        let list: Arc<[Acl]> = Arc::from(acl);
        let r = match self.free.pop() {
            Some(r) => {
                self.slots[r as usize] = (list.clone(), 1);
                r
            }
            None => {
                self.slots.push((list.clone(), 1));
                (self.slots.len() - 1) as AclRef
            }
        };
        self.index.insert(list, r);
        r
    }

    /// Drops one use of slot `r`; the slot is freed when nobody uses it any more.
    pub(crate) fn release(&mut self, r: AclRef) {
        let Some(slot) = self.slots.get_mut(r as usize) else {
            return;
        };
        if slot.1 == 0 {
            return;
        }
        slot.1 -= 1;
        if slot.1 == 0 {
            let list = std::mem::replace(&mut slot.0, Arc::from(Vec::new()));
            self.index.remove(&list);
            self.free.push(r);
        }
    }

    /// The list in slot `r`, shared (for undo records that outlive the slot).
    pub(crate) fn get_shared(&self, r: AclRef) -> Arc<[Acl]> {
        self.slots
            .get(r as usize)
            .map(|s| s.0.clone())
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    pub(crate) fn get(&self, r: AclRef) -> &[Acl] {
        self.slots.get(r as usize).map(|s| &*s.0).unwrap_or(&[])
    }

    /// Number of slots, used or free (slot numbers are below this).
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The slots in use and their lists, in slot order.
    pub(crate) fn used(&self) -> impl Iterator<Item = (AclRef, &[Acl])> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.1 > 0)
            .map(|(r, s)| (r as AclRef, &*s.0))
    }

    /// A table whose slot `i` holds `slots[i]` (list, use count), none free. The caller
    /// guarantees the lists are distinct and every count is positive (snapshot loading).
    pub(crate) fn from_slots(slots: Vec<(Arc<[Acl]>, u32)>) -> AclTable {
        let index = slots
            .iter()
            .enumerate()
            .map(|(r, s)| (s.0.clone(), r as AclRef))
            .collect();
        AclTable {
            slots,
            index,
            free: Vec::new(),
        }
    }

    /// Number of distinct lists in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The jute-generated `Id.hashCode`, spread as `ConcurrentHashMap.spread` does.
fn chm_hash(id: &Id) -> u32 {
    let h = 17i32
        .wrapping_mul(37)
        .wrapping_add(java_string_hash(&id.scheme))
        .wrapping_mul(37)
        .wrapping_add(java_string_hash(&id.id)) as u32;
    (h ^ (h >> 16)) & 0x7fff_ffff
}

/// A connection's identities in the order ZooKeeper 3.8 holds them: `ServerCnxn.authInfo`
/// is a set over a `ConcurrentHashMap` (16 bins, doubled when it reaches 3/4 full), so
/// `auth` ACL expansion and whoami list them by hash bin, not in the order they were
/// added. `ids` is in insertion order (duplicates are kept out by the caller); bins of 8 or
/// more colliding ids (trees in Java) are not modelled.
pub(crate) fn zk_auth_order(ids: &[Id]) -> Vec<&Id> {
    let hashes: Vec<u32> = ids.iter().map(chm_hash).collect();
    let mut bins: Vec<Vec<usize>> = vec![Vec::new(); 16];
    for (i, &h) in hashes.iter().enumerate() {
        let n = bins.len();
        bins[h as usize & (n - 1)].push(i);
        if i + 1 >= n - (n >> 2) {
            // ConcurrentHashMap.transfer: each bin splits by the new hash bit; the last run
            // of nodes sharing that bit moves as it is, the nodes before it are prepended
            // (so reversed) to their half.
            let mut next: Vec<Vec<usize>> = vec![Vec::new(); 2 * n];
            for (b, bin) in bins.iter().enumerate() {
                let Some(&last) = bin.last() else { continue };
                let bit = |k: usize| hashes[k] as usize & n != 0;
                let mut run = bin.len() - 1;
                while run > 0 && bit(bin[run - 1]) == bit(last) {
                    run -= 1;
                }
                let (mut lo, mut hi) = (Vec::new(), Vec::new());
                let tail = bin[run..].to_vec();
                if bit(last) {
                    hi = tail;
                } else {
                    lo = tail;
                }
                for &k in &bin[..run] {
                    if bit(k) {
                        hi.insert(0, k);
                    } else {
                        lo.insert(0, k);
                    }
                }
                next[b] = lo;
                next[b + n] = hi;
            }
            bins = next;
        }
    }
    bins.iter().flatten().map(|&k| &ids[k]).collect()
}

fn is_world_anyone(id: &Id) -> bool {
    id.scheme == "world" && id.id == "anyone"
}

/// ZooKeeper's `PrepRequestProcessor.fixupACL`: drop duplicate entries, reject an empty
/// list, expand `auth` entries to the requester's authenticated ids (`digest`, `x509`, and
/// `sasl` with its provider; in ZooKeeper's order, [`zk_auth_order`]) and reject ids a
/// provider does not accept.
pub(crate) fn fixup_acl(acl: &[Acl], auth: &[Id], sasl: bool) -> Result<Vec<Acl>, ZkError> {
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(ZkError::InvalidAcl);
    }
    let mut out = Vec::with_capacity(uniq.len());
    for a in uniq {
        if is_world_anyone(&a.id) {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for cid in zk_auth_order(auth)
                .into_iter()
                .filter(|cid| is_authenticated_scheme(&cid.scheme, sasl))
            {
                any = true;
                out.push(Acl {
                    perms: a.perms,
                    id: cid.clone(),
                });
            }
            if !any {
                return Err(ZkError::InvalidAcl);
            }
        } else if is_valid_id(&a.id, sasl) {
            out.push(a.clone());
        } else {
            return Err(ZkError::InvalidAcl);
        }
    }
    Ok(out)
}

/// `ServerAuthenticationProvider.isAuthenticated()` of the registered providers.
fn is_authenticated_scheme(scheme: &str, sasl: bool) -> bool {
    scheme == "digest" || scheme == "x509" || sasl && scheme == "sasl"
}

/// `isValid(id)` of the provider for `id.scheme`; false when no provider exists.
fn is_valid_id(id: &Id, sasl: bool) -> bool {
    match id.scheme.as_str() {
        "digest" => is_valid_digest(&id.id),
        "ip" => is_valid_ip(&id.id),
        "x509" => is_valid_x500_name(&id.id),
        "sasl" if sasl => is_valid_kerberos_name(&id.id),
        _ => false,
    }
}

/// SASLAuthenticationProvider.isValid: `new KerberosName(id)` does not throw, i.e. the id
/// either has no `@` or is exactly `service[/host]@realm` (no further `/` or `@`).
pub(crate) fn is_valid_kerberos_name(id: &str) -> bool {
    let Some((front, realm)) = id.split_once('@') else {
        return true;
    };
    if realm.contains(['/', '@']) {
        return false;
    }
    match front.split_once('/') {
        Some((service, host)) => !service.contains('@') && !host.contains(['/', '@']),
        None => true,
    }
}

/// SASLAuthenticationProvider.matches: the SASL identity equals the ACL's id, or is `super`.
/// (`zookeeper.letAnySaslUserDoX` is not implemented.)
fn sasl_matches(id: &str, acl_expr: &str) -> bool {
    id == "super" || id == acl_expr
}

/// DigestAuthenticationProvider.isValid: `id.split(":").length == 2` with Java's split, which
/// drops trailing empty strings (so `"u:h:"` is valid and `"u:"` is not).
fn is_valid_digest(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts.len() == 2
}

/// X509AuthenticationProvider.isValid (`new X500Principal(id)` parses), approximately: one or
/// more `type=value` attributes separated by unescaped commas or plus signs.
fn is_valid_x500_name(id: &str) -> bool {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in id.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | '+' | ';' => {
                parts.push(&id[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&id[start..]);
    parts
        .iter()
        .all(|p| p.split_once('=').is_some_and(|(t, _)| !t.trim().is_empty()))
}

/// IPAuthenticationProvider.isValid: `addr[/bits]` with bits within the address width.
fn is_valid_ip(id: &str) -> bool {
    let mut parts = id.splitn(2, '/');
    let Some(addr) = parts.next().and_then(addr_bytes) else {
        return false;
    };
    match parts.next() {
        Some(bits) => parse_bits(bits, addr.len()).is_some(),
        None => true,
    }
}

/// IPAuthenticationProvider.matches: the client address `id` lies in `acl_expr`'s range.
fn ip_matches(id: &str, acl_expr: &str) -> bool {
    let mut parts = acl_expr.splitn(2, '/');
    let Some(mut acl_addr) = parts.next().and_then(addr_bytes) else {
        return false;
    };
    let bits = match parts.next() {
        Some(b) => match parse_bits(b, acl_addr.len()) {
            Some(bits) => bits,
            None => return false,
        },
        None => acl_addr.len() * 8,
    };
    mask(&mut acl_addr, bits);
    let Some(mut remote) = addr_bytes(id) else {
        return false;
    };
    mask(&mut remote, bits);
    remote == acl_addr
}

/// Java `Integer.parseInt` of a prefix length, accepted when `0 <= bits <= 8 * addr_len`.
fn parse_bits(s: &str, addr_len: usize) -> Option<usize> {
    let bits: i32 = s.parse().ok()?;
    usize::try_from(bits).ok().filter(|&b| b <= addr_len * 8)
}

/// Zeroes everything after the first `bits` bits.
fn mask(b: &mut [u8], bits: usize) {
    let start = bits / 8;
    let keep = bits % 8;
    if let Some(first) = b.get_mut(start) {
        // keep the `keep` high bits of this byte
        *first &= !((1u16 << (8 - keep)) - 1) as u8;
    }
    for x in b.iter_mut().skip(start + 1) {
        *x = 0;
    }
}

/// An address as bytes: 16 for IPv6 (anything with a `:`), 4 for dotted IPv4.
///
/// ZooKeeper 3.8.0's provider knows IPv4 only; the IPv6 rules follow the provider of later
/// releases (full or `::`-compressed hex groups, no embedded IPv4, no zone id).
fn addr_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        v6_bytes(addr)
    } else if addr.contains('.') {
        v4_bytes(addr)
    } else {
        None
    }
}

fn v4_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts
        .iter()
        .map(|p| {
            let v: i32 = p.parse().ok()?;
            u8::try_from(v).ok()
        })
        .collect()
}

fn v6_bytes(addr: &str) -> Option<Vec<u8>> {
    let halves: Vec<&str> = addr.split("::").collect();
    let split = |s: &str| -> Vec<String> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split(':').map(str::to_owned).collect()
        }
    };
    let (head, tail) = match halves.as_slice() {
        [one] => {
            let segs: Vec<String> = one.split(':').map(str::to_owned).collect();
            if segs.len() != 8 {
                return None;
            }
            (segs, Vec::new())
        }
        [a, b] => {
            let (h, t) = (split(a), split(b));
            if h.len() + t.len() >= 8 {
                return None;
            }
            (h, t)
        }
        _ => return None,
    };
    let mut out = vec![0u8; 16];
    let mut put = |at: usize, segs: &[String]| -> Option<()> {
        for (i, s) in segs.iter().enumerate() {
            if s.is_empty() || s.len() > 4 {
                return None;
            }
            let v = i32::from_str_radix(s, 16).ok()?;
            out[at + 2 * i] = (v >> 8) as u8;
            out[at + 2 * i + 1] = v as u8;
        }
        Some(())
    };
    put(0, &head)?;
    put(16 - 2 * tail.len(), &tail)?;
    Some(out)
}

/// ZooKeeperServer.checkACL: may a client holding `auth` ids do `perm` on a node with `acl`?
/// (`skip_acl` is handled by the caller.)
pub(crate) fn check_acl(acl: &[Acl], perm: i32, auth: &[Id], sasl: bool) -> Result<(), ZkError> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    for a in acl.iter().filter(|a| a.perms & perm != 0) {
        if is_world_anyone(&a.id) {
            return Ok(());
        }
        let matched = match a.id.scheme.as_str() {
            "digest" => auth
                .iter()
                .any(|cid| cid.scheme == "digest" && cid.id == a.id.id),
            "ip" => auth
                .iter()
                .any(|cid| cid.scheme == "ip" && ip_matches(&cid.id, &a.id.id)),
            // X509AuthenticationProvider.matches: the subject exactly (its super user holds
            // a `super` id too, which passed above).
            "x509" => auth
                .iter()
                .any(|cid| cid.scheme == "x509" && cid.id == a.id.id),
            "sasl" if sasl => auth
                .iter()
                .any(|cid| cid.scheme == "sasl" && sasl_matches(&cid.id, &a.id.id)),
            _ => false,
        };
        if matched {
            return Ok(());
        }
    }
    Err(ZkError::NoAuth)
}

/// getACL for a caller without ADMIN: digest ids lose their password hash
/// (`id.replaceAll(":.*", ":x")` in FinalRequestProcessor).
pub(crate) fn redact_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme != "digest" {
                return a.clone();
            }
            let id = match a.id.id.find(':') {
                Some(i) => format!("{}:x", &a.id.id[..i]),
                None => a.id.id.clone(),
            };
            Acl {
                perms: a.perms,
                id: Id::new("digest", id),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    #[test]
    fn digest_validity() {
        assert!(is_valid_digest("u:hash"));
        assert!(is_valid_digest(":hash"));
        assert!(is_valid_digest("u:hash:"));
        assert!(!is_valid_digest("u:"));
        assert!(!is_valid_digest("nocolon"));
        assert!(!is_valid_digest("a:b:c"));
        assert!(!is_valid_digest(""));
    }

    #[test]
    fn ip_validity_and_matching() {
        assert!(is_valid_ip("10.0.0.1"));
        assert!(is_valid_ip("10.0.0.0/8"));
        assert!(is_valid_ip("10.0.0.0/0"));
        assert!(!is_valid_ip("10.0.0.0/33"));
        assert!(!is_valid_ip("10.0.0/8"));
        assert!(!is_valid_ip("10.0.0.256"));
        assert!(!is_valid_ip("host"));
        assert!(is_valid_ip("::1"));
        assert!(is_valid_ip("fe80::/10"));
        assert!(is_valid_ip("2001:db8:0:0:0:0:0:1/128"));
        assert!(!is_valid_ip("::1/129"));
        assert!(!is_valid_ip("1:2:3:4:5:6:7:8:9"));
        assert!(!is_valid_ip("1::2::3"));

        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("192.168.1.77", "192.168.1.64/26"));
        assert!(!ip_matches("192.168.1.63", "192.168.1.64/26"));
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.2", "127.0.0.1"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(ip_matches("0:0:0:0:0:0:0:1", "::1"));
        assert!(ip_matches("fe80::1234", "fe80::/10"));
        assert!(!ip_matches("fe00::1", "fe80::/10"));
        // IPv4 client never matches an IPv6 ACL and vice versa.
        assert!(!ip_matches("127.0.0.1", "::/0"));
        assert!(!ip_matches("::1", "0.0.0.0/0"));
    }

    #[test]
    fn fixup() {
        let digest = Id::new("digest", "u:h");
        assert_eq!(fixup_acl(&[], &[], false), Err(ZkError::InvalidAcl));
        assert_eq!(
            fixup_acl(&[acl(31, "world", "nobody")], &[], false),
            Err(ZkError::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[acl(31, "foo", "bar")], &[], false),
            Err(ZkError::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[acl(31, "super", "x")], &[], false),
            Err(ZkError::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[acl(31, "digest", "u")], &[], false),
            Err(ZkError::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(&[acl(31, "ip", "x.y")], &[], false),
            Err(ZkError::InvalidAcl)
        );
        // auth with no authenticated id (ip and super do not count)
        assert_eq!(
            fixup_acl(
                &[acl(31, "auth", "")],
                &[Id::new("ip", "127.0.0.1"), Id::new("super", "")],
                false
            ),
            Err(ZkError::InvalidAcl)
        );
        assert_eq!(
            fixup_acl(
                &[acl(31, "auth", ""), acl(31, "auth", "")],
                &[Id::new("ip", "127.0.0.1"), digest.clone()],
                false
            ),
            Ok(vec![Acl {
                perms: 31,
                id: digest.clone()
            }])
        );
        let open = Acl::open_unsafe();
        assert_eq!(
            fixup_acl(&[open[0].clone(), open[0].clone()], &[], false),
            Ok(open)
        );
    }

    #[test]
    fn check() {
        let digest = Id::new("digest", "u:h");
        let ro = Acl::read_unsafe();
        assert!(check_acl(&ro, perms::READ, &[], false).is_ok());
        assert_eq!(
            check_acl(&ro, perms::WRITE, &[], false),
            Err(ZkError::NoAuth)
        );
        assert!(check_acl(&ro, perms::WRITE, &[Id::new("super", "")], false).is_ok());
        assert!(check_acl(&[], perms::WRITE, &[], false).is_ok());
        let d = vec![acl(perms::READ | perms::WRITE, "digest", "u:h")];
        assert!(check_acl(&d, perms::WRITE, std::slice::from_ref(&digest), false).is_ok());
        assert_eq!(
            check_acl(&d, perms::ADMIN, &[digest], false),
            Err(ZkError::NoAuth)
        );
        assert_eq!(
            check_acl(&d, perms::READ, &[Id::new("digest", "u:other")], false),
            Err(ZkError::NoAuth)
        );
        let ip = vec![acl(perms::ALL, "ip", "10.0.0.0/8")];
        assert!(check_acl(&ip, perms::READ, &[Id::new("ip", "10.9.9.9")], false).is_ok());
        assert_eq!(
            check_acl(&ip, perms::READ, &[Id::new("ip", "11.9.9.9")], false),
            Err(ZkError::NoAuth)
        );
        // the scheme must match: a digest id equal to the ip text does not count
        assert_eq!(
            check_acl(&ip, perms::READ, &[Id::new("digest", "10.0.0.0/8")], false),
            Err(ZkError::NoAuth)
        );
        // READ|ADMIN is satisfied by either bit
        assert!(check_acl(&ro, perms::READ | perms::ADMIN, &[], false).is_ok());
    }

    /// SASLAuthenticationProvider, registered (authProvider.N) or not.
    #[test]
    fn sasl_provider() {
        let kafka = Id::new("sasl", "kafka");
        let a = vec![acl(perms::ALL, "sasl", "kafka")];
        assert_eq!(fixup_acl(&a, &[], false), Err(ZkError::InvalidAcl));
        assert_eq!(fixup_acl(&a, &[], true), Ok(a.clone()));
        // auth:: expands to the sasl identity once the provider is registered.
        let auth_acl = [acl(perms::ALL, "auth", "")];
        let ids = [Id::new("ip", "127.0.0.1"), kafka.clone()];
        assert_eq!(fixup_acl(&auth_acl, &ids, false), Err(ZkError::InvalidAcl));
        assert_eq!(fixup_acl(&auth_acl, &ids, true), Ok(a.clone()));
        assert!(check_acl(&a, perms::READ, std::slice::from_ref(&kafka), true).is_ok());
        assert_eq!(
            check_acl(&a, perms::READ, std::slice::from_ref(&kafka), false),
            Err(ZkError::NoAuth)
        );
        for other in [
            Id::new("sasl", "kafka2"),
            Id::new("digest", "kafka"),
            Id::new("ip", "kafka"),
        ] {
            assert_eq!(
                check_acl(&a, perms::READ, &[other], true),
                Err(ZkError::NoAuth)
            );
        }
        // A SASL user named super matches every sasl ACL (SASLAuthenticationProvider.matches).
        assert!(check_acl(&a, perms::READ, &[Id::new("sasl", "super")], true).is_ok());
        for (id, valid) in [
            ("kafka", true),
            ("kafka/host", true),
            ("kafka@EXAMPLE.COM", true),
            ("kafka/h.example.com@EXAMPLE.COM", true),
            ("@", true),
            ("a@b@c", false),
            ("a/b/c@R", false),
            ("a@R/x", false),
        ] {
            assert_eq!(is_valid_kerberos_name(id), valid, "{id}");
        }
    }

    /// Orders printed by Java 17 for `Collections.newSetFromMap(new ConcurrentHashMap<>())`
    /// filled with these ids in this order (the third case resizes twice).
    #[test]
    fn auth_order_is_zookeepers_hash_set_order() {
        let ids = |v: &[&str]| -> Vec<Id> {
            v.iter()
                .map(|s| {
                    let (scheme, id) = s.split_once(':').unwrap();
                    Id::new(scheme, id)
                })
                .collect()
        };
        let order = |v: &[&str]| -> Vec<String> {
            zk_auth_order(&ids(v))
                .iter()
                .map(|id| format!("{}:{}", id.scheme, id.id))
                .collect()
        };
        let alice = "digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";
        assert_eq!(
            order(&["ip:127.0.0.1", "sasl:kafka", alice]),
            [alice, "sasl:kafka", "ip:127.0.0.1"]
        );
        assert_eq!(
            order(&[
                "ip:127.0.0.1",
                alice,
                "digest:bob:xyz",
                "sasl:other",
                "super:"
            ]),
            [
                alice,
                "digest:bob:xyz",
                "super:",
                "sasl:other",
                "ip:127.0.0.1"
            ]
        );
        let many: Vec<String> = ["ip:0:0:0:0:0:0:0:1", "x509:CN=client"]
            .iter()
            .map(|s| s.to_string())
            .chain((1..=13).map(|i| format!("digest:u{i}:h")))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            order(&many).join(" "),
            "digest:u13:h digest:u11:h digest:u12:h ip:0:0:0:0:0:0:0:1 x509:CN=client \
             digest:u3:h digest:u2:h digest:u5:h digest:u4:h digest:u7:h digest:u6:h \
             digest:u10:h digest:u9:h digest:u8:h digest:u1:h"
        );
    }

    #[test]
    fn table_interns_and_frees() {
        let mut t = AclTable::default();
        let a = t.intern(&Acl::open_unsafe());
        let b = t.intern(&Acl::open_unsafe());
        assert_eq!(a, b);
        let c = t.intern(&Acl::read_unsafe());
        assert_ne!(a, c);
        assert_eq!(t.len(), 2);
        t.release(c);
        assert_eq!(t.len(), 1);
        let d = t.intern(&[acl(1, "digest", "a:b")]);
        assert_eq!(d, c, "freed slot reused");
        assert_eq!(t.get(a), &Acl::open_unsafe()[..]);
        t.release(a);
        t.release(b);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn redaction() {
        let r = redact_digests(&[acl(1, "digest", "u:hash="), acl(1, "ip", "1.2.3.4")]);
        assert_eq!(r[0].id.id, "u:x");
        assert_eq!(r[1].id.id, "1.2.3.4");
    }
}
