//! `/metrics` in the Prometheus text format (version 0.0.4), under the names ZooKeeper 3.8's
//! PrometheusMetricsProvider exports, from the same `ServerSnapshot` as mntr.
//!
//! ```text
//! # HELP znode_count znode_count        every numeric mntr value: a gauge of the same name
//! # TYPE znode_count gauge               (ZooKeeper registers them with registerGauge)
//! znode_count 7
//! # TYPE readlatency summary            readlatency, updatelatency: quantiles 0.5 0.9 0.99
//! readlatency{quantile="0.5"} 1         fsynctime, snapshottime: quantile 0.5 (ZooKeeper's
//! readlatency_count 12                  BASIC detail level); values in ms
//! readlatency_sum 15
//! # TYPE keeperd_raft_term gauge        keeperd's own figures, under keeperd_
//! keeperd_raft_term 3
//! ```
//!
//! The help text is the metric's name, as ZooKeeper's provider writes it. keeperd's mntr
//! extras (snap_count, log_bytes, ...) are left out of the bare names: they are ZooKeeper
//! names only in keeperd, so they appear once, under keeperd_.

use std::fmt::Write as _;

use super::render::{monitor_values, MntrValue};
use super::snapshot::ServerSnapshot;

/// One summary's figures at the moment of the scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryFigures {
    pub name: &'static str,
    /// (quantile, value) pairs.
    pub quantiles: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: u64,
}

/// Prometheus metric types keeperd emits besides summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One keeperd figure: its name without the `keeperd_` prefix, help text, type, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub value: u64,
}

/// Quantiles ZooKeeper's provider attaches per detail level.
pub const ADVANCED_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
pub const BASIC_QUANTILES: [f64; 1] = [0.5];

/// The whole /metrics page.
pub fn prometheus_text(s: &ServerSnapshot, summaries: &[SummaryFigures], own: &[Figure]) -> String {
    let mut out = String::with_capacity(8 << 10);
    let extras: Vec<&str> = s.extra_gauges.iter().map(|(k, _)| *k).collect();
    for (name, v) in monitor_values(s) {
        let value = match v {
            MntrValue::Text(_) => continue,
            _ if extras.contains(&name) => continue,
            MntrValue::I(i) => i.to_string(),
            MntrValue::U(u) => u.to_string(),
            MntrValue::F(f) => float(f),
        };
        header(&mut out, name, name, "gauge");
        let _ = writeln!(out, "{name} {value}");
    }
    for sm in summaries {
        header(&mut out, sm.name, sm.name, "summary");
        for (q, v) in &sm.quantiles {
            let _ = writeln!(out, "{}{{quantile=\"{q}\"}} {v}", sm.name);
        }
        let _ = writeln!(out, "{}_count {}", sm.name, sm.count);
        let _ = writeln!(out, "{}_sum {}", sm.name, sm.sum);
    }
    for f in own {
        let name = format!("keeperd_{}", f.name);
        header(&mut out, &name, f.help, f.kind.as_str());
        let _ = writeln!(out, "{name} {}", f.value);
    }
    out
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    // HELP text escapes backslash and newline (the format's only two escapes there).
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A sample value: Prometheus reads Go's float syntax (NaN, +Inf, -Inf, decimals).
fn float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}
