//! `Summary`: a lock-free distribution of millisecond values (request latencies, fsync and
//! snapshot times) for the Prometheus summaries ZooKeeper exports (readlatency,
//! updatelatency, fsynctime, snapshottime). Count and sum are exact and cumulative;
//! quantiles come from log-linear buckets (8 per power of two, so a quantile is at most
//! 12.5% above the true value, and never above the largest value seen). Recording is a few
//! relaxed atomic adds: it sits on the request path.
//!
//! Quantiles cover the last 10 minutes, as simpleclient's summaries in ZooKeeper's
//! Prometheus provider do (maxAgeSeconds 600, 5 age buckets): every value goes into 5
//! staggered windows, one of which is reset every 2 minutes; quantiles are read from the
//! oldest, which holds between 8 and 10 minutes of values. A separate cumulative histogram
//! (`nonzero_buckets`) feeds the console, which diffs it between polls. `reset` (srst)
//! starts everything over.
//!
//! FSYNC_TIME and SNAPSHOT_TIME are process-wide, as ZooKeeper's ServerMetrics are: the
//! storage layer records into them without a handle to the server.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// Values below this have a bucket each.
const EXACT: u64 = 16;
/// Sub-buckets per power of two above EXACT.
const SUB: u64 = 8;
const BUCKETS: usize = (EXACT + SUB * 60) as usize;
/// The quantiles' window (simpleclient's maxAgeSeconds, as ZooKeeper sets it) and how many
/// staggered windows cover it (ageBuckets).
const MAX_AGE_MS: u64 = 600_000;
const AGE_BUCKETS: usize = 5;
const ROTATE_MS: u64 = MAX_AGE_MS / AGE_BUCKETS as u64;

/// Milliseconds on this process's monotonic clock.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

type Histogram = [AtomicU64; BUCKETS];

/// fdatasync rounds of the Raft log, ms (ZooKeeper's fsynctime).
pub static FSYNC_TIME: Summary = Summary::new();
/// Writing one snapshot, ms (ZooKeeper's snapshottime).
pub static SNAPSHOT_TIME: Summary = Summary::new();

#[derive(Debug)]
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
    /// Everything since the start (or `reset`).
    buckets: Histogram,
    /// The staggered windows; `oldest` is the one quantiles read.
    windows: [Histogram; AGE_BUCKETS],
    oldest: AtomicUsize,
    /// `now_ms()` when `oldest` last moved on.
    rotated_at: AtomicU64,
}

impl Default for Summary {
    fn default() -> Summary {
        Summary::new()
    }
}

fn bucket_of(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let exp = 63 - u64::from(v.leading_zeros()); // v in [2^exp, 2^(exp+1))
    let sub = (v >> (exp - 3)) & (SUB - 1);
    let b = EXACT + (exp - 4) * SUB + sub;
    (b as usize).min(BUCKETS - 1)
}

/// The largest value that falls in bucket `b`.
fn upper_of(b: usize) -> u64 {
    let b = b as u64;
    if b < EXACT {
        return b;
    }
    let exp = (b - EXACT) / SUB + 4;
    let sub = (b - EXACT) % SUB;
    let low = (1u64 << exp) + (sub << (exp - 3));
    low + (1u64 << (exp - 3)) - 1
}

impl Summary {
    pub const fn new() -> Summary {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const EMPTY: Histogram = [ZERO; BUCKETS];
        Summary {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: EMPTY,
            windows: [EMPTY; AGE_BUCKETS],
            oldest: AtomicUsize::new(0),
            rotated_at: AtomicU64::new(0),
        }
    }

    pub fn record(&self, ms: u64) {
        self.record_at(ms, now_ms());
    }

    fn record_at(&self, ms: u64, now: u64) {
        self.rotate(now);
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(ms, Relaxed);
        self.max.fetch_max(ms, Relaxed);
        let b = bucket_of(ms);
        self.buckets[b].fetch_add(1, Relaxed);
        for w in &self.windows {
            w[b].fetch_add(1, Relaxed);
        }
    }

