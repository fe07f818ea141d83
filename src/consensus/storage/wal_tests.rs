//! The log as segment files (64 KiB segments in unit tests): reads across segment
//! boundaries, a tail overwrite inside a segment and across segments, compaction of
//! segments straddling the log start, and the conversion of the sled layouts before
//! (per-entry keys, batch values), each checked against a plain model of the log in the
//! open store and after reopening it (whose reads go to the files, not to the in-memory
//! copies of recent entries).

use std::path::Path;
use std::time::{Duration, Instant};

use raft::prelude::{Entry, HardState};
use raft::{GetEntriesContext, Storage};

use super::codec::{entry_key, pb, seal, seal_entry, start_bytes, KEY_HARD_STATE, KEY_LOG_START};
use super::wal::{data_end, HEADER};
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

use crate::testing::Rng;

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

/// Everything `s` answers equals the model: every entry and term, ranges across segment
/// boundaries, a size-limited read, and the bytes of the stored segments.
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
        // A limit of a few entries' worth: a prefix, within the limit (past the first
        // entry), and cut only where the next entry's record would pass it.
        let max = rng.below(2_000) + 1;
        let got = s.entries(low, high, Some(max), ctx()).expect(what);
        let k = got.len();
        assert!(
            k >= 1 && got == want[..k],
            "{what}: [{low}, {high}) max {max}"
        );
        let pb: u64 = got
            .iter()
            .map(|e| protobuf::Message::compute_size(e) as u64)
            .sum();
        assert!(
            k == 1 || pb <= max,
            "{what}: {k} entries, {pb} bytes over {max}"
        );
        let records: u64 = want[..(k + 1).min(want.len())]
            .iter()
            .map(|e| seal_entry(e).expect("seal").len() as u64 + 4)
            .sum();
        assert!(
            k == want.len() || records > max,
            "{what}: [{low}, {high}) max {max} cut after {k} entries, {records} bytes with the next"
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
    // `log_bytes` is what the segments hold; they are contiguous, and once reopened every
    // one but the newest holds something above the log start (a segment the log start
    // passed while it was the newest goes with the next compaction or open).
    let segs = s.stored_segments();
    let stored: u64 = segs.iter().map(|g| g.2 - HEADER).sum();
    assert_eq!(s.log_bytes(), stored, "{what}: log_bytes");
    for (g, next) in segs.iter().zip(segs.iter().skip(1)) {
        assert_eq!(g.0 + g.1, next.0, "{what}: segments {segs:?}");
        if what.ends_with("reopened") {
            assert!(
                g.0 + g.1 > m.start.0 + 1,
                "{what}: a compacted segment stays: {segs:?}"
            );
        }
    }
}

/// Random appends (up to ~70 KiB each, so that segments fill and roll), tail overwrites
/// from inside a segment or from an earlier one, and compactions that straddle segments,
/// the store reopened after each step.
#[test]
fn segments_read_back_as_a_model_log() {
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
                // Append; sizes up to 3 KiB.
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
                // A new leader overwrites the tail from j (inside a segment, at one's start, or
                // in an earlier one).
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
        // The store as the files hold it: reopened, nothing in memory.
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

/// A store holding entries 1..=n of 30 KB of term 1, one persist each: segments of three
/// (unit tests roll at 64 KiB), [1, 3], [4, 6], ...
fn segmented(dir: &Path, n: u64) -> (SledStorage, Vec<Entry>) {
    let mut s = open(dir);
    let es: Vec<Entry> = (1..=n).map(|i| entry(i, 1, 30_000)).collect();
    for e in &es {
        s.persist(std::slice::from_ref(e), None, true)
            .expect("persist");
    }
    (s, es)
}

/// A tail overwrite from inside a segment keeps the segment's entries before it, removes
/// the later segments, and nothing after it survives (in memory or after reopening).
#[test]
fn a_tail_overwrite_inside_a_segment_keeps_the_entries_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, old) = segmented(dir.path(), 10);
    let firsts = |s: &SledStorage| s.stored_segments().iter().map(|g| g.0).collect::<Vec<_>>();
    assert_eq!(firsts(&s), [1, 4, 7, 10]);
    let new: Vec<Entry> = (5..=6).map(|i| entry(i, 2, 20)).collect();
    let hs = HardState {
        term: 2,
        ..Default::default()
    };
    s.persist(&new, Some(&hs), true).expect("overwrite");
    let mut want = old[..4].to_vec();
    want.extend(new.iter().cloned());
    let ctx = || GetEntriesContext::empty(false);
    for round in ["open", "reopened"] {
        assert_eq!(s.last_index().expect("last"), 6, "{round}");
        let got = s.entries(1, 7, None, ctx()).expect("entries");
        assert!(got == want, "{round}: {got:?}");
        assert_eq!(s.term(4).expect("term"), 1, "{round}");
        assert_eq!(s.term(5).expect("term"), 2, "{round}");
        assert!(s.term(7).is_err(), "{round}");
        let segs: Vec<(u64, u64)> = s.stored_segments().iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(segs, [(1, 3), (4, 3)], "{round}");
        assert_eq!(
            segment_files(dir.path()),
            [1, 4],
            "{round}: the later segments' files are gone"
        );
        close(s, dir.path());
        s = open(dir.path());
    }
}

