//! The `conf` four-letter word: ZooKeeper's ZooKeeperServer.dumpConf (plus
//! QuorumZooKeeperServer's ensemble lines), as Debian's ZooKeeper 3.8 prints it standalone:
//!
//! ```text
//! clientPort=2181
//! secureClientPort=-1
//! dataDir=/var/lib/zookeeper/version-2
//! dataDirSize=67109337
//! dataLogDir=/var/lib/zookeeper/version-2
//! dataLogSize=67109337
//! tickTime=2000
//! maxClientCnxns=60
//! minSessionTimeout=4000
//! maxSessionTimeout=40000
//! clientPortListenBacklog=-1
//! serverId=0
//! ```
//!
//! In an ensemble, after serverId: initLimit, syncLimit, electionAlg (always 3), electionPort,
//! quorumPort, peerType (0 participant, 1 observer), a `membership: ` line and the membership
//! (`server.N=...` lines, then `version=<hex>`).
//!
//! dataDir/dataLogDir are shown with ZooKeeper's `version-2` suffix so tools that parse them
//! see the familiar shape; the sizes are of everything under dataDir / dataLogDir, because
//! keeperd's storage layout is its own (ZooKeeper sums its version-2 directory).

use std::path::Path;

use super::{Config, PeerType};

impl Config {
    /// The `conf` output, one `key=value` per element, without newlines. The caller joins them
    /// with `\n` and ends with `\n`. Reads dataDir and dataLogDir for their sizes (0 when they
    /// do not exist).
    pub fn to_conf_lines(&self) -> Vec<String> {
        let data_size = dir_size(&self.data_dir);
        let log_size = match &self.data_log_dir {
            Some(dir) if dir != &self.data_dir => dir_size(dir),
            _ => data_size,
        };
        self.conf_lines_with_sizes(data_size, log_size)
    }

    /// `to_conf_lines` with the directory sizes supplied (for tests, or a server that tracks
    /// them itself).
    pub fn conf_lines_with_sizes(&self, data_dir_size: u64, data_log_size: u64) -> Vec<String> {
        let mut lines = vec![
            format!("clientPort={}", self.client_port),
            format!(
                "secureClientPort={}",
                self.secure_client_port.map_or(-1, i32::from)
            ),
            format!("dataDir={}", absolute(&self.snap_dir())),
            format!("dataDirSize={data_dir_size}"),
            format!("dataLogDir={}", absolute(&self.txn_log_dir())),
            format!("dataLogSize={data_log_size}"),
            format!("tickTime={}", self.tick_time_ms),
            format!("maxClientCnxns={}", self.max_client_cnxns),
            format!("minSessionTimeout={}", self.min_session_timeout_ms),
            format!("maxSessionTimeout={}", self.max_session_timeout_ms),
            format!(
                "clientPortListenBacklog={}",
                self.client_port_listen_backlog
            ),
        ];
        // ZooKeeper's standalone server reports 0 whatever myid says.
        let server_id = if self.is_distributed() {
            self.my_id.unwrap_or(0)
        } else {
            0
        };
        lines.push(format!("serverId={server_id}"));
        if let Some(me) = self.my_server() {
            lines.push(format!("initLimit={}", self.init_limit));
            lines.push(format!("syncLimit={}", self.sync_limit));
            lines.push("electionAlg=3".to_string());
            lines.push(format!("electionPort={}", me.election_port));
            lines.push(format!("quorumPort={}", me.quorum_port));
            let ordinal = match self.peer_type {
                PeerType::Participant => 0,
                PeerType::Observer => 1,
            };
            lines.push(format!("peerType={ordinal}"));
            lines.push("membership: ".to_string());
            lines.extend(self.membership_lines());
        }
        lines
    }
}

fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Total bytes of regular files under `path`, recursively; unreadable parts count as 0.
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => dir_size(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
