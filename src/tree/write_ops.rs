//! The client writes, as a child module of `datatree`: create (all four opcodes), delete,
//! setData, setACL and check, each validated in the order of ZooKeeper's
//! `PrepRequestProcessor` and then applied (`DataTree.createNode` etc.), with the undo step
//! a multi needs and the watch triggers it fires. `apply.rs` dispatches to them.

use super::apply::{Ctx, Undo};
use super::{DataTree, Node, NodeKind, PStat, MAX_TTL_MS, SPECIAL_PATHS};
use crate::proto::request::{
    CheckVersionRequest, CreateRequest, DeleteRequest, SetAclRequest, SetDataRequest,
};
use crate::proto::{perms, CreateMode, EventType, OpCode, Stat, ZkError};
use crate::tree::acl;
use crate::tree::path::{parent_of, validate_path};
use crate::tree::WatchTrigger;

impl DataTree {
    /// PrepRequestProcessor.pRequest2TxnCreate followed by DataTree.createNode.
    pub(super) fn op_create(
        &mut self,
        ctx: &Ctx<'_>,
        op: OpCode,
        req: &CreateRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(String, Stat), ZkError> {
        if !matches!(
            op,
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl
        ) {
            return Err(ZkError::Unimplemented);
        }
        let mode = CreateMode::from_flag(req.flags).ok_or(ZkError::BadArguments)?;
        // Only createTTL carries a ttl; ZooKeeper uses -1 for the other opcodes.
        let ttl = if op == OpCode::CreateTtl { req.ttl } else { -1 };
        // EphemeralType.validateTTL. ZooKeeper would also accept createTTL with a non-TTL
        // mode and a negative ttl and then fail while applying it; that is BadArguments here.
        if mode.is_ttl() {
            if ttl <= 0 || ttl > MAX_TTL_MS {
                return Err(ZkError::BadArguments);
            }
        } else if ttl >= 0 || op == OpCode::CreateTtl {
            return Err(ZkError::BadArguments);
        }
        self.check_session(ctx.session_id)?;
        // validatePathForCreate: only "has a slash, no NUL" before the parent lookup.
        if req.path.contains('\0') {
            return Err(ZkError::BadArguments);
        }
        let parent_path = parent_of(&req.path).ok_or(ZkError::BadArguments)?;
        let acl = acl::fixup_acl(&req.acl, ctx.auth, self.opts.sasl_acls)?;
        let parent = self.nodes.get(parent_path).ok_or(ZkError::NoNode)?;
        self.check_acl(parent, perms::CREATE, ctx.auth)?;
        let parent_cversion = parent.stat.cversion;
        let path = if mode.is_sequential() {
            format!("{}{:010}", req.path, parent_cversion)
        } else {
            req.path.clone()
        };
        if !validate_path(&path) {
            return Err(ZkError::BadArguments);
        }
        if self.nodes.contains_key(path.as_str()) {
            return Err(ZkError::NodeExists);
        }
        if matches!(parent.kind, NodeKind::Ephemeral(_)) {
            return Err(ZkError::NoChildrenForEphemerals);
        }
        // The opcode decides the kind: createContainer always makes a container, and
        // create/create2 with the container flag make a plain persistent node.
        let kind = match op {
            OpCode::CreateContainer => NodeKind::Container,
            OpCode::CreateTtl => NodeKind::Ttl(ttl),
            _ if mode.is_ephemeral() => NodeKind::Ephemeral(ctx.session_id),
            _ => NodeKind::Persistent,
        };

        // Apply.
        let parent_path = parent_path.to_owned();
        if let Some(parent) = self.nodes.get_mut(parent_path.as_str()) {
            undo.push(Undo::Created {
                path: path.as_str().into(),
                parent_stat: parent.stat,
            });
            parent.stat.cversion = parent_cversion.wrapping_add(1);
            parent.stat.pzxid = ctx.zxid;
        }
        let acl = self.acls.intern(&acl);
        let node = Node {
            // Copied so a node never pins a larger network or log buffer in memory.
            data: req.data.as_deref().map(Box::from),
            acl,
            stat: PStat {
                czxid: ctx.zxid,
                mzxid: ctx.zxid,
                ctime: ctx.time_ms,
                mtime: ctx.time_ms,
                version: 0,
                cversion: 0,
                aversion: 0,
                pzxid: ctx.zxid,
            },
            kind,
            children: None,
        };
        let stat = node.client_stat();
        self.insert_node(&path, node);
        triggers.push(WatchTrigger {
            path: path.clone(),
            event: EventType::NodeCreated,
        });
        triggers.push(WatchTrigger {
            path: parent_path,
            event: EventType::NodeChildrenChanged,
        });
        Ok((path, stat))
    }

    pub(super) fn op_delete(
        &mut self,
        ctx: &Ctx<'_>,
        req: &DeleteRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), ZkError> {
        self.check_session(ctx.session_id)?;
        // getParentPathAndValidate; no full path validation for delete.
        let path = req.path.as_str();
        if path.contains('\0') || SPECIAL_PATHS.contains(&path) {
            return Err(ZkError::BadArguments);
        }
        let parent_path = parent_of(path).ok_or(ZkError::BadArguments)?;
        let parent = self.nodes.get(parent_path).ok_or(ZkError::NoNode)?;
        self.check_acl(parent, perms::DELETE, ctx.auth)?;
        let parent_stat = parent.stat;
        let node = self.nodes.get(path).ok_or(ZkError::NoNode)?;
        check_version(node.stat.version, req.version)?;
        if node.num_children() > 0 {
            return Err(ZkError::NotEmpty);
        }
        let acl = self.acls.get_shared(node.acl);
        if let Some(node) = self.delete_node(path, ctx.zxid, triggers) {
            undo.push(Undo::Deleted {
                path: path.into(),
                node: Box::new(node),
                acl,
                parent_stat,
            });
        }
        Ok(())
    }

    pub(super) fn op_set_data(
        &mut self,
        ctx: &Ctx<'_>,
        req: &SetDataRequest,
        undo: &mut Vec<Undo>,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::WRITE, ctx.auth)?;
        let version = check_version(node.stat.version, req.version)?;
        let Some(node) = self.nodes.get_mut(req.path.as_str()) else {
            return Err(ZkError::NoNode);
        };
        let data = req.data.as_deref().map(Box::from);
        let old_len = node.data_len() as u64;
        let old_data = std::mem::replace(&mut node.data, data);
        undo.push(Undo::DataSet {
            path: req.path.as_str().into(),
            data: old_data,
            stat: node.stat,
        });
        node.stat.version = version;
        node.stat.mtime = ctx.time_ms;
        node.stat.mzxid = ctx.zxid;
        let stat = node.client_stat();
        self.data_size = self.data_size - old_len + node.data_len() as u64;
        triggers.push(WatchTrigger {
            path: req.path.clone(),
            event: EventType::NodeDataChanged,
        });
        Ok(stat)
    }

