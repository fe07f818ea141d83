//! The tokio client edge. (In progress.)

use crate::config::Config;

/// Binds the client port from `config` and serves until SIGINT/SIGTERM.
pub async fn run_until_signal(config: Config) -> std::io::Result<()> {
    let _ = config;
    Ok(())
}
