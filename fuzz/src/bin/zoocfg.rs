//! AFL target: `keeperd_fuzz::zoocfg` on each input (see src/checks.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = keeperd_fuzz::zoocfg(data);
    });
}
