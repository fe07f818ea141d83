//! AFL target: `keeperd_fuzz::jute` on each input (see src/checks.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = keeperd_fuzz::jute(data);
    });
}