/// The segment files in the log's directory, by first index (not the next one being
/// prepared).
fn segment_files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(log_db_dir(dir).join("wal"))
        .expect("wal dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name();
            let name = name.to_string_lossy().into_owned();
            let first = name.strip_suffix(".wal")?;
            Some(first.parse().expect("segment name"))
        })
        .collect();
    v.sort_unstable();
    v
}

/// Compaction removes whole segments, off the caller's thread: one straddling the new start
/// stays (its entries above the start readable), and goes once a later compaction passes
/// its end.
#[test]
fn compaction_keeps_a_segment_straddling_the_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, es) = segmented(dir.path(), 12);
    let before = s.log_bytes();
    s.compact(5).expect("compact");
    let ctx = || GetEntriesContext::empty(false);
    let wait_files = |want: &[u64]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while segment_files(dir.path()) != want && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(segment_files(dir.path()), want);
    };
    assert!(
        s.log_bytes() < before,
        "the removed segment no longer counts"
    );
    wait_files(&[4, 7, 10]);
    let hs = HardState {
        term: 1,
        commit: 12,
        ..Default::default()
    };
    s.persist(&[], Some(&hs), true).expect("flush");
    close(s, dir.path());
    let mut s = open(dir.path());
    assert_eq!(
        s.stored_segments().iter().map(|g| g.0).collect::<Vec<_>>(),
        [4, 7, 10]
    );
    assert_eq!(s.entries(6, 13, None, ctx()).expect("entries"), es[5..]);
    assert_eq!(s.term(5).expect("start term"), 1);
    assert!(s.entries(5, 8, None, ctx()).is_err(), "below the start");
    s.compact(8).expect("compact");
    wait_files(&[7, 10]);
    assert_eq!(s.entries(9, 13, None, ctx()).expect("entries"), es[8..]);
}

/// A segment wholly below the log start that a compaction had not removed yet (the process
/// stopped first) goes at open unread: a torn record in it cuts nothing.
#[test]
fn a_stale_segment_is_removed_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, es) = segmented(dir.path(), 12);
    let wal = log_db_dir(dir.path()).join("wal");
    let stale = wal.join(format!("{:020}.wal", 1));
    let mut bytes = std::fs::read(&stale).expect("read");
    bytes.truncate(data_end(&bytes));
    s.compact(7).expect("compact");
    let deadline = Instant::now() + Duration::from_secs(10);
    while segment_files(dir.path()) != [7, 10] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(segment_files(dir.path()), [7, 10]);
    close(s, dir.path());
    // Back as if never removed, cut short inside its second record.
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&stale, bytes).expect("write");
    let s = open(dir.path());
    assert_eq!(s.last_index_cached(), 12);
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(s.entries(8, 13, None, ctx()).expect("entries"), es[7..]);
    assert_eq!(segment_files(dir.path()), [7, 10]);
}

