//! Tests of the Raft driver and its sled storage against real temp dirs: order and zxids,
//! group commit, restart, snapshots and compaction, corrupt snapshot fallback, torn log tail,
//! refusing unreadable dirs. Every wait is bounded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::node::{spawn_raft, RaftHandle, RaftOptions};
use super::storage::{log_db_dir, snapshot_dir, SNAP_PREFIX};
use super::{Proposer, StateMachine};
use crate::proto::response::Response;
use crate::tree::{Applied, Txn};

pub(super) const LIMIT: Duration = Duration::from_secs(20);

/// Records every applied (zxid, txn bytes); snapshots are the whole record.
type Record = Vec<(i64, Vec<u8>)>;

#[derive(Clone, Default)]
pub(super) struct Recorder(Arc<Mutex<Record>>);

impl Recorder {
    pub(super) fn get(&self) -> Vec<(i64, Vec<u8>)> {
        self.0.lock().expect("recorder lock").clone()
    }
}

impl StateMachine for Recorder {
    fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied {
        self.0
            .lock()
            .expect("recorder lock")
            .push((zxid, txn.to_bytes()));
        Applied {
            zxid,
            result: Ok(Response::Empty),
            triggers: vec![],
            deleted: vec![],
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut out = vec![];
        for (z, t) in self.0.lock().expect("recorder lock").iter() {
            out.extend_from_slice(&z.to_be_bytes());
            out.extend_from_slice(&(t.len() as u32).to_be_bytes());
            out.extend_from_slice(t);
        }
        out
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), crate::proto::Error> {
        *self.0.lock().expect("recorder lock") = decode_record(data)?;
        Ok(())
    }

    /// Start-up decodes the newest snapshot ahead (older ones are restored from bytes).
    fn decoder(&self) -> Option<super::SnapshotDecoder> {
        Some(Box::new(|data, _release| {
            Ok(Box::new(decode_record(data)?) as super::Decoded)
        }))
    }

    fn install(&mut self, decoded: super::Decoded) -> Result<(), crate::proto::Error> {
        let record = decoded.downcast::<Record>().expect("a decoded record");
        *self.0.lock().expect("recorder lock") = *record;
        Ok(())
    }
}

fn decode_record(mut data: &[u8]) -> Result<Record, crate::proto::Error> {
    let bad = || crate::proto::Error::malformed("recorder snapshot", "truncated");
    let mut v = vec![];
    while !data.is_empty() {
        let z = i64::from_be_bytes(
            data.get(..8)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        let n = u32::from_be_bytes(
            data.get(8..12)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let t = data.get(12..12 + n).ok_or_else(bad)?.to_vec();
        v.push((z, t));
        data = &data[12 + n..];
    }
    Ok(v)
}

/// A txn numbered `i` that any member may forward to the leader.
pub(super) fn txn(i: i64) -> Txn {
    Txn::CreateSession {
        session_id: i,
        timeout_ms: 1,
    }
}

fn opts(dir: &Path) -> RaftOptions {
    let mut o = RaftOptions::standalone(dir);
    o.tick = Duration::from_millis(20);
    o
}

async fn start(o: &RaftOptions) -> (Recorder, Proposer, RaftHandle) {
    let sm = Recorder::default();
    let o = o.clone();
    let sm2 = sm.clone();
    let (p, h) = tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || spawn_raft(sm2, o)),
    )
    .await
    .expect("recovery in time")
    .expect("recovery thread")
    .expect("spawn_raft");
    (sm, p, h)
}

async fn stop(p: Proposer, h: RaftHandle) {
    drop(p);
    h.shutdown();
    tokio::time::timeout(LIMIT, h.stopped())
        .await
        .expect("node stops in time");
}

/// Proposes `range` in one go and waits for every answer; returns their zxids.
pub(super) async fn propose_all(p: &Proposer, range: std::ops::Range<i64>) -> Vec<i64> {
    let rxs: Vec<_> = range
        .map(|i| p.propose(txn(i)).expect("accepting"))
        .collect();
    let mut out = vec![];
    for rx in rxs {
        let applied = tokio::time::timeout(LIMIT, rx)
            .await
            .expect("applied in time")
            .expect("answered");
        out.push(applied.zxid);
    }
    out
}

/// Proposes `range` one txn at a time, waiting for each (applies spread over many Readies).
async fn propose_each(p: &Proposer, range: std::ops::Range<i64>) {
    for i in range {
        propose_all(p, i..i + 1).await;
    }
}

/// Waits until the status satisfies `f`.
pub(super) async fn wait_status(h: &RaftHandle, f: impl Fn(&super::RaftStatus) -> bool) {
    let mut w = h.watch();
    tokio::time::timeout(LIMIT, w.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("status in time; last: {:?}", h.status()))
        .expect("node alive");
}

fn txns(sm: &Recorder) -> Vec<Vec<u8>> {
    sm.get().into_iter().map(|(_, t)| t).collect()
}

fn snapshot_files(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(snapshot_dir(data))
        .expect("snapshot dir")
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let z = u64::from_str_radix(name.strip_prefix(SNAP_PREFIX)?, 16).ok()?;
            Some((z, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().rev().map(|(_, p)| p).collect()
}

fn assert_increasing(zxids: &[i64]) {
    for w in zxids.windows(2) {
        assert!(w[0] < w[1], "zxids not increasing: {w:?}");
    }
}

#[tokio::test]
async fn applies_in_order_with_increasing_zxids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (sm, p, h) = start(&o).await;
    assert!(h.is_leader());
    assert_eq!(h.leader_id(), 1);
    let zxids = propose_all(&p, 0..50).await;
    assert_eq!(zxids.len(), 50);
    assert_increasing(&zxids);
    // term 1 (or 2 after pre-vote + vote? one election), index 2.. (1 is the leader's entry)
    let term = h.term() as i64;
    assert_eq!(zxids[0], (term << 32) | 2);
    let got = sm.get();
    assert_eq!(got.iter().map(|(z, _)| *z).collect::<Vec<_>>(), zxids);
    assert_eq!(
        txns(&sm),
        (0..50).map(|i| txn(i).to_bytes()).collect::<Vec<_>>()
    );
    // Detached proposals are applied too.
    p.propose_detached(txn(99)).expect("accepting");
    wait_status(&h, |s| s.applied_index == 52).await;
    assert_eq!(sm.get().len(), 51);
    stop(p, h).await;
}

#[tokio::test]
async fn group_commit_one_fdatasync_per_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (_sm, p, h) = start(&o).await;
    eprintln!("after recovery: {:?}", h.status());
    // One at a time: every proposal is its own Ready and its own fdatasync.
    let before = h.status();
    propose_each(&p, 0..20).await;
    // Status is published after the Ready that answered the proposal.
    wait_status(&h, |s| s.applied_index == before.applied_index + 20).await;
    let after = h.status();
    eprintln!(
        "one by one: 20 proposals -> {} durable readies, {} fdatasync rounds",
        after.sync_readies - before.sync_readies,
        after.fsyncs - before.fsyncs
    );
    assert_eq!(after.fsyncs - before.fsyncs, 20);
    assert_eq!(after.sync_readies - before.sync_readies, 20);
    let before = h.status();
    let n = 500;
    let zxids = propose_all(&p, 0..n).await;
    assert_eq!(zxids.len(), n as usize);
    wait_status(&h, |s| s.applied_index == before.applied_index + n as u64).await;
    let after = h.status();
    let syncs = after.fsyncs - before.fsyncs;
    let readies = after.sync_readies - before.sync_readies;
    eprintln!("group commit: {n} proposals -> {readies} durable readies, {syncs} fdatasync rounds");
    assert_eq!(syncs, readies, "one fdatasync round per durable Ready");
    assert!(syncs >= 1 && syncs < n as u64, "entries were batched");
    stop(p, h).await;
}

#[tokio::test]
async fn restart_rebuilds_the_state_and_continues_with_a_higher_term() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (sm, p, h) = start(&o).await;
    let first = propose_all(&p, 0..40).await;
    let term1 = h.term();
    stop(p, h).await;
    let before = sm.get();

    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before, "replayed identically from the log");
    assert!(h2.term() > term1, "a restart is a new election");
    let more = propose_all(&p2, 40..50).await;
    assert!(more[0] > *first.last().expect("some"));
    assert_eq!(more[0] >> 32, h2.term() as i64);
    assert_increasing(&more);
    stop(p2, h2).await;
}

