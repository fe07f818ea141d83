//! The model: ZooKeeper's tree as a client can observe it, written from ZooKeeper's
//! documented behaviour rather than from src/tree (see main.rs for what it knows exactly),
//! and the comparison of a server's Stat with it.

use std::collections::{BTreeMap, BTreeSet};

use zookeeper_client as zk;

use super::Check;

pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub fn name_of(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |i| i + 1)..]
}

pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.matches('/').count()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
}

impl Mode {
    pub fn is_ephemeral(self) -> bool {
        matches!(self, Mode::Ephemeral | Mode::EphemeralSequential)
    }

    pub fn is_sequential(self) -> bool {
        matches!(self, Mode::PersistentSequential | Mode::EphemeralSequential)
    }

    pub fn options(self) -> zk::CreateOptions<'static> {
        let mode = match self {
            Mode::Persistent => zk::CreateMode::Persistent,
            Mode::Ephemeral => zk::CreateMode::Ephemeral,
            Mode::PersistentSequential => zk::CreateMode::PersistentSequential,
            Mode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
        };
        mode.with_acls(zk::Acls::anyone_all())
    }
}

/// A zxid as far as the model knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zx {
    Known(i64),
    /// Set by the write in flight; resolved once its reply is in.
    Pending,
    /// Written by a write whose zxid no reply showed: some zxid above this one.
    After(i64),
}

/// One znode of the model.
#[derive(Clone, Debug)]
pub struct MNode {
    pub data: Vec<u8>,
    pub version: i32,
    /// cversion as clients see it: +1 for every child created and every child deleted.
    pub cversion: i32,
    /// Children created so far: the next sequential suffix. Deletes do not count.
    pub creations: i32,
    pub children: BTreeSet<String>,
    /// The owning session of an ephemeral, 0 for a persistent node.
    pub owner: i64,
    pub czxid: Zx,
    pub mzxid: Zx,
    pub pzxid: Zx,
    /// Wall-clock stamps the model cannot predict: learned on first sight, then they must
    /// not move (mtime is forgotten by setData).
    pub ctime: Option<i64>,
    pub mtime: Option<i64>,
}

impl MNode {
    pub fn new(data: &[u8], owner: i64) -> MNode {
        MNode {
            data: data.to_vec(),
            version: 0,
            cversion: 0,
            creations: 0,
            children: BTreeSet::new(),
            owner,
            czxid: Zx::Pending,
            mzxid: Zx::Pending,
            pzxid: Zx::Pending,
            ctime: None,
            mtime: None,
        }
    }

    pub fn resolve(&mut self, zxid: Option<i64>, floor: i64) {
        for zx in [&mut self.czxid, &mut self.mzxid, &mut self.pzxid] {
            if *zx == Zx::Pending {
                *zx = zxid.map_or(Zx::After(floor), Zx::Known);
            }
        }
    }
}

