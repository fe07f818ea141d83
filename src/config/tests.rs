use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;

/// A temp dir holding zoo.cfg (and optionally myid), with `{dir}` in the text replaced by it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn myid(&self, text: &str) -> &Fixture {
        std::fs::write(self.path().join("myid"), text).unwrap();
        self
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text.replace("{dir}", self.path().to_str().unwrap())).unwrap();
        path
    }

    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        let text = text.replace("{dir}", self.path().to_str().unwrap());
        Config::parse_str(&text, self.path())
    }

    fn err(&self, text: &str) -> String {
        self.parse(text).unwrap_err().to_string()
    }
}

const KAFKA_ENSEMBLE: &str = "\
# ZooKeeper for a Kafka cluster
tickTime=2000
initLimit=10
syncLimit=5
dataDir={dir}
clientPort=2181
maxClientCnxns=0
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
server.1=zk1.example.com:2888:3888
server.2=zk2.example.com:2888:3888
server.3=zk3.example.com:2888:3888
4lw.commands.whitelist=mntr,ruok,srvr,stat
";

#[test]
fn kafka_ensemble() {
    let f = Fixture::new();
    f.myid("2\n");
    let c = f.parse(KAFKA_ENSEMBLE).unwrap();
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!((c.init_limit, c.sync_limit), (10, 5));
    assert_eq!(c.data_dir, f.path());
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.max_client_cnxns, 0);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (4000, 40000)
    );
    assert_eq!(c.autopurge_snap_retain_count, 5);
    assert_eq!(c.autopurge_purge_interval_hours, 24);
    assert_eq!(c.my_id, Some(2));
    assert!(c.is_distributed());
    assert_eq!(c.peer_type, PeerType::Participant);
    assert_eq!(c.servers.len(), 3);
    assert_eq!(
        c.servers[1],
        ServerSpec {
            id: 2,
            host: "zk2.example.com".into(),
            quorum_port: 2888,
            election_port: 3888,
            peer_type: PeerType::Participant,
            client_addr: None,
            client_port: None,
        }
    );
    assert_eq!(c.my_server().unwrap().host, "zk2.example.com");
    assert_eq!(
        c.four_letter_whitelist,
        Whitelist::Only(vec![
            "mntr".into(),
            "ruok".into(),
            "srvr".into(),
            "stat".into()
        ])
    );
    assert!(c.four_letter_whitelist.allows("mntr"));
    assert!(!c.four_letter_whitelist.allows("dump"));
    assert!(c.extra.is_empty());
    assert_eq!(c.client_socket_addr().port(), 2181);
    assert_eq!(c.pid_file(), f.path().join("zookeeper_server.pid"));
}

#[test]
fn zk_defaults_for_a_minimal_file() {
    let f = Fixture::new();
    let c = f.parse("dataDir={dir}\nclientPort=2181\n").unwrap();
    // ZooKeeper's DEFAULT_TICK_TIME is 3000 when the file does not say.
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (6000, 60000)
    );
    assert!(!c.is_distributed());
    assert_eq!(c.my_id, None);
    assert_eq!(c.max_client_cnxns, 60);
    // No whitelist line: the read-only monitoring words of a 3.4-era zoo.cfg answer; the
    // ones that list sessions, clients or the environment do not.
    assert_eq!(c.four_letter_whitelist, Whitelist::Default);
    for w in [
        "ruok", "srvr", "stat", "mntr", "conf", "isro", "wchs", "dirs",
    ] {
        assert!(c.four_letter_whitelist.allows(w), "{w}");
    }
    for w in [
        "cons", "dump", "wchc", "wchp", "envi", "crst", "srst", "stmk", "gtmk", "hash",
    ] {
        assert!(!c.four_letter_whitelist.allows(w), "{w}");
    }
    assert!(c.force_sync && !c.skip_acl && c.admin_enable_server && c.standalone_enabled);
    assert!(!c.reconfig_enabled);
    assert_eq!(c.jute_maxbuffer, 0xfffff);
    assert_eq!(c.snap_count, 100_000);
    assert_eq!(c.source, None);
}

#[test]
fn embedded_default_is_unchanged() {
    let c = Config::default();
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.data_dir, PathBuf::from("keeperd-data"));
    assert_eq!(c.tick_time_ms, 2000);
    assert!(c.servers.is_empty());
}

#[test]
fn session_timeouts_follow_tick_time_unless_set() {
    let f = Fixture::new();
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\ntickTime=500\nmaxSessionTimeout=90000\n")
        .unwrap();
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (1000, 90000)
    );
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nminSessionTimeout=-1\n")
        .unwrap();
    assert_eq!(c.min_session_timeout_ms, 6000);
}

