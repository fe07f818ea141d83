//! Fixtures: output of ZooKeeper 3.8.0 (Debian 3.8.0, standalone, `4lw.commands.whitelist=*`)
//! captured with `echo -n WORD | nc 127.0.0.1 21810` after one zkCli session ran
//! `create /a x; create /a/b y; create -e /eph e; create /c; get -w /a; ls -w /a;
//! stat -w /nope; addWatch /c; addWatch -m PERSISTENT_RECURSIVE /a`. Each test builds a
//! snapshot holding the values that server reported (including its version string) and
//! expects the same bytes. `fixtures/envi.txt` is the capture without the JVM-only lines.

use std::net::SocketAddr;

use super::*;
use crate::watch::WatchSummary;

const REF_VERSION: &str = "3.8.0-${mvngit.commit.id}, built on 2024-12-29 17:54 UTC";
const SID: i64 = 0x10000061ec70000;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn base() -> ServerSnapshot {
    ServerSnapshot {
        serving: true,
        version: REF_VERSION.to_string(),
        mode: ServerMode::Standalone,
        zxid: 5,
        node_count: 9,
        trace_mask: 306,
        ..ServerSnapshot::default()
    }
}

fn four_letter_conn(port: u16, received: u64) -> ConnectionInfo {
    ConnectionInfo {
        remote: addr(&format!("127.0.0.1:{port}")),
        interest_ops: 0,
        queued: 0,
        received,
        sent: 0,
        session: None,
    }
}

fn client_conn(received: u64, sent: u64) -> ConnectionInfo {
    ConnectionInfo {
        remote: addr("127.0.0.1:42470"),
        interest_ops: 1,
        queued: 0,
        received,
        sent,
        session: Some(SessionStats {
            session_id: SID,
            last_op: "PING".into(),
            established_ms: 1795443575342,
            timeout_ms: 30000,
            last_cxid: 9,
            last_zxid: 5,
            last_response_ms: 445779,
            last_latency: 0,
            min_latency: 0,
            avg_latency: 3,
            max_latency: 19,
        }),
    }
}

#[test]
fn srvr_matches_reference() {
    let s = ServerSnapshot {
        latency_min: 0,
        latency_avg: 2.923_076_923,
        latency_max: 19,
        packets_received: 31,
        packets_sent: 31,
        connections: vec![four_letter_conn(1, 1), client_conn(13, 13)],
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Srvr, &s),
        include_str!("fixtures/srvr.txt")
    );
}

#[test]
fn stat_matches_reference() {
    let s = ServerSnapshot {
        latency_avg: 2.9231,
        latency_max: 19,
        packets_received: 29,
        packets_sent: 29,
        connections: vec![four_letter_conn(51774, 1), client_conn(13, 13)],
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Stat, &s),
        include_str!("fixtures/stat.txt")
    );
}

#[test]
fn cons_matches_reference() {
    let s = ServerSnapshot {
        connections: vec![four_letter_conn(56824, 1), client_conn(11, 11)],
        ..base()
    };
    let expected = " /127.0.0.1:56824[0](queued=0,recved=1,sent=0)\n \
/127.0.0.1:42470[1](queued=0,recved=11,sent=11,sid=0x10000061ec70000,lop=PING,\
est=1795443575342,to=30000,lcxid=0x9,lzxid=0x5,lresp=445779,llat=0,minlat=0,avglat=3,\
maxlat=19)\n\n";
    assert_eq!(render(FourLetterWord::Cons, &s), expected);
}

#[test]
fn mntr_standalone_matches_reference_gauges() {
    let s = ServerSnapshot {
        ephemerals_count: 1,
        connections: vec![four_letter_conn(1, 1), client_conn(1, 1)],
        latency_avg: 3.083_333_33,
        latency_min: 0,
        latency_max: 19,
        outstanding: 0,
        global_sessions: 1,
        last_client_response_size: 16,
        min_client_response_size: 16,
        max_client_response_size: 93,
        packets_sent: 20,
        packets_received: 21,
        watch_count: 5,
        max_file_descriptor_count: Some(20000),
        open_file_descriptor_count: Some(41),
        approximate_data_size: 59,
        uptime_ms: 57787,
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Mntr, &s),
        include_str!("fixtures/mntr_standalone.txt")
    );
}

