//! Delta snapshot files (`delta`) against expected bytes computed here, independently of
//! the readers: random ops over random bases, chains of deltas, damaged and hand-made
//! deltas (errors, never a panic or a hang), the writer's rules, and which files retention
//! keeps (`keep_closure`).

use std::io::Read;
use std::path::Path;

use raft::prelude::SnapshotMetadata;

use super::delta::DELTA_MAGIC;
use super::{SnapshotDefect, SnapshotFile, SnapshotStore, StorageError};

/// splitmix64: deterministic, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Snapshot metadata at `index` (term 1): zxids grow with the index.
fn meta(index: u64) -> SnapshotMetadata {
    SnapshotMetadata {
        index,
        term: 1,
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Literal(Vec<u8>),
    Copy(u64, u64),
}

/// Random ops over a base of `base_len` bytes: literals small (gathered by the writer) and
/// large (over a chunk), copies adjacent (coalesced) and with gaps, forward only.
fn random_ops(rng: &mut Rng, base_len: u64) -> Vec<Op> {
    let mut ops = vec![];
    let mut at = 0u64;
    loop {
        match rng.below(10) {
            0..=3 => {
                let len = match rng.below(8) {
                    0 => 1 + rng.below(3 << 20),
                    1 => 60_000 + rng.below(10_000),
                    _ => 1 + rng.below(3000),
                };
                ops.push(Op::Literal(rng.bytes(len as usize)));
            }
            _ => {
                let gap = match rng.below(3) {
                    0 => 0,
                    1 => rng.below(4096),
                    _ => rng.below(256 << 10),
                };
                let off = at + gap;
                if off >= base_len {
                    break;
                }
                let len = (1 + rng.below(1 << 20)).min(base_len - off);
                ops.push(Op::Copy(off, len));
                at = off + len;
            }
        }
        if ops.len() > 400 {
            break;
        }
    }
    ops
}

/// What a delta of `head` then `ops` over `base` holds: computed from the ops alone.
fn apply(base: &[u8], head: &[u8], ops: &[Op]) -> Vec<u8> {
    let mut out = head.to_vec();
    for op in ops {
        match op {
            Op::Literal(b) => out.extend_from_slice(b),
            Op::Copy(off, len) => out.extend_from_slice(&base[*off as usize..(off + len) as usize]),
        }
    }
    out
}

fn write_delta(
    s: &SnapshotStore,
    index: u64,
    base: &SnapshotFile,
    head: &[u8],
    ops: &[Op],
) -> SnapshotFile {
    let mut w = s.create(&meta(index), head.len()).expect("create");
    w.delta_over(&base.path).expect("delta_over");
    for op in ops {
        match op {
            Op::Literal(b) => w.append(b).expect("append"),
            Op::Copy(off, len) => w.copy(*off, *len).expect("copy"),
        }
    }
    let expected_len = head.len() as u64
        + ops
            .iter()
            .map(|op| match op {
                Op::Literal(b) => b.len() as u64,
                Op::Copy(_, len) => *len,
            })
            .sum::<u64>();
    assert_eq!(w.virtual_len(), expected_len);
    let stored = w.stored_len();
    let file = w.finish(head).expect("finish");
    // The stored data is what the file holds between its wrapper's head and checksum.
    let f = std::fs::File::open(&file.path).unwrap();
    let data = super::delta::read_data_head(&f).unwrap();
    assert_eq!(stored, data.data_len, "stored_len before finish");
    file
}

/// Every reader gives `expected` as `file`'s data: `read`, `map` (twice over, releasing as
/// it goes, like the decoder's checksum and decode passes), both streams.
fn check_readers(s: &SnapshotStore, file: &SnapshotFile, index: u64, expected: &[u8]) {
    let read = s.read(file).expect("read");
    assert_eq!(read.get_metadata().index, index);
    assert!(read.data == expected, "read gives the virtual data");

    let m = s.map(file).expect("map");
    assert_eq!(m.metadata().index, index);
    for pass in 0..2 {
        let data = m.data();
        assert_eq!(data.len(), expected.len());
        for (i, chunk) in data.chunks(1 << 20).enumerate() {
            let at = i << 20;
            assert!(
                chunk == &expected[at..at + chunk.len()],
                "pass {pass}: mapped MiB {i} differs"
            );
            m.release(at + chunk.len());
        }
    }
    drop(m);

    for (what, stream) in [
        ("stream_data", SnapshotStore::stream_data(&file.path)),
        (
            "stream_data_cached",
            SnapshotStore::stream_data_cached(&file.path),
        ),
    ] {
        let mut stream = stream.expect(what);
        assert_eq!(stream.virtual_len(), expected.len() as u64);
        // Odd read sizes, so that reads end inside ops and inside the read-ahead.
        let mut got = Vec::with_capacity(expected.len());
        let mut buf = vec![0u8; 1 << 21];
        for size in [7usize, 1 << 21, 4093, 65536, 1].iter().cycle() {
            let n = stream.read(&mut buf[..*size]).expect(what);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == expected, "{what} gives the virtual data");
    }
}

/// The names in the snapshot directory: no temporary file is left behind.
fn names(s: &SnapshotStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.dir())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_delta_reads_as_its_virtual_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(1);
    let base_data = rng.bytes(5 << 20);
    let base = s.write(&meta(10), &base_data).expect("write base");
    let ops = random_ops(&mut rng, base_data.len() as u64);
    assert!(ops.iter().any(|o| matches!(o, Op::Copy(..))));
    assert!(ops.iter().any(|o| matches!(o, Op::Literal(..))));
    let head = rng.bytes(20);
    let file = write_delta(&s, 11, &base, &head, &ops);
    let expected = apply(&base_data, &head, &ops);
    check_readers(&s, &file, 11, &expected);
    assert_eq!(s.base_of(&file).expect("base_of"), Some(base.zxid));
    assert_eq!(s.base_of(&base).expect("base_of"), None);
    assert_eq!(names(&s).len(), 2, "{:?}", names(&s));

    // No head at all, and a delta of copies alone over the whole base.
    let whole = write_delta(&s, 12, &base, &[], &[Op::Copy(0, base_data.len() as u64)]);
    check_readers(&s, &whole, 12, &base_data);
    assert!(whole.size < 200, "{} bytes for a copy of all", whole.size);
    // And no data at all.
    let empty = write_delta(&s, 13, &base, &[], &[]);
    check_readers(&s, &empty, 13, &[]);
}