#[test]
fn min_session_timeout_above_max_is_an_error() {
    let f = Fixture::new();
    let e =
        f.err("dataDir={dir}\nclientPort=2181\nminSessionTimeout=50000\nmaxSessionTimeout=40000\n");
    assert_eq!(
        e,
        "zoo.cfg:3: minSessionTimeout: 50000 ms must not be larger than maxSessionTimeout (40000 ms)"
    );
    // The max default (20 x tickTime) counts too, and the message says so.
    let e = f.err("tickTime=2000\ndataDir={dir}\nclientPort=2181\nminSessionTimeout=50000\n");
    assert!(e.starts_with("zoo.cfg:4: minSessionTimeout:"), "{e}");
    assert!(e.contains("default of 20 x tickTime"), "{e}");
}

#[test]
fn bad_values_name_file_line_and_key() {
    let f = Fixture::new();
    let cases = [
        (
            "clientPort=abc",
            "zoo.cfg:2: clientPort: \"abc\" is not a port number",
        ),
        (
            "clientPort=70000",
            "zoo.cfg:2: clientPort: \"70000\" is not a port number",
        ),
        ("tickTime=two", "zoo.cfg:2: tickTime: \"two\" is not a number"),
        (
            "tickTime=0",
            "zoo.cfg:2: tickTime: must be greater than 0 (milliseconds per tick)",
        ),
        (
            "maxClientCnxns=-1",
            "zoo.cfg:2: maxClientCnxns: \"-1\" must not be negative",
        ),
        (
            "standaloneEnabled=yes",
            "zoo.cfg:2: standaloneEnabled: \"yes\" is not a boolean; use true or false",
        ),
        ("forceSync=maybe", "zoo.cfg:2: forceSync: \"maybe\" is not yes or no"),
        (
            "peerType=leader",
            "zoo.cfg:2: peerType: \"leader\" is not a peer type (participant or observer)",
        ),
        (
            "electionAlg=1",
            "zoo.cfg:2: electionAlg: \"1\" is not supported; only 3 (fast leader election) is",
        ),
        (
            "admin.serverPort=0",
            "zoo.cfg:2: admin.serverPort: 0 is not a usable port number",
        ),
        (
            "admin.idleTimeout=0",
            "zoo.cfg:2: admin.idleTimeout: \"0\" must be a positive number of ms",
        ),
        (
            "admin.commandURL=commands",
            "zoo.cfg:2: admin.commandURL: \"commands\" is not a URL path (/commands)",
        ),
        (
            "admin.serverAddress=a b",
            "zoo.cfg:2: admin.serverAddress: \"a b\" is not a host name or address",
        ),
        (
            "keeperd.prometheus.enabled=yes",
            "zoo.cfg:2: keeperd.prometheus.enabled: \"yes\" is not a boolean; use true or false",
        ),
        (
            "superDigest=nocolon",
            "zoo.cfg:2: superDigest: \"nocolon\" is not of the form user:base64(sha1(user:password))",
        ),
        (
            "server.x=h:1:2",
            "zoo.cfg:2: server.x: \"x\" is not a server id (a number)",
        ),
        (
            "group.1=1:2:3",
            "zoo.cfg:2: group.1: hierarchical quorums (group.N / weight.N) are not supported by keeperd",
        ),
    ];
    for (line, want) in cases {
        let text = format!("dataDir={{dir}}\n{line}\nclientPort=2181\n");
        assert_eq!(f.err(&text), want, "for {line}");
    }
}

#[test]
fn bad_server_lines() {
    let f = Fixture::new();
    for (value, why) in [
        ("h:2888", "wrong number of ':'-separated fields"),
        ("h:2888:3888:participant:x", "wrong number"),
        ("h:x:3888", "bad quorum port"),
        ("h:2888:0", "bad election port"),
        ("h:2888:3888:leader", "is not a peer type"),
        ("h:2888:3888;abc", "bad client port"),
        ("h:2888:3888;a:b:c", "client part must be"),
        ("h:2888:3888;1;2", "more than one ';'"),
        ("[::1:2888:3888", "no matching ']:'"),
        ("a:1:2|b:1:2", "multiple addresses"),
        (":2888:3888", "empty host"),
    ] {
        let e = f.err(&format!(
            "dataDir={{dir}}\nclientPort=2181\nserver.1={value}\n"
        ));
        assert!(e.starts_with("zoo.cfg:3: server.1: "), "{value}: {e}");
        assert!(e.contains(why), "{value}: {e}");
    }
}

#[test]
fn missing_data_dir() {
    let f = Fixture::new();
    assert_eq!(f.err("clientPort=2181\n"), "zoo.cfg: dataDir is not set");
    assert_eq!(
        f.err("dataDir=\nclientPort=2181\n"),
        "zoo.cfg:1: dataDir: is empty; it must name a directory"
    );
}

