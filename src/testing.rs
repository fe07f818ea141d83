//! Helpers shared by the unit tests.

/// xorshift64: the same sequence on every run, so a failing random test fails again.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