#[test]
fn a_chain_of_deltas_reads_as_its_virtual_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(2);
    let mut data = rng.bytes(4 << 20);
    let mut file = s.write(&meta(1), &data).expect("write full");
    for index in 2..=5 {
        let ops = random_ops(&mut rng, data.len() as u64);
        let head = rng.bytes(16);
        let next = write_delta(&s, index, &file, &head, &ops);
        data = apply(&data, &head, &ops);
        file = next;
        check_readers(&s, &file, index, &data);
    }
    assert_eq!(names(&s).len(), 5, "{:?}", names(&s));
}

/// When no temporary file can hold a delta's data, `map` holds it in anonymous memory:
/// the same data, and `release` leaves it readable.
#[test]
fn a_delta_mapped_into_memory_is_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(3);
    let base_data = rng.bytes(3 << 20);
    let base = s.write(&meta(1), &base_data).expect("write base");
    let ops = random_ops(&mut rng, base_data.len() as u64);
    let file = write_delta(&s, 2, &base, b"head", &ops);
    let expected = apply(&base_data, b"head", &ops);
    let m = super::delta::materialize_anonymous(&file, meta(2), expected.len()).expect("anonymous");
    m.release(expected.len());
    assert!(m.data() == &expected[..]);
    m.release(expected.len());
    assert!(
        m.data() == &expected[..],
        "released anonymous memory is kept"
    );
}