#[test]
fn duplicate_server_ids() {
    let f = Fixture::new();
    f.myid("1");
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nserver.1=a:2888:3888\n\
         server.2=b:2888:3888\nserver.01=c:2888:3888\n",
    );
    assert_eq!(
        e,
        "zoo.cfg:7: server.01: duplicate server id 1 (already defined at line 5 as \
         a:2888:3888:participant)"
    );
}

#[test]
fn two_servers_on_one_address() {
    let f = Fixture::new();
    f.myid("1");
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nserver.1=a:2888:3888\n\
         server.2=a:2889:3888\nserver.3=b:2888:3888\n",
    );
    assert_eq!(
        e,
        "zoo.cfg: server.2 (line 6) and server.1 (line 5) both use a:3888"
    );
}

#[test]
fn myid_problems() {
    let f = Fixture::new();
    let cfg = "dataDir={dir}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
               server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";
    let myid = f.path().join("myid").display().to_string();
    let e = f.err(cfg);
    assert!(
        e.starts_with(&format!("{myid}: myid file is missing")),
        "{e}"
    );
    assert!(e.contains("(1, 2, 3)"), "{e}");

    f.myid("one\n");
    assert_eq!(
        f.err(cfg),
        format!("{myid}: \"one\" is not a server id (a non-negative number)")
    );

    f.myid("4\n");
    assert_eq!(
        f.err(cfg),
        format!("{myid}: myid 4 is not among the server ids in zoo.cfg (1, 2, 3)")
    );

    f.myid(" 3 \n");
    assert_eq!(f.parse(cfg).unwrap().my_id, Some(3));
}

#[test]
fn ensemble_needs_init_and_sync_limits() {
    let f = Fixture::new();
    f.myid("1");
    let servers = "server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n";
    let e = f.err(&format!(
        "dataDir={{dir}}\nclientPort=2181\nsyncLimit=2\n{servers}"
    ));
    assert!(e.starts_with("zoo.cfg: initLimit is not set"), "{e}");
    let e = f.err(&format!(
        "dataDir={{dir}}\nclientPort=2181\ninitLimit=2\n{servers}"
    ));
    assert!(e.starts_with("zoo.cfg: syncLimit is not set"), "{e}");
}

#[test]
fn client_port_from_the_server_line() {
    let f = Fixture::new();
    f.myid("2");
    let c = f
        .parse(
            "dataDir={dir}\ninitLimit=5\nsyncLimit=2\n\
             server.1=10.0.0.1:2888:3888;2181\n\
             server.2=[fe80::2]:2888:3888:participant;127.0.0.1:2182\n\
             server.3=10.0.0.3:2888:3888:observer;[::1]:2183\n",
        )
        .unwrap();
    assert_eq!(c.client_port, 2182);
    assert_eq!(
        c.client_port_address,
        Some("127.0.0.1".parse::<IpAddr>().unwrap())
    );
    assert_eq!(c.servers[1].host, "fe80::2");
    assert_eq!(c.servers[2].peer_type, PeerType::Observer);
    assert_eq!(c.servers[2].client_addr.as_deref(), Some("::1"));
    assert_eq!(
        c.membership_lines(),
        vec![
            "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181",
            "server.2=[fe80::2]:2888:3888:participant;127.0.0.1:2182",
            "server.3=10.0.0.3:2888:3888:observer;[::1]:2183",
            "version=0",
        ]
    );
}

#[test]
fn client_port_missing_everywhere() {
    let f = Fixture::new();
    f.myid("1");
    let e = f.err(
        "dataDir={dir}\ninitLimit=5\nsyncLimit=2\nserver.1=a:2888:3888\nserver.2=b:2888:3888;2181\n\
         server.3=c:2888:3888\n",
    );
    assert_eq!(
        e,
        "zoo.cfg: clientPort is not set and server.1 has no client port (add clientPort=2181 or \
         end the line with ;2181)"
    );
    assert_eq!(f.err("dataDir={dir}\n"), "zoo.cfg: clientPort is not set");
    assert_eq!(
        f.err("dataDir={dir}\nclientPortAddress=127.0.0.1\n"),
        "zoo.cfg:2: clientPortAddress: is set but clientPort is not set"
    );
}

#[test]
fn static_client_port_must_agree_with_the_server_line() {
    let f = Fixture::new();
    f.myid("1");
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
         server.1=a:2888:3888;2191\nserver.2=b:2888:3888;2181\nserver.3=c:2888:3888;2181\n",
    );
    assert_eq!(
        e,
        "zoo.cfg:2: clientPort: 2181 differs from the client port 2191 in server.1 (zoo.cfg:5)"
    );
}

#[test]
fn peer_type_comes_from_the_server_list() {
    let f = Fixture::new();
    f.myid("4");
    let c = f
        .parse(
            "dataDir={dir}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\npeerType=participant\n\
             server.1=a:2888:3888\nserver.2=b:2888:3888\nserver.3=c:2888:3888\n\
             server.4=d:2888:3888:observer\n",
        )
        .unwrap();
    assert_eq!(c.peer_type, PeerType::Observer);
    let conf = c.conf_lines_with_sizes(0, 0);
    assert!(conf.contains(&"peerType=1".to_string()), "{conf:?}");
}