#[tokio::test]
async fn snapshots_compact_the_log_and_restart_uses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snap_count = 10;
    let (sm, p, h) = start(&o).await;
    // One proposal at a time, so applies are spread over many Readies. Snapshots are
    // written on their own thread while entries keep coming: a slow disk gives fewer of
    // them, so propose until there are four (bounded).
    let deadline = std::time::Instant::now() + LIMIT;
    let mut next = 0;
    while h.status().snapshot_files < 4 || h.status().first_index <= 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no 4 snapshots: {:?}",
            h.status()
        );
        propose_each(&p, next..next + 20).await;
        next += 20;
    }
    let h1 = h.clone();
    stop(p, h).await;
    let st = h1.status();
    // Purge is off: files stay, but the log only goes back to the 3rd newest snapshot.
    let files = snapshot_files(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    assert!(st.first_index > 1 && st.first_index <= st.last_snapshot_index);
    let third_newest = u64::from_str_radix(
        files[2]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SNAP_PREFIX))
            .expect("name"),
        16,
    )
    .expect("hex");
    assert_eq!(st.first_index - 1, third_newest & 0xffff_ffff);
    let before = sm.get();

    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    let st2 = h2.status();
    assert!(st2.restored_snapshot_index > 0);
    assert_eq!(st2.restored_snapshot_index, st.last_snapshot_index);
    stop(p2, h2).await;
}

