//! Counters the four-letter words and mntr report. Updated with relaxed atomics from the
//! connection tasks; read as a consistent-enough snapshot.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::summary::Summary;

/// Request latency in milliseconds: min/avg/max over everything since the last reset.
#[derive(Debug)]
pub struct Latency {
    count: AtomicU64,
    total_ms: AtomicU64,
    min_ms: AtomicU64,
    max_ms: AtomicU64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency {
            count: AtomicU64::new(0),
            total_ms: AtomicU64::new(0),
            min_ms: AtomicU64::new(u64::MAX),
            max_ms: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, ms: u64) {
        self.count.fetch_add(1, Relaxed);
        self.total_ms.fetch_add(ms, Relaxed);
        self.min_ms.fetch_min(ms, Relaxed);
        self.max_ms.fetch_max(ms, Relaxed);
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.total_ms.store(0, Relaxed);
        self.min_ms.store(u64::MAX, Relaxed);
        self.max_ms.store(0, Relaxed);
    }

    /// (min, avg, max) in ms; zeros when nothing was recorded, like ZooKeeper.
    pub fn get(&self) -> (u64, f64, u64) {
        let n = self.count.load(Relaxed);
        if n == 0 {
            return (0, 0.0, 0);
        }
        let total = self.total_ms.load(Relaxed);
        (
            self.min_ms.load(Relaxed),
            total as f64 / n as f64,
            self.max_ms.load(Relaxed),
        )
    }

    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }
}

/// Server-wide counters (ServerStats in ZooKeeper).
#[derive(Debug)]
pub struct ServerStats {
    pub started: Instant,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding: AtomicI64,
    pub latency: Latency,
    /// Reads and writes apart, with quantiles (ZooKeeper's readlatency / updatelatency).
    pub read_latency: Summary,
    pub update_latency: Summary,
    pub last_proposal_size: AtomicU64,
    pub min_proposal_size: AtomicU64,
    pub max_proposal_size: AtomicU64,
}

impl Default for ServerStats {
    fn default() -> ServerStats {
        ServerStats {
            started: Instant::now(),
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            latency: Latency::default(),
            read_latency: Summary::new(),
            update_latency: Summary::new(),
            last_proposal_size: AtomicU64::new(0),
            min_proposal_size: AtomicU64::new(u64::MAX),
            max_proposal_size: AtomicU64::new(0),
        }
    }
}

impl ServerStats {
    /// srst: resets latency and packet counters.
    pub fn reset(&self) {
        self.packets_received.store(0, Relaxed);
        self.packets_sent.store(0, Relaxed);
        self.latency.reset();
        self.read_latency.reset();
        self.update_latency.reset();
        self.last_proposal_size.store(0, Relaxed);
        self.min_proposal_size.store(u64::MAX, Relaxed);
        self.max_proposal_size.store(0, Relaxed);
    }
}

/// Per-connection counters (cons / stat output).
#[derive(Debug)]
pub struct ConnStats {
    pub established_ms: i64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub queued: AtomicI64,
    /// Last client xid (lcxid), last zxid answered (lzxid), last response time (lresp, ms).
    pub last_cxid: AtomicI64,
    pub last_zxid: AtomicI64,
    pub last_response_ms: AtomicI64,
    pub last_latency_ms: AtomicU64,
    /// The opcode of the last operation answered (lop; 0 = none yet).
    pub last_op: AtomicI64,
    pub latency: Latency,
}

impl ConnStats {
    pub fn new(established_ms: i64) -> ConnStats {
        ConnStats {
            established_ms,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicI64::new(0),
            last_cxid: AtomicI64::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_response_ms: AtomicI64::new(0),
            last_latency_ms: AtomicU64::new(0),
            last_op: AtomicI64::new(0),
            latency: Latency::default(),
        }
    }

    /// crst.
    pub fn reset(&self) {
        self.received.store(0, Relaxed);
        self.sent.store(0, Relaxed);
        self.last_cxid.store(-1, Relaxed);
        self.last_zxid.store(-1, Relaxed);
        self.last_response_ms.store(0, Relaxed);
        self.last_latency_ms.store(0, Relaxed);
        self.last_op.store(0, Relaxed);
        self.latency.reset();
    }
}
