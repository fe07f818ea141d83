//! Taking over from ZooKeeper, and the way back.
//!
//! - `load`: ZooKeeper's dataDir (and dataLogDir) read into a `DataTree`: the newest valid
//!   snapshot, then every logged txn after it, replayed with ZooKeeper's restore semantics
//!   (`tree::DataTree::replay_zk`). Read only: no file is changed.
//! - `startup_seed`: what server start-up does with that: when keeperd has no state of its own
//!   and ZooKeeper's files are there, the imported tree becomes the group's first state
//!   (`consensus::Seed`); once keeperd has state, ZooKeeper's files are left alone.
//! - `export`: keeperd's state (recovered offline from its own files) written as a ZooKeeper
//!   snapshot that Apache ZooKeeper loads, for going back with every write made since.
//!
//! The file formats are in `zkfiles`; procedures and limits in docs/migration.md.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::consensus::storage;
use crate::consensus::Seed;
use crate::proto::Error;
use crate::tree::{DataTree, Replayed, TreeOptions};
use crate::zkfiles::{self, dir};

/// A ZooKeeper dataDir read into a tree.
pub struct Imported {
    pub tree: DataTree,
    pub report: Report,
}

/// What an import read and did: printed by `keeperd import` and logged at start-up.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub snapshot_file: PathBuf,
    pub snapshot_zxid: i64,
    /// Newer snapshots that could not be used, and why.
    pub skipped: Vec<(PathBuf, String)>,
    pub log_files: Vec<PathBuf>,
    /// Log entries after the snapshot, and how each replayed.
    pub entries: usize,
    pub applied: usize,
    pub ignored: usize,
    pub config_txns: usize,
    pub last_zxid: i64,
    pub znodes: usize,
    pub sessions: usize,
    pub ephemerals: usize,
    /// ZooKeeper's digest check, when its files carry digests.
    pub digest: DigestCheck,
    /// How the last log ended, when it was cut off (a crash mid-write).
    pub torn_tail: Option<String>,
    pub millis: u128,
}

/// The 3.6+ digest ZooKeeper logs with each txn, checked against the imported tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DigestCheck {
    /// The files carry no digest (ZooKeeper before 3.6, or digests disabled).
    #[default]
    Absent,
    Matched {
        zxid: i64,
    },
    Mismatched {
        zxid: i64,
        theirs: i64,
        ours: i64,
    },
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "snapshot: {} (zxid 0x{:x})",
            self.snapshot_file.display(),
            self.snapshot_zxid
        )?;
        for (p, why) in &self.skipped {
            writeln!(f, "skipped newer snapshot: {} ({why})", p.display())?;
        }
        for p in &self.log_files {
            writeln!(f, "log: {}", p.display())?;
        }
        writeln!(
            f,
            "txns after the snapshot: {} ({} applied, {} already in the snapshot or failed in \
             ZooKeeper too, {} configuration changes left to zoo.cfg)",
            self.entries, self.applied, self.ignored, self.config_txns
        )?;
        if let Some(t) = &self.torn_tail {
            writeln!(
                f,
                "last log: {t} (a crash mid-write; what follows was never acknowledged)"
            )?;
        }
        writeln!(f, "last zxid: 0x{:x}", self.last_zxid)?;
        writeln!(
            f,
            "znodes: {}, sessions: {}, ephemerals: {}",
            self.znodes, self.sessions, self.ephemerals
        )?;
        match &self.digest {
            DigestCheck::Absent => writeln!(
                f,
                "digest: none in the files (ZooKeeper < 3.6 or digests off)"
            )?,
            DigestCheck::Matched { zxid } => {
                writeln!(f, "digest: matches ZooKeeper's at zxid 0x{zxid:x}")?
            }
            DigestCheck::Mismatched { zxid, theirs, ours } => writeln!(
                f,
                "digest: MISMATCH at zxid 0x{zxid:x}: ZooKeeper's {theirs:#x}, imported {ours:#x}"
            )?,
        }
        write!(f, "read in {} ms", self.millis)
    }
}

