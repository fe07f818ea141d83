//! A connection's responder task: answers the queued requests in request order (a write once
//! the log has applied it, a read by executing it against the local tree when its turn
//! comes) and queues the replies for the writer.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracing::warn;

use super::{InFlight, Item};
use crate::proto::opcode::{xid, OpCode};
use crate::proto::request::{ReadOp, Request};
use crate::proto::response::{encode_notification, encode_reply, OpResult, ReplyHeader, Response};
use crate::proto::{ClientInfo, Id, Stat, ZkError};
use crate::server::stats::ConnStats;
use crate::server::{now_ms, ConnHandle, Out, Shared};
use crate::tree::DataTree;
use crate::watch::WatchKind;

pub(super) async fn respond_loop(
    shared: Arc<Shared>,
    handle: Arc<ConnHandle>,
    stats: Arc<ConnStats>,
    mut items: mpsc::UnboundedReceiver<Item>,
    in_flight: Arc<InFlight>,
) {
    let session_id = handle.session_id;
    let out = &handle.out;
    let linearizable = shared.config().linearizable_reads;
    // When the last read barrier of this connection that succeeded was issued. A request
    // received before then needs no barrier of its own: that barrier's ReadIndex was asked
    // after the request arrived, so this server has applied everything committed before
    // the request was sent. Pipelined reads thus share one barrier.
    let mut covered: Option<Instant> = None;
    while let Some(item) = items.recv().await {
        // ZooKeeper's updatelatency and readlatency summaries (replies made up without
        // executing, e.g. errors found on arrival, count in neither).
        let kind_latency = match &item {
            Item::Write { .. } => Some(&shared.stats().update_latency),
            Item::Read { .. } | Item::Held { .. } => Some(&shared.stats().read_latency),
            _ => None,
        };
        let (xid, op, t0, close_after, zxid, result) = match item {
            Item::Reply {
                xid,
                op,
                result,
                t0,
                close_after,
            } => (xid, op, t0, close_after, shared.last_zxid(), result),
            Item::Write {
                xid,
                op,
                rx,
                t0,
                close_after,
            } => {
                let outcome = rx.await;
                in_flight.writes.fetch_sub(1, Relaxed);
                match outcome {
                    Ok(applied) => (xid, op, t0, close_after, applied.zxid, applied.result),
                    // The outcome cannot be known any more (the leader changed under it, or
                    // the log stopped): the connection ends at once and the client sees
                    // ConnectionLoss, as when a ZooKeeper follower loses its leader.
                    Err(_) => {
                        let _ = out.send(Out::Close);
                        break;
                    }
                }
            }
            Item::Read {
                xid,
                op,
                req,
                auth,
                t0,
                executed,
            } => {
                // In an ensemble, sync (and, with keeperd.linearizableReads, every read of
                // the tree) first catches this server up with everything the leader had
                // committed (ReadIndex); standalone it is already current. This item waits
                // here in its turn, so no later reply overtakes it.
                let needs_barrier = matches!(req, Request::Sync { .. })
                    || (linearizable && req.reads_replicated_state());
                if needs_barrier && covered.is_none_or(|since| t0 > since) {
                    if let Some(raft) = shared.raft().filter(|_| shared.config().is_distributed()) {
                        let since = Instant::now();
                        if raft.read_barrier().await.is_err() {
                            // No leader or quorum answered: close the connection now (not
                            // at the client's next request), so the client sees
                            // ConnectionLoss and moves to another server.
                            let _ = out.send(Out::Close);
                            break;
                        }
                        covered = Some(since);
                    }
                }
                // A read's reply can be large (a 1 MB znode): none is built while this
                // connection's earlier replies are still unread.
                handle.wait_until(|| !handle.backlog_over_limit()).await;
                let (zxid, r) = execute_read(&shared, session_id, &auth, req, &handle);
                if let Some(done) = executed {
                    let _ = done.send(());
                }
                (xid, op, t0, false, zxid, r)
            }
            Item::Held { xid, op, read, t0 } => {
                handle.wait_until(|| !handle.backlog_over_limit()).await;
                in_flight.held.fetch_sub(1, Relaxed);
                match read.outcome(|| shared.state()) {
                    Some((zxid, r)) => (xid, op, t0, false, zxid, r),
                    // The write that carried it was dropped unapplied (as with that
                    // write's own outcome, ConnectionLoss: see `held`).
                    None => {
                        let _ = out.send(Out::Close);
                        break;
                    }
                }
            }
        };
        let (err, body) = match result {
            Ok(b) => (None, b),
            // A sasl reply always carries a SetSASLResponse (a null token after an error).
            Err(e) if op == OpCode::Sasl.code() => (Some(e), Response::Sasl { token: None }),
            Err(e) => (Some(e), Response::Empty),
        };
        // Room for the header and a Stat, plus a pre-encoded list (not grown by doubling).
        let extra = match &body {
            Response::ChildrenEncoded { names, .. } if err.is_none() => names.len(),
            Response::Multi(results) if err.is_none() => results.iter().map(result_size).sum(),
            _ => 0,
        };
        let mut buf = BytesMut::with_capacity(128 + extra);
        encode_reply(&mut buf, &ReplyHeader::new(xid, zxid, err), &body);
        let sent = handle.send_frame(buf.freeze());

        let ms = t0.elapsed().as_millis() as u64;
        shared.stats().outstanding.fetch_sub(1, Relaxed);
        stats.queued.fetch_sub(1, Relaxed);
        handle.drained.notify_waiters();
        if sent {
            shared.stats().packets_sent.fetch_add(1, Relaxed);
            stats.sent.fetch_add(1, Relaxed);
        }
        if xid != xid::PING {
            shared.stats().latency.record(ms);
            stats.latency.record(ms);
            if let Some(summary) = kind_latency {
                summary.record(ms);
            }
        }
        stats.last_zxid.store(zxid, Relaxed);
        stats.last_response_ms.store(now_ms(), Relaxed);
        stats.last_latency_ms.store(ms, Relaxed);
        stats.last_op.store(op.into(), Relaxed);
        if close_after {
            let _ = out.send(Out::Close);
            break;
        }
    }
}

