//! Tests of `StorageError` against real temp dirs: the messages operators read stay as they
//! were, raft-rs gets its own Compacted / Unavailable / SnapshotTemporarilyUnavailable, and
//! the driver gets `proto::Error::Other` with the message. (The driver-level storage tests,
//! restart, torn tail, corrupt snapshots, are in `consensus::raft_tests`.)

use std::path::Path;
use std::time::Duration;

use raft::prelude::{ConfState, Entry, HardState, SnapshotMetadata};
use raft::{GetEntriesContext, Storage};

use super::codec::{seal, KEY_HARD_STATE};
use super::{log_db_dir, wait_unlocked, SledStorage, SnapshotDefect, StorageError};

fn open(dir: &Path) -> SledStorage {
    SledStorage::open(dir, dir, false, &[1]).expect("open").0
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![index as u8; 4].into(),
        ..Default::default()
    }
}

/// A store holding entries 1..=5 (term 1), compacted through 2.
fn compacted_store(dir: &Path) -> SledStorage {
    let mut s = open(dir);
    let entries: Vec<Entry> = (1..=5).map(|i| entry(i, 1)).collect();
    let hs = HardState {
        term: 1,
        commit: 5,
        ..Default::default()
    };
    s.persist(&entries, Some(&hs), true).expect("persist");
    s.compact(2).expect("compact");
    s
}

fn close(s: SledStorage, dir: &Path) {
    drop(s);
    assert!(wait_unlocked(&log_db_dir(dir), Duration::from_secs(10)));
}

#[test]
fn raft_sees_its_own_compacted_and_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = compacted_store(dir.path());
    let compacted = raft::Error::Store(raft::StorageError::Compacted);
    let unavailable = raft::Error::Store(raft::StorageError::Unavailable);
    assert_eq!(s.term(1).unwrap_err(), compacted);
    assert_eq!(s.term(2).expect("log start term"), 1);
    assert_eq!(s.term(4).expect("term"), 1);
    assert_eq!(s.term(6).unwrap_err(), unavailable);
    let ctx = || GetEntriesContext::empty(false);
    assert_eq!(s.entries(2, 4, None, ctx()).unwrap_err(), compacted);
    assert_eq!(s.entries(3, 7, None, ctx()).unwrap_err(), unavailable);
    let got = s.entries(3, 6, None, ctx()).expect("entries");
    assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 4, 5]);
    // No snapshot file at all: raft-rs is told to ask again later.
    assert_eq!(
        s.snapshot(0, 1).unwrap_err(),
        raft::Error::Store(raft::StorageError::SnapshotTemporarilyUnavailable)
    );
}

#[test]
fn other_errors_reach_raft_typed_with_their_message() {
    let e = raft::Error::from(StorageError::MissingEntry { index: 7 });
    assert_eq!(e.to_string(), "unknown error raft log entry 7 is missing");
    let raft::Error::Store(raft::StorageError::Other(inner)) = e else {
        panic!("not Other: {e:?}");
    };
    assert!(matches!(
        inner.downcast_ref::<StorageError>(),
        Some(StorageError::MissingEntry { index: 7 })
    ));
}

#[test]
fn the_driver_gets_other_with_the_message() {
    let e = StorageError::AppendGap { index: 9, last: 5 };
    let msg = e.to_string();
    assert_eq!(msg, "appending entry 9 leaves a gap after 5");
    match crate::proto::Error::from(e) {
        crate::proto::Error::Other(m) => assert_eq!(m, msg),
        other => panic!("not Other: {other:?}"),
    }
}

#[test]
fn write_side_errors_keep_their_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = compacted_store(dir.path());
    let e = s.compact(9).unwrap_err();
    assert_eq!(e.to_string(), "compacting to 9 beyond the last log index 5");
    let e = s.persist(&[entry(2, 1)], None, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "appending entry 2 at or below the compacted index 2"
    );
    let e = s.persist(&[entry(7, 1)], None, false).unwrap_err();
    assert!(
        matches!(e, StorageError::AppendGap { index: 7, last: 5 }),
        "{e}"
    );
    let e = s.read_entries(1, 3).unwrap_err();
    assert_eq!(e.to_string(), "reading entries [1, 3): log compacted");
}

