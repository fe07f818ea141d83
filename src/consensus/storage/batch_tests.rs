//! The log as batches (one sled value per persisted batch of entries): reads across batch
//! boundaries, a tail overwrite inside a batch, compaction of batches straddling the log
//! start, and the conversion of the per-entry layout, each checked against a plain model
//! of the log in the open store and after reopening it (whose reads go to sled, not to the
//! in-memory copies of recent entries).

use std::path::Path;
use std::time::{Duration, Instant};

use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};

use super::codec::{entry_key, pb, seal, seal_entry, start_bytes, KEY_HARD_STATE, KEY_LOG_START};
use super::{log_db_dir, wait_unlocked, SledStorage};

fn open(dir: &Path) -> SledStorage {
    let (s, report) = SledStorage::open(dir, dir, false, &[1]).expect("open");
    assert_eq!(report.truncated_at, None, "{report:?}");
    s
}

fn close(s: SledStorage, dir: &Path) {
    drop(s);
    assert!(wait_unlocked(&log_db_dir(dir), Duration::from_secs(10)));
}

/// Entry `index` of `term` with `len` bytes of data that depend on both.
fn entry(index: u64, term: u64, len: usize) -> Entry {
    Entry {
        index,
        term,
        data: (0..len)
            .map(|i| (index as usize * 31 + term as usize * 7 + i) as u8)
            .collect::<Vec<u8>>()
            .into(),
        ..Default::default()
    }
}

/// xorshift64: the same sequence every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The log as it should read: the entries after `start`, in order.
struct Model {
    start: (u64, u64),
    entries: Vec<Entry>,
}

impl Model {
    fn last(&self) -> u64 {
        self.start.0 + self.entries.len() as u64
    }
    fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.start.1, |e| e.term)
    }
}

