//! keeperd: a ZooKeeper-compatible coordination server.
//!
//! Layers depend one way only: `proto` <- `tree` <- `consensus` <- `server`; `watch`, `admin`
//! and `config` serve the server. See DESIGN.md in the team's shared folder for the write path.

pub mod admin;
pub mod config;
pub mod consensus;
pub mod import;
pub mod proto;
pub mod server;
pub mod tree;
pub mod watch;
pub mod zkfiles;