#[test]
fn a_second_open_names_the_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let e = SledStorage::open(dir.path(), dir.path(), false, &[1])
        .err()
        .expect("second open of a locked log");
    let msg = e.to_string();
    assert!(matches!(e, StorageError::OpenLog { .. }), "{msg}");
    let prefix = format!(
        "cannot open raft log {}: ",
        log_db_dir(dir.path()).display()
    );
    assert!(msg.starts_with(&prefix), "{msg}");
    assert!(
        msg.ends_with(" (is another keeperd using this directory?)"),
        "{msg}"
    );
    drop(s);
}

#[test]
fn corrupt_metadata_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    close(compacted_store(dir.path()), dir.path());
    {
        let db = sled::open(log_db_dir(dir.path())).expect("sled");
        let meta = db.open_tree("meta").expect("meta");
        let mut v = meta
            .get(KEY_HARD_STATE)
            .expect("get")
            .expect("hard state")
            .to_vec();
        *v.last_mut().expect("non-empty") ^= 0xff;
        meta.insert(KEY_HARD_STATE, v).expect("insert");
        db.flush().expect("flush");
    }
    assert!(wait_unlocked(
        &log_db_dir(dir.path()),
        Duration::from_secs(10)
    ));
    let e = SledStorage::open(dir.path(), dir.path(), false, &[1])
        .err()
        .expect("open of a corrupt log");
    assert_eq!(
        e.to_string(),
        format!(
            "hard_state in {} is corrupt (checksum mismatch); refusing to start",
            log_db_dir(dir.path()).display()
        )
    );
    assert!(matches!(
        e,
        StorageError::CorruptMeta {
            key: "hard_state",
            ..
        }
    ));
}

#[test]
fn undecodable_metadata_names_what_and_where() {
    let dir = tempfile::tempdir().expect("tempdir");
    close(compacted_store(dir.path()), dir.path());
    {
        let db = sled::open(log_db_dir(dir.path())).expect("sled");
        let meta = db.open_tree("meta").expect("meta");
        // A valid checksum over bytes that are no HardState (field 1 as a length-delimited
        // value running past the end).
        meta.insert(KEY_HARD_STATE, seal(KEY_HARD_STATE, &[0x0a, 0x7f]))
            .expect("insert");
        db.flush().expect("flush");
    }
    assert!(wait_unlocked(
        &log_db_dir(dir.path()),
        Duration::from_secs(10)
    ));
    let e = SledStorage::open(dir.path(), dir.path(), false, &[1])
        .err()
        .expect("open of an undecodable hard state");
    let prefix = format!("hard state in {}: ", log_db_dir(dir.path()).display());
    assert!(e.to_string().starts_with(&prefix), "{e}");
    assert!(matches!(
        e,
        StorageError::DecodeMeta {
            what: "hard state",
            ..
        }
    ));
}

#[test]
fn a_bad_snapshot_says_why_and_keeps_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let meta = SnapshotMetadata {
        index: 4,
        term: 2,
        conf_state: Some(ConfState {
            voters: vec![1],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let file = s.snapshots().write(&meta, b"state").expect("write");
    let snap = s.snapshots().read(&file).expect("read back");
    assert_eq!(&snap.data[..], b"state");
    let mut bytes = std::fs::read(&file.path).expect("read file");
    bytes[20] ^= 0xff;
    std::fs::write(&file.path, bytes).expect("mangle");
    let e = s.snapshots().read(&file).unwrap_err();
    assert_eq!(e.to_string(), "checksum mismatch");
    match e {
        StorageError::BadSnapshot { path, defect } => {
            assert_eq!(path, file.path);
            assert!(matches!(defect, SnapshotDefect::ChecksumMismatch));
        }
        other => panic!("not BadSnapshot: {other:?}"),
    }
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let e = super::sync_dir(&missing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("fsync of directory {}: ", missing.display())),
        "{e}"
    );
    let StorageError::Io { path, err, .. } = e else {
        panic!("not Io: {e:?}");
    };
    assert_eq!(path, missing);
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn compaction_removes_the_segments_off_the_caller_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    // 40 KB entries: two persists, two segments (unit tests roll at 64 KiB), [1, 2] and
    // [3, 5].
    let entries: Vec<Entry> = (1..=5)
        .map(|i| Entry {
            data: vec![i as u8; 40_000].into(),
            ..entry(i, 1)
        })
        .collect();
    s.persist(&entries[..2], None, true).expect("persist");
    let first = s.log_bytes();
    s.persist(&entries[2..], None, true).expect("persist");
    let all = s.log_bytes();
    assert!(all > first && first > 0);
    let wal = log_db_dir(dir.path()).join("wal");
    let oldest = wal.join(format!("{:020}.wal", 1));
    assert!(oldest.exists());
    s.compact(2).expect("compact");
    // The new start holds at once; the segment [1, 2] is removed on the cleaner thread.
    assert_eq!(s.log_start(), (2, 1));
    assert_eq!(s.log_bytes(), all - first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while oldest.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!oldest.exists(), "the compacted segment's file is removed");
    close(s, dir.path());
    let s = open(dir.path());
    assert_eq!(s.log_start(), (2, 1));
    assert_eq!(s.log_bytes(), all - first);
    let got = s.read_entries(3, 6).expect("entries");
    assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 4, 5]);
}