#[test]
fn a_single_server_line_runs_standalone() {
    let f = Fixture::new();
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nserver.1=localhost:2888:3888\n")
        .unwrap();
    assert!(!c.is_distributed());
    assert!(c.servers.is_empty());
    // ... unless standalone is disabled: then it is a one-member ensemble and needs myid.
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\n\
         server.1=localhost:2888:3888\n",
    );
    assert!(e.contains("myid file is missing"), "{e}");
    f.myid("1");
    let c = f
        .parse(
            "dataDir={dir}\nclientPort=2181\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\n\
             server.1=localhost:2888:3888\n",
        )
        .unwrap();
    assert!(c.is_distributed());
    // Observers need a quorum of participants.
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\nserver.1=a:2888:3888\nserver.2=b:2888:3888:observer\n",
    );
    assert!(e.contains("observers"), "{e}");
}

#[test]
fn dynamic_config_file() {
    let f = Fixture::new();
    f.myid("3");
    f.write(
        "zoo.cfg.dynamic.100000000",
        "server.1=a:2888:3888:participant;2181\nserver.2=b:2888:3888:participant;2181\n\
         server.3=c:2888:3888:participant;0.0.0.0:2181\n",
    );
    let cfg = f.write(
        "zoo.cfg",
        "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={dir}\nreconfigEnabled=true\n\
         dynamicConfigFile=zoo.cfg.dynamic.100000000\n",
    );
    let c = Config::from_file(&cfg).unwrap();
    assert_eq!(c.source.as_deref(), Some(cfg.as_path()));
    assert_eq!(c.servers.len(), 3);
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.config_version, 0x1_0000_0000);
    assert!(c.reconfig_enabled);
    assert_eq!(
        c.dynamic_config_file,
        Some(f.path().join("zoo.cfg.dynamic.100000000"))
    );
    assert_eq!(c.membership_lines().last().unwrap(), "version=100000000");

    // server.N lines in zoo.cfg as well are refused, like ZooKeeper.
    let e = f.err(
        "dataDir={dir}\nclientPort=2181\ndynamicConfigFile=zoo.cfg.dynamic.100000000\n\
         server.1=a:2888:3888\n",
    );
    assert_eq!(
        e,
        "zoo.cfg:4: server.1: must be in the dynamic config file (zoo.cfg.dynamic.100000000) \
         since dynamicConfigFile is set"
    );
    // Anything but server.N inside the dynamic file is refused, pointing into that file.
    let dynamic = f.write(
        "bad.dynamic",
        "server.1=a:2888:3888;2181\nclientPort=2181\n",
    );
    let e = f.err("dataDir={dir}\ndynamicConfigFile=bad.dynamic\n");
    assert_eq!(
        e,
        format!(
            "{}:2: clientPort: is not allowed in a dynamic config file (only server.N lines are)",
            dynamic.display()
        )
    );
    let e = f.err("dataDir={dir}\nclientPort=2181\ndynamicConfigFile=/nonexistent/zoo.dyn\n");
    assert!(
        e.starts_with("zoo.cfg:3: dynamicConfigFile: cannot read /nonexistent/zoo.dyn"),
        "{e}"
    );
}

#[test]
fn system_property_keys_with_and_without_prefix() {
    let f = Fixture::new();
    let c = f
        .parse(
            "dataDir={dir}\nclientPort=2181\n\
             zookeeper.snapCount=5000\nforceSync=no\nzookeeper.skipACL=yes\n\
             globalOutstandingLimit=2000\nzookeeper.4lw.commands.whitelist=*\n\
             admin.enableServer=false\nzookeeper.admin.serverPort=9090\n\
             authProvider.1=org.apache.zookeeper.server.auth.IPAuthenticationProvider\n\
             zookeeper.authProvider.2=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n\
             zookeeper.DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
             jute.maxbuffer=0x400000\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
             metricsProvider.httpPort=7001\nmetricsProvider.exportJvmInfo=true\n\
             quorumListenOnAllIPs=true\nclientPortListenBacklog=128\nsecureClientPort=0\n\
             dataLogDir=/var/log/zk-txn\nsomething.custom=1\n",
        )
        .unwrap();
    assert_eq!(c.snap_count, 5000);
    assert!(!c.force_sync);
    assert!(c.skip_acl);
    assert_eq!(c.global_outstanding_limit, 2000);
    assert_eq!(c.four_letter_whitelist, Whitelist::All);
    assert!(!c.admin_enable_server);
    assert_eq!(c.admin_server_port, 9090);
    assert_eq!(c.auth_providers.len(), 2);
    assert!(c.auth_providers["2"].ends_with("DigestAuthenticationProvider"));
    assert_eq!(
        c.super_digest.as_deref(),
        Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
    );
    assert_eq!(c.jute_maxbuffer, 0x400000);
    assert!(c
        .metrics_provider_class
        .as_deref()
        .unwrap()
        .ends_with("PrometheusMetricsProvider"));
    assert_eq!(c.metrics_http_port, 7001);
    assert!(c.prometheus());
    assert!(c.quorum_listen_on_all_ips);
    assert_eq!(c.client_port_listen_backlog, 128);
    assert_eq!(c.secure_client_port, None);
    assert_eq!(c.data_log_dir, Some(PathBuf::from("/var/log/zk-txn")));
    assert_eq!(c.txn_log_dir(), PathBuf::from("/var/log/zk-txn/version-2"));
    let extra: Vec<&str> = c.extra.keys().map(String::as_str).collect();
    assert_eq!(
        extra,
        vec!["metricsProvider.exportJvmInfo", "something.custom"]
    );

    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nsuperDigest=u:abc=\nautopurge.snapRetainCount=1\nsnapCount=1\n")
        .unwrap();
    assert_eq!(c.super_digest.as_deref(), Some("u:abc="));
    assert_eq!(c.autopurge_snap_retain_count, 3);
    assert_eq!(c.snap_count, 2);
}