/// Everything `s` answers equals the model: every entry and term, ranges across batch
/// boundaries, a size-limited read, and the bytes of the stored batches.
fn check(s: &SledStorage, m: &Model, rng: &mut Rng, what: &str) {
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(s.log_start(), m.start, "{what}");
    assert_eq!(s.last_index().expect("last"), m.last(), "{what}");
    let first = m.start.0 + 1;
    if m.last() >= first {
        let all = s.entries(first, m.last() + 1, None, ctx()).expect(what);
        assert!(all == m.entries, "{what}: all entries differ");
    }
    for _ in 0..20 {
        let low = first + rng.below(m.entries.len() as u64 + 1);
        let high = low + rng.below(m.last() + 2 - low);
        if high <= low {
            continue;
        }
        let want = &m.entries[(low - first) as usize..(high - first) as usize];
        let got = s.entries(low, high, None, ctx()).expect(what);
        assert!(got == want, "{what}: entries [{low}, {high}) differ");
        let one = s.entries(low, high, Some(1), ctx()).expect(what);
        assert!(
            one == want[..1],
            "{what}: size-limited read of [{low}, {high})"
        );
    }
    for i in m.start.0..=m.last() {
        let want = match i - m.start.0 {
            0 => m.start.1,
            n => m.entries[n as usize - 1].term,
        };
        assert_eq!(s.term(i).expect(what), want, "{what}: term of {i}");
    }
    assert!(s.term(m.last() + 1).is_err(), "{what}");
    assert!(
        s.entries(first, m.last() + 2, None, ctx()).is_err(),
        "{what}"
    );
    // Once the cleaner is done: `log_bytes` is what the stored batches hold, every stored
    // batch holds something above the log start, and they are contiguous.
    let stored = || -> u64 { s.stored_batches().iter().map(|b| b.2 as u64).sum() };
    let cleaned = || {
        s.stored_batches()
            .first()
            .is_none_or(|b| b.0 + b.1 > m.start.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while (s.log_bytes() != stored() || !cleaned()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(s.log_bytes(), stored(), "{what}: log_bytes");
    let batches = s.stored_batches();
    for (b, next) in batches.iter().zip(batches.iter().skip(1)) {
        assert_eq!(b.0 + b.1, next.0, "{what}: batches {batches:?}");
    }
    if let Some(b) = batches.first() {
        assert!(
            b.0 + b.1 > m.start.0,
            "{what}: a compacted batch stays: {batches:?}"
        );
    }
}

/// Random appends (of one to a few batch values each), tail overwrites from inside a batch
/// and compactions that straddle batches, the store reopened after each step.
#[test]
fn batches_read_back_as_a_model_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut m = Model {
        start: (0, 0),
        entries: Vec::new(),
    };
    let mut term = 1;
    let mut s = open(dir.path());
    for step in 0..60 {
        let what = match rng.below(6) {
            0..=2 => {
                // Append; sizes up to 3 KiB, so one persist may fill several values.
                let n = 1 + rng.below(24);
                let from = m.last() + 1;
                let es: Vec<Entry> = (from..from + n)
                    .map(|i| entry(i, term, rng.below(3000) as usize))
                    .collect();
                s.persist(&es, None, true).expect("append");
                m.entries.extend(es);
                format!("step {step}: append {n} from {from}")
            }
            3 if m.last() > m.start.0 + 1 => {
                // A new leader overwrites the tail from j (inside a batch or at one's start).
                term += 1;
                let j = m.start.0 + 1 + rng.below(m.last() - m.start.0);
                let n = 1 + rng.below(8);
                let es: Vec<Entry> = (j..j + n)
                    .map(|i| entry(i, term, rng.below(200) as usize))
                    .collect();
                let hs = HardState {
                    term,
                    ..Default::default()
                };
                s.persist(&es, Some(&hs), true).expect("overwrite");
                m.entries.truncate((j - m.start.0 - 1) as usize);
                m.entries.extend(es);
                format!("step {step}: overwrite from {j} with {n} of term {term}")
            }
            4 if m.last() > m.start.0 => {
                let to = m.start.0 + 1 + rng.below(m.last() - m.start.0);
                s.compact(to).expect("compact");
                let gone = (to - m.start.0) as usize;
                let t = m.entries[gone - 1].term;
                m.entries.drain(..gone);
                m.start = (to, t);
                format!("step {step}: compact to {to}")
            }
            _ => {
                close(s, dir.path());
                s = open(dir.path());
                format!("step {step}: reopen")
            }
        };
        check(&s, &m, &mut rng, &what);
        // The store as sled holds it: reopened, nothing in memory.
        let hs = HardState {
            term,
            commit: m.start.0,
            ..Default::default()
        };
        s.persist(&[], Some(&hs), true).expect("flush");
        close(s, dir.path());
        s = open(dir.path());
        assert_eq!(s.last_index_cached(), m.last());
        check(&s, &m, &mut rng, &format!("{what}, reopened"));
        assert_eq!(m.last_term(), s.term(m.last()).expect("last term"));
    }
}

/// A tail overwrite from inside a batch keeps the batch's entries before it, and nothing
/// after it survives (in memory or after reopening).
#[test]
fn a_tail_overwrite_inside_a_batch_keeps_the_entries_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let old: Vec<Entry> = (1..=10).map(|i| entry(i, 1, 10)).collect();
    s.persist(&old, None, true).expect("persist");
    let new: Vec<Entry> = (6..=8).map(|i| entry(i, 2, 20)).collect();
    let hs = HardState {
        term: 2,
        ..Default::default()
    };
    s.persist(&new, Some(&hs), true).expect("overwrite");
    let mut want = old[..5].to_vec();
    want.extend(new.iter().cloned());
    let ctx = || GetEntriesContext::empty(false);
    for round in ["open", "reopened"] {
        assert_eq!(s.last_index().expect("last"), 8, "{round}");
        let got = s.entries(1, 9, None, ctx()).expect("entries");
        assert!(got == want, "{round}: {got:?}");
        assert_eq!(s.term(5).expect("term"), 1, "{round}");
        assert_eq!(s.term(6).expect("term"), 2, "{round}");
        assert!(s.term(9).is_err(), "{round}");
        let batches: Vec<(u64, u64)> = s.stored_batches().iter().map(|b| (b.0, b.1)).collect();
        assert_eq!(batches, [(1, 5), (6, 3)], "{round}");
        close(s, dir.path());
        s = open(dir.path());
    }
}

/// Compaction removes whole batches: one straddling the new start stays (its entries above
/// the start readable), and goes once a later compaction passes its end.
#[test]
fn compaction_keeps_a_batch_straddling_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let es: Vec<Entry> = (1..=12).map(|i| entry(i, 1, 10)).collect();
    for part in [&es[..4], &es[4..8], &es[8..]] {
        s.persist(part, None, true).expect("persist");
    }
    s.compact(6).expect("compact");
    let ctx = || GetEntriesContext::empty(false);
    let wait_batches = |s: &SledStorage, want: &[u64]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let firsts = || s.stored_batches().iter().map(|b| b.0).collect::<Vec<_>>();
        while firsts() != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(firsts(), want);
    };
    wait_batches(&s, &[5, 9]);
    let hs = HardState {
        term: 1,
        commit: 12,
        ..Default::default()
    };
    s.persist(&[], Some(&hs), true).expect("flush");
    close(s, dir.path());
    let mut s = open(dir.path());
    assert_eq!(
        s.stored_batches().iter().map(|b| b.0).collect::<Vec<_>>(),
        [5, 9]
    );
    assert_eq!(s.entries(7, 13, None, ctx()).expect("entries"), es[6..]);
    assert_eq!(s.term(6).expect("start term"), 1);
    assert!(s.entries(6, 8, None, ctx()).is_err(), "below the start");
    s.compact(8).expect("compact");
    wait_batches(&s, &[9]);
    assert_eq!(s.entries(9, 13, None, ctx()).expect("entries"), es[8..]);
}

