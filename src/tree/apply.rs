//! `DataTree::apply`: what each `Txn` does to the tree, as a child module of `datatree`.
//!
//! Owns the per-write context (`Ctx`), the undo log of a multi (`Undo`, `rollback`), the
//! dispatch of a client request to its write op (the ops are in `write_ops.rs`), and the two
//! writes of /zookeeper/config: `Txn::SetConfig` from the leader and `Txn::Reconfig` from a
//! client. Session and reap txns call into `sessions.rs` and `reap.rs`.

use std::sync::Arc;

use bytes::Bytes;

use super::{DataTree, Node, PStat, CONFIG_NODE};
use crate::config::Membership;
use crate::proto::request::{MultiOp, ReconfigRequest, Request};
use crate::proto::response::{OpResult, Response};
use crate::proto::{perms, Acl, EventType, Id, OpCode, Stat, ZkError};
use crate::tree::path::parent_of;
use crate::tree::{reconfig, Applied, LeaderView, Txn, WatchTrigger};

/// How to revert one step of a multi.
#[derive(Debug)]
pub(super) enum Undo {
    Created {
        path: Box<str>,
        parent_stat: PStat,
    },
    Deleted {
        path: Box<str>,
        node: Box<Node>,
        acl: Arc<[Acl]>,
        parent_stat: PStat,
    },
    DataSet {
        path: Box<str>,
        data: Option<Box<[u8]>>,
        stat: PStat,
    },
}

/// The per-request context of a client write.
pub(super) struct Ctx<'a> {
    pub(super) zxid: i64,
    pub(super) session_id: i64,
    pub(super) time_ms: i64,
    pub(super) auth: &'a [Id],
}

impl DataTree {
    /// Applies one committed txn at `zxid`. Deterministic.
    pub fn apply(&mut self, zxid: i64, txn: &Txn) -> Applied {
        // Like DataTree.lastProcessedZxid: failed writes consume their zxid too.
        self.last_zxid = self.last_zxid.max(zxid);
        let mut triggers = Vec::new();
        let result = match txn {
            Txn::SessionAuth {
                session_id,
                server,
                ids,
            } => self
                .set_session_auth(*session_id, *server, ids)
                .map(|()| Response::Empty),
            Txn::Owned { server, txn } => match txn.session_id() {
                // The identities the session's own server recorded, never the entry's.
                Some(session_id) => match self.owned_auth(session_id, *server) {
                    Ok(ids) => self.apply_write(zxid, txn, &ids, &mut triggers),
                    Err(e) => Err(e),
                },
                None => Err(ZkError::BadArguments),
            },
            Txn::Client { auth, .. } | Txn::Reconfig { auth, .. } => {
                // Entries written before `Owned` existed: their own identities.
                self.apply_write(zxid, txn, auth, &mut triggers)
            }
            _ => self.apply_write(zxid, txn, &[], &mut triggers),
        };
        Applied {
            zxid,
            result,
            triggers,
            deleted: std::mem::take(&mut self.deleted),
        }
    }

