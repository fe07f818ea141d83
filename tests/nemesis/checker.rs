//! A linearizability checker for histories of znode registers: Wing and Gong's search with
//! Lowe's memoisation (the algorithm Porcupine and Knossos use), run on each key on its own
//! (a history is linearizable iff each key's sub-history is, as registers are independent).
//!
//! The model of one key is a ZooKeeper znode: whether it exists, its data and its version:
//!
//! - `Read` (getData, after a `sync` on the same session or with linearizable reads): sees
//!   the value and version the register holds, or NoNode.
//! - `Write` (setData with version -1): the value is replaced, the version goes up by one;
//!   when acknowledged, the Stat it returns carries the new version. NoNode when absent.
//! - `Cas` (setData with an expected version): when the version matches, as Write; else
//!   ZooKeeper answers BadVersion and nothing changes. NoNode when absent.
//! - `Create` (a persistent node with data): when absent, the node exists with that data at
//!   version 0 (the Stat says so); NodeExists when it exists.
//! - `Delete` (version -1): when it exists, it is gone; NoNode when absent.
//!
//! An operation whose outcome is unknown (ConnectionLoss, a timeout, a session gone) may have
//! taken effect at any time after its invocation, or never: it has no completion, so it may
//! be linearized anywhere after its call, and putting it after every other operation is the
//! same as it never happening. Reads with an unknown outcome tell nothing and are left out by
//! the harness.
//!
//! The search: operations are placed one at a time; an operation may go next when no other
//! unplaced operation completed before it was invoked. A configuration (set of placed
//! operations, register state) already explored is not explored again (Lowe's cache). The
//! history is linearizable once every operation with a known outcome is placed. Histories
//! with many concurrent unknown outcomes can make the search exponential: it gives up after
//! a budget of configurations and says so (`Verdict::GaveUp`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What the register holds: whether the znode exists, its data (the harness writes
/// distinct numbers) and its version. An absent znode is always [`ABSENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    pub exists: bool,
    pub value: u64,
    pub version: i32,
}

/// A znode that does not exist (never created, or deleted).
pub const ABSENT: Reg = Reg {
    exists: false,
    value: 0,
    version: 0,
};

impl Reg {
    /// An existing znode holding `value` at `version`.
    pub fn at(value: u64, version: i32) -> Reg {
        Reg {
            exists: true,
            value,
            version,
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exists {
            write!(f, "{}@v{}", self.value, self.version)
        } else {
            write!(f, "absent")
        }
    }
}

/// What a client asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    Write { value: u64 },
    Cas { expect: i32, value: u64 },
    Create { value: u64 },
    Delete,
}

/// What it was told. `Unknown` only for operations that change the znode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A read's answer (an existing znode).
    Read(Reg),
    /// A write, compare-and-set or create that took effect; the version its Stat carried.
    Written { version: i32 },
    /// A delete that took effect.
    Deleted,
    /// A compare-and-set refused with BadVersion.
    BadVersion,
    /// The znode does not exist (read, write, compare-and-set, delete).
    NoNode,
    /// A create of a znode that exists.
    NodeExists,
    /// Connection lost, timed out: it may or may not have taken effect.
    Unknown,
}

/// One operation of the history. Times are in any unit, from any origin, the same for every
/// operation (the harness uses microseconds since the run started).
#[derive(Clone, Debug)]
pub struct Op {
    pub client: usize,
    pub key: usize,
    pub call: Call,
    pub outcome: Outcome,
    pub invoked: u64,
    /// None when the outcome is unknown.
    pub completed: Option<u64>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match self.call {
            Call::Read => "read".to_string(),
            Call::Write { value } => format!("write {value}"),
            Call::Cas { expect, value } => format!("cas v{expect} -> {value}"),
            Call::Create { value } => format!("create {value}"),
            Call::Delete => "delete".to_string(),
        };
        let outcome = match self.outcome {
            Outcome::Read(r) => format!("saw {r}"),
            Outcome::Written { version } => format!("ok, now v{version}"),
            Outcome::Deleted => "ok, deleted".to_string(),
            Outcome::BadVersion => "BadVersion".to_string(),
            Outcome::NoNode => "NoNode".to_string(),
            Outcome::NodeExists => "NodeExists".to_string(),
            Outcome::Unknown => "unknown outcome".to_string(),
        };
        let done = self
            .completed
            .map_or("open".to_string(), |t| format!("{:.3}", t as f64 / 1e6));
        write!(
            f,
            "client {} key {}: {call} -> {outcome} [{:.3} s, {done} s]",
            self.client,
            self.key,
            self.invoked as f64 / 1e6,
        )
    }
}

