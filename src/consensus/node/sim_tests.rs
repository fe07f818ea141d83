//! Consensus scenarios on the simulated ensemble (`sim`): elections, forwarding, failover,
//! partitions, read barriers, restart and snapshot catch-up, in logical time. (What only
//! TCP shows stays in `cluster_tests` and tests/cluster.rs.)

use tokio::sync::oneshot;

use super::sim::Sim;
use crate::tree::Applied;

/// raft-rs's election timeout is randomised in [10, 20) ticks with the sim's options.
const ELECTION_TICKS: u64 = 10;

fn elect(sim: &mut Sim) -> u64 {
    sim.tick_until(4 * ELECTION_TICKS, |s| s.leader().is_some());
    sim.leader().expect("a leader")
}

fn answered(rx: &mut oneshot::Receiver<Applied>) -> Option<Applied> {
    rx.try_recv().ok()
}

/// Every running node applied the same entries, at the same zxids.
fn assert_replicas_agree(sim: &Sim) {
    let ids = sim.running();
    let first = sim.applied(ids[0]);
    for &id in &ids[1..] {
        assert_eq!(sim.applied(id), first, "node {id} against node {}", ids[0]);
    }
}

#[test]
fn three_nodes_elect_at_start_up_and_replicate_in_order() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let leader = elect(&mut sim);
    // The start-up campaign (tick 2 + 2 x rank) elects long before an election timeout.
    assert!(
        sim.ticks < ELECTION_TICKS,
        "elected after {} ticks",
        sim.ticks
    );
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    let mut rxs: Vec<_> = (0..20)
        .map(|i| sim.propose(if i % 2 == 0 { leader } else { follower }, i))
        .collect();
    sim.tick_until(10, |s| s.applied(1).len() == 20 && s.applied(3).len() == 20);
    let zxids: Vec<i64> = rxs
        .iter_mut()
        .map(|rx| answered(rx).expect("every proposal answered").zxid)
        .collect();
    assert!(zxids.windows(2).all(|w| w[0] != w[1]), "{zxids:?}");
    assert_replicas_agree(&sim);
}

#[test]
fn a_killed_leader_is_replaced_within_moments_not_an_election_timeout() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let old = elect(&mut sim);
    sim.tick_until(5, |s| s.status(old).synced_followers == 2);
    sim.kill(old);
    let took = sim.tick_until(4 * ELECTION_TICKS, |s| s.leader().is_some_and(|l| l != old));
    // leader_gone: rank 0 campaigns at once, rank 1 after 150 ms (2 ticks at most).
    assert!(took <= 3, "new leader after {took} ticks");
    let new = sim.leader().expect("leader");
    let mut rx = sim.propose(new, 7);
    sim.tick();
    assert!(
        answered(&mut rx).is_some(),
        "the new leader commits with two of three"
    );
}

#[test]
fn an_isolated_leader_steps_down_and_its_writes_never_apply() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let old = elect(&mut sim);
    let mut before = sim.propose(old, 1);
    sim.tick();
    assert!(answered(&mut before).is_some());
    sim.isolate(old);
    let mut lost = sim.propose(old, 2);
    // The majority elects another leader (after an election timeout: no connection closed).
    sim.tick_until(4 * ELECTION_TICKS, |s| {
        [1, 2, 3]
            .iter()
            .filter(|&&i| i != old)
            .all(|&i| s.status(i).leader_id != old && s.status(i).leader_id != 0)
    });
    // Check-quorum: the old leader no longer hears from a majority and steps down.
    sim.tick_until(3 * ELECTION_TICKS, |s| !s.status(old).is_leader);
    let new = sim.status(if old == 1 { 2 } else { 1 }).leader_id;
    let mut after = sim.propose(new, 3);
    sim.tick();
    assert!(answered(&mut after).is_some());
    sim.heal();
    sim.tick_until(4 * ELECTION_TICKS, |s| {
        s.applied(old).len() == s.applied(new).len() && s.leader() == Some(new)
    });
    assert!(
        answered(&mut lost).is_none(),
        "a write the minority took is never answered"
    );
    assert_replicas_agree(&sim);
    let bytes: Vec<Vec<u8>> = sim.applied(new).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        bytes.len(),
        2,
        "txn 2 went to the minority only and is gone: {bytes:?}"
    );
}