    /// Every txn but `SessionAuth` and `Owned`, with ACLs checked against `auth` (the
    /// identities of the session's connection).
    fn apply_write(
        &mut self,
        zxid: i64,
        txn: &Txn,
        auth: &[Id],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Response, ZkError> {
        match txn {
            Txn::CreateSession {
                session_id,
                timeout_ms,
            } => {
                self.create_session(*session_id, *timeout_ms);
                Ok(Response::Empty)
            }
            Txn::CloseSession { session_id } => {
                self.close_session(*session_id, zxid, triggers);
                Ok(Response::Empty)
            }
            Txn::Client {
                session_id,
                time_ms,
                request,
                ..
            } => {
                let ctx = Ctx {
                    zxid,
                    session_id: *session_id,
                    time_ms: *time_ms,
                    auth,
                };
                self.apply_client(&ctx, request, triggers)
            }
            Txn::Reap { time_ms, paths } => {
                self.reap(zxid, *time_ms, paths, triggers);
                Ok(Response::Empty)
            }
            Txn::SetConfig { time_ms, data } => {
                self.set_config(zxid, *time_ms, data, triggers);
                Ok(Response::Empty)
            }
            Txn::Reconfig {
                time_ms,
                request,
                min_voters,
                view,
                ..
            } => self.reconfig(
                zxid,
                *time_ms,
                auth,
                request,
                *min_voters,
                view.as_ref(),
                triggers,
            ),
            Txn::SessionAuth { .. } | Txn::Owned { .. } => Err(ZkError::BadArguments),
        }
    }

    /// The new data of /zookeeper/config. As in ZooKeeper 3.8: its dataVersion stays -1,
    /// its mzxid is the configuration's version (the `version=` line, the zxid of the
    /// reconfig that made it; 0 for zoo.cfg's), its mtime the time of the change.
    fn set_config(
        &mut self,
        zxid: i64,
        time_ms: i64,
        data: &[u8],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Option<Stat> {
        let node = self.nodes.get_mut(CONFIG_NODE)?;
        let old_len = node.data_len() as u64;
        node.data = Some(Box::from(data));
        node.stat.version = -1;
        node.stat.mtime = time_ms;
        node.stat.mzxid = std::str::from_utf8(data)
            .ok()
            .and_then(|t| Membership::parse(t).ok())
            .map_or(zxid, |m| m.version as i64);
        let stat = node.client_stat();
        self.data_size = self.data_size - old_len + node.data_len() as u64;
        triggers.push(WatchTrigger {
            path: CONFIG_NODE.to_string(),
            event: EventType::NodeDataChanged,
        });
        Some(stat)
    }

    /// reconfig: the next membership from the current /zookeeper/config (see
    /// `reconfig::next_membership`), then WRITE on /zookeeper/config (super or skipACL in
    /// practice: its ACL is world-readable only), then the new text with `version=<zxid>`.
    /// Answers the new config and its stat, as ZooKeeper's GetDataResponse.
    #[allow(clippy::too_many_arguments)]
    fn reconfig(
        &mut self,
        zxid: i64,
        time_ms: i64,
        auth: &[Id],
        request: &ReconfigRequest,
        min_voters: u32,
        view: Option<&LeaderView>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Response, ZkError> {
        // An entry no leader stamped cannot show a synced quorum.
        let view = view.ok_or(ZkError::NewConfigNoQuorum)?;
        let (text, _) = self.config();
        let current = Membership::parse(&text).map_err(|_| ZkError::BadArguments)?;
        let node = self.nodes.get(CONFIG_NODE).ok_or(ZkError::NoNode)?;
        let servers = reconfig::next_membership(&current, request, view, min_voters as usize)?;
        self.check_acl(node, perms::WRITE, auth)?;
        let data = Membership {
            servers,
            version: zxid as u64,
        }
        .render()
        .into_bytes();
        let stat = self
            .set_config(zxid, time_ms, &data, triggers)
            .ok_or(ZkError::NoNode)?;
        Ok(Response::GetData {
            data: Some(Bytes::from(data)),
            stat,
        })
    }

    fn apply_client(
        &mut self,
        ctx: &Ctx<'_>,
        request: &Request,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Response, ZkError> {
        let mut undo = Vec::new();
        match request {
            Request::Create { op, req } => {
                let (path, stat) = self.op_create(ctx, *op, req, &mut undo, triggers)?;
                Ok(if *op == OpCode::Create {
                    Response::Create { path }
                } else {
                    // create2, createContainer and createTTL all answer Create2Response
                    // (FinalRequestProcessor in 3.8).
                    Response::Create2 { path, stat }
                })
            }
            Request::Delete(req) => {
                self.op_delete(ctx, req, &mut undo, triggers)?;
                Ok(Response::Empty)
            }
            Request::SetData(req) => {
                let stat = self.op_set_data(ctx, req, &mut undo, triggers)?;
                Ok(Response::Stat(stat))
            }
            Request::SetAcl(req) => Ok(Response::Stat(self.op_set_acl(ctx, req)?)),
            Request::Check(req) => {
                self.op_check(ctx, req)?;
                Ok(Response::Empty)
            }
            Request::Multi(ops) => Ok(Response::Multi(self.apply_multi(ctx, ops, triggers))),
            Request::CloseSession => {
                self.close_session(ctx.session_id, ctx.zxid, triggers);
                Ok(Response::Empty)
            }
            // Reconfig travels as `Txn::Reconfig`; reads never reach the log.
            _ => Err(ZkError::Unimplemented),
        }
    }

    fn apply_multi(
        &mut self,
        ctx: &Ctx<'_>,
        ops: &[MultiOp],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Vec<OpResult> {
        let mut undo = Vec::new();
        let mut op_triggers = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                MultiOp::Create { op, req } => self
                    .op_create(ctx, *op, req, &mut undo, &mut op_triggers)
                    .map(|(path, stat)| {
                        if *op == OpCode::Create {
                            OpResult::Create { path }
                        } else {
                            OpResult::Create2 { path, stat }
                        }
                    }),
                MultiOp::Delete(req) => self
                    .op_delete(ctx, req, &mut undo, &mut op_triggers)
                    .map(|()| OpResult::Delete),
                MultiOp::SetData(req) => self
                    .op_set_data(ctx, req, &mut undo, &mut op_triggers)
                    .map(|stat| OpResult::SetData { stat }),
                MultiOp::Check(req) => self.op_check(ctx, req).map(|()| OpResult::Check),
            };
            match r {
                Ok(r) => results.push(r),
                Err(e) => {
                    self.rollback(undo);
                    return (0..ops.len())
                        .map(|j| OpResult::Error {
                            err: match j.cmp(&i) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => e.code(),
                                std::cmp::Ordering::Greater => ZkError::RuntimeInconsistency.code(),
                            },
                        })
                        .collect();
                }
            }
        }
        triggers.extend(op_triggers);
        results
    }

    fn rollback(&mut self, undo: Vec<Undo>) {
        for u in undo.into_iter().rev() {
            match u {
                Undo::Created { path, parent_stat } => {
                    if let Some(node) = self.remove_node(&path) {
                        self.acls.release(node.acl);
                    }
                    self.restore_parent_stat(&path, parent_stat);
                }
                Undo::Deleted {
                    path,
                    mut node,
                    acl,
                    parent_stat,
                } => {
                    node.acl = self.acls.intern(&acl);
                    self.insert_node(&path, *node);
                    self.restore_parent_stat(&path, parent_stat);
                }
                Undo::DataSet { path, data, stat } => {
                    if let Some(node) = self.nodes.get_mut(&path) {
                        let old = node.data_len() as u64;
                        node.data = data;
                        node.stat = stat;
                        let new = node.data_len() as u64;
                        self.data_size = self.data_size - old + new;
                    }
                }
            }
        }
    }

    fn restore_parent_stat(&mut self, path: &str, stat: PStat) {
        if let Some(parent) = parent_of(path).and_then(|p| self.nodes.get_mut(p)) {
            parent.stat = stat;
        }
    }
}
