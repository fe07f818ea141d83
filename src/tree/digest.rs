//! `DataTree::digest`: a hash of the whole replicated state, equal on replicas that applied
//! the same log (a child module of `datatree`), and the FNV-1a hasher it uses.

use super::{DataTree, NodeKind};
use crate::tree::path::join;

impl DataTree {
    /// A digest of the whole tree (paths, data, Stat, ACLs, sessions), equal on replicas that
    /// applied the same log. FNV-1a over a canonical encoding: nodes in depth-first order
    /// with children in name order, then sessions in id order.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        let mut stack: Vec<String> = vec!["/".to_owned()];
        while let Some(path) = stack.pop() {
            let Some(node) = self.nodes.get(path.as_str()) else {
                continue;
            };
            h.bytes(path.as_bytes());
            match &node.data {
                None => h.u8(0),
                Some(d) => {
                    h.u8(1);
                    h.bytes(d);
                }
            }
            let s = &node.stat;
            for v in [s.czxid, s.mzxid, s.ctime, s.mtime, s.pzxid] {
                h.i64(v);
            }
            for v in [s.version, s.cversion, s.aversion] {
                h.i64(v.into());
            }
            match node.kind {
                NodeKind::Persistent => h.u8(0),
                NodeKind::Ephemeral(owner) => {
                    h.u8(1);
                    h.i64(owner);
                }
                NodeKind::Container => h.u8(2),
                NodeKind::Ttl(ttl) => {
                    h.u8(3);
                    h.i64(ttl);
                }
            }
            let acl = self.acls.get(node.acl);
            h.i64(acl.len() as i64);
            for a in acl {
                h.i64(a.perms.into());
                h.bytes(a.id.scheme.as_bytes());
                h.bytes(a.id.id.as_bytes());
            }
            h.i64(node.num_children() as i64);
            if let Some(children) = &node.children {
                // Reversed so the stack pops them in name order.
                stack.extend(children.iter().rev().map(|c| join(&path, c)));
            }
        }
        h.i64(self.sessions.len() as i64);
        for (&id, s) in &self.sessions {
            h.i64(id);
            h.i64(s.timeout_ms.into());
            h.u8(s.zk_password.into());
        }
        h.finish()
    }
}

/// 64-bit FNV-1a with length-prefixed byte strings, so field boundaries are unambiguous.
struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    fn raw(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn u8(&mut self, v: u8) {
        self.raw(&[v]);
    }

    fn i64(&mut self, v: i64) {
        self.raw(&v.to_be_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.i64(b.len() as i64);
        self.raw(b);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
