//! In-process ensembles: several Raft nodes in one test, each with its own temp dirs and a
//! real `PeerNetwork` on a 127.0.0.1 port. Election, forwarding, failover and restart,
//! catch-up by snapshot, read barriers, garbage on the quorum port, learners. Every wait is
//! bounded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::node::{spawn_raft_with, RaftHandle, RaftOptions, RaftRole, Seed};
use super::peer::PeerMsg;
use super::peer_auth::QuorumSecret;
use super::raft_tests::{propose_all, txn, wait_status, Recorder, LIMIT};
use super::transport::{Frame, PeerNetwork};
use super::Proposer;
use raft::prelude::{Message, MessageType};

struct Member {
    sm: Recorder,
    p: Proposer,
    h: RaftHandle,
}

struct Cluster {
    addrs: Vec<(u64, String)>,
    voters: Vec<u64>,
    learners: Vec<u64>,
    snap_count: u64,
    dirs: BTreeMap<u64, tempfile::TempDir>,
    nodes: BTreeMap<u64, Member>,
    /// Imported states by node: such a cluster follows its config (as keeperd ensembles do).
    seeds: BTreeMap<u64, Seed>,
    /// The quorum secret every member uses.
    secret: Option<QuorumSecret>,
}

impl Cluster {
    async fn start(voters: &[u64], learners: &[u64], snap_count: u64) -> Cluster {
        Cluster::start_seeded(voters, learners, snap_count, BTreeMap::new()).await
    }

    async fn start_secret(voters: &[u64], secret: QuorumSecret) -> Cluster {
        Cluster::start_with(voters, &[], 100_000, BTreeMap::new(), Some(secret)).await
    }

    async fn start_seeded(
        voters: &[u64],
        learners: &[u64],
        snap_count: u64,
        seeds: BTreeMap<u64, Seed>,
    ) -> Cluster {
        Cluster::start_with(voters, learners, snap_count, seeds, None).await
    }

    async fn start_with(
        voters: &[u64],
        learners: &[u64],
        snap_count: u64,
        seeds: BTreeMap<u64, Seed>,
        secret: Option<QuorumSecret>,
    ) -> Cluster {
        let mut listeners = vec![];
        let mut addrs = vec![];
        for &id in voters.iter().chain(learners) {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push((id, l.local_addr().expect("addr").to_string()));
            listeners.push((id, l));
        }
        let mut c = Cluster {
            addrs,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            snap_count,
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            seeds,
            secret,
        };
        for (id, _) in &c.addrs {
            c.dirs.insert(*id, tempfile::tempdir().expect("tempdir"));
        }
        for (id, l) in listeners {
            c.run(id, l).await;
        }
        c
    }

    fn opts(&self, id: u64) -> RaftOptions {
        let dir = self.dirs.get(&id).expect("dir").path();
        let mut o = RaftOptions::standalone(dir);
        o.id = id;
        o.voters = self.voters.clone();
        o.learners = self.learners.clone();
        o.tick = Duration::from_millis(25);
        o.election_ticks = 10;
        o.heartbeat_ticks = 2;
        o.force_sync = false;
        o.snap_count = self.snap_count;
        if !self.seeds.is_empty() {
            o.follow_config = true;
            o.seed = self.seeds.get(&id).cloned();
        }
        o
    }

    async fn run(&mut self, id: u64, listener: TcpListener) {
        let (net, inbound) =
            PeerNetwork::start_on(id, listener, self.addrs.clone(), self.secret.clone())
                .expect("peer network");
        let sm = Recorder::default();
        let sm2 = sm.clone();
        let o = self.opts(id);
        let (p, h) = tokio::time::timeout(
            LIMIT,
            tokio::task::spawn_blocking(move || spawn_raft_with(sm2, o, net)),
        )
        .await
        .expect("recovery in time")
        .expect("recovery thread")
        .expect("spawn_raft_with");
        inbound.attach(h.peer_sender());
        self.nodes.insert(id, Member { sm, p, h });
    }

    /// Restarts a stopped node from its dirs on its old port.
    async fn restart(&mut self, id: u64) {
        let addr: SocketAddr = self
            .addrs
            .iter()
            .find(|(i, _)| *i == id)
            .and_then(|(_, a)| a.parse().ok())
            .expect("addr");
        let deadline = Instant::now() + LIMIT;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                // The old network's accept task may not have been dropped yet.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        };
        self.run(id, listener).await;
    }