/// Reads the ZooKeeper files under `config`'s dataDir/dataLogDir into a tree. `None` when
/// there are none. Errors name the file and what is wrong with it.
pub fn load(config: &Config, progress: &mut dyn FnMut(&str)) -> Result<Option<Imported>, Error> {
    let started = Instant::now();
    let Some(loaded) = dir::load(&config.data_dir, config.effective_data_log_dir(), progress)?
    else {
        return Ok(None);
    };
    let opts = TreeOptions::from_config(config);
    let mut tree = DataTree::from_zk_snapshot(&loaded.snapshot, loaded.snapshot_zxid, opts)
        .map_err(|e| {
            Error::Other(format!(
                "ZooKeeper snapshot {}: {e}",
                loaded.snapshot_file.display()
            ))
        })?;
    let mut report = Report {
        snapshot_file: loaded.snapshot_file.clone(),
        snapshot_zxid: loaded.snapshot_zxid,
        skipped: loaded.skipped.clone(),
        log_files: loaded.log_files.clone(),
        entries: loaded.entries.len(),
        torn_tail: loaded.torn_tail.clone(),
        ..Report::default()
    };
    let mut last_digest = None;
    for (i, e) in loaded.entries.iter().enumerate() {
        match tree.replay_zk(e) {
            Replayed::Applied => report.applied += 1,
            Replayed::Ignored => report.ignored += 1,
            Replayed::Config => report.config_txns += 1,
        }
        if let Some((_, d)) = e.digest {
            last_digest = Some((e.header.zxid, d));
        }
        if i > 0 && i % 1_000_000 == 0 {
            progress(&format!("replayed {i} of {} txns", loaded.entries.len()));
        }
    }
    tree.check_zk_acls().map_err(|e| {
        Error::Other(format!(
            "ZooKeeper snapshot {}: {e}",
            loaded.snapshot_file.display()
        ))
    })?;
    if let Some((zxid, theirs)) = last_digest {
        let ours = tree.zk_digest();
        report.digest = if ours == theirs {
            DigestCheck::Matched { zxid }
        } else {
            DigestCheck::Mismatched { zxid, theirs, ours }
        };
    }
    report.last_zxid = tree.last_zxid();
    report.znodes = tree.node_count() - 1;
    report.sessions = tree.sessions().len();
    report.ephemerals = tree.ephemerals_count();
    report.millis = started.elapsed().as_millis();
    Ok(Some(Imported { tree, report }))
}

/// At server start-up: the state to seed a new group with, if keeperd has no state of its
/// own under dataDir/dataLogDir and ZooKeeper's files are there. A dataDir whose ZooKeeper
/// files cannot be read stops start-up (keeperd never starts empty over data it did not
/// understand).
pub fn startup_seed(config: &Config) -> Result<Option<Seed>, Error> {
    let log_dir = config.effective_data_log_dir();
    let zk = dir::list(&config.data_dir, log_dir).map(|f| !f.is_empty());
    // No ZooKeeper files: nothing to import, whatever keeperd has (`has_state` opens the
    // raft log, which a restart with a long log would otherwise scan twice).
    if let Ok(false) = zk {
        return Ok(None);
    }
    if storage::has_state(log_dir, &config.data_dir)? {
        if zk.unwrap_or(false) {
            tracing::info!(
                "keeperd has state of its own ({}): ZooKeeper's files in {} are left alone",
                storage::log_db_dir(log_dir).display(),
                config.snap_dir().display()
            );
        }
        return Ok(None);
    }
    let mut progress = |msg: &str| tracing::info!("import: {msg}");
    let Some(imported) = load(config, &mut progress)? else {
        return Ok(None);
    };
    let r = &imported.report;
    tracing::info!(
        "import: ZooKeeper's data in {} taken over: {} znodes, {} sessions, last zxid 0x{:x} \
         (snapshot {}, {} log txns replayed, {} ms)",
        config.snap_dir().display(),
        r.znodes,
        r.sessions,
        r.last_zxid,
        r.snapshot_file.display(),
        r.entries,
        r.millis
    );
    for line in r.to_string().lines() {
        tracing::info!("import: {line}");
    }
    if let DigestCheck::Mismatched { .. } = r.digest {
        return Err(Error::Other(format!(
            "import: the imported tree does not match ZooKeeper's own digest; refusing to \
             start over data that did not read back as ZooKeeper had it\n{r}"
        )));
    }
    Ok(Some(Seed {
        zxid: imported.tree.last_zxid(),
        data: Arc::new(imported.tree.snapshot_bytes()),
    }))
}

/// What `export` wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub snapshot: PathBuf,
    pub zxid: i64,
    pub znodes: usize,
    pub sessions: usize,
}

/// Writes `tree` as ZooKeeper's dataDir layout under `out`: `version-2/snapshot.<zxid>`, and
/// `currentEpoch`/`acceptedEpoch` (a ZooKeeper ensemble member refuses a snapshot newer than
/// its epoch files). `out/version-2` must hold no ZooKeeper files yet.
pub fn export(tree: &DataTree, out: &Path) -> Result<Exported, Error> {
    let v2 = out.join("version-2");
    if let Ok(files) = dir::list(out, out) {
        if !files.snapshots.is_empty() || !files.logs.is_empty() {
            return Err(Error::Other(format!(
                "{} already holds ZooKeeper files; export into an empty directory",
                v2.display()
            )));
        }
    }
    let zxid = tree.last_zxid();
    let bytes = zkfiles::snapshot::write(&tree.to_zk_snapshot());
    let path = place_snapshot(out, zxid, &bytes)?;
    Ok(Exported {
        snapshot: path,
        zxid,
        znodes: tree.node_count() - 1,
        sessions: tree.sessions().len(),
    })
}