#[test]
fn later_values_win_like_java_properties() {
    let f = Fixture::new();
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nclientPort=2182\n")
        .unwrap();
    assert_eq!(c.client_port, 2182);
}

#[test]
fn client_port_address_is_resolved() {
    let f = Fixture::new();
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nclientPortAddress=127.0.0.1\n")
        .unwrap();
    assert_eq!(c.client_socket_addr(), "127.0.0.1:2181".parse().unwrap());
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nclientPortAddress=localhost\n")
        .unwrap();
    assert!(c.client_port_address.unwrap().is_loopback());
}

#[test]
fn from_file_errors_use_the_path() {
    let f = Fixture::new();
    let cfg = f.write("zoo.cfg", "dataDir={dir}\n\n\nclientPort=x\n");
    let e = Config::from_file(&cfg).unwrap_err();
    assert_eq!(e.line, Some(4));
    assert_eq!(e.key.as_deref(), Some("clientPort"));
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4: clientPort: \"x\" is not a port number",
            cfg.display()
        )
    );
    let missing = f.path().join("nope.cfg");
    let e = Config::from_file(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: cannot read config file:", missing.display())),
        "{e}"
    );
}

#[test]
fn the_quorum_secret_file_is_checked_when_zoo_cfg_is_read() {
    let f = Fixture::new();
    std::fs::write(f.path().join("secret"), "sixteen bytes ok\n").unwrap();
    let c = f
        .parse("dataDir={dir}\nclientPort=2181\nkeeperd.quorum.secretFile={dir}/secret\n")
        .unwrap();
    assert_eq!(c.quorum_secret_file, Some(f.path().join("secret")));
    assert!(format!("{c:?}").contains("quorum_secret_file"));
    std::fs::write(f.path().join("short"), "too short\n").unwrap();
    let e = f.err("dataDir={dir}\nclientPort=2181\nkeeperd.quorum.secretFile={dir}/short\n");
    assert!(
        e.starts_with("zoo.cfg:3: ") && e.contains("at least 16"),
        "{e}"
    );
    let e = f.err("dataDir={dir}\nclientPort=2181\nkeeperd.quorum.secretFile={dir}/none\n");
    assert!(e.contains("cannot read the quorum secret"), "{e}");
}

/// keeperd.linearizableReads: off unless set; true/false in any case, anything else refused
/// with its line; not kept in `extra` (it is a key keeperd acts on).
#[test]
fn linearizable_reads_is_an_opt_in_boolean() {
    let f = Fixture::new();
    let base = "dataDir={dir}\nclientPort=2181\n";
    assert!(!f.parse(base).unwrap().linearizable_reads);
    assert!(!Config::default().linearizable_reads);
    for (value, want) in [
        ("true", true),
        ("TRUE", true),
        ("false", false),
        ("False", false),
    ] {
        let c = f
            .parse(&format!("{base}keeperd.linearizableReads={value}\n"))
            .unwrap();
        assert_eq!(c.linearizable_reads, want, "{value}");
        assert!(c.extra.is_empty(), "{:?}", c.extra);
    }
    for bad in ["yes", "1", ""] {
        let e = f.err(&format!("{base}keeperd.linearizableReads={bad}\n"));
        assert_eq!(
            e,
            format!(
                "zoo.cfg:3: keeperd.linearizableReads: {bad:?} is not a boolean; use true or false"
            )
        );
    }
}

