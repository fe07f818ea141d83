//! What a peer's Raft message must satisfy before raft-rs sees it.
//!
//! raft-rs trusts its peers: a heartbeat whose commit index is past the receiver's log ends
//! in `fatal!` (`to_commit ... is out of range`), an append response claiming more than the
//! leader has makes the leader commit entries it does not have, and a `MsgPropose` from a
//! peer is appended by the leader as if a client had asked (keeperd forwards writes in its
//! own frames, which the leader decodes and checks). Everything that arrives on the quorum
//! port is network input, so `check` drops what a correct peer running keeperd never sends
//! and what would reach a panic, and the node logs it. A pure function of the message and
//! of what this node knows, so it is tested table by table.

use raft::prelude::{Message, MessageType};

/// What the receiving node knows when the message arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalView {
    pub term: u64,
    /// The leader of `term` this node knows (0: none).
    pub leader: u64,
    pub is_leader: bool,
    pub last_index: u64,
}

/// Ok when `m` (from peer `from`, already checked to be `m.from`) may be stepped.
pub fn check(m: &Message, v: &LocalView) -> Result<(), String> {
    use MessageType::*;
    let ty = m.get_msg_type();
    let from_other_leader =
        m.term == v.term && (v.is_leader || (v.leader != 0 && m.from != v.leader));
    match ty {
        // Only a leader sends these; in this node's term only the leader it knows.
        MsgAppend | MsgHeartbeat | MsgSnapshot | MsgTimeoutNow | MsgReadIndexResp
            if from_other_leader =>
        {
            Err(format!(
                "{ty:?} in term {} from {} but the leader of that term is {}",
                m.term,
                m.from,
                if v.is_leader {
                    "this node".to_string()
                } else {
                    v.leader.to_string()
                }
            ))
        }
        MsgHeartbeat if m.term >= v.term && m.commit > v.last_index => Err(format!(
            "heartbeat commit {} past this node's last index {}",
            m.commit, v.last_index
        )),
        MsgAppend => {
            if m.log_term > m.term {
                return Err(format!(
                    "append log term {} above its term {}",
                    m.log_term, m.term
                ));
            }
            let mut prev_term = m.log_term;
            for (i, e) in m.entries.iter().enumerate() {
                if e.index != m.index + 1 + i as u64 {
                    return Err(format!(
                        "append entry {i} has index {}, expected {}",
                        e.index,
                        m.index + 1 + i as u64
                    ));
                }
                if e.term > m.term || e.term < prev_term {
                    return Err(format!("append entry {} has term {}", e.index, e.term));
                }
                prev_term = e.term;
            }
            Ok(())
        }
        MsgSnapshot if m.get_snapshot().get_metadata().term > m.term => Err(format!(
            "snapshot of term {} sent in term {}",
            m.get_snapshot().get_metadata().term,
            m.term
        )),
        MsgAppendResponse if v.is_leader && m.term == v.term && !m.reject => {
            if m.index > v.last_index {
                Err(format!(
                    "append response for index {} past this leader's last index {}",
                    m.index, v.last_index
                ))
            } else {
                Ok(())
            }
        }
        MsgAppendResponse
        | MsgRequestVote
        | MsgRequestVoteResponse
        | MsgRequestPreVote
        | MsgRequestPreVoteResponse
        | MsgSnapshot
        | MsgHeartbeat
        | MsgHeartbeatResponse
        | MsgTimeoutNow
        | MsgReadIndex
        | MsgReadIndexResp => Ok(()),
        // Local messages, and proposals: writes come in Forward frames, never as raft
        // proposals from a peer.
        _ => Err(format!("{ty:?} is not a message peers exchange")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::prelude::Entry;

    fn view() -> LocalView {
        LocalView {
            term: 5,
            leader: 1,
            is_leader: false,
            last_index: 100,
        }
    }

    fn msg(ty: MessageType, from: u64, term: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(ty);
        m.from = from;
        m.to = 2;
        m.term = term;
        m
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        use MessageType::*;
        let leader_view = LocalView {
            is_leader: true,
            leader: 2,
            ..view()
        };
        let mut cases: Vec<(&str, Message, LocalView, bool)> = vec![];
        let mut hb = msg(MsgHeartbeat, 1, 5);
        hb.commit = 100;
        cases.push(("heartbeat within the log", hb.clone(), view(), true));
        hb.commit = 1_000_000_000;
        cases.push(("heartbeat commit past the log", hb.clone(), view(), false));
        hb.term = 4;
        cases.push(("stale heartbeat (raft-rs ignores it)", hb, view(), true));
        let mut hb = msg(MsgHeartbeat, 3, 5);
        hb.commit = 10;
        cases.push((
            "heartbeat from another leader of the term",
            hb.clone(),
            view(),
            false,
        ));
        hb.term = 6;
        cases.push(("heartbeat of a newer term", hb, view(), true));
        let mut app = msg(MsgAppend, 1, 5);
        app.index = 100;
        app.log_term = 5;
        app.entries = vec![entry(101, 5), entry(102, 5)].into();
        cases.push(("append", app.clone(), view(), true));
        app.entries = vec![entry(101, 5), entry(103, 5)].into();
        cases.push(("append with a gap", app.clone(), view(), false));
        app.entries = vec![entry(101, 7)].into();
        cases.push(("append entry above its term", app.clone(), view(), false));
        app.entries = vec![entry(101, 5), entry(102, 4)].into();
        cases.push(("append entry terms going down", app.clone(), view(), false));
        app.from = 3;
        app.entries = vec![].into();
        cases.push(("append from another leader of the term", app, view(), false));
        let mut resp = msg(MsgAppendResponse, 3, 5);
        resp.index = 100;
        cases.push(("append response", resp.clone(), leader_view, true));
        resp.index = 1_000_000_000;
        cases.push((
            "append response past the log",
            resp.clone(),
            leader_view,
            false,
        ));
        resp.reject = true;
        cases.push(("rejection with a hint", resp, leader_view, true));
        cases.push((
            "proposal from a peer",
            msg(MsgPropose, 1, 5),
            leader_view,
            false,
        ));
        cases.push(("local message", msg(MsgHup, 1, 5), view(), false));
        cases.push(("vote request", msg(MsgRequestPreVote, 3, 6), view(), true));
        cases.push((
            "timeout-now from a stranger",
            msg(MsgTimeoutNow, 3, 5),
            view(),
            false,
        ));
        cases.push((
            "timeout-now from the leader",
            msg(MsgTimeoutNow, 1, 5),
            view(),
            true,
        ));
        cases.push((
            "heartbeat to a leader of the same term",
            msg(MsgHeartbeat, 3, 5),
            leader_view,
            false,
        ));
        for (what, m, v, ok) in cases {
            assert_eq!(check(&m, &v).is_ok(), ok, "{what}: {:?}", check(&m, &v));
        }
    }
}