#[test]
fn mntr_leader_adds_peer_quorum_and_leader_keys_in_bucket_order() {
    let s = ServerSnapshot {
        mode: ServerMode::Leader,
        leader: Some(LeaderStats {
            learners: 2,
            synced_followers: 2,
            synced_non_voting_followers: 0,
            pending_syncs: 0,
            leader_uptime_ms: 1234,
            last_proposal_size: 36,
            min_proposal_size: 36,
            max_proposal_size: 120,
        }),
        quorum: Some(QuorumStats {
            quorum_size: 3,
            peer_state: "leading - broadcast".into(),
            synced_observers: 0,
        }),
        open_file_descriptor_count: Some(1),
        max_file_descriptor_count: Some(2),
        ..base()
    };
    let out = render(FourLetterWord::Mntr, &s);
    let keys: Vec<&str> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        vec![
            "zk_version",
            "zk_server_state",
            "zk_peer_state",
            "zk_ephemerals_count",
            "zk_num_alive_connections",
            "zk_avg_latency",
            "zk_min_proposal_size",
            "zk_outstanding_requests",
            "zk_znode_count",
            "zk_global_sessions",
            "zk_non_mtls_remote_conn_count",
            "zk_last_client_response_size",
            "zk_packets_sent",
            "zk_packets_received",
            "zk_max_proposal_size",
            "zk_max_client_response_size",
            "zk_synced_followers",
            "zk_connection_drop_probability",
            "zk_watch_count",
            "zk_synced_non_voting_followers",
            "zk_synced_observers",
            "zk_auth_failed_count",
            "zk_min_latency",
            "zk_max_file_descriptor_count",
            "zk_approximate_data_size",
            "zk_open_file_descriptor_count",
            "zk_last_proposal_size",
            "zk_pending_syncs",
            "zk_leader_uptime",
            "zk_local_sessions",
            "zk_uptime",
            "zk_max_latency",
            "zk_outstanding_tls_handshake",
            "zk_learners",
            "zk_min_client_response_size",
            "zk_non_mtls_local_conn_count",
            "zk_quorum_size",
        ]
    );
    assert!(out.contains("zk_server_state\tleader\n"));
    assert!(out.contains("zk_peer_state\tleading - broadcast\n"));
    assert!(out.contains("zk_quorum_size\t3\n"));
    assert!(out.contains("zk_min_proposal_size\t36\n"));
    assert!(out.contains("zk_max_proposal_size\t120\n"));
    assert!(out.lines().all(|l| l.split('\t').count() == 2));
}

#[test]
fn mntr_follower_has_quorum_keys_but_no_leader_keys() {
    let s = ServerSnapshot {
        mode: ServerMode::Follower,
        // Leader stats present by mistake must not leak into a follower's output.
        leader: Some(LeaderStats::default()),
        quorum: Some(QuorumStats {
            quorum_size: 3,
            peer_state: "following - broadcast".into(),
            synced_observers: 1,
        }),
        ..base()
    };
    let out = render(FourLetterWord::Mntr, &s);
    for key in [
        "zk_learners",
        "zk_synced_followers",
        "zk_pending_syncs",
        "zk_leader_uptime",
    ] {
        assert!(!out.contains(key), "{key}");
    }
    assert!(out.contains("zk_server_state\tfollower\n"));
    assert!(out.contains("zk_peer_state\tfollowing - broadcast\n"));
    assert!(out.contains("zk_synced_observers\t1\n"));
    assert!(out.ends_with("zk_quorum_size\t3\n"));
    // No fd counts known: lines omitted, like a null gauge.
    assert!(!out.contains("file_descriptor"));
}