/// A new leader whose log holds entries it has not applied (here written under the old
/// leader, which never learned they reached a majority) is not `leader_ready` until it has
/// applied them: what reads its state for leader-only duties (session expiry, publishing
/// zoo.cfg's membership) would otherwise see a tree without them. Checked after every
/// event, since the whole election and first commit fit in one tick.
#[test]
fn a_new_leader_is_ready_only_once_it_applied_what_came_before_its_term() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let old = elect(&mut sim);
    sim.tick_until(5, |s| s.status(old).synced_followers == 2);
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != old).collect();
    let (heir, other) = (others[0], others[1]);
    // `heir` gets the entries but its answers are lost; `other` hears nothing of them.
    sim.cut(old, other);
    sim.cut_one_way(heir, old);
    const N: usize = 5;
    let _rxs: Vec<_> = (0..N as i64).map(|i| sim.propose(old, 100 + i)).collect();
    sim.tick();
    assert_eq!(sim.applied(heir).len(), 0, "nothing committed yet");
    sim.kill(old);
    let mut unready_leader = false;
    for _ in 0..6 * ELECTION_TICKS {
        if sim.status(heir).leader_ready {
            break;
        }
        sim.tick_observed(&mut |s| {
            for id in s.running() {
                let st = s.status(id);
                if st.leader_ready {
                    assert!(
                        s.applied(id).len() >= N,
                        "node {id} ready as leader with {} of {N} entries applied",
                        s.applied(id).len()
                    );
                } else if st.is_leader {
                    unready_leader = true;
                }
            }
        });
    }
    assert!(sim.status(heir).leader_ready, "{:?}", sim.status(heir));
    assert_eq!(sim.applied(heir).len(), N);
    // The check above saw a leader before it was ready (so it could have failed).
    assert!(unready_leader);
}

/// One-way cut from a follower to the leader: it still hears the leader (so raft-rs keeps
/// it following and never lets it campaign) but nothing it sends arrives. The leader marks
/// its heartbeats once it has not heard from it within an election timeout, and the
/// follower stops serving until the leader hears it again; nobody else is disturbed.
#[test]
fn a_follower_the_leader_cannot_hear_stops_serving_until_it_is_heard_again() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let leader = elect(&mut sim);
    sim.tick_until(5, |s| s.status(leader).synced_followers == 2);
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    let (mute, other) = (followers[0], followers[1]);
    let term = sim.status(leader).term;
    assert!(sim.status(mute).serving);
    sim.cut_one_way(mute, leader);
    let took = sim.tick_until(3 * ELECTION_TICKS, |s| !s.status(mute).serving);
    // Heard last at the cut; the first heartbeat more than an election timeout later.
    assert!(
        (ELECTION_TICKS..=ELECTION_TICKS + 2).contains(&took),
        "stopped serving after {took} ticks"
    );
    for _ in 0..4 * ELECTION_TICKS {
        sim.tick();
        let (m, o, l) = (sim.status(mute), sim.status(other), sim.status(leader));
        assert!(!m.serving && m.leader_id == leader, "{m:?}");
        assert!(
            o.serving && l.is_leader && l.synced_followers == 1,
            "{o:?} {l:?}"
        );
        assert_eq!((m.term, o.term, l.term), (term, term, term));
    }
    let mut rx = sim.propose(leader, 1);
    sim.tick();
    assert!(
        answered(&mut rx).is_some(),
        "the leader commits with the other"
    );
    sim.heal();
    let back = sim.tick_until(3, |s| s.status(mute).serving);
    sim.tick_until(5, |s| s.applied(mute).len() == s.applied(leader).len());
    assert!(back <= 2, "serving again {back} ticks after healing");
    assert_eq!(sim.status(mute).term, term);
    assert_replicas_agree(&sim);
}

