//! Reads held between two writes of their session.
//!
//! A read that arrives while a write of its session is in flight must see that write and
//! none of the session's later ones (ZooKeeper's per-session order). The responder executes
//! it once the earlier write is answered; if the next write simply waited for that, a
//! session mixing reads and writes would have one write in flight at a time. Instead the
//! next write is proposed at once and carries the reads queued before it
//! (`Proposer::propose_after`): whichever comes first executes each of them — the responder
//! in its turn, or the applier right before that next write is applied (`Applier::apply_all`,
//! under the state's write lock). Either way the read sees the state after the writes sent
//! before it and before those sent after it. When that write's proposal is dropped
//! unapplied, the reads nobody executed yet are orphaned (`Drop for HeldReads`) and the
//! connection closes at the first of them instead of answering it.
//!
//! Only cheap reads without side effects are held (`can_hold`): the applier runs them on
//! the consensus thread. A connection has at most `HELD_MAX` of them unanswered; past that,
//! the next write waits for the reads before it, as every write did before. That bounds
//! what replies the applier may build early to `HELD_MAX` replies per connection.

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use crate::proto::request::Request;
use crate::proto::response::Response;
use crate::proto::{Id, ZkError};
use crate::server::State;

use super::responder::read_znode;

/// Reads a connection may hold unanswered.
pub(super) const HELD_MAX: usize = 32;

/// Whether `req` may be held: a read of one znode that registers no watch and needs no
/// read barrier first (sync, or every read with `keeperd.linearizableReads`).
pub(super) fn can_hold(req: &Request, linearizable: bool) -> bool {
    !linearizable
        && matches!(
            req,
            Request::Exists { watch: false, .. }
                | Request::GetData { watch: false, .. }
                | Request::GetChildren { watch: false, .. }
                | Request::GetAcl { .. }
        )
}

/// What executing a read gave: the zxid its reply carries, and the reply.
pub(super) type Outcome = (i64, Result<Response, ZkError>);

/// One held read, executed by whoever gets to it first.
pub(crate) struct HeldRead(Mutex<Cell>);

enum Cell {
    Waiting {
        req: Request,
        auth: Arc<Vec<Id>>,
    },
    Done(Outcome),
    Taken,
    /// The write carrying it was dropped before it applied here (the term changed under
    /// it, it was refused, the log stopped): that write may still be applied later, so
    /// the read cannot tell any more which state is before it.
    Orphaned,
}

impl Cell {
    /// Executes a waiting read against `state`; any other cell is left as it is.
    fn execute(&mut self, state: &State) {
        if let Cell::Waiting { req, auth } = self {
            let done = (state.tree.last_zxid(), read_znode(&state.tree, auth, req));
            *self = Cell::Done(done);
        }
    }

    /// The outcome of an executed read, leaving the cell taken; None when orphaned.
    fn take(&mut self) -> Option<Outcome> {
        match std::mem::replace(self, Cell::Taken) {
            Cell::Done(done) => Some(done),
            Cell::Orphaned => None,
            // Taken twice (or never executed) would be a bug here, not a reason to stop
            // the server.
            Cell::Waiting { .. } | Cell::Taken => Some((0, Err(ZkError::SystemError))),
        }
    }
}

/// The reads a write carries to the applier (`BeforeApply`).
pub(crate) struct HeldReads(pub(super) Vec<Arc<HeldRead>>);

impl HeldReads {
    /// Executes those not executed yet against `state`, whose write lock the caller holds.
    pub(crate) fn execute(&self, state: &State) {
        for read in &self.0 {
            read.0.lock().expect("held read").execute(state);
        }
    }
}

/// Dropped without having been executed (its write's proposal was dropped): the reads
/// not executed yet are orphaned, and their connection closes when their turn comes
/// rather than answer from a state that may already hold that write.
impl Drop for HeldReads {
    fn drop(&mut self) {
        for read in &self.0 {
            let mut cell = read.0.lock().expect("held read");
            if matches!(*cell, Cell::Waiting { .. }) {
                *cell = Cell::Orphaned;
            }
        }
    }
}

impl HeldRead {
    pub(super) fn new(req: Request, auth: Arc<Vec<Id>>) -> HeldRead {
        HeldRead(Mutex::new(Cell::Waiting { req, auth }))
    }