fn read_err(s: &SnapshotStore, file: &SnapshotFile) -> SnapshotDefect {
    let e = s.read(file).unwrap_err();
    let by_map = s.map(file).map(|_| ()).unwrap_err();
    assert_eq!(e.to_string(), by_map.to_string());
    match e {
        StorageError::BadSnapshot { path, defect } if path == file.path => defect,
        other => panic!("not BadSnapshot of {}: {other:?}", file.path.display()),
    }
}

fn stream_err(path: &Path) -> std::io::Error {
    let mut sink = vec![];
    match SnapshotStore::stream_data(path).and_then(|mut d| d.read_to_end(&mut sink)) {
        Ok(n) => panic!("{} streamed {n} bytes", path.display()),
        Err(e) => e,
    }
}

#[test]
fn a_delta_over_a_missing_or_other_base_is_unusable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(4);
    let base_data = rng.bytes(2 << 20);
    let base = s.write(&meta(1), &base_data).expect("write base");
    let mid_ops = random_ops(&mut rng, base_data.len() as u64);
    let mid = write_delta(&s, 2, &base, b"", &mid_ops);
    let mid_data = apply(&base_data, b"", &mid_ops);
    let top_ops = random_ops(&mut rng, mid_data.len() as u64);
    let top = write_delta(&s, 3, &mid, b"", &top_ops);
    let top_data = apply(&mid_data, b"", &top_ops);

    // Another file of another length under the base's name.
    s.write(&meta(1), &base_data[1..]).expect("rewrite base");
    let defect = read_err(&s, &top);
    assert!(
        matches!(&defect, SnapshotDefect::Base { zxid, why } if *zxid == mid.zxid
            && matches!(&**why, SnapshotDefect::Base { zxid, why } if *zxid == base.zxid
                && matches!(**why, SnapshotDefect::BaseLength { .. }))),
        "{defect:?}"
    );
    assert_eq!(
        read_err(&s, &mid).to_string(),
        format!(
            "base snapshot.{:x}: its data is {} bytes, the delta over it was written over {}",
            base.zxid,
            base_data.len() - 1,
            base_data.len()
        )
    );
    let e = stream_err(&top.path);
    assert!(e.to_string().contains("written over"), "{e}");

    // The base restored, the chain reads again; then a damaged base.
    let restored = s.write(&meta(1), &base_data).expect("restore base");
    assert!(s.read(&top).expect("top").data == top_data);
    let mut bytes = std::fs::read(&restored.path).expect("read base");
    bytes[40] ^= 1;
    std::fs::write(&base.path, &bytes).expect("mangle base");
    let defect = read_err(&s, &mid);
    assert!(
        matches!(&defect, SnapshotDefect::Base { zxid, why } if *zxid == base.zxid
            && matches!(**why, SnapshotDefect::ChecksumMismatch)),
        "{defect:?}"
    );

    // A missing base.
    std::fs::remove_file(&base.path).expect("remove base");
    let defect = read_err(&s, &top);
    assert!(defect.to_string().contains("open failed"), "{defect}");
    let e = stream_err(&top.path);
    let name = format!("snapshot.{:x}", base.zxid);
    assert!(e.to_string().contains(&name), "{e}");
    assert_eq!(names(&s).len(), 2, "{:?}", names(&s));
}

#[test]
fn a_damaged_delta_fails_its_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(5);
    let base_data = rng.bytes(1 << 20);
    let base = s.write(&meta(1), &base_data).expect("write base");
    let file = write_delta(&s, 2, &base, b"h", &random_ops(&mut rng, 1 << 20));
    let mut bytes = std::fs::read(&file.path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&file.path, &bytes).expect("mangle");
    assert!(matches!(
        read_err(&s, &file),
        SnapshotDefect::ChecksumMismatch
    ));
}

/// A delta's stored data by hand: its header, then `ops` as given.
fn hand_made(base_zxid: u64, base_len: u64, full_len: u64, ops: &[u8]) -> Vec<u8> {
    let mut d = DELTA_MAGIC.to_vec();
    d.extend_from_slice(&base_zxid.to_be_bytes());
    d.extend_from_slice(&base_len.to_be_bytes());
    d.extend_from_slice(&full_len.to_be_bytes());
    d.extend_from_slice(ops);
    d
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut op = vec![0u8];
    op.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    op.extend_from_slice(bytes);
    op
}