#[tokio::test]
async fn purge_keeps_snap_retain_count_snapshots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snap_count = 8;
    o.snap_retain_count = 3;
    o.purge_interval_hours = 1;
    let (sm, p, h) = start(&o).await;
    propose_each(&p, 0..150).await;
    wait_status(&h, |s| s.last_snapshot_index > 100).await;
    stop(p, h).await;
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let before = sm.get();
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    stop(p2, h2).await;
}

#[tokio::test]
async fn corrupt_newest_snapshot_falls_back_to_an_older_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snap_count = 10;
    let (sm, p, h) = start(&o).await;
    propose_each(&p, 0..80).await;
    wait_status(&h, |s| s.snapshot_files >= 2).await;
    stop(p, h).await;
    let before = sm.get();
    let files = snapshot_files(dir.path());
    assert!(files.len() >= 2);
    // Flip a byte in the middle of the newest snapshot.
    let mut bytes = std::fs::read(&files[0]).expect("read snapshot");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&files[0], bytes).expect("write snapshot");

    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before, "older snapshot + longer log tail");
    let st = h2.status();
    let second = u64::from_str_radix(
        files[1]
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(SNAP_PREFIX))
            .expect("name"),
        16,
    )
    .expect("hex");
    assert_eq!(st.restored_snapshot_index, second & 0xffff_ffff);
    stop(p2, h2).await;
}

/// Each proposal is answered with its own entry's outcome: 300 proposals queued at once are
/// applied in a few runs of many txns (`apply_all`), and the zxid answered to proposal `i`
/// is the one the state machine applied `txn(i)` at.
#[tokio::test]
async fn answers_match_their_proposals_in_a_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (sm, p, h) = start(&o).await;
    let zxids = propose_all(&p, 0..300).await;
    let applied: std::collections::HashMap<i64, Vec<u8>> = sm.get().into_iter().collect();
    for (i, z) in zxids.iter().enumerate() {
        assert_eq!(
            applied.get(z),
            Some(&txn(i as i64).to_bytes()),
            "proposal {i} answered with zxid {z:#x}"
        );
    }
    stop(p, h).await;
}

/// Rewrites the newest segment file of the log with `f`: its end is the last entry's
/// record (the zero-filled space after it is left out).
fn mangle_last_entry(data: &Path, f: impl Fn(&mut Vec<u8>)) {
    let wal = log_db_dir(data).join("wal");
    let newest = std::fs::read_dir(&wal)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max()
        .expect("a segment");
    let mut v = std::fs::read(&newest).expect("read");
    v.truncate(crate::consensus::storage::data_end(&v));
    f(&mut v);
    std::fs::write(&newest, v).expect("write");
}

