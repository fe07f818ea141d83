//! zoo.cfg (+ myid, + dynamic config) parsing and validation, in one place. The rest of the
//! server takes the parsed `Config`. (Parser in progress.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Role of a server in the ensemble (server.N=...:participant|observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Participant,
    Observer,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddr:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub peer_type: PeerType,
    pub client_addr: Option<String>,
    pub client_port: Option<u16>,
}

/// 4lw.commands.whitelist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whitelist {
    All,
    /// Lower-case four-letter words; `srvr` is always allowed regardless.
    Only(Vec<String>),
}

impl Whitelist {
    pub fn allows(&self, word: &str) -> bool {
        word == "srvr"
            || match self {
                Whitelist::All => true,
                Whitelist::Only(words) => words.iter().any(|w| w == word),
            }
    }
}

/// The whole parsed configuration. `Default` is the embedded default config used when
/// keeperd starts with no file (standalone on 2181, dataDir ./keeperd-data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from (None for the embedded default).
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    pub secure_client_port: Option<u16>,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub snap_count: u64,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub servers: Vec<ServerSpec>,
    /// From $dataDir/myid when servers are configured.
    pub my_id: Option<u64>,
    pub peer_type: PeerType,
    pub four_letter_whitelist: Whitelist,
    pub admin_enable_server: bool,
    pub admin_server_port: u16,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub dynamic_config_file: Option<PathBuf>,
    pub force_sync: bool,
    pub global_outstanding_limit: u32,
    pub quorum_listen_on_all_ips: bool,
    pub skip_acl: bool,
    /// `user:base64(sha1(user:password))`; authenticating with it grants super.
    pub super_digest: Option<String>,
    pub jute_maxbuffer: usize,
    pub metrics_provider_class: Option<String>,
    pub metrics_http_port: u16,
    /// Every key that is not one of the above, kept for `conf` and warned about.
    pub extra: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            source: None,
            tick_time_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            data_dir: PathBuf::from("keeperd-data"),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: None,
            secure_client_port: None,
            max_client_cnxns: 60,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            snap_count: 100_000,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            servers: vec![],
            my_id: None,
            peer_type: PeerType::Participant,
            four_letter_whitelist: Whitelist::Only(vec!["srvr".into()]),
            admin_enable_server: true,
            admin_server_port: 8080,
            standalone_enabled: true,
            reconfig_enabled: false,
            dynamic_config_file: None,
            force_sync: true,
            global_outstanding_limit: 1000,
            quorum_listen_on_all_ips: false,
            skip_acl: false,
            super_digest: None,
            jute_maxbuffer: 0xfffff,
            metrics_provider_class: None,
            metrics_http_port: 7000,
            extra: BTreeMap::new(),
        }
    }
}