#[test]
fn a_read_barrier_needs_the_leader_and_a_quorum() {
    let mut sim = Sim::new(&[1, 2, 3]);
    let leader = elect(&mut sim);
    let follower = [1, 2, 3]
        .into_iter()
        .find(|&i| i != leader)
        .expect("follower");
    let mut ok = sim.read_barrier(follower);
    sim.tick();
    assert_eq!(ok.try_recv(), Ok(()), "answered through the leader");
    sim.isolate(follower);
    let mut cut_off = sim.read_barrier(follower);
    // Asked again every half election timeout, given up after the hold timeout (2 x
    // election timeout): never answered meanwhile.
    for _ in 0..2 * ELECTION_TICKS {
        assert!(cut_off
            .try_recv()
            .is_err_and(|e| e == oneshot::error::TryRecvError::Empty));
        sim.tick();
    }
    for _ in 0..2 * ELECTION_TICKS {
        sim.tick();
    }
    sim.tick();
    assert_eq!(
        cut_off.try_recv(),
        Err(oneshot::error::TryRecvError::Closed),
        "dropped after the hold timeout"
    );
}

#[test]
fn a_restarted_follower_catches_up_from_the_log_or_a_snapshot() {
    for snap_count in [100_000, 8] {
        let mut sim = Sim::with(&[1, 2, 3], |o| o.snap_count = snap_count);
        let leader = elect(&mut sim);
        let follower = [1, 2, 3]
            .into_iter()
            .find(|&i| i != leader)
            .expect("follower");
        sim.kill(follower);
        for i in 0..40 {
            sim.propose(leader, i);
        }
        sim.tick_until(5, |s| s.applied(leader).len() == 40);
        sim.start(follower);
        sim.tick_until(4 * ELECTION_TICKS, |s| s.applied(follower).len() == 40);
        assert_replicas_agree(&sim);
        let installed = sim.status(follower).snapshots_installed;
        match snap_count {
            8 => assert!(
                installed >= 1,
                "the log was compacted: a snapshot is needed"
            ),
            _ => assert_eq!(installed, 0, "entries from the log"),
        }
    }
}

