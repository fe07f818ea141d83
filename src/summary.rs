//! `Summary`: a lock-free distribution of millisecond values (request latencies, fsync and
//! snapshot times) for the Prometheus summaries ZooKeeper exports (readlatency,
//! updatelatency, fsynctime, snapshottime). Count and sum are exact; quantiles come from
//! log-linear buckets (8 per power of two, so a quantile is at most 12.5% above the true
//! value, and never above the largest value seen). Recording is a few relaxed atomic adds:
//! it sits on the request path.
//!
//! Unlike simpleclient's summaries (a 10-minute sliding window) these cover everything since
//! the start; `reset` (srst) starts them over.
//!
//! FSYNC_TIME and SNAPSHOT_TIME are process-wide, as ZooKeeper's ServerMetrics are: the
//! storage layer records into them without a handle to the server.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Values below this have a bucket each.
const EXACT: u64 = 16;
/// Sub-buckets per power of two above EXACT.
const SUB: u64 = 8;
const BUCKETS: usize = (EXACT + SUB * 60) as usize;

/// fdatasync rounds of the Raft log, ms (ZooKeeper's fsynctime).
pub static FSYNC_TIME: Summary = Summary::new();
/// Writing one snapshot, ms (ZooKeeper's snapshottime).
pub static SNAPSHOT_TIME: Summary = Summary::new();

#[derive(Debug)]
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
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
        Summary {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
            buckets: [ZERO; BUCKETS],
        }
    }

    pub fn record(&self, ms: u64) {
        self.count.fetch_add(1, Relaxed);
        self.sum.fetch_add(ms, Relaxed);
        self.max.fetch_max(ms, Relaxed);
        self.buckets[bucket_of(ms)].fetch_add(1, Relaxed);
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.sum.store(0, Relaxed);
        self.max.store(0, Relaxed);
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    pub fn sum(&self) -> u64 {
        self.sum.load(Relaxed)
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

    /// The `q` quantile (0 < q <= 1); 0 when nothing was recorded.
    pub fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
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
