//! A connection's writer task: the only one touching the socket's write half. It writes the
//! frames queued on the connection's `Out` channel, batching them into one flush, and
//! closes the socket on `Out::Close` or when the client stops reading for too long.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use crate::server::{ConnHandle, Out};

pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    half: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    closed: oneshot::Sender<()>,
    handle: Arc<ConnHandle>,
) {
    let mut w = BufWriter::with_capacity(64 * 1024, half);
    // A client that stops reading for longer than twice its session timeout is gone as far
    // as ZooKeeper is concerned (its session expires); the connection is dropped rather
    // than held open with its backlog.
    let stall = std::time::Duration::from_millis(2 * handle.timeout_ms.max(1000) as u64);
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Out::Frame(b) => {
                    let ok = matches!(
                        tokio::time::timeout(stall, w.write_all(&b)).await,
                        Ok(Ok(()))
                    );
                    handle.backlog.fetch_sub(b.len(), Relaxed);
                    handle.drained.notify_waiters();
                    if !ok {
                        break 'outer;
                    }
                }
                Out::Close => {
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        if !matches!(tokio::time::timeout(stall, w.flush()).await, Ok(Ok(()))) {
            break;
        }
    }
    // Nothing more will drain: release whoever waits on the backlog (their frames now go
    // nowhere), so the responder can finish and the connection end.
    handle.backlog.store(0, Relaxed);
    handle.drained.notify_waiters();
    let _ = closed.send(());
}