    /// Empties the oldest window and makes the next one the oldest, once per ROTATE_MS
    /// that passed. Concurrent callers race on `rotated_at`: one of them rotates; a value
    /// recorded during the reset may be kept or lost (a quantile, not a count).
    fn rotate(&self, now: u64) {
        loop {
            let at = self.rotated_at.load(Relaxed);
            if now < at + ROTATE_MS {
                return;
            }
            if self
                .rotated_at
                .compare_exchange(at, at + ROTATE_MS, Relaxed, Relaxed)
                .is_ok()
            {
                let oldest = self.oldest.load(Relaxed);
                for b in &self.windows[oldest] {
                    b.store(0, Relaxed);
                }
                self.oldest.store((oldest + 1) % AGE_BUCKETS, Relaxed);
            }
        }
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.max.store(0, Relaxed);
        for b in self.buckets.iter().chain(self.windows.iter().flatten()) {
            b.store(0, Relaxed);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
    }

    /// The `q` quantile (0 < q <= 1) of the last 8-10 minutes; 0 when nothing was
    /// recorded in them.
    pub fn quantile(&self, q: f64) -> u64 {
        self.quantile_at(q, now_ms())
    }

    fn quantile_at(&self, q: f64, now: u64) -> u64 {
        self.rotate(now);
        let window = &self.windows[self.oldest.load(Relaxed)];
        let counts: Vec<u64> = window.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_of(b).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }

    /// The buckets that hold values, as (largest value of the bucket, count), ascending:
    /// cumulative since the start (or `reset`); the console diffs two of them to get the
    /// distribution of the seconds between.
    pub fn nonzero_buckets(&self) -> Vec<(u64, u64)> {
        self.buckets
            .iter()
            .enumerate()
            .filter_map(|(b, n)| {
                let n = n.load(Relaxed);
                (n > 0).then(|| (upper_of(b), n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 20, 1 << 40, u64::MAX / 2]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order at {v}");
            last = b;
            assert!(upper_of(b) >= v || b == BUCKETS - 1, "{v} above its bucket");
            if v >= EXACT && b < BUCKETS - 1 {
                // within 12.5%
                assert!((upper_of(b) - v) * 8 <= v, "{v}: bucket too wide");
            }
        }
    }

    #[test]
    fn quantiles_count_and_sum() {
        let s = Summary::new();
        assert_eq!(s.quantile(0.5), 0);
        for v in 1..=100 {
            s.record(v);
        }
        assert_eq!((s.count(), s.sum()), (100, 5050));
        let p50 = s.quantile(0.5);
        assert!((50..=56).contains(&p50), "p50 {p50}");
        let p99 = s.quantile(0.99);
        assert!((99..=100).contains(&p99), "p99 {p99}");
        assert_eq!(s.quantile(1.0), 100);
        s.reset();
        assert_eq!((s.count(), s.quantile(0.9)), (0, 0));
    }

    #[test]
    fn quantiles_forget_values_older_than_ten_minutes() {
        let s = Summary::new();
        let t0 = 1_000;
        for _ in 0..100 {
            s.record_at(500, t0);
        }
        assert_eq!(s.quantile_at(0.5, t0), 500);
        // 4 minutes later: the old values are still in the window; the new ones join.
        for _ in 0..300 {
            s.record_at(2, t0 + 240_000);
        }
        assert_eq!(s.quantile_at(0.99, t0 + 240_000), 500);
        assert_eq!(s.quantile_at(0.5, t0 + 240_000), 2);
        // Just under 10 minutes after the first values they still count (the oldest
        // window has been collecting since t0's rotation slot) ...
        assert_eq!(s.quantile_at(0.99, t0 + 590_000), 500);
        // ... after 10 minutes they are gone, the later values are not.
        assert_eq!(s.quantile_at(0.99, t0 + 601_000), 2);
        assert_eq!(s.quantile_at(0.99, t0 + 240_000 + 601_000), 0);
        // Count, sum and the console's histogram stay cumulative.
        assert_eq!((s.count(), s.sum()), (400, 100 * 500 + 300 * 2));
        assert_eq!(s.nonzero_buckets().iter().map(|(_, n)| n).sum::<u64>(), 400);
    }

    #[test]
    fn nonzero_buckets_hold_every_value_once() {
        let s = Summary::new();
        for v in [0, 3, 3, 40, 41, 1000] {
            s.record(v);
        }
        let b = s.nonzero_buckets();
        assert_eq!(b.iter().map(|(_, n)| n).sum::<u64>(), 6);
        assert_eq!(b[0], (0, 1));
        assert_eq!(b[1], (3, 2));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0), "{b:?}");
        assert!(b.last().unwrap().0 >= 1000);
    }
}