/// keeperd's state rebuilt from its own files (the server stopped), for `export`.
pub fn recover(config: &Config) -> Result<DataTree, Error> {
    let mut sm = TreeMachine(DataTree::new(TreeOptions::from_config(config)));
    crate::consensus::recover_offline(&mut sm, &config.data_dir, config.data_log_dir.as_deref())?;
    Ok(sm.0)
}

/// The tree alone as a state machine (no watches, no sessions' clocks): offline recovery.
struct TreeMachine(DataTree);

impl crate::consensus::StateMachine for TreeMachine {
    fn apply(&mut self, zxid: i64, txn: &crate::tree::Txn) -> crate::tree::Applied {
        self.0.apply(zxid, txn)
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.snapshot_bytes()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0 = DataTree::from_snapshot_bytes(data, self.0.options().clone())?;
        Ok(())
    }
}

/// `keeperd restore FILE`: makes `config`'s (empty) dataDir the seed of a new server or
/// ensemble from a backup (`keeperctl snapshot save`, or any ZooKeeper snapshot file): the
/// file is read and checked (magic, version, Adler-32 checksum, and the digest trailer
/// against the tree it holds), then written as `version-2/snapshot.<zxid>` with
/// `currentEpoch`/`acceptedEpoch`, which start-up imports as it takes over a ZooKeeper
/// dataDir (docs/migration.md). Refuses a dataDir that holds anything but `myid`.
pub fn restore(backup: &Path, config: &Config) -> Result<Exported, Error> {
    let mut dirs = vec![config.data_dir.as_path()];
    if let Some(log) = config.data_log_dir.as_deref() {
        dirs.push(log);
    }
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut other: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "myid")
                .collect();
            if !other.is_empty() {
                other.sort();
                return Err(Error::Other(format!(
                    "{} is not empty ({}): restore makes a new dataDir; move the old one away",
                    dir.display(),
                    other.join(", ")
                )));
            }
        }
    }
    let bytes = std::fs::read(backup)
        .map_err(|e| Error::Other(format!("reading {}: {e}", backup.display())))?;
    let name = backup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plain = zkfiles::snapshot::decompress(&name, &bytes)?;
    let snap = zkfiles::snapshot::read(&plain)
        .map_err(|e| Error::Other(format!("{} is not a usable backup: {e}", backup.display())))?;
    let stats_zxid = snap.max_stat_zxid();
    let zxid = match snap.digest {
        Some(d) if d.zxid != 0 => {
            let actual = zkfiles::digest::tree_digest(&snap);
            if actual != d.digest {
                return Err(Error::Other(format!(
                    "{}: the tree does not match its digest (0x{actual:x}, recorded 0x{:x}):                      the backup is corrupt",
                    backup.display(),
                    d.digest
                )));
            }
            d.zxid.max(stats_zxid)
        }
        _ => stats_zxid,
    };
    let path = place_snapshot(&config.data_dir, zxid, &plain)?;
    Ok(Exported {
        snapshot: path,
        zxid,
        znodes: snap.nodes.len().saturating_sub(1),
        sessions: snap.sessions.len(),
    })
}

