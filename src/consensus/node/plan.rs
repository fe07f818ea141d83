//! The membership decision, as a pure function: given the group as the leader sees it and
//! the membership the configuration asks for, the one step to take next. The node carries
//! the step out (`membership::reconcile`: one Raft conf change at a time, or a leadership
//! transfer) and asks again on the next tick.
//!
//! The order of the steps keeps the quorum safe while servers come and go:
//! 1. promote learners the configuration lists as voters, once caught up;
//! 2. add servers that are not members, as learners (they catch up before they count);
//! 3. demote voters the configuration lists as observers;
//! 4. remove members the configuration does not list;
//! 5. if the configuration drops this leader from the voters, hand leadership to the most
//!    caught-up voter, which then removes it (raft-rs would keep a removed leader leading).
//!
//! Nothing is planned while a conf change is in flight or the leader has not committed in
//! its term (`Group::busy`).

use std::collections::BTreeMap;

/// The group as the leader sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    /// The leader (this node).
    pub me: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The other members' replication progress.
    pub peers: BTreeMap<u64, Peer>,
    /// The leader's last log index.
    pub last_index: u64,
    /// A conf change is in flight (proposed and not applied, or a joint configuration), or
    /// the leader has not committed in its term yet.
    pub busy: bool,
    /// A leadership transfer is under way.
    pub transferring: bool,
}

/// One member's progress as the leader tracks it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Log entries known to match the leader's.
    pub matched: u64,
    /// Connected, replicating and close to the leader's last index (`status::caught_up`).
    pub caught_up: bool,
}

/// One conf change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Learner to voter (raft-rs AddNode).
    Promote,
    /// A new member, as learner (AddLearnerNode).
    AddLearner,
    /// Voter to learner (AddLearnerNode on a voter).
    Demote,
    /// Out of the group (RemoveNode).
    Remove,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Propose this conf change; `why` is logged.
    Change {
        change: Change,
        id: u64,
        why: String,
    },
    /// Hand leadership to `to` (this leader leaves the voters).
    TransferLeader { to: u64 },
    /// Something is in flight: wait.
    Wait,
    /// Nothing to change now; what is still pending, for the log.
    Idle { notes: Vec<String> },
}