/// A snapshot install that stopped after moving the log start but before clearing the old
/// segments: at open the old entries after the snapshot, of an older term, go, reported as
/// such (`stale_tail`), not as damage.
#[test]
fn an_interrupted_snapshot_install_leaves_no_damage_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = segmented(dir.path(), 12);
    let wal = log_db_dir(dir.path()).join("wal");
    let old: Vec<(std::path::PathBuf, Vec<u8>)> = std::fs::read_dir(&wal)
        .expect("wal dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    let meta = raft::prelude::SnapshotMetadata {
        index: 5,
        term: 2,
        conf_state: Some(raft::prelude::ConfState {
            voters: vec![1],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    s.install_snapshot(&meta).expect("install");
    close(s, dir.path());
    for (p, b) in &old {
        std::fs::write(p, b).expect("put back");
    }
    let (s, report) = SledStorage::open(dir.path(), dir.path(), false, &[1]).expect("open");
    assert_eq!(report.truncated_at, Some(6), "{report:?}");
    assert!(report.stale_tail, "{report:?}");
    assert_eq!(s.log_start(), (5, 2));
    assert_eq!(s.last_index_cached(), 5);
    close(s, dir.path());
    // A real bad record right after the start is still damage.
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, _) = segmented(dir.path(), 12);
    close(s, dir.path());
    let path = log_db_dir(dir.path())
        .join("wal")
        .join(format!("{:020}.wal", 1));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[HEADER as usize + 40] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    let (_, report) = SledStorage::open(dir.path(), dir.path(), false, &[1]).expect("open");
    assert_eq!(report.truncated_at, Some(1), "{report:?}");
    assert!(!report.stale_tail, "{report:?}");
}

/// The sled layouts before segment files.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// One key per entry in the `entries` tree, value `crc | term | pb`.
    PerEntry,
    /// Tree `batches`: one value per run of up to 20 entries under its first index, value
    /// the entries' records.
    Batches,
}