/// getChildren's reply, or getChildren2's (with the stat).
fn children_response(names: Bytes, stat: Stat, with_stat: bool) -> Response {
    Response::ChildrenEncoded {
        names,
        stat: with_stat.then_some(stat),
    }
}

/// exists, getData, getChildren(2) and getACL against `tree`, without their watches (the
/// caller registers those). Anything else is Unimplemented.
pub(super) fn read_znode(tree: &DataTree, auth: &[Id], req: &Request) -> Result<Response, ZkError> {
    match req {
        Request::Exists { path, .. } => {
            tree.exists(path).map(Response::Stat).ok_or(ZkError::NoNode)
        }
        Request::GetData { path, .. } => tree
            .get_data(path, auth)
            .map(|(data, stat)| Response::GetData { data, stat }),
        Request::GetChildren {
            path, with_stat, ..
        } => tree
            .get_children_encoded(path, auth)
            .map(|(names, stat)| children_response(names, stat, *with_stat)),
        Request::GetAcl { path } => tree
            .get_acl(path, auth)
            .map(|(acl, stat)| Response::GetAcl { acl, stat }),
        _ => Err(ZkError::Unimplemented),
    }
}

/// The largest multiRead reply built (or jute.maxbuffer, if larger).
const MULTI_READ_REPLY_CAP: usize = 16 << 20;