    async fn stop(&mut self, id: u64) -> Recorder {
        let m = self.nodes.remove(&id).expect("running node");
        drop(m.p);
        m.h.shutdown();
        tokio::time::timeout(LIMIT, m.h.stopped())
            .await
            .expect("node stops in time");
        m.sm
    }

    fn node(&self, id: u64) -> &Member {
        self.nodes.get(&id).expect("running node")
    }

    /// Waits until one running node leads and every running node knows it.
    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + LIMIT;
        loop {
            let leaders: Vec<u64> = self
                .nodes
                .values()
                .filter(|m| m.h.is_leader())
                .map(|m| m.h.status().id)
                .collect();
            if let [l] = leaders[..] {
                if self.nodes.values().all(|m| m.h.leader_id() == l) {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn follower(&self, leader: u64) -> u64 {
        *self
            .nodes
            .keys()
            .find(|&&id| id != leader && self.voters.contains(&id))
            .expect("a follower")
    }

    /// Waits until every running node has applied exactly what `id` has (same txns, same
    /// zxids, same order). `id`'s answered proposals are all in its record already (the
    /// record is written before `done` fires); its published status may lag, so records are
    /// compared, not indexes.
    async fn converge(&self, id: u64) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let want = self.node(id).sm.get();
            let diff = self.nodes.iter().find(|(_, m)| m.sm.get() != want);
            match diff {
                None => return,
                Some((i, m)) if Instant::now() > deadline => {
                    assert_eq!(
                        m.sm.get(),
                        want,
                        "node {i} applied a different log than {id}"
                    )
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_forward_replicate_and_read_through_a_barrier() {
    let c = Cluster::start(&[1, 2, 3], &[], 100_000).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    for m in c.nodes.values() {
        let s = m.h.status();
        assert_eq!(s.voters, vec![1, 2, 3]);
        assert_eq!(s.quorum_size(), 2);
        assert!(s.serving);
        let role = if s.id == leader {
            RaftRole::Leader
        } else {
            RaftRole::Follower
        };
        assert_eq!(s.role, role);
    }
    wait_status(&c.node(leader).h, |s| s.synced_followers == 2).await;

    // Proposals on the leader and (forwarded) on a follower, interleaved.
    let (a, b) = tokio::join!(
        propose_all(&c.node(leader).p, 0..30),
        propose_all(&c.node(f).p, 100..130)
    );
    assert_eq!(a.len() + b.len(), 60);
    for w in b.windows(2) {
        assert!(w[0] < w[1], "a follower's proposals keep their order");
    }
    c.converge(leader).await;
    let zxids: Vec<i64> = c.node(leader).sm.get().iter().map(|(z, _)| *z).collect();
    for z in a.iter().chain(&b) {
        assert!(zxids.contains(z), "answered zxid {z:x} is in the log");
    }

    // A read barrier on a follower sees a write the leader just committed.
    let other = *c
        .nodes
        .keys()
        .find(|&&id| id != leader && id != f)
        .expect("third node");
    let z = propose_all(&c.node(leader).p, 500..501).await[0];
    tokio::time::timeout(LIMIT, c.node(other).h.read_barrier())
        .await
        .expect("barrier in time")
        .expect("barrier answered");
    assert!(
        c.node(other).sm.get().iter().any(|(x, _)| *x == z),
        "after the barrier the follower has applied the leader's write"
    );
    // ... and on the leader itself.
    tokio::time::timeout(LIMIT, c.node(leader).h.read_barrier())
        .await
        .expect("barrier in time")
        .expect("barrier answered");

    // Touches reach the leader's server, from a follower and from the leader itself.
    let mut touches = c.node(leader).h.take_touches().expect("touch receiver");
    c.node(f).h.touch_leader(vec![7, 8]);
    let t = tokio::time::timeout(LIMIT, touches.recv())
        .await
        .expect("touch in time")
        .expect("touch");
    assert_eq!((t.from, t.sessions), (f, vec![7, 8]));
    c.node(leader).h.touch_leader(vec![9]);
    let t = tokio::time::timeout(LIMIT, touches.recv())
        .await
        .expect("touch in time")
        .expect("touch");
    assert_eq!((t.from, t.sessions), (leader, vec![9]));
    c.shutdown().await;
}

/// A Recorder snapshot holding `txns` applied at zxids from `first`.
fn recorded(first: i64, txns: std::ops::Range<i64>) -> Vec<u8> {
    let mut sm = Recorder::default();
    for (k, i) in txns.enumerate() {
        super::StateMachine::apply(&mut sm, first + k as i64, &txn(i));
    }
    super::StateMachine::snapshot(&sm)
}

/// Every node imported a different ZooKeeper state: the one with the newest zxid (node 2
/// here, not the highest id) starts the group; the others drop theirs and end with exactly
/// its state, then replicate new writes with zxids above every imported one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voter_with_the_newest_import_starts_the_group() {
    let mut seeds = BTreeMap::new();
    for (id, zxid, txns) in [
        (1, 0x2_0000_0005_i64, 0..5),
        (2, 0x2_0000_0009, 100..109),
        (3, 0x1_0000_00ff, 200..220),
    ] {
        let data = recorded(zxid - (txns.end - txns.start) + 1, txns);
        seeds.insert(
            id,
            Seed {
                data: std::sync::Arc::new(data),
                zxid,
            },
        );
    }
    let want = seeds[&2].data.clone();
    let c = Cluster::start_seeded(&[1, 2, 3], &[], 100_000, seeds).await;
    assert_eq!(c.leader().await, 2, "the newest import leads");
    wait_status(&c.node(2).h, |s| {
        s.synced_followers == 2 && s.voters == [1, 2, 3]
    })
    .await;
    let zxids = propose_all(&c.node(1).p, 0..10).await;
    assert!(zxids.iter().all(|&z| z > 0x2_0000_0009), "{zxids:x?}");
    c.converge(2).await;
    for m in c.nodes.values() {
        let got = m.sm.get();
        let mut imported = Recorder::default();
        super::StateMachine::restore(&mut imported, &want).expect("seed bytes");
        assert_eq!(
            got[..9],
            imported.get()[..],
            "node {} holds node 2's import",
            m.h.status().id
        );
        assert_eq!(got.len(), 19);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_then_the_old_leader_catches_up() {
    let mut c = Cluster::start(&[1, 2, 3], &[], 100_000).await;
    let old = c.leader().await;
    propose_all(&c.node(old).p, 0..20).await;
    let old_term = c.node(old).h.term();
    let stopped_at = Instant::now();
    c.stop(old).await;
    let new = c.leader().await;
    let took = stopped_at.elapsed();
    let election = c.opts(new).election_timeout();
    eprintln!("new leader {new} after {took:?} (election timeout {election:?})");
    assert_ne!(new, old);
    assert!(c.node(new).h.term() > old_term);
    assert!(
        took < election * 8,
        "a new leader within a few election timeouts"
    );
    // Writes continue, on the new leader and through the remaining follower.
    let f = c.follower(new);
    propose_all(&c.node(new).p, 20..40).await;
    propose_all(&c.node(f).p, 40..60).await;
    c.restart(old).await;
    propose_all(&c.node(old).p, 60..70).await;
    c.converge(new).await;
    assert_eq!(c.node(old).sm.get().len(), 70);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    let mut c = Cluster::start(&[1, 2, 3], &[], 20).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    propose_all(&c.node(leader).p, 0..10).await;
    c.converge(leader).await;
    c.stop(f).await;
    for i in 0..10 {
        propose_all(&c.node(leader).p, 10 + i * 20..30 + i * 20).await;
    }
    // The leader compacts past everything the stopped follower has (snapshots are written
    // on their own thread and the log compacted after: wait for it, bounded).
    wait_status(&c.node(leader).h, |s| s.first_index > 20).await;
    c.restart(f).await;
    wait_status(&c.node(f).h, |s| s.snapshots_installed >= 1).await;
    c.converge(leader).await;
    assert_eq!(c.node(f).sm.get().len(), 210);
    propose_all(&c.node(f).p, 1000..1005).await;
    c.converge(leader).await;
    c.shutdown().await;
}

/// With a quorum secret the ensemble works as usual, and a connection that cannot prove the
/// secret is hung up on before any frame of it reaches Raft: a plain hello as a member, a
/// wrong proof, another ensemble's secret. An unauthenticated handshake frame longer than a
/// few bytes is refused at its length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_quorum_secret_only_members_that_know_it_connect() {
    let secret = QuorumSecret::new(b"correct horse battery staple").expect("secret");
    let c = Cluster::start_secret(&[1, 2, 3], secret.clone()).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    propose_all(&c.node(f).p, 0..20).await;
    c.converge(leader).await;
    let term = c.node(leader).h.term();
    let applied = c.node(leader).sm.get().len();

    for (id, addr) in &c.addrs {
        let from = if *id == 1 { 2 } else { 1 };
        // A plain hello claiming to be a member, then a raft heartbeat with a huge term.
        let mut b = Frame::Hello { from, to: *id }.encode().expect("hello");
        let mut hb = Message::default();
        hb.set_msg_type(MessageType::MsgHeartbeat);
        hb.from = from;
        hb.to = *id;
        hb.term = 1 << 40;
        hb.commit = 1_000_000_000;
        b.extend(Frame::Msg(PeerMsg::Raft(hb)).encode().expect("raft"));
        send_garbage(addr, &b).await;
        // A frame longer than any handshake frame, before authenticating.
        send_garbage(addr, &[0, 0, 0x10, 0, 1, 6]).await;
        // The right hello, a wrong proof.
        for key in [
            &b"not the ensemble's secret"[..],
            b"correct horse battery staple",
        ] {
            let other = QuorumSecret::new(key).expect("secret");
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let nc = super::peer_auth::nonce();
            let hello = Frame::AuthHello {
                from,
                to: *id,
                nonce: nc,
            };
            s.write_all(&hello.encode().unwrap()).await.unwrap();
            let mut len = [0u8; 4];
            s.read_exact(&mut len).await.expect("a challenge");
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).await.expect("challenge body");
            let Ok(Frame::Challenge { nonce: na, mac }) = Frame::decode_body(&body) else {
                panic!("not a challenge");
            };
            // The acceptor proved it knows the secret (a stranger learns nothing from this).
            assert!(secret.check_acceptor(*id, from, &nc, &na, &mac));
            let mut proof = other.connector_mac(from, *id, &na, &nc);
            if key == b"correct horse battery staple" {
                proof[3] ^= 0x40; // right secret, tampered proof
            }
            let mut b = Frame::Proof { mac: proof }.encode().unwrap();
            b.extend(Frame::Msg(PeerMsg::Touch(vec![1])).encode().unwrap());
            let _ = s.write_all(&b).await;
            let mut buf = [0u8; 64];
            let r = tokio::time::timeout(LIMIT, s.read(&mut buf))
                .await
                .expect("hang-up");
            assert!(matches!(r, Ok(0) | Err(_)), "expected a hang-up, got {r:?}");
        }
    }
    // Nothing of it reached Raft: same term, writes go on.
    assert_eq!(c.node(leader).h.term(), term);
    propose_all(&c.node(leader).p, 100..110).await;
    c.converge(leader).await;
    assert_eq!(c.node(leader).sm.get().len(), applied + 10);
    c.shutdown().await;
}

/// A member with another secret never joins: the group of the others goes on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_secret_is_kept_out() {
    let good = QuorumSecret::new(b"the ensemble secret 123").expect("secret");
    let mut c = Cluster::start_secret(&[1, 2, 3], good).await;
    let leader = c.leader().await;
    let out = c.follower(leader);
    c.stop(out).await;
    c.secret = Some(QuorumSecret::new(b"an impostor's own secret").expect("secret"));
    c.restart(out).await;
    c.secret = Some(QuorumSecret::new(b"the ensemble secret 123").expect("secret"));
    propose_all(&c.node(leader).p, 0..10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        c.node(out).sm.get().is_empty(),
        "the impostor received entries"
    );
    c.shutdown().await;
}

/// Without a quorum secret, raft messages that a correct peer never sends are dropped before
/// raft-rs sees them: a heartbeat whose commit is past the log (raft-rs panics on it), a
/// proposal with an entry that is not a txn (every replica would stop applying it), an append
/// response claiming entries the leader does not have. The ensemble keeps its term and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_raft_messages_never_reach_raft_rs() {
    let c = Cluster::start(&[1, 2, 3], &[], 100_000).await;
    let leader = c.leader().await;
    propose_all(&c.node(leader).p, 0..5).await;
    let term = c.node(leader).h.term();
    let forge = |ty: MessageType, from: u64, to: u64| {
        let mut m = Message::default();
        m.set_msg_type(ty);
        m.from = from;
        m.to = to;
        m.term = term;
        m
    };
    for (id, addr) in &c.addrs {
        let from = if *id == 1 { 2 } else { 1 };
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut b = Frame::Hello { from, to: *id }.encode().unwrap();
        let mut hb = forge(MessageType::MsgHeartbeat, from, *id);
        hb.term = term + 1000;
        hb.commit = 1_000_000_000;
        let mut prop = forge(MessageType::MsgPropose, from, *id);
        prop.entries = vec![raft::prelude::Entry {
            data: b"not a txn".to_vec().into(),
            ..Default::default()
        }]
        .into();
        let mut resp = forge(MessageType::MsgAppendResponse, from, *id);
        resp.index = 1_000_000_000;
        for m in [hb, prop, resp] {
            b.extend(Frame::Msg(PeerMsg::Raft(m)).encode().unwrap());
        }
        s.write_all(&b).await.expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(s);
    }
    assert_eq!(c.leader().await, leader);
    assert_eq!(c.node(leader).h.term(), term);
    propose_all(&c.node(leader).p, 5..10).await;
    c.converge(leader).await;
    for m in c.nodes.values() {
        assert!(m.h.status().running, "a node stopped");
        assert_eq!(m.sm.get().len(), 10);
    }
    c.shutdown().await;
}

/// Connects to `addr`, writes `bytes`, and expects the peer to hang up.
async fn send_garbage(addr: &str, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .expect("the node hangs up in time");
    assert!(matches!(r, Ok(0) | Err(_)), "expected a hang-up, got {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_quorum_port_does_not_disturb_the_ensemble() {
    let c = Cluster::start(&[1, 2, 3], &[], 100_000).await;
    let leader = c.leader().await;
    let term = c.node(leader).h.term();
    for (id, addr) in &c.addrs {
        let hello = |from: u64| Frame::Hello { from, to: *id }.encode().expect("hello");
        // Random bytes (a length far beyond the limit).
        send_garbage(addr, b"\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n").await;
        // A bad version, then an unknown frame type.
        send_garbage(addr, &[0, 0, 0, 2, 9, 1]).await;
        // A hello from a stranger, and a hello for another node.
        send_garbage(addr, &hello(99)).await;
        let wrong = Frame::Hello { from: 1, to: 42 }.encode().expect("hello");
        send_garbage(addr, &wrong).await;
        // A good hello, then an unknown type, then a raft frame that is not protobuf.
        let from = if *id == 1 { 2 } else { 1 };
        let mut b = hello(from);
        b.extend_from_slice(&[0, 0, 0, 2, 1, 77]);
        send_garbage(addr, &b).await;
        let mut b = hello(from);
        b.extend_from_slice(&[0, 0, 0, 6, 1, 2, 0xff, 0xff, 0xff, 0xff]);
        send_garbage(addr, &b).await;
        // A forward whose txn does not decode is dropped by the leader (and the sender
        // keeps its connection: nothing was wrong with the frame itself).
        let mut b = hello(from);
        let fwd = Frame::Msg(super::PeerMsg::Forward(super::Forward {
            origin: from,
            incarnation: 1,
            seq: 0,
            txn: vec![0xde, 0xad],
        }))
        .encode()
        .expect("forward");
        b.extend_from_slice(&fwd);
        let mut s = TcpStream::connect(addr.as_str()).await.expect("connect");
        s.write_all(&b).await.expect("write");
        drop(s);
    }
    // Still one leader, same term, writes work from every node.
    for (i, id) in [1u64, 2, 3].iter().enumerate() {
        let base = 10 * i as i64;
        propose_all(&c.node(*id).p, base..base + 10).await;
    }
    assert_eq!(c.leader().await, leader);
    assert_eq!(c.node(leader).h.term(), term);
    c.converge(leader).await;
    assert_eq!(c.node(leader).sm.get().len(), 30);
    for m in c.nodes.values() {
        assert!(m.h.status().running);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_replicates_but_is_not_part_of_the_quorum() {
    let mut c = Cluster::start(&[1, 2], &[3], 100_000).await;
    let leader = c.leader().await;
    assert_ne!(leader, 3);
    let s3 = c.node(3).h.status();
    assert_eq!(s3.role, RaftRole::Learner);
    assert_eq!(
        (s3.voters.clone(), s3.learners.clone()),
        (vec![1, 2], vec![3])
    );
    assert_eq!(s3.quorum_size(), 2);
    propose_all(&c.node(leader).p, 0..10).await;
    // Writes on the learner are forwarded too.
    propose_all(&c.node(3).p, 10..20).await;
    c.converge(leader).await;
    wait_status(&c.node(leader).h, |s| {
        s.synced_followers == 1 && s.synced_learners == 1
    })
    .await;

    // Without the other voter there is no quorum, learner or not.
    let other = c.follower(leader);
    c.stop(other).await;
    let rx = c.node(leader).p.propose(txn(99)).expect("accepting");
    let r = tokio::time::timeout(Duration::from_secs(2), rx).await;
    assert!(!matches!(r, Ok(Ok(_))), "committed without a quorum: {r:?}");
    // Check-quorum: the leader steps down; the learner never campaigns.
    wait_status(&c.node(leader).h, |s| !s.is_leader).await;
    assert!(!c.node(3).h.is_leader());
    assert!(!c
        .node(3)
        .sm
        .get()
        .iter()
        .any(|(_, t)| *t == txn(99).to_bytes()));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_proposals_and_barriers_give_up() {
    let mut c = Cluster::start(&[1, 2, 3], &[], 100_000).await;
    let leader = c.leader().await;
    let f = c.follower(leader);
    propose_all(&c.node(f).p, 0..5).await;
    let others: Vec<u64> = c.nodes.keys().copied().filter(|&id| id != f).collect();
    for id in others {
        c.stop(id).await;
    }
    wait_status(&c.node(f).h, |s| !s.serving).await;
    let hold = c.opts(f).hold_timeout();
    let started = Instant::now();
    let rx = c.node(f).p.propose(txn(99)).expect("accepting");
    let r = tokio::time::timeout(LIMIT, rx)
        .await
        .expect("given up in time");
    assert!(r.is_err(), "no leader: the proposal's done is dropped");
    let barrier = tokio::time::timeout(LIMIT, c.node(f).h.read_barrier())
        .await
        .expect("given up in time");
    assert!(barrier.is_err());
    let took = started.elapsed();
    assert!(took >= hold, "held for the hold timeout ({took:?})");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_raft_starts_the_peer_network_from_the_options() {
    // Free ports: bound, noted, released (spawn_raft binds them again).
    let mut addrs = vec![];
    for id in 1..=3u64 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        addrs.push((id, l.local_addr().expect("addr").to_string()));
    }
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut nodes = vec![];
    for id in 1..=3u64 {
        let mut o = RaftOptions::standalone(dirs[id as usize - 1].path());
        o.id = id;
        o.voters = vec![1, 2, 3];
        o.peers = addrs.clone();
        o.tick = Duration::from_millis(25);
        o.heartbeat_ticks = 2;
        o.force_sync = false;
        let sm = Recorder::default();
        let sm2 = sm.clone();
        let (p, h) = tokio::time::timeout(
            LIMIT,
            tokio::task::spawn_blocking(move || super::spawn_raft(sm2, o)),
        )
        .await
        .expect("in time")
        .expect("thread")
        .expect("spawn_raft");
        nodes.push((sm, p, h));
    }
    let deadline = Instant::now() + LIMIT;
    while !nodes.iter().any(|(_, _, h)| h.is_leader()) {
        assert!(Instant::now() < deadline, "no leader in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (_, p, _) in &nodes {
        propose_all(p, 0..3).await;
    }
    for (sm, p, h) in nodes {
        let mut w = h.watch();
        tokio::time::timeout(LIMIT, w.wait_for(|s| s.applied_index >= 10))
            .await
            .expect("replicated in time")
            .expect("alive");
        assert_eq!(sm.get().len(), 9);
        drop(p);
        h.shutdown();
        tokio::time::timeout(LIMIT, h.stopped())
            .await
            .expect("stops");
    }
}