#[tokio::test]
async fn corrupt_log_tail_entry_is_dropped() {
    for (name, mangle) in [
        (
            "bit flip",
            Box::new(|v: &mut Vec<u8>| {
                let n = v.len() - 1;
                v[n] ^= 1;
            }) as Box<dyn Fn(&mut Vec<u8>)>,
        ),
        (
            "truncated",
            Box::new(|v: &mut Vec<u8>| v.truncate(v.len() - 3)),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = opts(dir.path());
        let (sm, p, h) = start(&o).await;
        propose_all(&p, 0..20).await;
        stop(p, h).await;
        let before = sm.get();
        mangle_last_entry(dir.path(), mangle);

        let (sm2, p2, h2) = start(&o).await;
        assert_eq!(
            sm2.get(),
            before[..19].to_vec(),
            "{name}: all but the torn entry"
        );
        let more = propose_all(&p2, 100..105).await;
        assert!(more[0] > before[18].0);
        stop(p2, h2).await;
    }
}

/// The error `spawn_raft` refuses to start with.
async fn refused(o: RaftOptions) -> super::ConsensusError {
    let r = tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || spawn_raft(Recorder::default(), o)),
    )
    .await
    .expect("in time")
    .expect("thread");
    match r {
        Ok(_) => panic!("spawn_raft started"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn unreadable_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let e = refused(opts(&file)).await;
    assert!(e.to_string().contains("not-a-dir"), "{e}");
    assert!(matches!(e, super::ConsensusError::Storage(_)), "{e:?}");
}

#[tokio::test]
async fn compacted_log_without_its_snapshots_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snap_count = 6;
    let (_sm, p, h) = start(&o).await;
    propose_each(&p, 0..80).await;
    wait_status(&h, |s| s.first_index > 1).await;
    stop(p, h).await;
    for f in snapshot_files(dir.path()) {
        std::fs::remove_file(f).expect("rm");
    }
    let e = refused(o.clone()).await;
    assert!(e.to_string().contains("no usable snapshot"), "{e}");
    assert!(
        matches!(e, super::ConsensusError::Unrecoverable(_)),
        "{e:?}"
    );
}

#[tokio::test]
async fn separate_data_log_dir_holds_the_log() {
    let data = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut o = opts(data.path());
    o.log_dir = Some(logs.path().to_path_buf());
    let (sm, p, h) = start(&o).await;
    propose_all(&p, 0..10).await;
    stop(p, h).await;
    assert!(log_db_dir(logs.path()).join("db").exists());
    assert!(!log_db_dir(data.path()).exists());
    let before = sm.get();
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    stop(p2, h2).await;
}

/// Files of a keeperd that kept them in ZooKeeper's `version-2` move to `keeperd/` at start;
/// ZooKeeper's own files there stay where they are, untouched; a seed is ignored (the store
/// has state).
#[tokio::test]
async fn the_old_layout_in_version_2_moves_out() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut o = opts(data.path());
    o.snap_count = 20;
    let (sm, p, h) = start(&o).await;
    propose_each(&p, 0..60).await;
    stop(p, h).await;
    let before = sm.get();
    let v2 = data.path().join("version-2");
    std::fs::create_dir_all(&v2).expect("version-2");
    std::fs::rename(log_db_dir(data.path()), v2.join("raftlog")).expect("old log");
    let mut moved = 0;
    for f in snapshot_files(data.path()) {
        std::fs::rename(&f, v2.join(f.file_name().expect("name"))).expect("old snapshot");
        moved += 1;
    }
    assert!(moved > 0);
    std::fs::write(v2.join("snapshot.5"), b"ZooKeeper's").expect("zk file");
    std::fs::write(v2.join("log.1"), b"ZooKeeper's").expect("zk file");
    assert!(super::storage::has_state(data.path(), data.path()).expect("probe"));
    o.seed = Some(super::Seed {
        data: std::sync::Arc::new(vec![]),
        zxid: 7,
    });
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    stop(p2, h2).await;
    assert_eq!(snapshot_files(data.path()).len(), moved);
    let mut left: Vec<String> = std::fs::read_dir(&v2)
        .expect("version-2")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["log.1", "snapshot.5"]);
    assert_eq!(
        std::fs::read(v2.join("snapshot.5")).expect("zk"),
        b"ZooKeeper's"
    );
}