/// One op of a multi.
#[derive(Clone, Debug)]
pub enum MOp {
    Create {
        path: String,
        data: String,
        mode: Mode,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    SetData {
        path: String,
        data: String,
        version: Option<i32>,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// What a successful op of a multi answers: the affected node as it was right after the op.
#[derive(Debug)]
pub enum MExpect {
    Create { path: String, node: Box<MNode> },
    Delete,
    SetData { node: Box<MNode> },
    Check,
}

/// ZooKeeper's tree as a client can observe it.
#[derive(Clone, Debug)]
pub struct Model {
    pub nodes: BTreeMap<String, MNode>,
    /// The largest zxid any reply has shown; every later write's zxid must exceed it.
    pub last_zxid: i64,
}

impl Model {
    pub fn new() -> Model {
        // The root of a fresh ZooKeeper tree holds /zookeeper, linked without counting a
        // child creation, so clients see cversion 2 * 0 - 1 = -1 (DataNode.copyStat).
        // /zookeeper itself is never touched by the generator and not modelled beyond its
        // name in the root's children.
        let root = MNode {
            cversion: -1,
            children: ["zookeeper".to_owned()].into(),
            czxid: Zx::Known(0),
            mzxid: Zx::Known(0),
            pzxid: Zx::Known(0),
            ctime: Some(0),
            mtime: Some(0),
            ..MNode::new(b"", 0)
        };
        Model {
            nodes: [("/".to_owned(), root)].into(),
            last_zxid: 0,
        }
    }

    pub fn node(&self, path: &str) -> Result<&MNode, zk::Error> {
        self.nodes.get(path).ok_or(zk::Error::NoNode)
    }

    pub fn node_mut(&mut self, path: &str) -> Result<&mut MNode, zk::Error> {
        self.nodes.get_mut(path).ok_or(zk::Error::NoNode)
    }

    /// Returns the created path (with the sequential suffix).
    pub fn create(
        &mut self,
        path: &str,
        data: &[u8],
        mode: Mode,
        session: i64,
    ) -> Result<String, zk::Error> {
        let parent_path = parent_of(path).to_owned();
        let parent = self.node(&parent_path)?;
        let path = if mode.is_sequential() {
            format!("{path}{:010}", parent.creations)
        } else {
            path.to_owned()
        };
        let name = name_of(&path).to_owned();
        if parent.children.contains(&name) {
            return Err(zk::Error::NodeExists);
        }
        if parent.owner != 0 {
            return Err(zk::Error::NoChildrenForEphemerals);
        }
        let parent = self.node_mut(&parent_path)?;
        parent.creations += 1;
        parent.cversion += 1;
        parent.pzxid = Zx::Pending;
        parent.children.insert(name);
        let owner = if mode.is_ephemeral() { session } else { 0 };
        self.nodes.insert(path.clone(), MNode::new(data, owner));
        Ok(path)
    }

    pub fn delete(&mut self, path: &str, version: Option<i32>) -> Result<(), zk::Error> {
        self.node(parent_of(path))?;
        let node = self.node(path)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(zk::Error::BadVersion);
        }
        if !node.children.is_empty() {
            return Err(zk::Error::NotEmpty);
        }
        self.unlink(path);
        Ok(())
    }

    pub fn unlink(&mut self, path: &str) {
        self.nodes.remove(path);
        if let Some(parent) = self.nodes.get_mut(parent_of(path)) {
            parent.children.remove(name_of(path));
            parent.cversion += 1;
            parent.pzxid = Zx::Pending;
        }
    }

    pub fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> Result<(), zk::Error> {
        let node = self.node_mut(path)?;
        if version.is_some_and(|v| v != node.version) {
            return Err(zk::Error::BadVersion);
        }
        node.data = data.to_vec();
        node.version += 1;
        node.mzxid = Zx::Pending;
        node.mtime = None;
        Ok(())
    }

    pub fn check(&self, path: &str, version: i32) -> Result<(), zk::Error> {
        let node = self.node(path)?;
        if version != -1 && version != node.version {
            return Err(zk::Error::BadVersion);
        }
        Ok(())
    }

    /// All or nothing; on failure the index of the first failing op and its error.
    pub fn multi(&mut self, ops: &[MOp], session: i64) -> Result<Vec<MExpect>, (usize, zk::Error)> {
        let mut next = self.clone();
        let mut out = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let r = match op {
                MOp::Create { path, data, mode } => next
                    .create(path, data.as_bytes(), *mode, session)
                    .map(|path| MExpect::Create {
                        node: Box::new(next.nodes[&path].clone()),
                        path,
                    }),
                MOp::Delete { path, version } => {
                    next.delete(path, *version).map(|()| MExpect::Delete)
                }
                MOp::SetData {
                    path,
                    data,
                    version,
                } => next
                    .set_data(path, data.as_bytes(), *version)
                    .map(|()| MExpect::SetData {
                        node: Box::new(next.nodes[path].clone()),
                    }),
                MOp::Check { path, version } => next.check(path, *version).map(|()| MExpect::Check),
            };
            out.push(r.map_err(|e| (i, e))?);
        }
        *self = next;
        Ok(out)
    }

    pub fn close_session(&mut self, session: i64) {
        let owned: Vec<String> = self.ephemerals(session);
        for path in owned {
            self.unlink(&path);
        }
    }

    pub fn ephemerals(&self, session: i64) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.owner == session)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A write succeeded at `zxid` (None: its reply showed no zxid).
    pub fn learn_write(&mut self, zxid: Option<i64>) -> Check {
        if let Some(z) = zxid {
            if z <= self.last_zxid {
                return Err(format!(
                    "write zxid {z:#x} is not above the last zxid seen, {:#x}",
                    self.last_zxid
                ));
            }
        }
        let floor = self.last_zxid;
        for node in self.nodes.values_mut() {
            node.resolve(zxid, floor);
        }
        if let Some(z) = zxid {
            self.last_zxid = z;
        }
        Ok(())
    }

    /// Compares a Stat from the server with the model's node at `path`, pinning what the
    /// model learns from it.
    pub fn check_stat(&mut self, path: &str, stat: &zk::Stat) -> Check {
        let node = self
            .nodes
            .get_mut(path)
            .ok_or_else(|| format!("{path}: not in the model"))?;
        compare_stat(path, node, stat)?;
        self.last_zxid = self
            .last_zxid
            .max(stat.czxid)
            .max(stat.mzxid)
            .max(stat.pzxid);
        Ok(())
    }
}

pub fn compare_stat(path: &str, node: &mut MNode, stat: &zk::Stat) -> Check {
    let expect = (
        node.version,
        node.cversion,
        0,
        node.owner,
        node.data.len() as i32,
        node.children.len() as i32,
    );
    let got = (
        stat.version,
        stat.cversion,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    );
    if expect != got {
        return Err(format!(
            "{path}: (version, cversion, aversion, ephemeralOwner, dataLength, numChildren) \
             expected {expect:?}, got {got:?}; stat {stat:?}"
        ));
    }
    for (field, zx, got) in [
        ("czxid", &mut node.czxid, stat.czxid),
        ("mzxid", &mut node.mzxid, stat.mzxid),
        ("pzxid", &mut node.pzxid, stat.pzxid),
    ] {
        match *zx {
            Zx::Known(v) if v == got => {}
            Zx::After(floor) if got > floor => *zx = Zx::Known(got),
            _ => {
                return Err(format!(
                    "{path}: {field} expected {zx:?}, got {got:#x}; stat {stat:?}"
                ))
            }
        }
    }
    for (field, t, got) in [
        ("ctime", &mut node.ctime, stat.ctime),
        ("mtime", &mut node.mtime, stat.mtime),
    ] {
        match *t {
            Some(v) if v != got => {
                return Err(format!(
                    "{path}: {field} expected {v}, got {got}; stat {stat:?}"
                ))
            }
            Some(_) => {}
            None => *t = Some(got),
        }
    }
    Ok(())
}