/// The state `op` leaves `reg` in when it takes effect there (None: it cannot). `written`
/// is the value a write or create puts in: its own, or [`UNSEEN`] for one no read saw.
/// An operation of unknown outcome is only placed where it changes something (one that
/// would fail changes nothing, so placing it is never needed).
fn step(reg: Reg, op: &Op, written: u64) -> Option<Reg> {
    let set = Reg::at(written, reg.version + 1);
    let (exists, absent) = (reg.exists.then_some(reg), (!reg.exists).then_some(reg));
    match (op.call, op.outcome) {
        (Call::Read, Outcome::Read(seen)) => (seen == reg).then_some(reg),
        (_, Outcome::NoNode) if !matches!(op.call, Call::Create { .. }) => absent,
        (Call::Write { .. }, Outcome::Written { version }) => {
            exists.filter(|r| version == r.version + 1).map(|_| set)
        }
        (Call::Write { .. }, Outcome::Unknown) => exists.map(|_| set),
        (Call::Cas { expect, .. }, Outcome::Written { version }) => exists
            .filter(|r| expect == r.version && version == expect + 1)
            .map(|_| set),
        (Call::Cas { expect, .. }, Outcome::BadVersion) => exists.filter(|r| expect != r.version),
        (Call::Cas { expect, .. }, Outcome::Unknown) => {
            exists.filter(|r| expect == r.version).map(|_| set)
        }
        (Call::Create { .. }, Outcome::Written { version: 0 } | Outcome::Unknown) => {
            absent.map(|_| Reg::at(written, 0))
        }
        (Call::Create { .. }, Outcome::NodeExists) => exists,
        (Call::Delete, Outcome::Deleted | Outcome::Unknown) => exists.map(|_| ABSENT),
        _ => None,
    }
}

/// The value of a register last written by an operation of unknown outcome whose value no
/// read saw: such writes differ only in the value they leave, which nothing can observe, so
/// they are interchangeable (the harness never writes this value).
pub const UNSEEN: u64 = u64::MAX;

/// The lowest version the register must still be at or below for `op` (known outcome) to
/// be placed later: versions never go down while the znode is never deleted (the search
/// uses this only for keys without creates and deletes).
fn version_needed(op: &Op) -> Option<i32> {
    match (op.call, op.outcome) {
        (Call::Create { .. }, _) => None,
        (_, Outcome::Read(seen)) => Some(seen.version),
        (_, Outcome::Written { version }) => Some(version - 1),
        _ => None,
    }
}

/// The checker's answer for one key.
#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    /// No order exists. The longest order found placed `placed` operations (with a known
    /// outcome) and left the register in `state`; `stuck` is the first operation (by
    /// completion) it could not place next.
    NotLinearizable {
        stuck: Op,
        placed: usize,
        state: Reg,
        /// The other unplaced operations invoked before `stuck` completed: the candidates
        /// that could not go next either.
        around: Vec<Op>,
        /// The unplaced operation that needs the lowest version.
        oldest: Option<Op>,
    },
    /// The budget of explored configurations ran out.
    GaveUp {
        explored: usize,
    },
}

/// How many configurations one key may explore before the checker gives up.
pub const BUDGET: usize = 2_000_000;

/// Checks one key's operations from `init`.
pub fn check_key(init: Reg, ops: &[Op]) -> Verdict {
    check_key_with_budget(init, ops, BUDGET)
}

