//! raft-rs logs through `slog`; the rest of keeperd logs through `tracing`. This drain forwards
//! every slog record to `tracing` (target `keeperd::raft`) with its key-value pairs appended,
//! so one subscriber (and one `RUST_LOG` filter) sees both.

use std::fmt::{self, Write as _};

use slog::{Drain, Key, OwnedKVList, Record, Serializer, KV};

/// A `slog` drain that re-emits records as `tracing` events.
pub struct TracingDrain;

/// Collects a record's key-value pairs as ` key=value` text.
struct KvText(String);

impl Serializer for KvText {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut kv = KvText(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let msg = record.msg();
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "keeperd::raft", "{msg}{}", kv.0)
            }
            slog::Level::Warning => tracing::warn!(target: "keeperd::raft", "{msg}{}", kv.0),
            slog::Level::Info => tracing::info!(target: "keeperd::raft", "{msg}{}", kv.0),
            slog::Level::Debug => tracing::debug!(target: "keeperd::raft", "{msg}{}", kv.0),
            slog::Level::Trace => tracing::trace!(target: "keeperd::raft", "{msg}{}", kv.0),
        }
        Ok(())
    }
}

/// The logger handed to `RawNode`: every line carries this server's myid.
pub fn raft_logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("myid" => id))
}