/// The in-memory copies of recent entries (`Recent`) answer exactly what sled holds: after
/// appends, an overwritten tail, a size-limited read and a compaction, the open store and
/// the same store reopened (which reads sled) return the same entries and terms.
#[test]
fn recent_entries_read_back_as_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
    s.persist(&entries[..4], None, true).expect("persist");
    s.persist(&entries[4..], None, true).expect("persist");
    // A new leader (term 2) overwrites the uncommitted tail from 6 on, with other data.
    let tail: Vec<Entry> = (6..=8)
        .map(|i| Entry {
            data: vec![0xee; 6].into(),
            ..entry(i, 2)
        })
        .collect();
    let hs = HardState {
        term: 2,
        commit: 3,
        ..Default::default()
    };
    s.persist(&tail, Some(&hs), true).expect("persist");
    s.compact(2).expect("compact");
    let ctx = || GetEntriesContext::empty(false);
    let read = |s: &SledStorage| {
        let all = s.entries(3, 9, None, ctx()).expect("entries");
        let limited = s.entries(3, 9, Some(1), ctx()).expect("entries");
        let terms: Vec<u64> = (2..=8).map(|i| s.term(i).expect("term")).collect();
        (
            all,
            limited.len(),
            terms,
            s.entries(3, 10, None, ctx()).is_err(),
        )
    };
    let held = read(&s);
    assert_eq!(
        held.0.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        [(3, 1), (4, 1), (5, 1), (6, 2), (7, 2), (8, 2)]
    );
    assert_eq!(held.0[3].data, tail[0].data);
    assert_eq!(held.1, 1, "a read over max_size still returns one entry");
    close(s, dir.path());
    let reopened = open(dir.path());
    assert_eq!(read(&reopened), held);
}