/// Random runs under a nemesis (partitions, kills, restarts) with proposals on every node,
/// checked as a linearizable log: replicas never disagree on an applied entry, every
/// acknowledged write is applied exactly once at the zxid it was acknowledged with, nothing
/// is applied twice, and a write acknowledged before another was proposed comes first.
#[test]
fn random_faults_never_break_the_log() {
    use rand::{Rng, SeedableRng};
    use std::collections::HashMap;

    for seed in 0..16u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let ids = [1u64, 2, 3, 4, 5];
        let snap_count = if seed % 2 == 0 { 16 } else { 100_000 };
        let mut sim = Sim::with(&ids, |o| o.snap_count = snap_count);
        let mut next = 0i64;
        // txn -> (tick proposed, receiver); acknowledged: txn -> (zxid, tick acknowledged).
        let mut waiting: HashMap<i64, (u64, oneshot::Receiver<Applied>)> = HashMap::new();
        let mut acked: HashMap<i64, (i64, u64)> = HashMap::new();
        let mut proposed_at: HashMap<i64, u64> = HashMap::new();
        for _ in 0..300 {
            match rng.gen_range(0..100) {
                // Cut off the leader (a minority that keeps taking writes until check-quorum
                // makes it step down), or any one node.
                0..=2 => match sim.leader() {
                    Some(l) if rng.gen_bool(0.7) => sim.isolate(l),
                    _ => sim.isolate(ids[rng.gen_range(0..5)]),
                },
                // Split into two and three.
                3 => {
                    let mut order = ids;
                    for i in (1..order.len()).rev() {
                        order.swap(i, rng.gen_range(0..=i));
                    }
                    for &a in &order[..2] {
                        for &b in &order[2..] {
                            sim.cut(a, b);
                        }
                    }
                }
                4 => {
                    let (a, b) = (ids[rng.gen_range(0..5)], ids[rng.gen_range(0..5)]);
                    if a != b {
                        sim.cut(a, b);
                    }
                }
                5..=8 => sim.heal(),
                9 => {
                    let victim = ids[rng.gen_range(0..5)];
                    if sim.running().contains(&victim) && sim.running().len() > 3 {
                        sim.kill(victim);
                    }
                }
                10..=12 => {
                    for id in ids {
                        if !sim.running().contains(&id) {
                            sim.start(id);
                            break;
                        }
                    }
                }
                _ => {
                    let running = sim.running();
                    let on = running[rng.gen_range(0..running.len())];
                    proposed_at.insert(next, sim.ticks);
                    waiting.insert(next, (sim.ticks, sim.propose(on, next)));
                    next += 1;
                }
            }
            sim.tick();
            collect(&mut waiting, &mut acked, sim.ticks);
        }
        // Heal everything; the ensemble must recover and agree.
        sim.heal();
        for id in ids {
            if !sim.running().contains(&id) {
                sim.start(id);
            }
        }
        let leader_probe = next;
        sim.tick_until(6 * ELECTION_TICKS, |s| s.leader().is_some());
        let leader = sim.leader().expect("leader");
        let mut last = sim.propose(leader, leader_probe);
        sim.tick_until(6 * ELECTION_TICKS, |s| {
            let n = s.applied(leader).len();
            s.running().iter().all(|&id| s.applied(id).len() == n)
        });
        assert!(
            answered(&mut last).is_some(),
            "seed {seed}: a write after healing"
        );
        collect(&mut waiting, &mut acked, sim.ticks);
        assert_replicas_agree(&sim);

        let log: Vec<(i64, i64)> = sim
            .applied(leader)
            .into_iter()
            .map(|(zxid, bytes)| match crate::tree::Txn::decode(&bytes) {
                Ok(crate::tree::Txn::CreateSession { session_id, .. }) => (session_id, zxid),
                other => panic!("seed {seed}: unexpected entry {other:?}"),
            })
            .collect();
        let mut seen = HashMap::new();
        for &(txn, zxid) in &log {
            assert!(
                seen.insert(txn, zxid).is_none(),
                "seed {seed}: txn {txn} applied twice"
            );
        }
        for (txn, (zxid, _)) in &acked {
            assert_eq!(
                seen.get(txn),
                Some(zxid),
                "seed {seed}: acknowledged txn {txn}"
            );
        }
        // Real-time order: acknowledged before the other was proposed => earlier in the log.
        for (a, (za, ack_tick)) in &acked {
            for (b, zb) in &seen {
                if proposed_at.get(b).is_some_and(|&p| p > *ack_tick) {
                    assert!(
                        za < zb,
                        "seed {seed}: txn {a} acknowledged before {b} was proposed"
                    );
                }
            }
        }
        assert!(
            acked.len() > 20,
            "seed {seed}: only {} writes acknowledged",
            acked.len()
        );
    }
}

/// Moves the answers that arrived from `waiting` to `acked`, stamped with the tick.
fn collect(
    waiting: &mut std::collections::HashMap<i64, (u64, oneshot::Receiver<Applied>)>,
    acked: &mut std::collections::HashMap<i64, (i64, u64)>,
    now: u64,
) {
    waiting.retain(|txn, (_, rx)| match rx.try_recv() {
        Ok(a) => {
            acked.insert(*txn, (a.zxid, now));
            false
        }
        Err(oneshot::error::TryRecvError::Empty) => true,
        Err(oneshot::error::TryRecvError::Closed) => false,
    });
}