/// Writes `bytes` (a ZooKeeper snapshot) durably as `dir/version-2/snapshot.<zxid>` with
/// `currentEpoch`/`acceptedEpoch` (a ZooKeeper ensemble member refuses a snapshot newer
/// than its epoch files): the dataDir layout `export` and `restore` both produce.
fn place_snapshot(dir: &Path, zxid: i64, bytes: &[u8]) -> Result<PathBuf, Error> {
    let v2 = dir.join("version-2");
    std::fs::create_dir_all(&v2)
        .map_err(|e| Error::Other(format!("creating {}: {e}", v2.display())))?;
    let path = v2.join(format!("snapshot.{zxid:x}"));
    write_durably(&path, bytes)?;
    let epoch = (zxid as u64 >> 32).to_string();
    for name in ["currentEpoch", "acceptedEpoch"] {
        write_durably(&dir.join(name), epoch.as_bytes())?;
    }
    storage::sync_dir(&v2)?;
    storage::sync_dir(dir)?;
    Ok(path)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let err = |e: std::io::Error| Error::Other(format!("writing {}: {e}", path.display()));
    let mut f = std::fs::File::create(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Id;
    use base64::Engine as _;

    const VARIANTS: [&str; 5] = ["default", "clean", "nodigest", "gz", "snappy"];

    fn config_for(variant: &str) -> Config {
        Config {
            data_dir: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/zkdata")
                .join(variant),
            ..Config::default()
        }
    }

    /// Every ZooKeeper 3.8 fixture imports into a tree that answers reads exactly as the
    /// real ZooKeeper answered them before it was stopped (tests/zkdata/*/expected.json):
    /// data, every Stat field, ACL, the held session and its ephemeral; the digest check
    /// passes where ZooKeeper wrote digests.
    #[test]
    fn fixtures_import_to_what_zookeeper_served() {
        for v in VARIANTS {
            let imported = load(&config_for(v), &mut |_| {})
                .expect("imports")
                .expect("ZooKeeper files");
            let (t, r) = (&imported.tree, &imported.report);
            match v {
                "nodigest" => assert_eq!(r.digest, DigestCheck::Absent, "{v}"),
                _ => assert!(matches!(r.digest, DigestCheck::Matched { .. }), "{v}: {r}"),
            }
            assert!(r.entries > 0, "{v}: {r}");
            assert_eq!(r.entries, r.applied + r.ignored + r.config_txns, "{v}");
            let text = std::fs::read_to_string(config_for(v).data_dir.join("expected.json"))
                .expect("expected.json");
            let exp: serde_json::Value = serde_json::from_str(&text).expect("json");
            let nodes = exp["nodes"].as_object().expect("nodes");
            let super_id = [Id::new("super", "")];
            let mut checked = 0;
            for (path, want) in nodes {
                if path == crate::tree::CONFIG_NODE {
                    continue;
                }
                let (data, stat) = t
                    .get_data(path, &super_id)
                    .or_else(|_| t.get_data(path, &[]))
                    .unwrap_or_else(|e| panic!("{v} {path}: {e:?}"));
                let b64 = data.map(|d| base64::engine::general_purpose::STANDARD.encode(d));
                assert_eq!(want["data"].as_str().map(String::from), b64, "{v} {path}");
                let ws = &want["stat"];
                for (field, got) in [
                    ("czxid", stat.czxid),
                    ("mzxid", stat.mzxid),
                    ("ctime", stat.ctime),
                    ("mtime", stat.mtime),
                    ("version", stat.version.into()),
                    ("cversion", stat.cversion.into()),
                    ("aversion", stat.aversion.into()),
                    ("ephemeralOwner", stat.ephemeral_owner),
                    ("dataLength", stat.data_length.into()),
                    ("numChildren", stat.num_children.into()),
                    ("pzxid", stat.pzxid),
                ] {
                    assert_eq!(ws[field].as_i64(), Some(got), "{v} {path} {field}");
                }
                let (acl, _) = t
                    .get_acl(path, &super_id)
                    .or_else(|_| t.get_acl(path, &[]))
                    .expect("acl");
                let got: Vec<(i64, String, String)> = acl
                    .iter()
                    .map(|a| (a.perms.into(), a.id.scheme.clone(), a.id.id.clone()))
                    .collect();
                let want: Vec<(i64, String, String)> = want["acl"]
                    .as_array()
                    .expect("acl list")
                    .iter()
                    .map(|a| {
                        let s = |k: &str| a[k].as_str().unwrap_or_default().to_string();
                        (a["perms"].as_i64().unwrap_or(-1), s("scheme"), s("id"))
                    })
                    .collect();
                assert_eq!(got, want, "{v} {path} acl");
                checked += 1;
            }
            // Nothing more than ZooKeeper had (the root counts once in node_count's alias).
            assert_eq!(t.node_count() - 1, nodes.len(), "{v}: node count");
            assert!(checked > 50, "{v}: {checked} nodes");
            let held = exp["held_session"].as_i64().expect("held session");
            assert!(t.session_is_imported(held), "{v}");
            assert!(
                !t.get_ephemerals(held, "/").is_empty(),
                "{v}: the held ephemeral"
            );
            // The first keeperd zxid is above ZooKeeper's last.
            assert_eq!(r.last_zxid, t.last_zxid());
        }
    }

    /// export writes a ZooKeeper snapshot that imports back to the same tree.
    #[test]
    fn export_then_import_is_the_same_tree() {
        let imported = load(&config_for("default"), &mut |_| {})
            .expect("imports")
            .expect("files");
        let out = tempfile::tempdir().expect("tempdir");
        let x = export(&imported.tree, out.path()).expect("exports");
        assert_eq!(x.zxid, imported.tree.last_zxid());
        let epoch = std::fs::read_to_string(out.path().join("currentEpoch")).expect("epoch");
        assert_eq!(epoch, ((x.zxid as u64) >> 32).to_string());
        let back = Config {
            data_dir: out.path().to_path_buf(),
            ..Config::default()
        };
        let again = load(&back, &mut |_| {})
            .expect("re-imports")
            .expect("files");
        assert_eq!(again.tree.digest(), imported.tree.digest());
        // A second export into the same directory is refused.
        assert!(export(&imported.tree, out.path()).is_err());
    }
}