    pub(super) fn op_set_acl(
        &mut self,
        ctx: &Ctx<'_>,
        req: &SetAclRequest,
    ) -> Result<Stat, ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let acl = acl::fixup_acl(&req.acl, ctx.auth, self.opts.sasl_acls)?;
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::ADMIN, ctx.auth)?;
        let aversion = check_version(node.stat.aversion, req.version)?;
        let old = node.acl;
        let new = self.acls.intern(&acl);
        self.acls.release(old);
        let Some(node) = self.nodes.get_mut(req.path.as_str()) else {
            return Err(ZkError::NoNode);
        };
        node.acl = new;
        node.stat.aversion = aversion;
        Ok(node.client_stat())
    }

    pub(super) fn op_check(&self, ctx: &Ctx<'_>, req: &CheckVersionRequest) -> Result<(), ZkError> {
        self.check_session(ctx.session_id)?;
        if !validate_path(&req.path) {
            return Err(ZkError::BadArguments);
        }
        let node = self.nodes.get(req.path.as_str()).ok_or(ZkError::NoNode)?;
        self.check_acl(node, perms::READ, ctx.auth)?;
        check_version(node.stat.version, req.version)?;
        Ok(())
    }
}

/// PrepRequestProcessor.checkAndIncVersion as of 3.8.0: -1 matches anything; the new version
/// wraps like a Java int.
fn check_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(current.wrapping_add(1))
}
