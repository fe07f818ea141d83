//! The ensemble membership as ZooKeeper writes it in /zookeeper/config and in a dynamic
//! config file: one `server.N=host:quorumPort:electionPort:role[;clientAddr:clientPort]`
//! line per server, ordered by id, then `version=<hex>` (the zxid of the reconfig that made
//! it, or the dynamic file's version; 0 for a static zoo.cfg).

use std::collections::BTreeMap;

use super::properties;
use super::{PeerType, ServerSpec};

/// A membership: the servers by id and the configuration version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    pub servers: BTreeMap<u64, ServerSpec>,
    pub version: u64,
}

impl Membership {
    pub fn new(servers: impl IntoIterator<Item = ServerSpec>, version: u64) -> Membership {
        Membership {
            servers: servers.into_iter().map(|s| (s.id, s)).collect(),
            version,
        }
    }

    /// Reads the /zookeeper/config text (or `server.N` lines with or without a `version=`
    /// line). Any other key, a malformed line or a repeated id is an error.
    pub fn parse(text: &str) -> Result<Membership, String> {
        let entries =
            properties::parse(text).map_err(|e| format!("line {}: {}", e.line, e.message))?;
        let mut m = Membership::default();
        for e in entries {
            if e.key == "version" {
                m.version = u64::from_str_radix(&e.value, 16)
                    .map_err(|_| format!("line {}: version {:?} is not hex", e.line, e.value))?;
                continue;
            }
            let spec = ServerSpec::parse(&e.key, &e.value)
                .map_err(|why| format!("line {}: {why}", e.line))?;
            if m.servers.insert(spec.id, spec).is_some() {
                return Err(format!("line {}: server id repeated", e.line));
            }
        }
        Ok(m)
    }

    /// The `server.N=...` lines, ordered by id (no version line): a dynamic config file.
    pub fn server_lines(&self) -> Vec<String> {
        self.servers
            .values()
            .map(|s| format!("server.{}={}", s.id, s))
            .collect()
    }

    /// The /zookeeper/config text: the server lines, then `version=<hex>`.
    pub fn render(&self) -> String {
        let mut lines = self.server_lines();
        lines.push(format!("version={:x}", self.version));
        lines.join("\n")
    }

    /// Participants, ordered by id.
    pub fn voters(&self) -> Vec<u64> {
        self.ids(PeerType::Participant)
    }

    /// Observers, ordered by id.
    pub fn observers(&self) -> Vec<u64> {
        self.ids(PeerType::Observer)
    }

    fn ids(&self, t: PeerType) -> Vec<u64> {
        self.servers
            .values()
            .filter(|s| s.peer_type == t)
            .map(|s| s.id)
            .collect()
    }

    /// `host:quorumPort` of every server, by id (where the peer network dials).
    pub fn peer_addresses(&self) -> Vec<(u64, String)> {
        self.servers
            .values()
            .map(|s| (s.id, s.quorum_address()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render_roundtrip() {
        let text = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                    server.2=[::1]:2889:3889:observer;127.0.0.1:2182\n\
                    server.3=h3:2890:3890:participant\nversion=10000000a";
        let m = Membership::parse(text).unwrap();
        assert_eq!(m.version, 0x1_0000_000a);
        assert_eq!(m.voters(), vec![1, 3]);
        assert_eq!(m.observers(), vec![2]);
        assert_eq!(m.render(), text);
        assert_eq!(
            m.peer_addresses(),
            vec![
                (1, "127.0.0.1:2888".to_string()),
                (2, "[::1]:2889".to_string()),
                (3, "h3:2890".to_string())
            ]
        );
    }

    #[test]
    fn bad_text_is_an_error() {
        for bad in [
            "server.1=h:1:2\nserver.1=h:3:4",
            "server.x=h:1:2",
            "server.1=h:1",
            "tickTime=2000",
            "version=zz",
        ] {
            assert!(Membership::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Membership::parse("").unwrap(), Membership::default());
    }
}