    /// The read's outcome: what the applier found, or executed now under the state's read
    /// lock, which `read` takes (`Shared::state`). The lock order is the state, then the
    /// cell, as in `HeldReads::execute`. None when orphaned: the connection must close
    /// (ConnectionLoss) instead of answering.
    pub(super) fn outcome<G: Deref<Target = State>>(
        &self,
        read: impl FnOnce() -> G,
    ) -> Option<Outcome> {
        let mut cell = self.0.lock().expect("held read");
        if matches!(*cell, Cell::Waiting { .. }) {
            drop(cell);
            let state = read();
            cell = self.0.lock().expect("held read");
            cell.execute(&state);
        }
        cell.take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use bytes::Bytes;

    use super::*;
    use crate::proto::request::{CreateRequest, SetDataRequest};
    use crate::proto::{Acl, OpCode};
    use crate::tree::{DataTree, TreeOptions, Txn};
    use crate::watch::WatchRegistry;

    fn write(state: &RwLock<State>, zxid: i64, request: Request) {
        let txn = Txn::Client {
            session_id: 1,
            time_ms: 0,
            auth: vec![],
            request,
        };
        let applied = state.write().unwrap().tree.apply(zxid, &txn);
        assert!(applied.result.is_ok(), "{:?}", applied.result);
    }

    fn set(state: &RwLock<State>, zxid: i64, data: &'static [u8]) {
        let req = SetDataRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(data)),
            version: -1,
        };
        write(state, zxid, Request::SetData(req));
    }

    fn get_data() -> Arc<HeldRead> {
        let req = Request::GetData {
            path: "/a".into(),
            watch: false,
        };
        Arc::new(HeldRead::new(req, Arc::new(vec![])))
    }

    fn data_of(outcome: Outcome) -> (i64, Vec<u8>, i32) {
        match outcome {
            (zxid, Ok(Response::GetData { data, stat })) => {
                (zxid, data.unwrap_or_default().to_vec(), stat.version)
            }
            other => panic!("{other:?}"),
        }
    }

    /// A held read answers with the state the applier executed it against, once, whatever
    /// changes after; one nobody executed answers with the state when its turn comes.
    #[test]
    fn a_held_read_answers_with_the_state_it_was_executed_against() {
        let state = RwLock::new(State {
            tree: DataTree::new(TreeOptions::default()),
            watches: WatchRegistry::new(),
        });
        let create = CreateRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"1")),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        };
        let create = Request::Create {
            op: OpCode::Create,
            req: create,
        };
        let session = Txn::CreateSession {
            session_id: 1,
            timeout_ms: 30_000,
        };
        state.write().unwrap().tree.apply(1, &session);
        write(&state, 2, create);
        let (early, late) = (get_data(), get_data());
        let carried = HeldReads(vec![early.clone()]);
        carried.execute(&state.read().unwrap());
        set(&state, 3, b"2");
        // Executing again (the same write applied twice cannot happen, but the cell must
        // not be overwritten) keeps the first outcome.
        carried.execute(&state.read().unwrap());
        set(&state, 4, b"3");
        assert_eq!(
            data_of(early.outcome(|| state.read().unwrap()).unwrap()),
            (2, b"1".to_vec(), 0)
        );
        assert_eq!(
            data_of(late.outcome(|| state.read().unwrap()).unwrap()),
            (4, b"3".to_vec(), 2)
        );
        // Answered once: a second answer is an error, not a stale or fresh value.
        let again = early.outcome(|| state.read().unwrap()).unwrap();
        assert_eq!(again.1.unwrap_err(), ZkError::SystemError);

        // A carrier dropped unexecuted (its write's proposal was dropped) orphans the reads
        // nobody executed yet, and only those.
        let (answered, orphan) = (get_data(), get_data());
        assert!(answered.outcome(|| state.read().unwrap()).is_some());
        drop(HeldReads(vec![answered.clone(), orphan.clone()]));
        assert!(orphan.outcome(|| state.read().unwrap()).is_none());
        // Executed, then dropped (the normal path): still answered.
        let kept = get_data();
        let carried = HeldReads(vec![kept.clone()]);
        carried.execute(&state.read().unwrap());
        drop(carried);
        assert_eq!(
            data_of(kept.outcome(|| state.read().unwrap()).unwrap()),
            (4, b"3".to_vec(), 2)
        );
    }
}