/// Writes a log of an old sled layout: `entries` with the given log start, committed
/// through the last; then `mangle` edits the sled db before it is closed. No segment file
/// exists (a store of the keeperd before them).
fn write_sled_layout(
    dir: &Path,
    layout: Layout,
    entries: &[Entry],
    start: (u64, u64),
    mangle: impl FnOnce(&sled::Db),
) {
    close(open(dir), dir);
    std::fs::remove_dir_all(log_db_dir(dir).join("wal")).expect("no wal");
    {
        let db = sled::open(log_db_dir(dir)).expect("sled");
        match layout {
            Layout::PerEntry => {
                let old = db.open_tree("entries").expect("entries");
                for e in entries {
                    old.insert(entry_key(e.index), seal_entry(e).expect("seal"))
                        .expect("insert");
                }
            }
            Layout::Batches => {
                let old = db.open_tree("batches").expect("batches");
                for run in entries.chunks(20) {
                    let mut v = Vec::new();
                    for e in run {
                        super::codec::push_record(&mut v, e).expect("record");
                    }
                    old.insert(entry_key(run[0].index), v).expect("insert");
                }
            }
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

/// A log of either sled layout opens with every entry, as segments, its old trees gone;
/// also when a conversion cut short by a crash left a partial result behind (batches of a
/// per-entry log with the old tree still whole; a `wal.tmp` directory of a batch log), and
/// the entries at or below its log start (left by a compaction) go.
#[test]
fn the_sled_layouts_convert_to_segments() {
    // Enough bytes for several segments.
    let es: Vec<Entry> = (1..=300)
        .map(|i| entry(i, 1 + i / 100, 200 + (i as usize * 13) % 800))
        .collect();
    let ctx = || GetEntriesContext::empty(false);
    type Mangle<'a> = Box<dyn FnOnce(&sled::Db) + 'a>;
    let per_entry_crash: Mangle = Box::new(|db: &sled::Db| {
        // A prefix of a conversion to batches, and a stray batch past the end.
        let b = db.open_tree("batches").expect("batches");
        let mut v = Vec::new();
        for e in &es[60..63] {
            super::codec::push_record(&mut v, e).expect("record");
        }
        b.insert(entry_key(61), v.clone()).expect("insert");
        b.insert(entry_key(400), v).expect("insert");
    });
    let cases: [(&str, Layout, Mangle, bool); 4] = [
        ("per-entry", Layout::PerEntry, Box::new(|_| {}), false),
        (
            "per-entry, crash mid-conversion",
            Layout::PerEntry,
            per_entry_crash,
            false,
        ),
        ("batches", Layout::Batches, Box::new(|_| {}), false),
        (
            "batches, crash before the rename",
            Layout::Batches,
            Box::new(|_| {}),
            true,
        ),
    ];
    for (case, layout, mangle, leftover_tmp) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        write_sled_layout(dir.path(), layout, &es, (50, 1), mangle);
        if leftover_tmp {
            // A conversion's segments before they were complete: garbage to be ignored.
            let tmp = log_db_dir(dir.path()).join("wal.tmp");
            std::fs::create_dir_all(&tmp).expect("tmp");
            std::fs::write(tmp.join("00000000000000000051.wal"), b"KPRWAL01 torn").expect("w");
        }
        let old = match layout {
            Layout::PerEntry => "entries",
            Layout::Batches => "batches",
        };
        assert!(tree_names(dir.path()).contains(&old.to_string()));
        let mut s = open(dir.path());
        for round in ["converted", "reopened"] {
            assert_eq!(s.log_start(), (50, 1), "{case} {round}");
            assert_eq!(s.last_index_cached(), 300, "{case} {round}");
            let got = s.entries(51, 301, None, ctx()).expect("entries");
            assert!(got == es[50..], "{case} {round}: entries differ");
            assert_eq!(s.term(300).expect("term"), 4, "{case} {round}");
            let segs = s.stored_segments();
            assert!(segs.len() > 1, "{case}: {segs:?}");
            assert!(segs[0].0 + segs[0].1 > 50, "{case}: {segs:?}");
            let stored: u64 = segs.iter().map(|g| g.2 - HEADER).sum();
            assert_eq!(s.log_bytes(), stored, "{case} {round}");
            close(s, dir.path());
            let names = tree_names(dir.path());
            assert!(
                !names.contains(&"entries".to_string()) && !names.contains(&"batches".to_string()),
                "{case}: the old trees are dropped: {names:?}"
            );
            assert!(!log_db_dir(dir.path()).join("wal.tmp").exists(), "{case}");
            s = open(dir.path());
        }
    }
}

/// A crash after the converted segments were renamed into place but before the batch tree
/// was dropped: the segments are the log, and the tree is dropped unread.
#[test]
fn converted_segments_win_over_a_batch_tree_left_behind() {
    let es: Vec<Entry> = (1..=100).map(|i| entry(i, 1, 100)).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.persist(&es, None, true).expect("persist");
    close(s, dir.path());
    {
        // Different entries under the old tree: they must not come back.
        let db = sled::open(log_db_dir(dir.path())).expect("sled");
        let old = db.open_tree("batches").expect("batches");
        let mut v = Vec::new();
        for i in 1..=120 {
            super::codec::push_record(&mut v, &entry(i, 1, 7)).expect("record");
        }
        old.insert(entry_key(1), v).expect("insert");
        db.flush().expect("flush");
    }
    assert!(wait_unlocked(
        &log_db_dir(dir.path()),
        Duration::from_secs(10)
    ));
    let s = open(dir.path());
    assert_eq!(s.last_index_cached(), 100);
    assert!(s.read_entries(1, 101).expect("entries") == es);
    close(s, dir.path());
    assert!(!tree_names(dir.path()).contains(&"batches".to_string()));
}

/// A corrupt entry in an old layout's log is cut at as before the conversion: the last one
/// is a torn tail (one entry dropped), one in the middle drops everything from it on.
#[test]
fn a_corrupt_sled_log_is_cut_where_it_was() {
    let es: Vec<Entry> = (1..=300).map(|i| entry(i, 1, 100)).collect();
    for layout in [Layout::PerEntry, Layout::Batches] {
        for (bad, dropped) in [(300u64, 1u64), (200, 101)] {
            let dir = tempfile::tempdir().expect("tempdir");
            write_sled_layout(dir.path(), layout, &es, (0, 0), |db| {
                if layout == Layout::PerEntry {
                    let old = db.open_tree("entries").expect("entries");
                    let mut v = old
                        .get(entry_key(bad))
                        .expect("get")
                        .expect("entry")
                        .to_vec();
                    *v.last_mut().expect("byte") ^= 1;
                    old.insert(entry_key(bad), v).expect("insert");
                } else {
                    // Runs of 20 from 1: entry `bad` is the last of the run keyed `bad - 19`.
                    let old = db.open_tree("batches").expect("batches");
                    let key = entry_key(bad - 19);
                    let mut v = old.get(key).expect("get").expect("batch").to_vec();
                    *v.last_mut().expect("byte") ^= 1;
                    old.insert(key, v).expect("insert");
                }
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
}

/// A torn or corrupt record in a segment file cuts the log there at open: the segment is
/// truncated before it and the later segments are removed.
#[test]
fn a_bad_record_in_a_segment_cuts_the_log_there() {
    for (case, bad, dropped) in [("torn tail", 12u64, 1u64), ("middle", 5, 8)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (s, es) = segmented(dir.path(), 12);
        // Segments [1, 3], [4, 6], [7, 9], [10, 12]; entry `bad`'s record in its file.
        close(s, dir.path());
        let first = [1u64, 4, 7, 10]
            .into_iter()
            .rfind(|&f| f <= bad)
            .expect("segment");
        let path = log_db_dir(dir.path())
            .join("wal")
            .join(format!("{first:020}.wal"));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(data_end(&bytes));
        // Three records of the same length after the header: inside entry `bad`'s.
        let record = (bytes.len() - HEADER as usize) / 3;
        let at = HEADER as usize + (bad - first) as usize * record + 40;
        if case == "torn tail" {
            bytes.truncate(bytes.len() - 3);
        } else {
            bytes[at] ^= 1;
        }
        std::fs::write(&path, bytes).expect("write");
        let (s, report) = SledStorage::open(dir.path(), dir.path(), false, &[1]).expect("open");
        assert_eq!(report.truncated_at, Some(bad), "{case}");
        assert_eq!(report.dropped, dropped, "{case}");
        assert_eq!(s.last_index_cached(), bad - 1, "{case}");
        assert!(s.read_entries(1, bad).expect("entries") == es[..bad as usize - 1]);
        close(s, dir.path());
        let mut s = open(dir.path());
        assert_eq!(s.last_index_cached(), bad - 1, "{case}: the cut is durable");
        // Appends continue from the cut.
        s.persist(&[entry(bad, 2, 10)], None, true).expect("append");
        close(s, dir.path());
        let s = open(dir.path());
        assert_eq!(s.last_index_cached(), bad, "{case}");
    }
}

/// Segments are prepared ones (zero-filled ahead; in unit tests always, see `Prepared`), so
/// appends do not grow the file. The zero tail is free space, not damage: reopening keeps
/// every entry and appends go on into it. Bytes after zeros are damage, and cut the log
/// where the zeros start.
#[test]
fn a_prepared_segments_zero_tail_is_free_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let es: Vec<Entry> = (1..=5).map(|i| entry(i, 1, 1000)).collect();
    s.persist(&es, None, true).expect("persist");
    let path = log_db_dir(dir.path())
        .join("wal")
        .join(format!("{:020}.wal", 1));
    let size = std::fs::metadata(&path).expect("segment").len();
    let end = data_end(&std::fs::read(&path).expect("read"));
    assert!(
        size > end as u64 + 1000,
        "{size} bytes for {end} of records"
    );
    close(s, dir.path());
    let mut s = open(dir.path());
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(s.last_index_cached(), 5);
    assert!(s.entries(1, 6, None, ctx()).expect("entries") == es);
    s.persist(&[entry(6, 1, 1000)], None, true).expect("append");
    assert_eq!(
        std::fs::metadata(&path).expect("segment").len(),
        size,
        "written into the zeroed space"
    );
    close(s, dir.path());
    let s = open(dir.path());
    assert_eq!(s.last_index_cached(), 6);
    close(s, dir.path());
    // A byte after a run of zeros: not free space.
    let mut bytes = std::fs::read(&path).expect("read");
    let end = data_end(&bytes);
    bytes[end + 100] = 7;
    std::fs::write(&path, bytes).expect("write");
    let (s, report) = SledStorage::open(dir.path(), dir.path(), false, &[1]).expect("open");
    assert_eq!(report.truncated_at, Some(7), "{report:?}");
    assert_eq!(s.last_index_cached(), 6);
}
