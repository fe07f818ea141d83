//! keeperd: a ZooKeeper-compatible coordination server.
//!
//! The core layers depend one way: `proto` <- `tree` <- `consensus` <- `server`. Beside them,
//! `watch` and `admin` serve the server; `zkfiles` and `import` take a ZooKeeper dataDir over
//! (and back, `export-zk`); `config` parses zoo.cfg for the server, `import` and the
//! binaries, and lends `tree` its membership types.
//!
//! docs/architecture.md in this repository describes the layers, the write and read paths,
//! the threads and the lock order, and where each zoo.cfg key takes effect.

pub mod admin;
pub mod cleanup;
pub mod config;
pub mod consensus;
pub mod dump;
pub mod import;
pub mod logging;
pub mod proto;
pub mod server;
pub mod summary;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod tree;
pub mod watch;
pub mod zkfiles;
