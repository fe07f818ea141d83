//! The reconfig decision (opcode 16): the membership a request asks for, computed from the
//! current one, or the error ZooKeeper answers. Pure: what only the leader knows (which
//! servers are synced, whether a membership change is in flight) comes in the `LeaderView`
//! the leader stamped into the entry, so every replica decides alike.

use std::collections::{BTreeMap, HashSet};

use super::LeaderView;
use crate::config::{Membership, PeerType, ServerSpec};
use crate::proto::request::ReconfigRequest;
use crate::proto::ZkError;

/// The servers of the new membership, or why not. The checks run in ZooKeeper's order:
/// a change in flight, the expected config version, the request's syntax, the number of
/// voters left, then a synced quorum of the new voters. (The WRITE permission on
/// /zookeeper/config is checked by the caller, last, as ZooKeeper does.)
pub(crate) fn next_membership(
    current: &Membership,
    req: &ReconfigRequest,
    view: &LeaderView,
    min_voters: usize,
) -> Result<BTreeMap<u64, ServerSpec>, ZkError> {
    if view.in_progress {
        return Err(ZkError::ReconfigInProgress);
    }
    if req.cur_config_id != -1 && req.cur_config_id as u64 != current.version {
        return Err(ZkError::BadVersion);
    }
    let next = match &req.new_members {
        Some(members) => non_incremental(members)?,
        None => incremental(
            current,
            req.joining_servers.as_deref(),
            req.leaving_servers.as_deref(),
        )?,
    };
    let voters: Vec<u64> = next
        .values()
        .filter(|s| s.peer_type == PeerType::Participant)
        .map(|s| s.id)
        .collect();
    if voters.len() < min_voters.max(1) {
        return Err(ZkError::BadArguments);
    }
    let synced: HashSet<u64> = view.synced.iter().copied().collect();
    let synced_voters = voters.iter().filter(|v| synced.contains(v)).count();
    if synced_voters * 2 <= voters.len() {
        return Err(ZkError::NewConfigNoQuorum);
    }
    Ok(next)
}

/// `-members`: the whole new membership, lines separated by commas or newlines.
fn non_incremental(members: &str) -> Result<BTreeMap<u64, ServerSpec>, ZkError> {
    let text = members.replace(',', "\n");
    let m = Membership::parse(&text).map_err(|_| ZkError::BadArguments)?;
    check_addresses(m.servers.values())?;
    Ok(m.servers)
}

/// `-add` / `-remove`: comma-separated `server.N=...` lines (each with a client port) and
/// server ids, applied to the current membership (removals first).
fn incremental(
    current: &Membership,
    joining: Option<&str>,
    leaving: Option<&str>,
) -> Result<BTreeMap<u64, ServerSpec>, ZkError> {
    let mut next = current.servers.clone();
    for id in leaving.into_iter().flat_map(|l| l.split(',')) {
        let id = id.trim();
        if id.is_empty() {
            continue;
        }
        // ZooKeeper fails to parse the number before validating anything: MarshallingError.
        let id: u64 = id.parse().map_err(|_| ZkError::MarshallingError)?;
        next.remove(&id);
    }
    for line in joining.into_iter().flat_map(|j| j.split(',')) {
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(ZkError::BadArguments)?;
        let id = key.trim().rsplit('.').next().unwrap_or("");
        if id.parse::<u64>().is_err() {
            return Err(ZkError::MarshallingError);
        }
        let spec = ServerSpec::parse(key.trim(), value).map_err(|_| ZkError::BadArguments)?;
        if spec.client_port.is_none() {
            return Err(ZkError::BadArguments);
        }
        next.insert(spec.id, spec);
    }
    check_addresses(next.values())?;
    Ok(next)
}