/// Snapshot metadata at index 9, term 3, with voters 1, 2 and 3.
fn three_voter_meta() -> SnapshotMetadata {
    SnapshotMetadata {
        index: 9,
        term: 3,
        conf_state: Some(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// A snapshot streamed into the file (`create`, `append` in uneven pieces, the head given to
/// `finish`) is the file `write` makes of the same data, byte for byte, and reads back; one
/// dropped unfinished leaves no file behind.
#[test]
fn a_streamed_snapshot_is_the_written_one() {
    let meta = three_voter_meta();
    // Over many sync chunks, appended in pieces that straddle them.
    let data: Vec<u8> = (0..(17u32 << 20)).map(|i| (i ^ (i >> 11)) as u8).collect();
    let whole_dir = tempfile::tempdir().expect("tempdir");
    let whole = open(whole_dir.path());
    let expected = whole.snapshots().write(&meta, &data).expect("write");

    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let head = 20;
    let mut w = s.snapshots().create(&meta, head).expect("create");
    let mut at = head;
    for (i, len) in [0, 1, 4096, 3 << 20, 9 << 20].iter().cycle().enumerate() {
        let end = (at + len + i).min(data.len());
        w.append(&data[at..end]).expect("append");
        at = end;
        if at == data.len() {
            break;
        }
    }
    let file = w.finish(&data[..head]).expect("finish");
    assert_eq!(file.size, expected.size);
    assert_eq!(
        std::fs::read(&file.path).expect("streamed file"),
        std::fs::read(&expected.path).expect("written file")
    );
    assert_eq!(
        &s.snapshots().read(&file).expect("read back").data[..],
        &data[..]
    );

    let unfinished = SnapshotMetadata { index: 10, ..meta };
    let mut w = s.snapshots().create(&unfinished, 4).expect("create");
    w.append(b"partial").expect("append");
    drop(w);
    let names: Vec<_> = std::fs::read_dir(s.snapshots().dir())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![file.path.file_name().expect("name").to_owned()]);
}

/// A snapshot is made durable as it is streamed, a `SYNC_CHUNK` at a time: however the data
/// comes (pieces smaller and larger than a chunk), at most a chunk of what was appended
/// waits for the final fdatasync, so the log's fdatasync never queues behind more.
#[test]
fn a_streamed_snapshot_is_synced_as_it_goes() {
    use super::snapshots::SYNC_CHUNK;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let mut w = s
        .snapshots()
        .create(&three_voter_meta(), 20)
        .expect("create");
    let mut appended = 0u64;
    for len in [1usize, 300 << 10, 5 << 20, 7, 700 << 10, 3 << 20] {
        w.append(&vec![7u8; len]).expect("append");
        appended += len as u64;
        // The file also holds the header and the head before the data.
        assert!(
            w.synced() + SYNC_CHUNK > appended && w.synced() <= appended + 200,
            "{} of {appended} appended bytes synced",
            w.synced()
        );
    }
    assert!(w.synced() >= 8 << 20);
    w.finish(&[0; 20]).expect("finish");
}

/// The share of `path`'s pages in the page cache (`mincore` over a mapping, which reads
/// nothing in), and whether its file system keeps pages in memory anyway (tmpfs).
pub(super) fn cached_share(path: &Path) -> (f64, bool) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("open");
    let len = file.metadata().expect("metadata").len() as usize;
    // SAFETY: sysconf reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: a read-only shared mapping of a file this test owns, never touched, unmapped
    // before returning; statfs fills plain data; mincore writes one byte per page into a
    // Vec of that many bytes.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        assert_eq!(libc::fstatfs(file.as_raw_fd(), &mut st), 0);
        let tmpfs = st.f_type == libc::TMPFS_MAGIC;
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(at, libc::MAP_FAILED);
        assert_eq!(libc::mincore(at, len, vec.as_mut_ptr()), 0);
        libc::munmap(at, len);
        let resident = vec.iter().filter(|b| *b & 1 == 1).count();
        (resident as f64 / vec.len() as f64, tmpfs)
    }
}

/// A snapshot is written through the page cache and stays there, so that the next one,
/// which merges from it, reads memory rather than the disk; that reading drops it as it
/// goes (it is not read again).
#[test]
fn a_written_snapshot_stays_cached_until_the_next_one_reads_it() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let mut w = s
        .snapshots()
        .create(&three_voter_meta(), 0)
        .expect("create");
    w.append(&vec![3u8; 12 << 20]).expect("append");
    let file = w.finish(&[]).expect("finish");
    let (written, tmpfs) = cached_share(&file.path);
    assert!(
        written > 0.9,
        "{:.0}% of the written snapshot cached",
        written * 100.0
    );
    let mut data = super::SnapshotStore::stream_data(&file.path).expect("stream");
    let mut sink = Vec::new();
    data.read_to_end(&mut sink).expect("read");
    drop(data);
    assert_eq!(sink.len(), 12 << 20);
    let (after, _) = cached_share(&file.path);
    if !tmpfs {
        assert!(
            after < 0.1,
            "{:.0}% still cached after it was read",
            after * 100.0
        );
    }
}

/// A paced snapshot (`spread_over`) starts each chunk at least its share of the time after
/// the one before, and never waits longer than `MAX_CHUNK_GAP` per chunk.
#[test]
fn a_paced_snapshot_spreads_its_chunks() {
    use super::snapshots::{MAX_CHUNK_GAP, SYNC_CHUNK};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let write = |spread: (u64, Duration)| {
        let mut w = s
            .snapshots()
            .create(&three_voter_meta(), 0)
            .expect("create");
        w.spread_over(spread.0, spread.1);
        let started = Instant::now();
        // 6 chunks: 5 waits between them.
        w.append(&vec![1u8; 6 * SYNC_CHUNK as usize])
            .expect("append");
        let took = started.elapsed();
        w.finish(&[]).expect("finish");
        took
    };
    // 60 ms over 6 chunks: 10 ms each.
    let paced = write((6 * SYNC_CHUNK, Duration::from_millis(60)));
    assert!(paced >= Duration::from_millis(50), "paced: {paced:?}");
    // Half a second over 6 chunks would be 83 ms each: capped.
    let capped = write((6 * SYNC_CHUNK, Duration::from_millis(500)));
    assert!(capped >= 5 * MAX_CHUNK_GAP, "capped: {capped:?}");
    assert!(capped < Duration::from_millis(400), "capped: {capped:?}");
}