#[test]
fn mntr_standalone_ignores_quorum_stats() {
    let s = ServerSnapshot {
        quorum: Some(QuorumStats::default()),
        ..base()
    };
    let out = render(FourLetterWord::Mntr, &s);
    assert!(!out.contains("zk_peer_state"));
    assert!(!out.contains("zk_quorum_size"));
    assert!(!out.contains("zk_synced_observers"));
}

#[test]
fn srvr_leader_prints_proposal_sizes() {
    let s = ServerSnapshot {
        mode: ServerMode::Leader,
        zxid: 0x100000004,
        leader: Some(LeaderStats {
            last_proposal_size: 36,
            min_proposal_size: 36,
            max_proposal_size: 120,
            ..LeaderStats::default()
        }),
        ..base()
    };
    let out = render(FourLetterWord::Srvr, &s);
    assert!(out.contains("Zxid: 0x100000004\nMode: leader\nNode count: 9\n"));
    assert!(out.ends_with("Proposal sizes last/min/max: 36/36/120\n"));
}

#[test]
fn read_only_server() {
    let s = ServerSnapshot {
        read_only: true,
        ..base()
    };
    assert_eq!(render(FourLetterWord::Isro, &s), "ro");
    let out = render(FourLetterWord::Srvr, &s);
    assert!(out.starts_with(&format!(
        "Zookeeper version: {REF_VERSION}\nREAD-ONLY mode; serving only read-only clients\n"
    )));
    assert!(out.contains("Mode: read-only\n"));
}

#[test]
fn watch_words_match_reference() {
    let s = ServerSnapshot {
        watch_summary: WatchSummary {
            connections: 1,
            paths: 3,
            total: 3,
        },
        watches_by_session: vec![(SID, vec!["/a".into(), "/c".into(), "/nope".into()])],
        watches_by_path: vec![
            ("/a".into(), vec![SID]),
            ("/c".into(), vec![SID]),
            ("/nope".into(), vec![SID]),
        ],
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Wchs, &s),
        "1 connections watching 3 paths\nTotal watches:3\n"
    );
    assert_eq!(
        render(FourLetterWord::Wchc, &s),
        "0x10000061ec70000\n\t/a\n\t/c\n\t/nope\n\n"
    );
    assert_eq!(
        render(FourLetterWord::Wchp, &s),
        "/a\n\t0x10000061ec70000\n/c\n\t0x10000061ec70000\n/nope\n\t0x10000061ec70000\n\n"
    );
}

#[test]
fn watch_words_empty() {
    let s = base();
    assert_eq!(
        render(FourLetterWord::Wchs, &s),
        "0 connections watching 0 paths\nTotal watches:0\n"
    );
    assert_eq!(render(FourLetterWord::Wchc, &s), "\n");
    assert_eq!(render(FourLetterWord::Wchp, &s), "\n");
}

#[test]
fn dump_matches_reference() {
    let s = ServerSnapshot {
        session_buckets: vec![
            SessionBucket {
                expire_at_ms: 1795443605000,
                session_ids: vec![],
            },
            SessionBucket {
                expire_at_ms: 1795443615000,
                session_ids: vec![SID],
            },
        ],
        ephemerals: vec![(SID, vec!["/eph".into()])],
        connection_buckets: vec![
            ConnectionBucket {
                expire_at_ms: 1795443589000,
                connections: vec![],
            },
            ConnectionBucket {
                expire_at_ms: 1795443599000,
                connections: vec![(addr("127.0.0.1:56812"), 0)],
            },
            ConnectionBucket {
                expire_at_ms: 1795443609000,
                connections: vec![],
            },
            ConnectionBucket {
                expire_at_ms: 1795443619000,
                connections: vec![(addr("127.0.0.1:42470"), SID)],
            },
        ],
        ..base()
    };
    let expected = "SessionTracker dump:
Session Sets (2)/(1):
0 expire at Mon Nov 23 14:20:05 UTC 2026:
1 expire at Mon Nov 23 14:20:15 UTC 2026:
\t0x10000061ec70000
ephemeral nodes dump:
Sessions with Ephemerals (1):
0x10000061ec70000:
\t/eph
Connections dump:
Connections Sets (4)/(2):
0 expire at Mon Nov 23 14:19:49 UTC 2026:
1 expire at Mon Nov 23 14:19:59 UTC 2026:
\tip: /127.0.0.1:56812 sessionId: 0x0
0 expire at Mon Nov 23 14:20:09 UTC 2026:
1 expire at Mon Nov 23 14:20:19 UTC 2026:
\tip: /127.0.0.1:42470 sessionId: 0x10000061ec70000
";
    assert_eq!(render(FourLetterWord::Dump, &s), expected);
}

