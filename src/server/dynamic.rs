//! The dynamic configuration file (reconfigEnabled=true), as ZooKeeper keeps it: after each
//! change of membership every server writes `<zoo.cfg>.dynamic.<version hex>` (its
//! `server.N` lines) next to its zoo.cfg and points zoo.cfg's `dynamicConfigFile` at it, so
//! a restart reads the membership it last knew.
//!
//! Both files are replaced atomically (write to a temporary file, fsync, rename). A failure
//! is logged, never fatal: the membership is in the replicated state anyway.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::{Config, Membership};
use crate::consensus::storage::sync_dir;

/// Writes `m` as the dynamic file of `config` and points zoo.cfg at it. Returns the new
/// file's path, or None when nothing was written (no zoo.cfg, or an error, logged).
pub(crate) fn write_dynamic_config(config: &Config, m: &Membership) -> Option<PathBuf> {
    let source = config.source.as_deref()?;
    let dynamic = dynamic_path(source, m.version);
    let mut body = m.server_lines().join("\n");
    body.push('\n');
    if let Err(e) = replace_file(&dynamic, body.as_bytes()) {
        warn!("cannot write {}: {e}", dynamic.display());
        return None;
    }
    let text = match std::fs::read_to_string(source) {
        Ok(t) => t,
        Err(e) => {
            warn!(
                "cannot read {} to point it at {}: {e}",
                source.display(),
                dynamic.display()
            );
            return None;
        }
    };
    // This server's line carries its client address: zoo.cfg's own would contradict it
    // after the next change (ZooKeeper erases them too).
    let erase_client = config
        .my_id
        .and_then(|id| m.servers.get(&id))
        .is_some_and(|s| s.client_port.is_some());
    let edited = point_at(&text, &dynamic, erase_client);
    if edited != text {
        if let Err(e) = replace_file(source, edited.as_bytes()) {
            warn!("cannot rewrite {}: {e}", source.display());
            return None;
        }
    }
    info!(
        "membership version {:x} written to {} ({} now points at it)",
        m.version,
        dynamic.display(),
        source.display()
    );
    Some(dynamic)
}

/// `zoo.cfg` -> `zoo.cfg.dynamic.<version hex>`, in the same directory.
pub(crate) fn dynamic_path(source: &Path, version: u64) -> PathBuf {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zoo.cfg".into());
    source.with_file_name(format!("{name}.dynamic.{version:x}"))
}

/// zoo.cfg's text without its `server.N` and `dynamicConfigFile` lines (the membership now
/// lives in the dynamic file), and without `clientPort`/`clientPortAddress` when
/// `erase_client`, with `dynamicConfigFile=<path>` appended. Every other line (comments
/// included) stays as it was.
fn point_at(text: &str, dynamic: &Path, erase_client: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let key = line.trim_start();
        let client = key.starts_with("clientPort=")
            || key.starts_with("clientPort ")
            || key.starts_with("clientPortAddress");
        if key.starts_with("server.")
            || key.starts_with("dynamicConfigFile")
            || (erase_client && client)
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("dynamicConfigFile={}\n", dynamic.display()));
    out
}

fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir).map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_cfg_points_at_the_dynamic_file() {
        let text = "# keep me\ntickTime=2000\nserver.1=h:1:2\n  server.2=h:3:4\n\
                    dynamicConfigFile=old\nclientPort=2181\n";
        let dynamic = Path::new("conf/zoo.cfg.dynamic.100000003");
        assert_eq!(
            point_at(text, dynamic, false),
            "# keep me\ntickTime=2000\nclientPort=2181\n\
             dynamicConfigFile=conf/zoo.cfg.dynamic.100000003\n"
        );
        assert_eq!(
            point_at(text, dynamic, true),
            "# keep me\ntickTime=2000\ndynamicConfigFile=conf/zoo.cfg.dynamic.100000003\n"
        );
        assert_eq!(
            dynamic_path(Path::new("conf/zoo.cfg"), 0x1_0000_0003),
            Path::new("conf/zoo.cfg.dynamic.100000003")
        );
    }

    #[test]
    fn a_restart_reads_the_membership_written() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), "2\n").unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=2182\n\
                 clientPortAddress=127.0.0.1\n\
                 reconfigEnabled=true\nserver.1=127.0.0.1:2001:3001\n\
                 server.2=127.0.0.1:2002:3002\nserver.3=127.0.0.1:2003:3003\n",
                data.display()
            ),
        )
        .unwrap();
        let config = Config::from_file(&cfg).unwrap();
        let next = Membership::parse(
            "server.1=127.0.0.1:2001:3001:participant;0.0.0.0:2181\n\
             server.2=127.0.0.1:2002:3002:participant;0.0.0.0:2182\n\
             server.4=127.0.0.1:2004:3004:participant;0.0.0.0:2184\nversion=200000007",
        )
        .unwrap();
        let written = write_dynamic_config(&config, &next).unwrap();
        assert!(written.ends_with("zoo.cfg.dynamic.200000007"));
        let again = Config::from_file(&cfg).unwrap();
        assert_eq!(again.membership(), next);
        assert_eq!(again.client_port, 2182);
    }
}