/// Fail closed: a protection keeperd does not implement yet stops start-up with the file,
/// line and what is missing; the same keys turned off are fine.
#[test]
fn unimplemented_security_keys_refuse_to_start() {
    let f = Fixture::new();
    for (line, what) in [
        ("portUnification=true", "port unification"),
        ("ssl.crl=true", "revocation"),
        ("zookeeper.ssl.quorum.ocsp=true", "revocation"),
        ("ssl.authProvider=custom", "x509 authentication provider"),
        ("quorum.auth.enableSasl=true", "SASL"),
        ("quorum.auth.learnerRequireSasl=true", "SASL"),
        (
            "authProvider.custom=com.example.MyAuthenticationProvider",
            "authentication provider",
        ),
    ] {
        let e = f
            .parse(&format!("dataDir={{dir}}\nclientPort=2181\n{line}\n"))
            .expect_err(line)
            .to_string();
        assert!(e.starts_with("zoo.cfg:3: "), "{line}: {e}");
        assert!(
            e.contains(what) && e.contains("refusing to start"),
            "{line}: {e}"
        );
    }
    for line in [
        "sslQuorum=false",
        "quorum.auth.enableSasl=false",
        "enforce.auth.enabled=false",
        "secureClientPort=0",
        "ssl.keyStore.location=/etc/zk/keystore.jks",
        "authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider",
        "ssl.authProvider=x509",
    ] {
        f.parse(&format!("dataDir={{dir}}\nclientPort=2181\n{line}\n"))
            .unwrap_or_else(|e| panic!("{line}: {e}"));
    }
}

/// TLS turned on without its keystore stops start-up at the line that turned it on,
/// naming the missing key.
#[test]
fn tls_without_a_keystore_refuses_to_start() {
    let f = Fixture::new();
    for (line, key) in [
        ("secureClientPort=2281", "ssl.keyStore.location"),
        ("sslQuorum=true", "ssl.quorum.keyStore.location"),
        ("zookeeper.sslQuorum=true", "ssl.quorum.keyStore.location"),
    ] {
        let e = f
            .parse(&format!("dataDir={{dir}}\nclientPort=2181\n{line}\n"))
            .expect_err(line)
            .to_string();
        assert!(
            e.starts_with("zoo.cfg:3: ") && e.contains(key) && e.contains("is not set"),
            "{line}: {e}"
        );
    }
    // A missing file is reported at its own line.
    let e = f
        .parse(
            "dataDir={dir}\nclientPort=2181\nsecureClientPort=2281\n\
             ssl.keyStore.location=/nonexistent/k.p12\nssl.clientAuth=none\n",
        )
        .expect_err("missing keystore")
        .to_string();
    assert!(
        e.starts_with("zoo.cfg:4: ssl.keyStore.location: cannot read /nonexistent/k.p12"),
        "{e}"
    );
}

#[test]
fn conf_standalone_matches_zookeeper_layout() {
    let f = Fixture::new();
    f.myid("7"); // ignored by conf: standalone ZooKeeper reports serverId=0
    let c = f
        .parse("tickTime=2000\ndataDir={dir}\nclientPort=2181\n")
        .unwrap();
    let dir = f.path().display();
    assert_eq!(
        c.conf_lines_with_sizes(10, 20),
        vec![
            "clientPort=2181".to_string(),
            "secureClientPort=-1".into(),
            format!("dataDir={dir}/version-2"),
            "dataDirSize=10".into(),
            format!("dataLogDir={dir}/version-2"),
            "dataLogSize=20".into(),
            "tickTime=2000".into(),
            "maxClientCnxns=60".into(),
            "minSessionTimeout=4000".into(),
            "maxSessionTimeout=40000".into(),
            "clientPortListenBacklog=-1".into(),
            "serverId=0".into(),
        ]
    );
    // to_conf_lines measures the directories itself.
    let lines = c.to_conf_lines();
    assert_eq!(lines[3], "dataDirSize=1"); // the one-byte myid file
}

#[test]
fn conf_ensemble_adds_quorum_lines_and_membership() {
    let f = Fixture::new();
    f.myid("2");
    let c = f.parse(KAFKA_ENSEMBLE).unwrap();
    let lines = c.conf_lines_with_sizes(0, 0);
    let tail: Vec<&str> = lines[11..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        vec![
            "serverId=2",
            "initLimit=10",
            "syncLimit=5",
            "electionAlg=3",
            "electionPort=3888",
            "quorumPort=2888",
            "peerType=0",
            "membership: ",
            "server.1=zk1.example.com:2888:3888:participant",
            "server.2=zk2.example.com:2888:3888:participant",
            "server.3=zk3.example.com:2888:3888:participant",
            "version=0",
        ]
    );
}

#[test]
fn continuation_lines_and_colon_separator_in_zoo_cfg() {
    let f = Fixture::new();
    let c = f
        .parse("dataDir : {dir}\nclientPort 2181\n4lw.commands.whitelist=mntr, \\\n  ruok\n")
        .unwrap();
    assert_eq!(
        c.four_letter_whitelist,
        Whitelist::Only(vec!["mntr".into(), "ruok".into()])
    );
}