/// Two servers may not share a quorum or election address.
fn check_addresses<'a>(servers: impl Iterator<Item = &'a ServerSpec>) -> Result<(), ZkError> {
    let mut seen = HashSet::new();
    for s in servers {
        for port in [s.quorum_port, s.election_port] {
            if !seen.insert((s.host.clone(), port)) {
                return Err(ZkError::BadArguments);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current() -> Membership {
        Membership::parse(
            "server.1=127.0.0.1:2001:3001:participant;0.0.0.0:4001\n\
             server.2=127.0.0.1:2002:3002:participant;0.0.0.0:4002\n\
             server.3=127.0.0.1:2003:3003:participant;0.0.0.0:4003\nversion=100000003",
        )
        .unwrap()
    }

    fn view(synced: &[u64]) -> LeaderView {
        LeaderView {
            in_progress: false,
            synced: synced.to_vec(),
        }
    }

    fn req(
        add: Option<&str>,
        remove: Option<&str>,
        members: Option<&str>,
        v: i64,
    ) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: add.map(str::to_string),
            leaving_servers: remove.map(str::to_string),
            new_members: members.map(str::to_string),
            cur_config_id: v,
        }
    }

    #[test]
    fn add_and_remove() {
        let add = req(Some("server.4=127.0.0.1:2004:3004;4004"), None, None, -1);
        let next = next_membership(&current(), &add, &view(&[1, 2, 3]), 2).unwrap();
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert_eq!(
            next[&4].to_string(),
            "127.0.0.1:2004:3004:participant;0.0.0.0:4004"
        );
        let rm = req(None, Some("3"), None, 0x1_0000_0003);
        let next = next_membership(&current(), &rm, &view(&[1, 2]), 2).unwrap();
        assert_eq!(next.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        let members = req(
            None,
            None,
            Some("server.1=127.0.0.1:2001:3001;4001,server.2=127.0.0.1:2002:3002;4002"),
            -1,
        );
        let next = next_membership(&current(), &members, &view(&[1, 2]), 2).unwrap();
        assert_eq!(next.len(), 2);
    }

    #[test]
    fn errors_in_zookeepers_order() {
        let add = req(Some("server.4=127.0.0.1:2004:3004;4004"), None, None, 7);
        let busy = LeaderView {
            in_progress: true,
            synced: vec![1, 2, 3],
        };
        assert_eq!(
            next_membership(&current(), &add, &busy, 2),
            Err(ZkError::ReconfigInProgress)
        );
        assert_eq!(
            next_membership(&current(), &add, &view(&[1, 2, 3]), 2),
            Err(ZkError::BadVersion)
        );
        for bad in [
            req(Some("server.4=127.0.0.1:2004:3004"), None, None, -1), // no client port
            req(Some("server.4"), None, None, -1),
            req(Some("server.4=127.0.0.1:2001:3004;4004"), None, None, -1), // duplicate port
            req(None, None, Some("tickTime=3"), -1),
            req(None, Some("2,3"), None, -1), // one voter left, standaloneEnabled
        ] {
            assert_eq!(
                next_membership(&current(), &bad, &view(&[1, 2, 3]), 2),
                Err(ZkError::BadArguments),
                "{bad:?}"
            );
        }
        for bad in [
            req(None, Some("two"), None, -1),
            req(Some("server.x=127.0.0.1:2004:3004;4004"), None, None, -1),
        ] {
            assert_eq!(
                next_membership(&current(), &bad, &view(&[1, 2, 3]), 2),
                Err(ZkError::MarshallingError),
                "{bad:?}"
            );
        }
        // Adding two servers nobody has synced with: 3 of 5 is still a quorum; removing one
        // of the two synced voters of three is not.
        let two = req(
            Some("server.4=127.0.0.1:2004:3004;4004,server.5=127.0.0.1:2005:3005;4005"),
            None,
            None,
            -1,
        );
        assert!(next_membership(&current(), &two, &view(&[1, 2, 3]), 2).is_ok());
        assert_eq!(
            next_membership(&current(), &two, &view(&[1, 2]), 2),
            Err(ZkError::NewConfigNoQuorum)
        );
        let rm = req(None, Some("2"), None, -1);
        assert_eq!(
            next_membership(&current(), &rm, &view(&[1, 2]), 2),
            Err(ZkError::NewConfigNoQuorum)
        );
    }
}
