//! What the Raft node and the peer network say to each other: the messages that travel
//! between keeperd nodes besides Raft's own, and the `Transport` trait the node sends
//! through. Neither side owns this file, so neither depends on the other: `node` drives any
//! `Transport`, `transport::PeerNetwork` implements it over TCP and hands what it receives to
//! a channel (`PeerSender`) that the node drains.

use raft::prelude::Message;
use tokio::sync::mpsc;

/// A proposal forwarded from a follower (or learner) to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The node that holds the client's connection and answers it.
    pub origin: u64,
    /// The origin's process run (so an entry proposed before a restart is never mistaken
    /// for a new proposal of the same number).
    pub incarnation: u64,
    /// The origin's proposal number; 0 = nobody waits for the outcome.
    pub seq: u64,
    /// `Txn::to_bytes()`.
    pub txn: Vec<u8>,
}

/// A start-up membership probe (frame type 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The sender's log is empty; a fresh group would have these members (its zoo.cfg).
    Fresh {
        voters: Vec<u64>,
        learners: Vec<u64>,
        /// The last zxid of the ZooKeeper data this server imported (0: none): see
        /// `node::Seed`.
        imported: i64,
    },
    /// The sender belongs to a group that has a log: whoever asks must wait to be added.
    Member,
}

/// What a peer sent us, after the hello.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMsg {
    Raft(Message),
    Forward(Forward),
    Touch(Vec<i64>),
    Probe(Probe),
    /// Not a frame: the transport's word that this peer's connection to us closed.
    Closed,
}

/// Something the connection tasks learnt that Raft should be told (`Transport::take_reports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerReport {
    /// The connection to this peer broke or could not be made: messages were lost.
    Unreachable(u64),
    /// A snapshot for this peer was dropped or could not be written: send another.
    SnapshotFailed(u64),
}

/// Sessions a peer heard from, delivered on the leader (`RaftHandle::take_touches`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touches {
    /// The node the sessions' connections are on.
    pub from: u64,
    pub sessions: Vec<i64>,
}

/// Where a transport hands the frames it received, with the sender's id, to the node
/// (`RaftHandle::peer_sender`). Bounded: a full queue holds the peer's connection back.
pub type PeerSender = mpsc::Sender<(u64, PeerMsg)>;

/// Carries messages to peers. The ensemble implements it over the quorum port
/// (`transport::PeerNetwork`); tests implement it in memory. It must not block (queue and
/// return) and may drop messages: Raft retransmits, and the node retries or times out
/// everything else it sends.
pub trait Transport: Send + 'static {
    /// Raft's own messages.
    fn send(&mut self, msgs: Vec<Message>);

    /// Queues one of keeperd's messages (a forwarded proposal, session touches, a membership
    /// probe) for peer `to`. False = not queued (no route, queue full).
    fn send_peer(&mut self, _to: u64, _msg: PeerMsg) -> bool {
        false
    }

    /// The peers this transport can reach (zoo.cfg's servers but this one).
    fn peer_ids(&self) -> Vec<u64> {
        vec![]
    }

    /// Where the servers of the replicated membership listen: peers to add (a server that
    /// joined by reconfig is in no zoo.cfg here).
    fn set_peers(&mut self, _peers: &[(u64, String)]) {}

    /// What the transport learnt since the last call (broken connections, lost snapshots);
    /// polled every tick and passed on to raft-rs.
    fn take_reports(&mut self) -> Vec<PeerReport> {
        vec![]
    }
}

/// The transport of a one-voter group: there is nobody to talk to.
pub struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            tracing::warn!(
                "no transport: dropping raft {:?} to {}",
                m.get_msg_type(),
                m.to
            );
        }
    }
}