#[test]
fn the_shipped_example_parses() {
    let f = Fixture::new();
    f.myid("1\n");
    let text = include_str!("../../zoo.cfg.example").replace("/var/lib/zookeeper", "{dir}");
    let c = f.parse(&text).unwrap();
    assert_eq!(c.servers.len(), 3);
    assert_eq!(c.my_id, Some(1));
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.autopurge_purge_interval_hours, 24);
    assert!(c.four_letter_whitelist.allows("mntr"));
    assert!(c.extra.is_empty(), "{:?}", c.extra);
    // With the commented-out settings switched on, it still parses.
    let enabled: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains('=') && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("dynamicConfigFile=", "#dynamicConfigFile=")
        .replace("{dir}-log", "{dir}")
        .replace("/etc/keeperd/quorum.secret", "{dir}/quorum.secret");
    std::fs::write(f.path().join("quorum.secret"), "a secret of some length\n").unwrap();
    let c = f.parse(&enabled).unwrap();
    assert!(c.quorum_secret_file.is_some());
    assert_eq!(c.servers.len(), 4);
    assert!(c.super_digest.is_some());
    assert_eq!(c.jute_maxbuffer, 0xfffff);
}

const JAAS: &str = r#"Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super-pw"
    user_kafka="kafka-pw";
};
Client {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="kafka" password="kafka-pw";
};
"#;

const SASL_PROVIDER: &str =
    "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

fn jvm(flags: &str) -> jaas::JvmProperties {
    jaas::JvmProperties(jaas::parse_flags("SERVER_JVMFLAGS", flags))
}

/// Kafka's ZooKeeper SASL setup: the JAAS file from SERVER_JVMFLAGS (or java.env), the
/// provider and superUser from zoo.cfg, enforcement by either of ZooKeeper's keys.
#[test]
fn client_sasl_from_jaas_file() {
    let f = Fixture::new();
    let jaas = f.write("jaas.conf", JAAS);
    let flags = jvm(&format!(
        "-Xmx1g -Djava.security.auth.login.config={} -Dzookeeper.superUser=kafka",
        jaas.display()
    ));
    let base = "dataDir={dir}\nclientPort=2181\n";
    let parse = |extra: &str, flags: &jaas::JvmProperties| {
        let text = format!("{base}{extra}").replace("{dir}", f.path().to_str().unwrap());
        Config::parse_str_with(&text, f.path(), flags)
    };
    let c = parse(&format!("{SASL_PROVIDER}\n"), &flags).unwrap();
    let a = &c.client_auth;
    assert!(a.sasl_provider);
    assert_eq!(
        a.sasl_users
            .as_ref()
            .unwrap()
            .0
            .get("kafka")
            .map(String::as_str),
        Some("kafka-pw")
    );
    assert_eq!(a.jaas, Some((jaas.clone(), "Server".to_string())));
    assert_eq!(a.super_users, vec!["kafka".to_string()]);
    assert!(a.enforce_schemes.is_empty());
    assert!(
        !format!("{a:?}").contains("kafka-pw"),
        "Debug shows passwords"
    );

    // The same through keeperd's own key, relative to zoo.cfg's directory; zoo.cfg keys
    // override JVM options.
    let c = parse(
        &format!(
            "{SASL_PROVIDER}\nkeeperd.jaasConfigFile=jaas.conf\nzookeeper.superUser=admin\n\
             sessionRequireClientSASLAuth=true\n"
        ),
        &flags,
    )
    .unwrap();
    assert_eq!(c.client_auth.jaas.as_ref().unwrap().0, jaas);
    assert_eq!(c.client_auth.super_users, vec!["admin".to_string()]);
    assert_eq!(c.client_auth.enforce_schemes, vec!["sasl".to_string()]);
    assert!(c.client_auth.sasl_required());

    for (extra, schemes) in [
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n",
            vec!["sasl"],
        ),
        (
            "enforce.auth.enabled=TRUE\nenforce.auth.schemes= digest , sasl\n",
            vec!["digest", "sasl"],
        ),
        ("requireClientAuthScheme=sasl\n", vec!["sasl"]),
        (
            "enforce.auth.enabled=false\nenforce.auth.schemes=sasl\n",
            vec![],
        ),
        (
            "enforce.auth.enabled=yes\nenforce.auth.schemes=sasl\n",
            vec![],
        ),
    ] {
        let c = parse(&format!("{SASL_PROVIDER}\n{extra}"), &flags).unwrap();
        assert_eq!(c.client_auth.enforce_schemes, schemes, "{extra}");
    }
    // Digest enforcement needs no SASL at all.
    let c = parse(
        "enforce.auth.enabled=true\nenforce.auth.schemes=digest\n",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(c.client_auth.enforce_schemes, vec!["digest".to_string()]);
    // A JAAS Server section alone: SASL logins work, sasl: ACLs do not (as in ZooKeeper).
    let c = parse("", &flags).unwrap();
    assert!(c.client_auth.sasl_users.is_some() && !c.client_auth.sasl_provider);
}

