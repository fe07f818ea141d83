//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! own checks (`fuzz/src/checks.rs`, compiled in here), so `cargo test` keeps every input the
//! AFL runs found interesting passing, without AFL. Any file in `fuzz/crashes/` is a known
//! crash awaiting a fix and is not replayed here (docs/security.md, "Fuzzing").

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// The corpus files of one target, sorted; the seeds are the files named `seed-*`.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every corpus file of `target` within a time limit. Every seed must be
/// accepted (they are valid inputs, so a decoder that starts rejecting one is a regression);
/// the other files must only pass the checks. Returns (files, accepted).
fn replay(target: &str, check: fn(&[u8]) -> bool) -> (usize, usize) {
    let files = corpus(target);
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let mut accepted = 0;
        for path in &files {
            let data = std::fs::read(path).expect("read corpus file");
            let ok = check(&data);
            let seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            assert!(!seed || ok, "seed {} is not accepted", path.display());
            accepted += usize::from(ok);
        }
        let _ = tx.send((files.len(), accepted));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(counts) => counts,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("replaying the {target} corpus took over 120 s")
        }
        // The worker panicked (a check failed): report its message.
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

#[test]
fn jute_corpus_replays() {
    let (files, accepted) = replay("jute", checks::jute);
    assert!(files >= 30, "only {files} jute corpus files");
    assert!(accepted >= 30, "only {accepted} of {files} decoded");
}

#[test]
fn frame_corpus_replays() {
    let (files, accepted) = replay("frame", checks::frame);
    assert!(files >= 10, "only {files} frame corpus files");
    assert!(accepted >= 10, "only {accepted} of {files} decoded");
}

#[test]
fn zoocfg_corpus_replays() {
    let (files, accepted) = replay("zoocfg", checks::zoocfg);
    assert!(files >= 4, "only {files} zoo.cfg corpus files");
    assert!(accepted >= 4, "only {accepted} of {files} parsed");
}