fn copy(off: u64, len: u32) -> Vec<u8> {
    let mut op = vec![1u8];
    op.extend_from_slice(&off.to_be_bytes());
    op.extend_from_slice(&len.to_be_bytes());
    op
}

#[test]
fn a_malformed_delta_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let base_data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let base = s.write(&meta(1), &base_data).expect("write base");
    let bz = base.zxid;
    let bl = base_data.len() as u64;
    let good = [copy(10, 100), literal(b"abc"), copy(200, 50)].concat();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "backward copy",
            [copy(100, 10), copy(50, 10)].concat(),
            "goes back",
        ),
        ("copy past the base", copy(bl - 5, 10), "past the end"),
        ("copy over u64", copy(u64::MAX - 1, 10), "past the end"),
        (
            "unknown op",
            [literal(b"x"), vec![7, 0, 0]].concat(),
            "unknown delta op",
        ),
        ("ops short of full_len", good.clone(), "ops make 153 bytes"),
        (
            "ops over full_len",
            [good.clone(), literal(b"more")].concat(),
            "more than",
        ),
        (
            "a literal cut short",
            literal(b"abcdef")[..8].to_vec(),
            "ends inside",
        ),
        (
            "a copy header cut short",
            copy(0, 3)[..7].to_vec(),
            "ends inside",
        ),
        ("zero-length op", literal(b""), "length 0"),
    ];
    for (i, (what, ops, says)) in cases.into_iter().enumerate() {
        let full_len = match what {
            "ops short of full_len" => 154,
            "ops over full_len" => 153,
            _ => 1000,
        };
        let data = hand_made(bz, bl, full_len, &ops);
        let file = s.write(&meta(10 + i as u64), &data).expect("write");
        let defect = read_err(&s, &file);
        assert!(
            matches!(defect, SnapshotDefect::DeltaData(_)),
            "{what}: {defect:?}"
        );
        assert!(defect.to_string().contains(says), "{what}: {defect}");
        let e = stream_err(&file.path);
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{what}: {e}");
        assert!(e.to_string().contains(says), "{what}: {e}");
        s.remove(&file).expect("remove");
    }

    // The same ops with the right full_len are a good delta.
    let file = s
        .write(&meta(30), &hand_made(bz, bl, 153, &good))
        .expect("write");
    let expected = [&base_data[10..110], b"abc", &base_data[200..250]].concat();
    check_readers(&s, &file, 30, &expected);

    // A delta over itself or a newer file, and a truncated header.
    let file = s
        .write(
            &meta(31),
            &hand_made(file.zxid + 1, 153, 3, &literal(b"abc")),
        )
        .expect("w");
    assert!(matches!(
        read_err(&s, &file),
        SnapshotDefect::BaseNotOlder { .. }
    ));
    assert!(stream_err(&file.path).to_string().contains("not older"));
    let file = s
        .write(&meta(32), &hand_made(bz, bl, 3, &[])[..20])
        .expect("w");
    assert!(matches!(read_err(&s, &file), SnapshotDefect::DeltaHeader));
    assert!(s.base_of(&file).is_err());
    // A base whose magic is wrong.
    let wrong = s.write(&meta(33), b"not a base").expect("w");
    let mut bytes = std::fs::read(&wrong.path).expect("r");
    bytes[0] = b'X';
    std::fs::write(&wrong.path, &bytes).expect("w");
    let file = s
        .write(&meta(34), &hand_made(wrong.zxid, 10, 1, &literal(b"a")))
        .expect("w");
    assert!(matches!(read_err(&s, &file), SnapshotDefect::Base { .. }));
    assert!(stream_err(&file.path).to_string().contains("bad magic"));
}