#[test]
fn client_sasl_misconfigurations_stop_start_up() {
    let f = Fixture::new();
    let jaas = f.write("jaas.conf", JAAS);
    let client_only = f.write(
        "client.conf",
        "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"u\" password=\"p\"; };",
    );
    let kerberos = f.write(
        "krb.conf",
        "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true; };",
    );
    let broken = f.write("broken.conf", "Server {\n  x required user_a=\"b\"\n");
    let flag = |p: &Path| {
        jvm(&format!(
            "-Djava.security.auth.login.config={}",
            p.display()
        ))
    };
    let none = jaas::JvmProperties::default();
    let missing = flag(&f.path().join("nope.conf"));
    let base = "dataDir={dir}\nclientPort=2181\n";
    let err = |extra: &str, flags: &jaas::JvmProperties| {
        let text = format!("{base}{extra}").replace("{dir}", f.path().to_str().unwrap());
        Config::parse_str_with(&text, f.path(), flags)
            .expect_err(extra)
            .to_string()
    };
    let provider = format!("{SASL_PROVIDER}\n");
    for (extra, flags, want) in [
        (
            provider.as_str(),
            &none,
            "zoo.cfg:3: authProvider.1: SASL needs a JAAS file",
        ),
        (
            provider.as_str(),
            &missing,
            "SERVER_JVMFLAGS: -Djava.security.auth.login.config: cannot read the JAAS file",
        ),
        ("", &missing, "cannot read the JAAS file"),
        (
            "",
            &flag(&broken),
            "not a valid JAAS file: line 2: expected an option or ';' in x, found the end",
        ),
        (
            provider.as_str(),
            &flag(&client_only),
            "to have a \"Server\" section",
        ),
        (
            "",
            &flag(&kerberos),
            "Krb5LoginModule: keeperd serves SASL DIGEST-MD5",
        ),
        (
            "sessionRequireClientSASLAuth=true\n",
            &flag(&jaas),
            "\"sasl\" is not available (add authProvider",
        ),
        (
            "enforce.auth.enabled=true\n",
            &flag(&jaas),
            "enforce.auth.enabled: is true, so enforce.auth.schemes must be configured",
        ),
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=x509\n",
            &none,
            "zoo.cfg:4: enforce.auth.schemes: authentication scheme \"x509\" is not available",
        ),
        (
            "enforce.auth.enabled=true\nenforce.auth.schemes=,digest\n",
            &none,
            "scheme \"\" is not available",
        ),
        (
            "requireClientAuthScheme=digest\n",
            &none,
            "knows requireClientAuthScheme=sasl only",
        ),
        (
            &format!("{provider}sasl.serverconfig=ZkServer\n"),
            &flag(&jaas),
            "to have a \"ZkServer\" section",
        ),
    ] {
        let e = err(extra, flags);
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    // No Server section and SASL not asked for: a warning, no SASL server (as ZooKeeper).
    let text = base.replace("{dir}", f.path().to_str().unwrap());
    let c = Config::parse_str_with(&text, f.path(), &flag(&client_only)).unwrap();
    assert!(c.client_auth.sasl_users.is_none());
}

#[test]
fn admin_and_metrics_keys() {
    let f = Fixture::new();
    let c = f.parse("dataDir={dir}\nclientPort=2181\n").unwrap();
    assert!(c.admin_enable_server);
    assert_eq!(
        (
            c.admin_server_address.as_str(),
            c.admin_server_port,
            c.admin_command_url.as_str(),
            c.admin_idle_timeout_ms
        ),
        ("0.0.0.0", 8080, "/commands", 30000)
    );
    assert!(!c.prometheus());
    assert_eq!(
        (c.metrics_http_host.as_str(), c.metrics_http_port),
        ("0.0.0.0", 7000)
    );
    let c = f
        .parse(
            "dataDir={dir}\nclientPort=2181\nzookeeper.admin.serverAddress=127.0.0.1\n\
             admin.commandURL=/zk/\nadmin.idleTimeout=5000\nmetricsProvider.httpHost=localhost\n\
             keeperd.prometheus.enabled=true\nmetricsProvider.className=com.example.Other\n",
        )
        .unwrap();
    assert_eq!(c.admin_server_address, "127.0.0.1");
    assert_eq!(c.admin_command_url, "/zk");
    assert_eq!(c.admin_idle_timeout_ms, 5000);
    assert_eq!(c.metrics_http_host, "localhost");
    assert!(
        c.prometheus(),
        "the keeperd key turns it on whatever the class"
    );
}