/// The next step from `group` towards `voters` and `learners` (the wanted membership).
pub(crate) fn plan(group: &Group, voters: &[u64], learners: &[u64]) -> Step {
    if group.busy {
        return Step::Wait;
    }
    let me = group.me;
    let is_voter = |id: &u64| group.voters.contains(id);
    let is_learner = |id: &u64| group.learners.contains(id);
    let peer = |id: u64| group.peers.get(&id).copied().unwrap_or_default();
    let last = group.last_index;
    let change = |change, id, why: String| Step::Change { change, id, why };
    let mut notes = vec![];
    // 1. Promote learners that the configuration lists as participants, once caught up.
    for &id in voters.iter().filter(|id| is_learner(id)) {
        let p = peer(id);
        if p.caught_up {
            return change(
                Change::Promote,
                id,
                format!(
                    "promoting server {id} to voter (caught up: matched {} of {last})",
                    p.matched
                ),
            );
        }
        notes.push(format!(
            "server {id} is a learner catching up (matched {} of {last})",
            p.matched
        ));
    }
    // 2. Add servers the configuration lists that are not members, as learners.
    if let Some(&id) = voters
        .iter()
        .chain(learners)
        .find(|id| !is_voter(id) && !is_learner(id))
    {
        return change(
            Change::AddLearner,
            id,
            format!("adding server {id} as learner"),
        );
    }
    // 3. Demote voters that the configuration lists as observers.
    if let Some(&id) = learners.iter().find(|id| is_voter(id) && **id != me) {
        return change(
            Change::Demote,
            id,
            format!("demoting server {id} to learner (an observer in the configuration)"),
        );
    }
    // 4. Remove members the configuration does not list.
    if let Some(&id) = group
        .learners
        .iter()
        .chain(&group.voters)
        .find(|id| **id != me && !voters.contains(id) && !learners.contains(id))
    {
        return change(
            Change::Remove,
            id,
            format!("removing server {id} (not in the configuration)"),
        );
    }
    // 5. Leave: the configuration no longer lists this leader as a voter.
    if !voters.contains(&me) && !voters.is_empty() {
        let to = voters
            .iter()
            .copied()
            .filter(|&id| is_voter(&id) && peer(id).caught_up)
            .max_by_key(|&id| peer(id).matched);
        match to {
            Some(to) if !group.transferring => return Step::TransferLeader { to },
            Some(_) => return Step::Wait,
            None => notes.push(format!(
                "this server ({me}) leaves the voters once another voter is caught up"
            )),
        }
    }
    Step::Idle { notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group led by `me`, from a compact description of each member other than the
    /// leader: `"2v+"` = server 2, voter, caught up; `"4l-:30"` = server 4, learner, not
    /// caught up, matched 30. Caught-up members have matched 100 unless told.
    fn group(me: u64, members: &[&str]) -> Group {
        let mut g = Group {
            me,
            voters: vec![me],
            last_index: 100,
            ..Default::default()
        };
        for m in members {
            let (head, matched) = match m.split_once(':') {
                Some((h, n)) => (h, n.parse().expect("matched")),
                None => (*m, if m.ends_with('+') { 100 } else { 0 }),
            };
            let id: u64 = head[..head.len() - 2].parse().expect("id");
            let kind = &head[head.len() - 2..head.len() - 1];
            let caught_up = head.ends_with('+');
            match kind {
                "v" => g.voters.push(id),
                "l" => g.learners.push(id),
                other => panic!("kind {other}"),
            }
            g.peers.insert(id, Peer { matched, caught_up });
        }
        g.voters.sort_unstable();
        g
    }

    fn step(change: Change, id: u64) -> (Change, u64) {
        (change, id)
    }

    /// What the leader sees, wanted voters, wanted learners, the step (None: nothing).
    type Case = (
        &'static str,
        Group,
        Vec<u64>,
        Vec<u64>,
        Option<(Change, u64)>,
    );
    /// Voters and learners before, voters and learners wanted.
    type Move = (
        &'static [u64],
        &'static [u64],
        &'static [u64],
        &'static [u64],
    );

    /// Every rule, as (what the leader sees, wanted voters, wanted learners, the step).
    #[test]
    fn one_step_at_a_time_in_the_safe_order() {
        use Change::*;
        let cases: Vec<Case> = vec![
            (
                "in step",
                group(1, &["2v+", "3v+"]),
                vec![1, 2, 3],
                vec![],
                None,
            ),
            (
                "a new server joins as learner first",
                group(1, &["2v+", "3v+"]),
                vec![1, 2, 3, 4],
                vec![],
                Some(step(AddLearner, 4)),
            ),
            (
                "a caught-up learner is promoted",
                group(1, &["2v+", "3v+", "4l+"]),
                vec![1, 2, 3, 4],
                vec![],
                Some(step(Promote, 4)),
            ),
            (
                "promotion comes before adding the next server",
                group(1, &["2v+", "3v+", "4l+"]),
                vec![1, 2, 3, 4, 5],
                vec![],
                Some(step(Promote, 4)),
            ),
            (
                "a learner catching up does not hold back adding another",
                group(1, &["2v+", "3v+", "4l-:30"]),
                vec![1, 2, 3, 4, 5],
                vec![],
                Some(step(AddLearner, 5)),
            ),
            (
                "observers are added as learners and stay so",
                group(1, &["2v+", "3v+"]),
                vec![1, 2, 3],
                vec![6],
                Some(step(AddLearner, 6)),
            ),
            (
                "a voter listed as observer is demoted",
                group(1, &["2v+", "3v+", "4v+"]),
                vec![1, 2, 3],
                vec![4],
                Some(step(Demote, 4)),
            ),
            (
                "adding comes before demoting",
                group(1, &["2v+", "3v+", "4v+"]),
                vec![1, 2, 3, 5],
                vec![4],
                Some(step(AddLearner, 5)),
            ),
            (
                "a member not listed is removed, learners first",
                group(1, &["2v+", "3v+", "4v+", "5l+"]),
                vec![1, 2, 3],
                vec![],
                Some(step(Remove, 5)),
            ),
            (
                "then voters",
                group(1, &["2v+", "3v+", "4v+"]),
                vec![1, 2, 3],
                vec![],
                Some(step(Remove, 4)),
            ),
            (
                "demoting comes before removing",
                group(1, &["2v+", "3v+", "4v+", "5v+"]),
                vec![1, 2, 3],
                vec![4],
                Some(step(Demote, 4)),
            ),
        ];
        for (what, g, voters, learners, want) in cases {
            let got = match plan(&g, &voters, &learners) {
                Step::Change { change, id, .. } => Some((change, id)),
                Step::Idle { .. } => None,
                other => panic!("{what}: {other:?}"),
            };
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn a_learner_not_caught_up_waits_and_says_so() {
        let g = group(1, &["2v+", "3v+", "4l-:30"]);
        let Step::Idle { notes } = plan(&g, &[1, 2, 3, 4], &[]) else {
            panic!("no step expected");
        };
        assert_eq!(
            notes,
            ["server 4 is a learner catching up (matched 30 of 100)"]
        );
    }

    #[test]
    fn nothing_while_a_change_is_in_flight() {
        let mut g = group(1, &["2v+", "3v+"]);
        g.busy = true;
        assert_eq!(plan(&g, &[1, 2, 3, 4], &[]), Step::Wait);
    }

    #[test]
    fn a_leader_leaving_hands_over_to_the_most_caught_up_voter() {
        let g = group(1, &["2v+:90", "3v+:99", "4v-:100"]);
        // 4 has the most but is not caught up (not heard from lately): 3 gets it.
        assert_eq!(plan(&g, &[2, 3, 4], &[]), Step::TransferLeader { to: 3 });
    }

    #[test]
    fn a_leader_listed_as_observer_hands_over_instead_of_demoting_itself() {
        let g = group(1, &["2v+:100", "3v+:99"]);
        assert_eq!(plan(&g, &[2, 3], &[1]), Step::TransferLeader { to: 2 });
    }

    #[test]
    fn a_leader_leaving_waits_for_its_transfer() {
        let mut g = group(1, &["2v+", "3v+"]);
        g.transferring = true;
        assert_eq!(plan(&g, &[2, 3], &[]), Step::Wait);
    }

    #[test]
    fn a_leader_leaving_with_nobody_caught_up_stays_and_says_so() {
        let g = group(1, &["2v-", "3v-"]);
        let Step::Idle { notes } = plan(&g, &[2, 3], &[]) else {
            panic!("no step expected");
        };
        assert_eq!(
            notes,
            ["this server (1) leaves the voters once another voter is caught up"]
        );
    }

    #[test]
    fn a_leader_leaving_first_brings_in_its_successors() {
        // 1 -> {4,5,6}: add 4 first; 1 only hands over once a successor is a caught-up voter.
        let g = group(1, &["2v+", "3v+"]);
        assert!(matches!(
            plan(&g, &[4, 5, 6], &[]),
            Step::Change {
                change: Change::AddLearner,
                id: 4,
                ..
            }
        ));
        let g = group(1, &["2v+", "3v+", "4v+", "5v+", "6v+"]);
        assert!(matches!(
            plan(&g, &[4, 5, 6], &[]),
            Step::Change {
                change: Change::Remove,
                id: 2,
                ..
            }
        ));
        let g = group(1, &["4v+:97", "5v+:99", "6v+:98"]);
        assert_eq!(plan(&g, &[4, 5, 6], &[]), Step::TransferLeader { to: 5 });
    }

    /// Carrying out each planned step on a model of the group (every member caught up at
    /// once) ends at the wanted membership in a bounded number of steps, adding voters
    /// before removing any.
    #[test]
    fn following_the_plan_reaches_the_configuration() {
        let table: &[Move] = &[
            (&[1, 2, 3], &[], &[1, 2, 3, 4, 5], &[]),
            (&[1, 2, 3, 4, 5], &[], &[1, 2, 3], &[]),
            (&[1, 2, 3], &[], &[1, 2, 3], &[4, 5]),
            (&[1, 2, 3, 4, 5], &[], &[1, 2, 3], &[4, 5]),
            (&[1, 2, 3], &[4], &[1, 3, 4], &[2]),
            (&[1, 2, 3], &[], &[1, 4, 5], &[]),
            (&[1], &[], &[1, 2, 3], &[]),
        ];
        for &(v0, l0, v1, l1) in table {
            let mut g = Group {
                me: 1,
                voters: v0.to_vec(),
                learners: l0.to_vec(),
                last_index: 100,
                ..Default::default()
            };
            let mut steps = 0;
            loop {
                for &id in g.voters.iter().chain(&g.learners) {
                    if id != 1 {
                        g.peers.insert(
                            id,
                            Peer {
                                matched: 100,
                                caught_up: true,
                            },
                        );
                    }
                }
                match plan(&g, v1, l1) {
                    Step::Idle { .. } => break,
                    Step::Change { change, id, .. } => {
                        g.voters.retain(|&v| v != id);
                        g.learners.retain(|&v| v != id);
                        match change {
                            Change::Promote => g.voters.push(id),
                            Change::AddLearner | Change::Demote => g.learners.push(id),
                            Change::Remove => {
                                g.peers.remove(&id);
                            }
                        }
                        g.voters.sort_unstable();
                        g.learners.sort_unstable();
                    }
                    other => panic!("{v0:?} -> {v1:?}: unexpected {other:?}"),
                }
                // Servers come in before others go: never fewer voters than either end has.
                assert!(g.voters.len() >= v0.len().min(v1.len()), "{v0:?} -> {v1:?}");
                steps += 1;
                assert!(
                    steps <= 2 * (v0.len() + v1.len() + l1.len()),
                    "{v0:?} -> {v1:?}"
                );
            }
            assert_eq!(
                (g.voters.as_slice(), g.learners.as_slice()),
                (v1, l1),
                "{v0:?} -> {v1:?}"
            );
        }
    }
}