pub fn check_key_with_budget(init: Reg, ops: &[Op], budget: usize) -> Verdict {
    let mut ops: Vec<Op> = ops.to_vec();
    ops.sort_by_key(|o| o.invoked);
    let n = ops.len();
    let must: usize = ops.iter().filter(|o| o.completed.is_some()).count();
    let words = n.div_ceil(64).max(1);
    let is_set = |b: &[u64], i: usize| b[i / 64] & (1 << (i % 64)) != 0;

    // Writes of unknown outcome whose value no read saw leave UNSEEN, and those with the
    // same call shape are interchangeable: only the earliest-invoked unplaced one of each
    // shape is tried (any order placing a later one could place the earlier one there
    // instead), `twin[i]` being the one before `i`.
    let seen_values: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.outcome {
            Outcome::Read(r) => Some(r.value),
            _ => None,
        })
        .collect();
    // Versions go back to 0 when a znode is created again: no pruning by version then.
    let prune = !ops
        .iter()
        .any(|o| matches!(o.call, Call::Create { .. } | Call::Delete));
    let mut written = vec![0; n];
    let mut twin = vec![None; n];
    // Shapes: (0, _) write, (1, expected version) compare-and-set, (2, _) create, (3, _)
    // delete (its "value" is nothing a read sees).
    let mut last_of_shape: BTreeMap<(u8, i32), usize> = BTreeMap::new();
    for (i, o) in ops.iter().enumerate() {
        let (value, shape) = match o.call {
            Call::Read => continue,
            Call::Write { value } => (value, (0, 0)),
            Call::Cas { expect, value } => (value, (1, expect)),
            Call::Create { value } => (value, (2, 0)),
            Call::Delete => (UNSEEN, (3, 0)),
        };
        written[i] = value;
        if o.outcome == Outcome::Unknown && !seen_values.contains(&value) {
            written[i] = UNSEEN;
            twin[i] = last_of_shape.insert(shape, i);
        }
    }

    // Depth-first, one frame per placed operation: (placed set, state, placed count of
    // known outcomes, next candidate index to try).
    struct Frame {
        placed: Vec<u64>,
        reg: Reg,
        known: usize,
        next: usize,
    }
    let mut seen: HashSet<(Vec<u64>, Reg)> = HashSet::new();
    let mut stack = vec![Frame {
        placed: vec![0; words],
        reg: init,
        known: 0,
        next: 0,
    }];
    seen.insert((stack[0].placed.clone(), init));
    // The deepest configurations reached, for the report.
    let mut best_known = 0;
    let mut best: (Vec<u64>, Reg) = (vec![0; words], init);

    while !stack.is_empty() {
        let top = stack.last_mut().expect("not empty");
        if top.known == must {
            return Verdict::Linearizable;
        }
        if seen.len() > budget {
            return Verdict::GaveUp {
                explored: seen.len(),
            };
        }
        // The earliest completion among unplaced operations bounds the candidates: one
        // invoked after it cannot go before that operation. And a register already past
        // the version an unplaced operation needs is a dead end.
        let mut horizon = u64::MAX;
        let mut needed = i32::MAX;
        for i in (0..n).filter(|&i| !is_set(&top.placed, i)) {
            if let Some(done) = ops[i].completed {
                horizon = horizon.min(done);
                if prune {
                    needed = needed.min(version_needed(&ops[i]).unwrap_or(i32::MAX));
                }
            }
        }
        if top.reg.version > needed {
            stack.pop();
            continue;
        }
        // The deepest configuration that is not a dead end yet, for the report.
        if top.known > best_known {
            best_known = top.known;
            best = (top.placed.clone(), top.reg);
        }
        let mut pushed = None;
        while top.next < n {
            let i = top.next;
            top.next += 1;
            if ops[i].invoked > horizon {
                top.next = n;
                break;
            }
            if is_set(&top.placed, i) || twin[i].is_some_and(|t| !is_set(&top.placed, t)) {
                continue;
            }
            let Some(reg) = step(top.reg, &ops[i], written[i]) else {
                continue;
            };
            let mut placed = top.placed.clone();
            placed[i / 64] |= 1 << (i % 64);
            if !seen.insert((placed.clone(), reg)) {
                continue;
            }
            let known = top.known + usize::from(ops[i].completed.is_some());
            pushed = Some(Frame {
                placed,
                reg,
                known,
                next: 0,
            });
            break;
        }
        match pushed {
            Some(frame) => {
                stack.push(frame);
            }
            None => {
                stack.pop();
            }
        }
    }

    // Not linearizable: report the first unplaced known operation of a deepest order.
    let (placed, reg) = &best;
    let stuck = (0..n)
        .filter(|&i| !is_set(placed, i) && ops[i].completed.is_some())
        .min_by_key(|&i| ops[i].completed)
        .map(|i| ops[i].clone())
        .expect("a failed search leaves a known operation unplaced");
    let end = stuck.completed.unwrap_or(u64::MAX);
    let around = (0..n)
        .filter(|&i| !is_set(placed, i) && ops[i].invoked <= end)
        .map(|i| ops[i].clone())
        .filter(|o| o.invoked != stuck.invoked || o.call != stuck.call)
        .collect();
    // Versions never go down: the unplaced operation that needs the lowest one is often
    // the culprit (a stale read first, or a lost write's successor).
    let oldest = (0..n)
        .filter(|&i| !is_set(placed, i))
        .filter_map(|i| version_needed(&ops[i]).map(|v| (v, ops[i].call != Call::Read, i)))
        .min()
        .map(|(_, _, i)| ops[i].clone());
    Verdict::NotLinearizable {
        stuck,
        placed: best_known,
        state: *reg,
        around,
        oldest,
    }
}