#[tokio::test]
async fn force_sync_off_skips_fdatasync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.force_sync = false;
    let (sm, p, h) = start(&o).await;
    let before = h.status();
    propose_each(&p, 0..10).await;
    wait_status(&h, |s| s.applied_index == before.applied_index + 10).await;
    let after = h.status();
    assert_eq!(after.sync_readies - before.sync_readies, 10);
    assert_eq!(after.fsyncs, before.fsyncs, "no fdatasync per Ready");
    stop(p, h).await;
    // A clean shutdown still leaves everything readable.
    let expect = sm.get();
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), expect);
    stop(p2, h2).await;
}

#[tokio::test]
async fn large_entries_survive_a_restart() {
    // Over sled 0.34's inline limit (~128 KiB): stored as a blob file, which we fdatasync.
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (sm, p, h) = start(&o).await;
    let big = Txn::Reap {
        time_ms: 7,
        paths: vec!["/x".repeat(150_000)],
    };
    let rx = p.propose(big.clone()).expect("accepting");
    tokio::time::timeout(LIMIT, rx)
        .await
        .expect("in time")
        .expect("answered");
    propose_all(&p, 0..3).await;
    stop(p, h).await;
    let before = sm.get();
    assert_eq!(before[0].1, big.to_bytes());
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    stop(p2, h2).await;
}

/// A log longer than a Ready hands over at once (`MAX_COMMITTED_PER_READY`, 4 MiB) is
/// replayed whole and in order at restart, a slice per Ready.
#[tokio::test]
async fn a_log_of_many_readies_replays_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = opts(dir.path());
    let (sm, p, h) = start(&o).await;
    for i in 0..30 {
        let rx = p
            .propose(Txn::Reap {
                time_ms: i,
                paths: vec![format!("/{i}").repeat(200_000 / (2 + i.to_string().len()))],
            })
            .expect("accepting");
        tokio::time::timeout(LIMIT, rx)
            .await
            .expect("in time")
            .expect("answered");
        propose_all(&p, i * 10..i * 10 + 10).await;
    }
    stop(p, h).await;
    let before = sm.get();
    assert_eq!(before.len(), 330);
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before, "replayed identically");
    stop(p2, h2).await;
}

/// A log that reaches 2^32 entries: zxids keep increasing (the epoch moves on where the
/// 32-bit counter would wrap), snapshots across the wrap are found newest first, and a
/// restart rebuilds the same state. The log starts just below the wrap from a snapshot, as
/// a long-lived group's would.
#[tokio::test]
async fn zxids_keep_increasing_where_the_counter_would_wrap() {
    use super::storage::SledStorage;
    use raft::prelude::{ConfState, SnapshotMetadata};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = opts(dir.path());
    o.snap_count = 4;
    {
        let (mut store, _) = SledStorage::open(dir.path(), dir.path(), false, &[]).expect("open");
        let meta = SnapshotMetadata {
            index: (1 << 32) - 3,
            term: 7,
            conf_state: Some(ConfState {
                voters: vec![1],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        store.snapshots().write(&meta, &[]).expect("snapshot");
        store.install_snapshot(&meta).expect("install");
    }
    let (sm, p, h) = start(&o).await;
    let zxids = propose_all(&p, 0..12).await;
    assert!(zxids.windows(2).all(|w| w[0] < w[1]), "{zxids:x?}");
    let epochs: Vec<i64> = zxids.iter().map(|z| z >> 32).collect();
    assert!(
        epochs.first() < epochs.last(),
        "the epoch moved on at the wrap: {zxids:x?}"
    );
    wait_status(&h, |s| s.last_snapshot_index > 1 << 32).await;
    stop(p, h).await;
    let before = sm.get();
    let (sm2, p2, h2) = start(&o).await;
    assert_eq!(sm2.get(), before);
    let more = propose_all(&p2, 100..102).await;
    assert!(
        more[0] > *zxids.last().expect("zxids"),
        "{more:x?} after {zxids:x?}"
    );
    stop(p2, h2).await;
}