/// Writes a log in the layout before batches (one key per entry in the `entries` tree,
/// value `crc | term | pb`): `entries` with the given log start, committed through the
/// last; then `mangle` edits the sled db before it is closed.
fn write_per_entry_layout(
    dir: &Path,
    entries: &[Entry],
    start: (u64, u64),
    mangle: impl FnOnce(&sled::Db),
) {
    close(open(dir), dir);
    {
        let db = sled::open(log_db_dir(dir)).expect("sled");
        let old = db.open_tree("entries").expect("entries");
        for e in entries {
            old.insert(entry_key(e.index), seal_entry(e).expect("seal"))
                .expect("insert");
        }
        let meta = db.open_tree("meta").expect("meta");
        let hs = HardState {
            term: entries.last().map_or(1, |e| e.term),
            commit: entries.last().map_or(0, |e| e.index),
            ..Default::default()
        };
        meta.insert(KEY_HARD_STATE, seal(KEY_HARD_STATE, &pb(&hs).expect("pb")))
            .expect("hard state");
        meta.insert(KEY_LOG_START, seal(KEY_LOG_START, &start_bytes(start)))
            .expect("log start");
        mangle(&db);
        db.flush().expect("flush");
    }
    assert!(wait_unlocked(&log_db_dir(dir), Duration::from_secs(10)));
}

fn tree_names(dir: &Path) -> Vec<String> {
    let db = sled::open(log_db_dir(dir)).expect("sled");
    let names = db
        .tree_names()
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    drop(db);
    assert!(wait_unlocked(&log_db_dir(dir), Duration::from_secs(10)));
    names
}

/// A log of the per-entry layout opens with every entry, as batches, its old tree gone;
/// also when a conversion cut short by a crash left batches behind (the old tree still
/// whole), and the entries at or below its log start (left by a compaction) go.
#[test]
fn the_per_entry_layout_converts_to_batches() {
    // Enough bytes for several batch values.
    let es: Vec<Entry> = (1..=300)
        .map(|i| entry(i, 1 + i / 100, 20 + (i as usize * 13) % 200))
        .collect();
    let ctx = || GetEntriesContext::empty(false);
    type Mangle<'a> = Box<dyn FnOnce(&sled::Db) + 'a>;
    let cases: [(&str, Mangle); 2] = [
        ("whole", Box::new(|_| {})),
        (
            "after a crash mid-conversion",
            Box::new(|db: &sled::Db| {
                // A prefix of a conversion, and a stray batch past the end.
                let b = db.open_tree("batches").expect("batches");
                let mut v = Vec::new();
                for e in &es[60..63] {
                    super::codec::push_record(&mut v, e).expect("record");
                }
                b.insert(entry_key(61), v.clone()).expect("insert");
                b.insert(entry_key(400), v).expect("insert");
            }),
        ),
    ];
    for (case, mangle) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        write_per_entry_layout(dir.path(), &es, (50, 1), mangle);
        assert!(tree_names(dir.path()).contains(&"entries".to_string()));
        let mut s = open(dir.path());
        for round in ["converted", "reopened"] {
            assert_eq!(s.log_start(), (50, 1), "{case} {round}");
            assert_eq!(s.last_index_cached(), 300, "{case} {round}");
            let got = s.entries(51, 301, None, ctx()).expect("entries");
            assert!(got == es[50..], "{case} {round}: entries differ");
            assert_eq!(s.term(300).expect("term"), 4, "{case} {round}");
            let batches = s.stored_batches();
            assert!(batches.len() > 1, "{case}: {batches:?}");
            assert!(batches[0].0 + batches[0].1 > 50, "{case}: {batches:?}");
            let stored: u64 = batches.iter().map(|b| b.2 as u64).sum();
            assert_eq!(s.log_bytes(), stored, "{case} {round}");
            close(s, dir.path());
            assert!(
                !tree_names(dir.path()).contains(&"entries".to_string()),
                "{case}: the old tree is dropped"
            );
            s = open(dir.path());
        }
    }
}

/// A corrupt entry in a per-entry log is cut at as before the conversion: the last one is
/// a torn tail (one entry dropped), one in the middle drops everything from it on.
#[test]
fn a_corrupt_per_entry_log_is_cut_where_it_was() {
    let es: Vec<Entry> = (1..=300).map(|i| entry(i, 1, 100)).collect();
    for (bad, dropped) in [(300u64, 1u64), (200, 101)] {
        let dir = tempfile::tempdir().expect("tempdir");
        write_per_entry_layout(dir.path(), &es, (0, 0), |db| {
            let old = db.open_tree("entries").expect("entries");
            let mut v = old
                .get(entry_key(bad))
                .expect("get")
                .expect("entry")
                .to_vec();
            *v.last_mut().expect("byte") ^= 1;
            old.insert(entry_key(bad), v).expect("insert");
        });
        let (s, report) = SledStorage::open(dir.path(), dir.path(), false, &[1]).expect("open");
        assert_eq!(report.truncated_at, Some(bad), "entry {bad}");
        assert_eq!(report.dropped, dropped, "entry {bad}");
        assert_eq!(s.last_index_cached(), bad - 1);
        let got = s.read_entries(1, bad).expect("entries");
        assert!(got == es[..bad as usize - 1]);
        close(s, dir.path());
        let s = open(dir.path());
        assert_eq!(s.last_index_cached(), bad - 1);
    }
}