/// Checks every key of `ops`, key `k` from `init(k)`; the verdicts by key.
pub fn check(init: impl Fn(usize) -> Reg, ops: &[Op]) -> BTreeMap<usize, Verdict> {
    let mut by_key: BTreeMap<usize, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key).or_default().push(op.clone());
    }
    by_key
        .into_iter()
        .map(|(k, ops)| (k, check_key(init(k), &ops)))
        .collect()
}

/// A report of `verdicts` for a human: one line per key, the details of a failure.
pub fn report(verdicts: &BTreeMap<usize, Verdict>) -> String {
    let mut out = String::new();
    for (key, v) in verdicts {
        match v {
            Verdict::Linearizable => out.push_str(&format!("key {key}: linearizable\n")),
            Verdict::GaveUp { explored } => out.push_str(&format!(
                "key {key}: gave up after {explored} configurations\n"
            )),
            Verdict::NotLinearizable {
                stuck,
                placed,
                state,
                around,
                oldest,
            } => {
                out.push_str(&format!(
                    "key {key}: NOT LINEARIZABLE: the longest order places {placed} operations \
                     and leaves {state}; then none can go next, the first to complete being\n    \
                     {stuck}\n  the other candidates:\n"
                ));
                for o in around.iter().take(12) {
                    out.push_str(&format!("    {o}\n"));
                }
                if let Some(o) = oldest {
                    out.push_str(&format!("  needing the lowest version:\n    {o}\n"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: Reg = Reg {
        exists: true,
        value: 0,
        version: 0,
    };

    fn reg(value: u64, version: i32) -> Reg {
        Reg::at(value, version)
    }

    /// An operation of client `client` on key 0 over [inv, done] (None: unknown outcome).
    fn op(client: usize, call: Call, outcome: Outcome, inv: u64, done: Option<u64>) -> Op {
        Op {
            client,
            key: 0,
            call,
            outcome,
            invoked: inv,
            completed: done,
        }
    }

    fn read(client: usize, seen: Reg, inv: u64, done: u64) -> Op {
        op(client, Call::Read, Outcome::Read(seen), inv, Some(done))
    }

    fn write(client: usize, value: u64, version: i32, inv: u64, done: u64) -> Op {
        let outcome = Outcome::Written { version };
        op(client, Call::Write { value }, outcome, inv, Some(done))
    }

    fn lost_write(client: usize, value: u64, inv: u64) -> Op {
        op(client, Call::Write { value }, Outcome::Unknown, inv, None)
    }

    fn cas(client: usize, expect: i32, value: u64, outcome: Outcome, inv: u64, done: u64) -> Op {
        op(
            client,
            Call::Cas { expect, value },
            outcome,
            inv,
            Some(done),
        )
    }

    fn ok(ops: &[Op]) -> bool {
        match check_key(INIT, ops) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable { .. } => false,
            Verdict::GaveUp { explored } => panic!("gave up after {explored}"),
        }
    }

    #[test]
    fn sequential_history_is_linearizable() {
        assert!(ok(&[
            write(0, 1, 1, 0, 10),
            read(1, reg(1, 1), 20, 30),
            cas(0, 1, 2, Outcome::Written { version: 2 }, 40, 50),
            cas(1, 1, 3, Outcome::BadVersion, 60, 70),
            read(1, reg(2, 2), 80, 90),
        ]));
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_not() {
        // The write completed before the read was invoked; the read saw the old value.
        assert!(!ok(&[write(0, 1, 1, 0, 10), read(1, INIT, 20, 30)]));
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either() {
        assert!(ok(&[write(0, 1, 1, 0, 30), read(1, INIT, 10, 20)]));
        assert!(ok(&[write(0, 1, 1, 0, 30), read(1, reg(1, 1), 10, 20)]));
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // Two sequential reads during a long write: new then old is impossible.
        assert!(!ok(&[
            write(0, 1, 1, 0, 100),
            read(1, reg(1, 1), 10, 20),
            read(2, INIT, 30, 40),
        ]));
        assert!(ok(&[
            write(0, 1, 1, 0, 100),
            read(1, INIT, 10, 20),
            read(2, reg(1, 1), 30, 40),
        ]));
    }

    #[test]
    fn a_value_nobody_wrote_is_not() {
        assert!(!ok(&[read(0, reg(7, 1), 0, 10)]));
    }

    #[test]
    fn versions_count_every_write() {
        // Two acknowledged writes cannot both have made version 1.
        assert!(!ok(&[write(0, 1, 1, 0, 10), write(1, 2, 1, 20, 30)]));
        // Concurrent, they take versions 1 and 2 in either order.
        assert!(ok(&[write(0, 1, 2, 0, 30), write(1, 2, 1, 5, 25)]));
    }

    #[test]
    fn two_compare_and_sets_on_one_version_cannot_both_win() {
        let won = Outcome::Written { version: 1 };
        assert!(!ok(&[cas(0, 0, 1, won, 0, 30), cas(1, 0, 2, won, 5, 25)]));
        assert!(ok(&[
            cas(0, 0, 1, won, 0, 30),
            cas(1, 0, 2, Outcome::BadVersion, 5, 25),
        ]));
        // BadVersion when nothing could have changed the version is wrong.
        assert!(!ok(&[cas(1, 0, 2, Outcome::BadVersion, 5, 25)]));
    }

    #[test]
    fn a_lost_write_may_have_happened_late_or_never() {
        // Seen by a read long after the client gave up: it took effect late.
        assert!(ok(&[
            lost_write(0, 1, 0),
            read(1, INIT, 100, 110),
            read(1, reg(1, 1), 200, 210),
        ]));
        // Never seen, and the next write got version 1: it never happened.
        assert!(ok(&[lost_write(0, 1, 0), write(1, 2, 1, 100, 110)]));
        // Or it happened before: version 2.
        assert!(ok(&[lost_write(0, 1, 0), write(1, 2, 2, 100, 110)]));
        // But not before it was invoked.
        assert!(!ok(&[read(1, reg(1, 1), 0, 10), lost_write(0, 1, 20)]));
        // And once seen, it cannot be unseen.
        assert!(!ok(&[
            lost_write(0, 1, 0),
            read(1, reg(1, 1), 100, 110),
            read(1, INIT, 200, 210),
        ]));
    }

    #[test]
    fn an_acknowledged_write_that_vanished_is_caught() {
        // What acknowledging before commit looks like: the write is acknowledged, a later
        // write (on the next leader) takes its version, reads never see it.
        assert!(!ok(&[
            write(0, 1, 1, 0, 10),
            write(1, 2, 1, 20, 30),
            read(2, reg(2, 1), 40, 50),
        ]));
    }

    #[test]
    fn many_concurrent_clients_are_checked_quickly() {
        // 8 clients, 300 rounds of concurrent write + read with overlapping intervals.
        let mut ops = vec![];
        let mut version = 0;
        let mut value = 0;
        for round in 0..300u64 {
            let t = round * 100;
            for c in 0..4usize {
                version += 1;
                value = round * 10 + c as u64 + 1;
                ops.push(write(c, value, version, t, t + 90));
            }
            ops.push(read(4, reg(value, version), t + 95, t + 99));
            ops.push(lost_write(5, 1_000_000 + round, t + 1));
        }
        // The lost writes never happened (the versions say so) and the check still ends.
        assert!(ok(&ops));
    }

    fn create(client: usize, value: u64, outcome: Outcome, inv: u64, done: u64) -> Op {
        op(client, Call::Create { value }, outcome, inv, Some(done))
    }

    fn delete(client: usize, outcome: Outcome, inv: u64, done: u64) -> Op {
        op(client, Call::Delete, outcome, inv, Some(done))
    }

    fn no_node(client: usize, call: Call, inv: u64, done: u64) -> Op {
        op(client, call, Outcome::NoNode, inv, Some(done))
    }

    fn ok_from(init: Reg, ops: &[Op]) -> bool {
        match check_key(init, ops) {
            Verdict::Linearizable => true,
            Verdict::NotLinearizable { .. } => false,
            Verdict::GaveUp { explored } => panic!("gave up after {explored}"),
        }
    }

    const CREATED: Outcome = Outcome::Written { version: 0 };

    #[test]
    fn a_znode_comes_and_goes() {
        assert!(ok_from(
            ABSENT,
            &[
                no_node(0, Call::Read, 0, 10),
                no_node(0, Call::Write { value: 9 }, 11, 19),
                create(0, 1, CREATED, 20, 30),
                create(1, 2, Outcome::NodeExists, 40, 50),
                write(1, 3, 1, 60, 70),
                read(2, reg(3, 1), 80, 90),
                delete(0, Outcome::Deleted, 100, 110),
                delete(1, Outcome::NoNode, 120, 130),
                no_node(2, Call::Read, 140, 150),
                // Created again: the version starts from 0 again.
                create(1, 4, CREATED, 160, 170),
                write(2, 5, 1, 180, 190),
                read(0, reg(5, 1), 200, 210),
            ]
        ));
    }

    #[test]
    fn wrong_existence_answers_are_caught() {
        // NodeExists for a znode nobody created.
        assert!(!ok_from(
            ABSENT,
            &[create(0, 1, Outcome::NodeExists, 0, 10)]
        ));
        // Two creates acknowledged with no delete between them.
        assert!(!ok_from(
            ABSENT,
            &[create(0, 1, CREATED, 0, 10), create(1, 2, CREATED, 20, 30)]
        ));
        // A read after an acknowledged delete still sees the znode.
        assert!(!ok_from(
            ABSENT,
            &[
                create(0, 1, CREATED, 0, 10),
                delete(1, Outcome::Deleted, 20, 30),
                read(2, reg(1, 0), 40, 50),
            ]
        ));
        // NoNode after an acknowledged create, with no delete.
        assert!(!ok_from(
            ABSENT,
            &[create(0, 1, CREATED, 0, 10), no_node(1, Call::Read, 20, 30)]
        ));
        // A created znode whose version did not start from 0 again.
        assert!(!ok_from(
            ABSENT,
            &[
                create(0, 1, CREATED, 0, 10),
                write(0, 2, 1, 20, 30),
                delete(0, Outcome::Deleted, 40, 50),
                create(0, 3, CREATED, 60, 70),
                write(0, 4, 2, 80, 90),
            ]
        ));
    }

    #[test]
    fn a_delete_or_create_of_unknown_outcome_may_take_effect_late_or_never() {
        let lost_delete = op(0, Call::Delete, Outcome::Unknown, 0, None);
        let lost_create = op(1, Call::Create { value: 7 }, Outcome::Unknown, 0, None);
        // The delete happened after a read that still saw the znode.
        assert!(ok_from(
            reg(1, 0),
            &[
                lost_delete.clone(),
                read(2, reg(1, 0), 10, 20),
                no_node(2, Call::Read, 30, 40)
            ]
        ));
        // Or never.
        assert!(ok_from(
            reg(1, 0),
            &[lost_delete.clone(), read(2, reg(1, 0), 50, 60)]
        ));
        // A create seen late.
        assert!(ok_from(
            ABSENT,
            &[
                lost_create.clone(),
                no_node(2, Call::Read, 10, 20),
                read(2, reg(7, 0), 30, 40)
            ]
        ));
        // It explains a NodeExists after the znode was seen absent, but only if it was
        // invoked before that answer.
        let after_nothing = |lost: Op| {
            ok_from(
                ABSENT,
                &[
                    no_node(2, Call::Read, 10, 20),
                    create(2, 8, Outcome::NodeExists, 30, 40),
                    read(2, reg(7, 0), 50, 60),
                    lost,
                ],
            )
        };
        assert!(after_nothing(lost_create.clone()));
        let mut too_late = lost_create;
        too_late.invoked = 45;
        assert!(!after_nothing(too_late));
    }

    #[test]
    fn keys_are_checked_apart_and_reported() {
        let mut a = write(0, 1, 1, 0, 10);
        a.key = 1;
        let mut b = read(1, INIT, 20, 30);
        b.key = 2;
        let mut stale = read(1, INIT, 20, 30);
        stale.key = 1;
        let verdicts = check(|_| INIT, &[a, b, stale]);
        assert!(matches!(verdicts[&2], Verdict::Linearizable));
        assert!(matches!(verdicts[&1], Verdict::NotLinearizable { .. }));
        let text = report(&verdicts);
        assert!(text.contains("key 1: NOT LINEARIZABLE"), "{text}");
        assert!(text.contains("read -> saw 0@v0"), "{text}");
    }
}
