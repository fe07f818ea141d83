//! The fuzz targets' checks, one function per target. Each takes arbitrary bytes, must not
//! panic, and asserts a property of whatever decodes. The AFL binaries in `src/bin/` call
//! them, and the main package's `tests/fuzz_corpus.rs` replays the committed corpus through
//! the same file (`checks.rs`), so the corpus is checked by `cargo test` without AFL.

mod checks;

pub use checks::{frame, jute, zoocfg};