/// Answers a request that does not go through the log, against the local tree. Watch
/// registration happens under the same lock as the read, so no change can slip between them.
fn execute_read(
    shared: &Shared,
    session_id: i64,
    auth: &[Id],
    req: Request,
    conn: &ConnHandle,
) -> (i64, Result<Response, ZkError>) {
    let needs_write = matches!(
        &req,
        Request::Exists { watch: true, .. }
            | Request::GetData { watch: true, .. }
            | Request::GetChildren { watch: true, .. }
            | Request::SetWatches(_)
            | Request::AddWatch { .. }
            | Request::RemoveWatches { .. }
    );
    if !needs_write {
        let state = shared.state();
        let tree = &state.tree;
        let zxid = tree.last_zxid();
        let r = match req {
            Request::Ping => Ok(Response::Empty),
            Request::Exists { .. }
            | Request::GetData { .. }
            | Request::GetChildren { .. }
            | Request::GetAcl { .. } => read_znode(tree, auth, &req),
            Request::Sync { path } => Ok(Response::Sync { path }),
            Request::MultiRead(ops) => {
                // The whole reply is built before it is sent: one multiRead of thousands of
                // getData of a 1 MB znode would otherwise take gigabytes. Past this size no
                // client could read it anyway (its jute.maxbuffer refuses the packet), so it
                // is refused as MarshallingError instead of built.
                let cap = shared.config().jute_maxbuffer.max(MULTI_READ_REPLY_CAP);
                let mut size = 0usize;
                let mut results = Vec::with_capacity(ops.len().min(1024));
                for op in ops {
                    let r = match op {
                        ReadOp::GetChildren { path } => {
                            match tree.get_children_encoded(&path, auth) {
                                Ok((names, _)) => OpResult::GetChildrenEncoded { names },
                                Err(e) => OpResult::Error { err: e.code() },
                            }
                        }
                        ReadOp::GetData { path } => match tree.get_data(&path, auth) {
                            Ok((data, stat)) => OpResult::GetData { data, stat },
                            Err(e) => OpResult::Error { err: e.code() },
                        },
                    };
                    size += result_size(&r);
                    if size > cap {
                        warn!(
                            session = format_args!("0x{:x}", session_id),
                            cap, "multiRead reply over the cap: refused (MarshallingError)"
                        );
                        return (zxid, Err(ZkError::MarshallingError));
                    }
                    results.push(r);
                }
                Ok(Response::Multi(results))
            }
            Request::GetEphemerals { prefix } => Ok(Response::GetEphemerals {
                ephemerals: tree.get_ephemerals(session_id, &prefix),
            }),
            Request::GetAllChildrenNumber { path } => tree
                .all_children_number(&path, auth)
                .map(|total| Response::GetAllChildrenNumber { total }),
            Request::WhoAmI => Ok(Response::WhoAmI(
                crate::tree::zk_auth_order(auth)
                    .into_iter()
                    .map(|id| ClientInfo {
                        auth_scheme: id.scheme.clone(),
                        user: id.id.clone(),
                    })
                    .collect(),
            )),
            _ => Err(ZkError::Unimplemented),
        };
        return (zxid, r);
    }

    let mut guard = shared.state_mut();
    let state = &mut *guard;
    let zxid = state.tree.last_zxid();
    let r = match req {
        Request::Exists { path, .. } => {
            // exists registers a watch whether or not the node is there (NodeCreated).
            state.watches.add(session_id, &path, WatchKind::Data);
            state
                .tree
                .exists(&path)
                .map(Response::Stat)
                .ok_or(ZkError::NoNode)
        }
        Request::GetData { path, .. } => {
            let r = state.tree.get_data(&path, auth);
            if r.is_ok() {
                state.watches.add(session_id, &path, WatchKind::Data);
            }
            r.map(|(data, stat)| Response::GetData { data, stat })
        }
        Request::GetChildren {
            path, with_stat, ..
        } => {
            let r = state.tree.get_children_encoded(&path, auth);
            if r.is_ok() {
                state.watches.add(session_id, &path, WatchKind::Child);
            }
            r.map(|(names, stat)| children_response(names, stat, with_stat))
        }
        Request::SetWatches(sw) => {
            for event in state.watches.set_watches(session_id, &sw, &state.tree) {
                let mut buf = BytesMut::with_capacity(64);
                encode_notification(&mut buf, &event);
                conn.send_frame(buf.freeze());
            }
            Ok(Response::Empty)
        }
        Request::AddWatch { path, mode } => {
            let kind = match mode {
                crate::proto::AddWatchMode::Persistent => WatchKind::Persistent,
                crate::proto::AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
            };
            state.watches.add(session_id, &path, kind);
            Ok(Response::ErrorCode(0))
        }
        Request::RemoveWatches {
            path,
            watcher_type,
            remove,
        } => {
            if state
                .watches
                .remove(session_id, &path, watcher_type, remove)
            {
                Ok(Response::Empty)
            } else {
                Err(ZkError::NoWatcher)
            }
        }
        _ => Err(ZkError::Unimplemented),
    };
    (zxid, r)
}

/// About how many bytes a multiRead result takes in the reply (its header, a list's or a
/// value's bytes, a Stat): what the reply cap counts and the reply buffer is sized for.
fn result_size(r: &OpResult) -> usize {
    12 + match r {
        OpResult::GetChildrenEncoded { names } => names.len(),
        OpResult::GetData { data, .. } => data.as_ref().map_or(0, |d| d.len()) + 80,
        _ => 0,
    }
}