#[test]
fn conf_dirs_envi_match_reference() {
    let dir = "/tmp/zkref-watch/data/version-2";
    let s = ServerSnapshot {
        data_dir_size: 67109337,
        log_dir_size: 67109337,
        conf: ConfInfo {
            client_port: 21810,
            secure_client_port: -1,
            data_dir: dir.into(),
            data_dir_size: 67109337,
            data_log_dir: dir.into(),
            data_log_size: 67109337,
            tick_time: 2000,
            max_client_cnxns: 60,
            min_session_timeout: 4000,
            max_session_timeout: 40000,
            client_port_listen_backlog: -1,
            server_id: 0,
            quorum: None,
        },
        env: EnvInfo {
            host_name: "localhost".into(),
            tmp_dir: "/tmp".into(),
            os_name: "Linux".into(),
            os_arch: "amd64".into(),
            os_version: "6.18.44-fc-v657".into(),
            user_name: "root".into(),
            user_home: "/root".into(),
            user_dir: "/tmp/zkref-watch".into(),
            memory_free_mb: Some(376),
            memory_max_mb: Some(6028),
            memory_total_mb: Some(388),
        },
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Conf, &s),
        include_str!("fixtures/conf.txt")
    );
    assert_eq!(
        render(FourLetterWord::Dirs, &s),
        include_str!("fixtures/dirs.txt")
    );
    assert_eq!(
        render(FourLetterWord::Envi, &s),
        include_str!("fixtures/envi.txt")
    );
}

#[test]
fn conf_quorum_appends_membership_verbatim() {
    let mut s = base();
    s.conf.server_id = 2;
    s.conf.quorum = Some(QuorumConf {
        init_limit: 10,
        sync_limit: 5,
        election_alg: 3,
        election_port: "3888".into(),
        quorum_port: "2888".into(),
        peer_type: 0,
        membership: "server.1=10.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
server.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181\nversion=100000000"
            .into(),
    });
    let out = render(FourLetterWord::Conf, &s);
    assert!(out.ends_with(
        "serverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3888\n\
quorumPort=2888\npeerType=0\nmembership: \nserver.1=10.0.0.1:2888:3888:participant;\
0.0.0.0:2181\nserver.2=10.0.0.2:2888:3888:participant;0.0.0.0:2181\nversion=100000000"
    ));
}

#[test]
fn short_answers_match_reference() {
    let s = base();
    assert_eq!(render(FourLetterWord::Ruok, &s), "imok");
    assert_eq!(render(FourLetterWord::Isro, &s), "rw");
    assert_eq!(render(FourLetterWord::Gtmk, &s), "306");
    assert_eq!(render(FourLetterWord::Stmk, &s), "306");
    assert_eq!(render(FourLetterWord::Hash, &s), "");
    assert_eq!(
        render(FourLetterWord::Crst, &s),
        "Connection stats reset.\n"
    );
    assert_eq!(render(FourLetterWord::Srst, &s), "Server stats reset.\n");
}

#[test]
fn hash_lists_digests() {
    let s = ServerSnapshot {
        digests: vec![(0x100000080, 42), (0x100000100, 7)],
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Hash, &s),
        "100000080: 42\n100000100: 7\n"
    );
}