#[test]
fn the_writer_refuses_a_wrong_delta() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let base = s.write(&meta(1), &[5u8; 1000]).expect("write base");

    let mut full = s.create(&meta(2), 0).expect("create");
    full.append(b"abc").expect("append");
    let e = full.copy(0, 1).unwrap_err();
    assert!(matches!(e, StorageError::DeltaWrite { .. }), "{e:?}");
    assert!(e.to_string().contains("full snapshot"), "{e}");
    let e = full.delta_over(&base.path).unwrap_err();
    assert!(e.to_string().contains("after data was appended"), "{e}");
    drop(full);

    let mut w = s.create(&meta(3), 4).expect("create");
    assert_eq!(w.delta_over(&base.path).expect("delta_over"), 1000);
    w.copy(100, 10).expect("copy");
    let e = w.copy(50, 10).unwrap_err();
    assert!(
        e.to_string().contains("before the end of the last one"),
        "{e}"
    );
    w.copy(110, 0).expect("an empty copy");
    let e = w.copy(990, 11).unwrap_err();
    assert!(e.to_string().contains("past the base"), "{e}");
    let e = w.copy(u64::MAX, 2).unwrap_err();
    assert!(e.to_string().contains("past the base"), "{e}");
    // Refused calls wrote nothing: the delta is what the good calls made.
    w.copy(110, 5).expect("adjacent copy");
    let file = w.finish(b"HEAD").expect("finish");
    let expected = [&b"HEAD"[..], &[5u8; 15]].concat();
    check_readers(&s, &file, 3, &expected);

    // Adjacent copies are one op, consecutive appends one literal: the same file as one
    // call of each.
    let sizes: Vec<u64> = [&[(100, 15)][..], &[(100, 10), (110, 5)]]
        .iter()
        .zip([&[&b"abc"[..]][..], &[b"a", b"", b"bc"]])
        .map(|(copies, literals)| {
            let mut w = s.create(&meta(5), 2).expect("create");
            w.delta_over(&base.path).expect("delta_over");
            for (off, len) in *copies {
                w.copy(*off, *len).expect("copy");
            }
            for l in literals {
                w.append(l).expect("append");
            }
            w.finish(b"hd").expect("finish").size
        })
        .collect();
    assert_eq!(sizes[0], sizes[1]);

    let mut w = s.create(&meta(4), 0).expect("create");
    let e = w.delta_over(&dir.path().join("snapshot.zz")).unwrap_err();
    assert!(e.to_string().contains("is not a snapshot."), "{e}");
    let e = w
        .delta_over(&dir.path().join("snapshot.ffffff00000000"))
        .unwrap_err();
    assert!(e.to_string().contains("not older"), "{e}");
    let e = w.delta_over(&dir.path().join("snapshot.2")).unwrap_err();
    assert!(matches!(e, StorageError::Io { .. }), "{e:?}");
}

/// Retention keeps the newest files and every base they need, down their chains.
#[test]
fn retention_keeps_the_bases_of_what_it_keeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let f1 = s.write(&meta(1), &[1u8; 5000]).expect("f1");
    let d2 = write_delta(&s, 2, &f1, b"", &[Op::Copy(0, 10)]);
    let d3 = write_delta(&s, 3, &d2, b"", &[Op::Copy(0, 5), Op::Literal(vec![3; 5])]);
    let f4 = s.write(&meta(4), &[4u8; 5000]).expect("f4");
    let d5 = write_delta(&s, 5, &f4, b"", &[Op::Literal(vec![5; 5])]);
    let files = s.list().expect("list");
    let order: Vec<u64> = files.iter().map(|f| f.zxid).collect();
    assert_eq!(order, [&d5, &f4, &d3, &d2, &f1].map(|f| f.zxid));
    let kept = |n| s.keep_closure(&files, n).expect("keep_closure");
    assert_eq!(kept(0), [false; 5]);
    assert_eq!(kept(1), [true, true, false, false, false]);
    assert_eq!(kept(2), [true, true, false, false, false]);
    assert_eq!(kept(3), [true; 5]);
    assert_eq!(kept(9), [true; 5]);
    // A missing base has nothing to keep; an unreadable head counts as a full file.
    s.remove(&f1).expect("remove");
    std::fs::write(&d2.path, b"KPR").expect("mangle");
    let files = s.list().expect("list");
    assert_eq!(
        s.keep_closure(&files, 3).expect("keep"),
        [true, true, true, true]
    );
    assert_eq!(
        s.keep_closure(&files, 2).expect("keep"),
        [true, true, false, false]
    );
}