/// Resident bytes of the mapping holding `at`, from /proc/self/smaps.
#[cfg(target_os = "linux")]
pub(super) fn resident_of_mapping(at: *const u8) -> usize {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let at = at as usize;
    let mut inside = false;
    for line in smaps.lines() {
        let range = line.split(' ').next().and_then(|r| r.split_once('-'));
        if let Some((lo, hi)) = range.filter(|_| !line.starts_with(char::is_uppercase)) {
            let lo = usize::from_str_radix(lo, 16).expect("start");
            let hi = usize::from_str_radix(hi, 16).expect("end");
            inside = (lo..hi).contains(&at);
        } else if let Some(kb) = line.strip_prefix("Rss:").filter(|_| inside) {
            let kb: usize = kb
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("Rss");
            return kb << 10;
        }
    }
    panic!("no mapping holds {at:#x}");
}

/// A mapped snapshot (`SnapshotStore::map`, how start-up decodes the newest one) has the
/// metadata and data `read` gives and fails the same way on a damaged file; while passes
/// over it release what they read, little of the file is resident in the process.
#[cfg(target_os = "linux")]
#[test]
fn a_mapped_snapshot_is_the_read_one_and_stays_small() {
    let meta = three_voter_meta();
    let data: Vec<u8> = (0..(24u32 << 20)).map(|i| (i ^ (i >> 13)) as u8).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path());
    let file = s.snapshots().write(&meta, &data).expect("write");
    let read = s.snapshots().read(&file).expect("read");
    let m = s.snapshots().map(&file).expect("map");
    assert_eq!(m.metadata(), read.get_metadata());

    // The checksum pass left little behind, and so does each pass over the data (a new one
    // starts from the start again) that releases every MiB.
    let limit = 3 << 20;
    let resident = resident_of_mapping(m.data().as_ptr());
    assert!(
        resident <= limit,
        "{resident} bytes resident after the checksum"
    );
    for pass in 0..2 {
        let mut sum = 0u64;
        for (i, chunk) in m.data().chunks(1 << 20).enumerate() {
            sum += chunk
                .iter()
                .step_by(512)
                .map(|&b| u64::from(b))
                .sum::<u64>();
            m.release((i + 1) << 20);
            let resident = resident_of_mapping(m.data().as_ptr());
            assert!(
                resident <= limit,
                "pass {pass}: {resident} bytes resident at MiB {i}"
            );
        }
        assert!(sum > 0);
        // Released through its end: no more than the last page and the kernel's fault-around.
        let resident = resident_of_mapping(m.data().as_ptr());
        assert!(
            resident <= 256 << 10,
            "pass {pass}: {resident} bytes resident at its end"
        );
    }
    assert!(
        m.data() == &read.data[..],
        "the mapped data is the read data"
    );
    drop((m, read));

    let mut bytes = std::fs::read(&file.path).expect("read file");
    bytes[20] ^= 0xff;
    std::fs::write(&file.path, &bytes).expect("mangle");
    for e in [
        s.snapshots().read(&file),
        s.snapshots().map(&file).map(|_| unreachable!()),
    ] {
        let e = e.unwrap_err();
        assert_eq!(e.to_string(), "checksum mismatch");
        assert!(matches!(
            e,
            StorageError::BadSnapshot { path, defect: SnapshotDefect::ChecksumMismatch }
                if path == file.path
        ));
    }
    std::fs::write(&file.path, &bytes[..3]).expect("truncate");
    let e = s.snapshots().map(&file).map(|_| ()).unwrap_err();
    assert_eq!(
        e.to_string(),
        s.snapshots().read(&file).unwrap_err().to_string()
    );
}