#[test]
fn not_serving() {
    let s = ServerSnapshot {
        serving: false,
        ..base()
    };
    let refused = format!("{ZK_NOT_SERVING}\n");
    for w in FourLetterWord::ALL {
        let out = render(w, &s);
        match w {
            FourLetterWord::Ruok => assert_eq!(out, "imok"),
            FourLetterWord::Gtmk | FourLetterWord::Stmk => assert_eq!(out, "306"),
            FourLetterWord::Envi => assert!(out.starts_with("Environment:\n")),
            FourLetterWord::Isro => assert_eq!(out, "null"),
            FourLetterWord::Hash => assert_eq!(out, ZK_NOT_SERVING),
            _ => assert_eq!(out, refused, "{}", w.name()),
        }
    }
}

#[test]
fn parse_words() {
    for w in FourLetterWord::ALL {
        assert_eq!(FourLetterWord::parse(w.name().as_bytes()), Some(w));
    }
    assert_eq!(
        FourLetterWord::parse(b"stmk\0\0\0\0\0\0\x01\x32"),
        Some(FourLetterWord::Stmk)
    );
    assert_eq!(FourLetterWord::parse(b"MNTR"), None);
    assert_eq!(FourLetterWord::parse(b"mnt"), None);
    assert_eq!(FourLetterWord::parse(b""), None);
    assert_eq!(FourLetterWord::parse(b"\0\0\0\x2c"), None);
    assert_eq!(parse_stmk_mask(b"\0\0\0\0\0\0\x01\x32"), Some(306));
    assert_eq!(parse_stmk_mask(b"\0\0\x01"), None);
}

#[test]
fn whitelist() {
    assert_eq!(
        not_in_whitelist(FourLetterWord::Mntr),
        "mntr is not executed because it is not in the whitelist.\n"
    );
}

#[test]
fn version_string_keeps_zookeeper_major_minor() {
    let v = version_string();
    assert!(v.starts_with("3.8.0-keeperd"), "{v}");
}

#[test]
fn java_formats() {
    assert_eq!(java_double(0.0), "0.0");
    assert_eq!(java_double(2.9231), "2.9231");
    assert_eq!(java_double(3.0), "3.0");
    assert_eq!(java_double(0.001), "0.001");
    assert_eq!(java_double(0.0005), "5.0E-4");
    assert_eq!(java_double(1.25e-4), "1.25E-4");
    assert_eq!(java_double(12345678.0), "1.2345678E7");
    assert_eq!(java_double(1e7), "1.0E7");
    assert_eq!(java_double(f64::NAN), "NaN");
    assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
    assert_eq!(java_date(1795443605000), "Mon Nov 23 14:20:05 UTC 2026");
    assert_eq!(java_date(951782400000), "Tue Feb 29 00:00:00 UTC 2000");
}

#[test]
fn ipv6_remote_addresses_print_like_java() {
    let mut c = four_letter_conn(1, 0);
    c.remote = addr("[::1]:50000");
    let s = ServerSnapshot {
        connections: vec![c.clone()],
        ..base()
    };
    assert!(render(FourLetterWord::Stat, &s).contains(" /[0:0:0:0:0:0:0:1]:50000[0](queued=0"));
    c.remote = addr("[::ffff:10.1.2.3]:7");
    let s = ServerSnapshot {
        connections: vec![c],
        ..base()
    };
    assert!(render(FourLetterWord::Stat, &s).contains(" /10.1.2.3:7[0]"));
}

#[test]
fn cons_skips_session_fields_for_session_zero() {
    let mut c = client_conn(1, 1);
    if let Some(st) = c.session.as_mut() {
        st.session_id = 0;
    }
    let s = ServerSnapshot {
        connections: vec![c],
        ..base()
    };
    assert_eq!(
        render(FourLetterWord::Cons, &s),
        " /127.0.0.1:42470[1](queued=0,recved=1,sent=1)\n\n"
    );
}
