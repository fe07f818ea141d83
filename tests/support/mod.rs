//! The one support module of the integration tests (`mod support;` in every tests/*.rs):
//! process harnesses and clients shared by all of them.
//!
//! - [`ports`]: free loopback ports.
//! - [`process`]: the keeperd and keeperctl binaries: one-shot runs under a deadline, and
//!   [`Node`], a keeperd process started, killed -9, stopped, paused and resumed.
//! - [`cluster`]: [`Cluster`], an ensemble of [`Node`]s from zoo.cfg `server.N` lines, with
//!   the waits for a leader and for a membership.
//! - [`fourlw`]: four-letter words (`keeperd::admin::four_letter_word`) and the waits until a
//!   server answers or serves.
//! - [`client`]: `zookeeper-client` sessions (with retries while servers start) and the
//!   create options the tests use.
//! - [`http`]: a minimal HTTP client for the AdminServer and /metrics.
//! - [`inproc`]: an in-process keeperd on its own temporary dataDir, and test time bounds.
//! - [`wire`]: a raw client-port session built with keeperd's own codec.
//! - [`rng`]: the seeded generator of the randomised tests.
//! - [`proxy`]: a TCP proxy in front of the quorum ports that cuts, delays and heals links.
//! - [`tmpfs`]: a small tmpfs to fill a server's disk.
//! - [`proxied`]: an ensemble whose quorum links all go through a [`proxy::Proxy`].
//! - [`webdriver`]: headless Chromium driven through chromedriver (the console tests).

// Each test file is its own crate and uses only part of this module; the rest would warn
// as dead code in every one of them.
#![allow(dead_code)]

pub mod client;
pub mod cluster;
pub mod fourlw;
pub mod http;
pub mod inproc;
pub mod ports;
pub mod process;
pub mod proxied;
pub mod proxy;
pub mod rng;
pub mod tmpfs;
pub mod webdriver;
pub mod wire;

// Re-exported so that a test file can `use support::*`; a file that uses nothing of one
// submodule would otherwise warn about its re-export.
#[allow(unused_imports)]
pub use {
    client::*, cluster::*, fourlw::*, http::*, inproc::*, ports::*, process::*, rng::*, wire::*,
};