/// A delta's mapping is backed by a temporary file (`O_TMPFILE`, or a named one unlinked at
/// once): passes over it that release what they read keep little of it resident, as a full
/// snapshot's do, and nothing is left in the directory.
#[cfg(target_os = "linux")]
#[test]
fn a_mapped_delta_stays_small() {
    use super::tests::resident_of_mapping;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(6);
    let base_data = rng.bytes(24 << 20);
    let base = s.write(&meta(1), &base_data).expect("write base");
    let ops = vec![
        Op::Copy(0, 10 << 20),
        Op::Literal(rng.bytes(1 << 20)),
        Op::Copy(12 << 20, 12 << 20),
    ];
    let file = write_delta(&s, 2, &base, b"", &ops);
    let expected = apply(&base_data, b"", &ops);
    let m = s.map(&file).expect("map");
    assert_eq!(names(&s).len(), 2, "{:?}", names(&s));
    let limit = 3 << 20;
    for pass in 0..2 {
        for (i, chunk) in m.data().chunks(1 << 20).enumerate() {
            let at = i << 20;
            assert!(chunk == &expected[at..at + chunk.len()]);
            m.release(at + chunk.len());
            let resident = resident_of_mapping(m.data().as_ptr());
            assert!(
                resident <= limit,
                "pass {pass}: {resident} bytes resident at MiB {i}"
            );
        }
    }
    drop(m);
    assert_eq!(names(&s).len(), 2, "{:?}", names(&s));
}

/// `stream_data` drops every file of a chain from the page cache behind it;
/// `stream_data_cached` leaves them there (the next snapshot reads them again).
#[test]
fn a_streamed_chain_leaves_the_page_cache_as_asked() {
    use super::tests::cached_share;
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SnapshotStore::open(dir.path()).expect("open");
    let mut rng = Rng(7);
    let data = rng.bytes(12 << 20);
    let f1 = s.write(&meta(1), &data).expect("write base");
    let ops = vec![
        Op::Copy(0, 6 << 20),
        Op::Literal(rng.bytes(4 << 20)),
        Op::Copy(7 << 20, 5 << 20),
    ];
    let d2 = write_delta(&s, 2, &f1, b"", &ops);
    let data2 = apply(&data, b"", &ops);
    let ops = vec![Op::Literal(rng.bytes(3 << 20)), Op::Copy(1 << 20, 14 << 20)];
    let d3 = write_delta(&s, 3, &d2, b"", &ops);
    let chain = [&f1, &d2, &d3];
    for f in chain {
        std::fs::read(&f.path).expect("read into the cache");
    }
    let stream = |cached: bool| {
        let mut d = if cached {
            SnapshotStore::stream_data_cached(&d3.path)
        } else {
            SnapshotStore::stream_data(&d3.path)
        }
        .expect("stream");
        let mut sink = vec![];
        d.read_to_end(&mut sink).expect("read");
        assert!(sink == apply(&data2, b"", &ops));
    };
    stream(true);
    for f in chain {
        let (share, _) = cached_share(&f.path);
        assert!(
            share > 0.9,
            "{:.0}% of {} cached",
            share * 100.0,
            f.path.display()
        );
    }
    stream(false);
    for f in chain {
        let (share, tmpfs) = cached_share(&f.path);
        if !tmpfs {
            assert!(
                share < 0.1,
                "{:.0}% of {} still cached",
                share * 100.0,
                f.path.display()
            );
        }
    }
}
