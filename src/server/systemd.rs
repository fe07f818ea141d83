//! systemd's service notification protocol (sd_notify(3)), spoken directly: when systemd
//! starts keeperd with `Type=notify` it puts a datagram socket's path in `NOTIFY_SOCKET`, and
//! the service sends newline-separated `KEY=VALUE` assignments to it. keeperd sends
//!
//! ```text
//! READY=1, STATUS=...     once the client port listens and the local state is recovered
//! STATUS=Mode: leader ... whenever the mode or serving state changes
//! WATCHDOG=1              every WATCHDOG_USEC/2 while the runtime and the consensus node run
//! STOPPING=1              when shutting down
//! ```
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or `Type=simple`) every call is a no-op.
//! Readiness does not wait for a quorum: an ensemble member that waits for the others would
//! otherwise hold `systemctl start` (and an orchestration tool starting members one by one)
//! until a majority runs. The mode is in `STATUS=` (`systemctl status keeperd`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// Sends `state` to systemd's notification socket; false if there is none or it failed.
pub fn notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sender) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = socket.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket: the name follows a NUL byte instead of the '@'.
        use std::os::linux::net::SocketAddrExt;
        match std::os::unix::net::SocketAddr::from_abstract_name(name) {
            Ok(addr) => sender.send_to_addr(state.as_bytes(), &addr),
            Err(e) => Err(e),
        }
    } else {
        sender.send_to(state.as_bytes(), Path::new(&socket))
    };
    if let Err(e) = &sent {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
    sent.is_ok()
}

/// The watchdog interval systemd asks for (`WatchdogSec=`), if it asks and means this process.
fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// `STATUS=` text: the mode as `keeperd status` prints it, and whether clients are served.
fn status_line(shared: &Shared) -> String {
    let mode = shared.mode();
    let serving = if shared.serving() {
        "serving clients"
    } else {
        "not serving (waiting for a quorum)"
    };
    format!("Mode: {}, {serving}", mode.as_str())
}

/// Announces readiness, then keeps `STATUS=` current and feeds the watchdog until the
/// returned task is aborted. Does nothing without `NOTIFY_SOCKET`.
pub fn announce(shared: Arc<Shared>) -> Option<tokio::task::JoinHandle<()>> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let mut status = status_line(&shared);
    notify(&format!(
        "READY=1\nSTATUS={status}\nMAINPID={}",
        std::process::id()
    ));
    let watchdog = watchdog_interval();
    let period = watchdog
        .map(|w| (w / 2).min(Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let now = status_line(&shared);
            let mut message = String::new();
            if now != status {
                message.push_str(&format!("STATUS={now}\n"));
                status = now;
            }
            // The consensus node's own failure ends the process (fail-stop); a runtime too
            // busy or stuck to run this task lets the watchdog fire.
            if watchdog.is_some() && shared.raft().is_none_or(|r| !r.is_stopped()) {
                message.push_str("WATCHDOG=1\n");
            }
            if !message.is_empty() {
                notify(message.trim_end());
            }
        }
    }))
}
