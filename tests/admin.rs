//! The AdminServer and /metrics over HTTP, on ephemeral ports: every command's JSON agrees
//! with the four-letter word that prints the same figures; `/commands` lists them; the 4lw
//! whitelist does not apply to HTTP (as in ZooKeeper 3.8, whose AdminServer has neither a
//! whitelist nor authentication); bad HTTP gets an HTTP error and never disturbs the client
//! port; the probes follow the server's ability to serve; /metrics parses as Prometheus
//! text and agrees with mntr.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use keeperd::config::{Config, Whitelist};
use serde_json::Value;
use support::*;
use zookeeper_client as zk;

fn admin_config() -> Config {
    Config {
        admin_enable_server: true,
        admin_server_address: "127.0.0.1".into(),
        admin_server_port: 0,
        prometheus_enabled: true,
        metrics_http_host: "127.0.0.1".into(),
        metrics_http_port: 0,
        ..test_config()
    }
}

fn admin_addr(srv: &TestServer) -> SocketAddr {
    srv.server.http.admin.expect("the AdminServer listens")
}

async fn command(srv: &TestServer, name: &str) -> Value {
    let r = get(admin_addr(srv), &format!("/commands/{name}")).await;
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

async fn word(srv: &TestServer, w: &str) -> String {
    four_letters(srv.local_addr.port(), w)
        .await
        .unwrap_or_else(|| panic!("{w} answered"))
}

/// `Key: value` lines (srvr, stat) or `key=value` lines (conf, envi) as a map.
fn pairs(text: &str, sep: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(sep))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A server with one session that created /a and the ephemeral /a/e and watches both
/// (the watchers are returned: dropping one may remove its watch).
async fn busy_server(config: Config) -> (TestServer, zk::Client, Vec<zk::OneshotWatcher>) {
    let srv = start_with(config).await;
    let c = client(&srv).await;
    c.create("/a", b"hello", &open()).await.unwrap();
    c.create("/a/e", b"x", &ephemeral()).await.unwrap();
    let (_, _, w1) = c.get_and_watch_data("/a").await.unwrap();
    let (_, w2) = c.check_and_watch_stat("/a/e").await.unwrap();
    (srv, c, vec![w1, w2])
}

#[tokio::test]
async fn every_command_agrees_with_its_four_letter_word() {
    bounded(async {
        let (srv, c, _watchers) = busy_server(admin_config()).await;
        let sid = c.session().id().0;

        // monitor / mntr: the same keys and, for the figures that hold still, values. The
        // word's own connection is counted by mntr, as in ZooKeeper.
        let json = command(&srv, "monitor").await;
        let text = mntr(srv.local_addr.port()).await;
        let json_keys: Vec<String> = json
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !matches!(k.as_str(), "command" | "error"))
            .map(|k| format!("zk_{k}"))
            .collect();
        let mut text_keys: Vec<String> = text.keys().cloned().collect();
        text_keys.sort();
        assert_eq!(json_keys, text_keys);
        for key in [
            "version",
            "server_state",
            "znode_count",
            "watch_count",
            "ephemerals_count",
            "global_sessions",
            "approximate_data_size",
            "outstanding_requests",
            "max_file_descriptor_count",
        ] {
            let j = match &json[key] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            assert_eq!(j, text[&format!("zk_{key}")], "{key}");
        }
        let alive = |v: &str| v.parse::<u64>().unwrap();
        assert_eq!(
            json["num_alive_connections"].as_u64().unwrap() + 1,
            alive(&text["zk_num_alive_connections"])
        );

        // server_stats / srvr, stats / stat.
        let srvr = pairs(&word(&srv, "srvr").await, ":");
        for name in ["server_stats", "srvr", "stats", "stat"] {
            let j = command(&srv, name).await;
            assert_eq!(j["version"], srvr["Zookeeper version"].as_str());
            assert_eq!(j["node_count"].to_string(), srvr["Node count"]);
            assert_eq!(
                format!(
                    "0x{:x}",
                    j["server_stats"]["last_processed_zxid"].as_i64().unwrap()
                ),
                srvr["Zxid"]
            );
            assert_eq!(j["server_stats"]["server_state"], srvr["Mode"].as_str());
            assert_eq!(j["read_only"], false);
        }
        let stats = command(&srv, "stats").await;
        let stat = word(&srv, "stat").await;
        for conn in stats["connections"].as_array().unwrap() {
            let remote = conn["remote_socket_address"].as_str().unwrap();
            assert!(
                stat.contains(&format!(" /{remote}[1]")),
                "{remote} in {stat}"
            );
        }
        assert_eq!(stats["connections"].as_array().unwrap().len(), 1);

        // connections / cons.
        let cons_json = command(&srv, "cons").await;
        let cons = word(&srv, "cons").await;
        let conns = cons_json["connections"].as_array().unwrap();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0]["session_id"], sid);
        assert!(cons.contains(&format!("sid=0x{sid:x}")), "{cons}");
        assert_eq!(cons_json["secure_connections"], serde_json::json!([]));

        // configuration / conf.
        let conf = pairs(&word(&srv, "conf").await, "=");
        let j = command(&srv, "configuration").await;
        for (json_key, conf_key) in [
            ("client_port", "clientPort"),
            ("tick_time", "tickTime"),
            ("max_client_cnxns", "maxClientCnxns"),
            ("min_session_timeout", "minSessionTimeout"),
            ("max_session_timeout", "maxSessionTimeout"),
            ("server_id", "serverId"),
            ("client_port_listen_backlog", "clientPortListenBacklog"),
        ] {
            assert_eq!(j[json_key].to_string(), conf[conf_key], "{json_key}");
        }
        assert_eq!(j["data_dir"], conf["dataDir"].as_str());
        assert_eq!(j["data_log_dir"], conf["dataLogDir"].as_str());

        // environment / envi: every line, same value.
        let envi = pairs(&word(&srv, "envi").await, "=");
        let j = command(&srv, "envi").await;
        assert_eq!(j.as_object().unwrap().len(), envi.len() + 2);
        for (k, v) in &envi {
            assert_eq!(j[k], v.as_str(), "{k}");
        }

        // The watch words.
        let wchs = word(&srv, "wchs").await;
        let j = command(&srv, "wchs").await;
        assert_eq!(
            wchs,
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                j["num_connections"], j["num_paths"], j["num_total_watches"]
            )
        );
        let j = command(&srv, "wchc").await;
        let mut expected = String::new();
        for (session, paths) in j["session_id_to_watched_paths"].as_object().unwrap() {
            expected.push_str(&format!("0x{:x}\n", session.parse::<i64>().unwrap()));
            for p in paths.as_array().unwrap() {
                expected.push_str(&format!("\t{}\n", p.as_str().unwrap()));
            }
        }
        assert_eq!(word(&srv, "wchc").await, format!("{expected}\n"));
        assert!(expected.contains("\t/a\n") && expected.contains("\t/a/e\n"));
        let j = command(&srv, "wchp").await;
        let by_path = j["path_to_session_ids"].as_object().unwrap();
        assert_eq!(by_path["/a"], serde_json::json!([sid]));
        let wchp = word(&srv, "wchp").await;
        for path in by_path.keys() {
            assert!(wchp.contains(&format!("{path}\n\t0x{sid:x}\n")), "{wchp}");
        }

        // dump: the ephemerals.
        let j = command(&srv, "dump").await;
        assert_eq!(
            j["session_id_to_ephemeral_paths"][sid.to_string()],
            serde_json::json!(["/a/e"])
        );
        assert!(word(&srv, "dump")
            .await
            .contains(&format!("0x{sid:x}:\n\t/a/e\n")));

        // dirs, hash, isro, ruok, gtmk.
        let dirs = pairs(&word(&srv, "dirs").await, ":");
        let j = command(&srv, "dirs").await;
        assert!(j["datadir_size"].as_u64().unwrap() > 0);
        assert_eq!(dirs.len(), 2);
        let hash = word(&srv, "hash").await;
        let j = command(&srv, "hash").await;
        let d = &j["digests"][0];
        assert_eq!(
            hash,
            format!("{:x}: {}\n", d["zxid"].as_i64().unwrap(), d["digest"])
        );
        assert_eq!(word(&srv, "isro").await, "rw");
        assert_eq!(command(&srv, "isro").await["read_only"], false);
        assert_eq!(word(&srv, "ruok").await, "imok");
        let ruok = command(&srv, "ruok").await;
        assert_eq!(ruok, serde_json::json!({"command": "ruok", "error": null}));
        assert_eq!(
            command(&srv, "gtmk").await["tracemask"].to_string(),
            word(&srv, "gtmk").await
        );

        // initial_configuration, last_snapshot, leader and the ensemble views standalone.
        assert_eq!(
            command(&srv, "leader").await["error"],
            "server is not initialized"
        );
        assert_eq!(
            command(&srv, "voting_view").await["current_config"],
            serde_json::json!({})
        );
        assert_eq!(command(&srv, "zabstate").await["zabstate"], "");
        assert!(command(&srv, "lsnp").await["zxid"].is_string());

        // The resets act as srst / crst do.
        let _ = c.get_data("/a").await.unwrap();
        assert_ne!(srvr_received(&word(&srv, "srvr").await), 0);
        command(&srv, "stat_reset").await;
        assert!(srvr_received(&word(&srv, "srvr").await) <= 1);
        command(&srv, "crst").await;
        let j = command(&srv, "cons").await;
        assert_eq!(j["connections"][0]["packets_received"], 0);
        srv.shutdown().await;
    })
    .await;
}

fn srvr_received(srvr: &str) -> u64 {
    pairs(srvr, ":")["Received"].parse().unwrap()
}

#[tokio::test]
async fn commands_listing_and_http_errors() {
    bounded(async {
        let (srv, c, _watchers) = busy_server(admin_config()).await;
        let addr = admin_addr(&srv);
        let listing = get(addr, "/commands").await;
        assert_eq!(listing.status, 200);
        assert_eq!(listing.body, get(addr, "/commands/").await.body);
        assert_eq!(listing.body.matches("<a href=").count(), 26);
        for name in [
            "monitor",
            "server_stats",
            "watches_by_path",
            "zabstate",
            "voting_view",
        ] {
            assert!(
                listing
                    .body
                    .contains(&format!("<a href=\"/commands/{name}\">{name}</a>")),
                "{name}"
            );
        }
        // Unknown command: 200 with ZooKeeper's error, under the name asked.
        let j = command(&srv, "nosuch").await;
        assert_eq!(j["command"], "nosuch");
        assert_eq!(j["error"], "Unknown command: nosuch");
        // set_trace_mask's argument.
        let j = get(addr, "/commands/stmk?traceMask=12").await.json();
        assert_eq!(
            (j["tracemask"].as_i64(), &j["error"]),
            (Some(12), &Value::Null)
        );
        assert_eq!(
            command(&srv, "stmk").await["error"],
            "setTraceMask requires long traceMask argument"
        );
        // Methods: POST is not allowed, TRACE forbidden (as Jetty's AdminServer).
        assert_eq!(
            http(addr, "POST", "/commands/ruok").await.unwrap().status,
            405
        );
        assert_eq!(
            http(addr, "TRACE", "/commands/ruok").await.unwrap().status,
            403
        );
        assert_eq!(get(addr, "/nope").await.status, 404);
        assert_eq!(get(addr, "/commandsx").await.status, 404);
        // Not HTTP at all, and a head too large: an HTTP error, then the connection closes.
        let r = http_raw(addr, b"GARBAGE\r\n\r\n").await.unwrap();
        assert_eq!(r.status, 400);
        let huge = format!(
            "GET /commands/ruok HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(200_000)
        );
        // (An error reading the answer means it closed first: also refused.)
        if let Ok(r) = http_raw(addr, huge.as_bytes()).await {
            assert!(r.status == 431 || r.status == 400, "{}", r.status);
        }
        // The client port never noticed.
        assert_eq!(c.get_data("/a").await.unwrap().0, b"hello");
        assert_eq!(command(&srv, "ruok").await["error"], Value::Null);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_four_letter_whitelist_does_not_apply_to_http_as_in_zookeeper() {
    bounded(async {
        // Captured from ZooKeeper 3.8.0 with 4lw.commands.whitelist=srvr,mntr,ruok: the
        // word `stat` is refused, /commands/stats answers.
        let config = Config {
            four_letter_whitelist: Whitelist::Only(vec![
                "srvr".into(),
                "mntr".into(),
                "ruok".into(),
            ]),
            ..admin_config()
        };
        let (srv, _c, _watchers) = busy_server(config).await;
        assert_eq!(
            word(&srv, "stat").await,
            "stat is not executed because it is not in the whitelist.\n"
        );
        let j = command(&srv, "stats").await;
        assert_eq!(j["error"], Value::Null);
        assert_eq!(j["connections"].as_array().unwrap().len(), 1);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn idle_connections_neither_block_the_client_port_nor_the_admin_port_for_long() {
    bounded(async {
        let config = Config {
            admin_idle_timeout_ms: 400,
            ..admin_config()
        };
        let (srv, c, _watchers) = busy_server(config).await;
        let addr = admin_addr(&srv);
        // More silent connections than the AdminServer serves at once.
        let mut silent = vec![];
        for _ in 0..48 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let t0 = std::time::Instant::now();
        assert_eq!(c.get_data("/a").await.unwrap().0, b"hello");
        assert!(t0.elapsed() < Duration::from_secs(1), "client port slowed");
        // Once the idle ones are cut (idleTimeout), the AdminServer answers again.
        eventually(
            "the AdminServer answers again",
            Duration::from_secs(10),
            || async {
                matches!(http(addr, "GET", "/commands/ruok").await, Ok(r) if r.status == 200)
            },
        )
        .await;
        drop(silent);
        srv.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn probes_follow_the_ability_to_serve() {
    bounded(async {
        // One member of a two-server ensemble alone cannot serve: live but not ready; once
        // the other joins, ready.
        let mut cluster = Cluster::prepare(2, "");
        let a1 = free_port();
        cluster.extra = format!(
            "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={a1}\n"
        );
        cluster.write_members_cfg(1, &[1, 2]);
        cluster.extra = String::new();
        cluster.write_members_cfg(2, &[1, 2]);
        cluster.node(1).start();
        let addr: SocketAddr = ([127, 0, 0, 1], a1).into();
        eventually("the AdminServer is up", Duration::from_secs(10), || async {
            matches!(http(addr, "GET", "/livez").await, Ok(r) if r.status == 200)
        })
        .await;
        let ready = get(addr, "/readyz").await;
        assert_eq!(ready.status, 503, "{}", ready.body);
        // Commands that need a running server say so; the others answer.
        let j = get(addr, "/commands/srvr").await.json();
        assert_eq!(j["error"], keeperd::admin::ZK_NOT_SERVING);
        assert_eq!(
            get(addr, "/commands/ruok").await.json()["error"],
            keeperd::admin::ZK_NOT_SERVING
        );
        assert_eq!(
            get(addr, "/commands/mntr").await.json()["error"],
            Value::Null
        );
        assert_eq!(
            get(addr, "/commands/zabstate").await.json()["zabstate"],
            "election"
        );

        cluster.node(2).start();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !matches!(http(addr, "GET", "/readyz").await, Ok(r) if r.status == 200) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not ready once a quorum formed:\n{}",
                cluster.dump_logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let j = get(addr, "/commands/leader").await.json();
        assert!(matches!(j["leader_id"].as_i64(), Some(1 | 2)), "{j}");
        let view = get(addr, "/commands/voting_view").await.json();
        assert_eq!(view["current_config"].as_object().unwrap().len(), 2);
        let z = get(addr, "/commands/zabstate").await.json();
        assert_eq!(
            (z["myid"].as_u64(), &z["zabstate"]),
            (Some(1), &Value::from("broadcast"))
        );
    })
    .await;
}

/// One parsed metric family of the Prometheus text format.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    /// (sample name, labels, value)
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn metric_name_ok(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses the text exposition format (0.0.4) strictly: HELP/TYPE once per family and
/// before its samples, valid names, labels `{k="v",...}`, float values, summaries' samples
/// named NAME{quantile=..}, NAME_count, NAME_sum.
fn parse_prometheus(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (what, name, arg) = (parts.next().unwrap(), parts.next().unwrap(), parts.next());
            assert!(metric_name_ok(name), "bad name in {line:?}");
            let f = families.entry(name.to_string()).or_default();
            assert!(f.samples.is_empty(), "{what} after samples: {line:?}");
            match what {
                "HELP" => {
                    assert!(!f.help, "second HELP: {line:?}");
                    f.help = true;
                }
                "TYPE" => {
                    assert!(f.kind.is_empty(), "second TYPE: {line:?}");
                    let kind = arg.unwrap();
                    assert!(
                        ["gauge", "counter", "summary", "histogram", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    f.kind = kind.to_string();
                }
                _ => panic!("unknown comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("labels close");
                let labels: BTreeMap<String, String> = l
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label k=v");
                        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                        (k.to_string(), v.expect("quoted label value").to_string())
                    })
                    .collect();
                (n, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(metric_name_ok(name), "bad sample name {line:?}");
        let family = [
            name,
            name.trim_end_matches("_count"),
            name.trim_end_matches("_sum"),
        ]
        .into_iter()
        .find(|n| families.get(*n).is_some_and(|f| !f.kind.is_empty()))
        .unwrap_or_else(|| panic!("sample before its TYPE: {line:?}"))
        .to_string();
        let f = families.get_mut(&family).unwrap();
        if f.kind == "summary" && name == family {
            assert!(labels.contains_key("quantile"), "{line:?}");
        } else {
            assert!(name == family || f.kind == "summary", "{line:?}");
        }
        f.samples.push((name.to_string(), labels, value));
    }
    families
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_agree_with_mntr() {
    bounded(async {
        let (srv, c, _watchers) = busy_server(admin_config()).await;
        for _ in 0..20 {
            let _ = c.get_data("/a").await.unwrap();
        }
        let addr = srv.server.http.metrics.expect("/metrics listens");
        let r = get(addr, "/metrics").await;
        assert_eq!(r.status, 200);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let families = parse_prometheus(&r.body);
        let mntr = mntr(srv.local_addr.port()).await;
        let value = |name: &str| -> f64 {
            let f = families.get(name).unwrap_or_else(|| panic!("no {name}"));
            f.samples[0].2
        };
        // ZooKeeper's gauges under ZooKeeper's names, with mntr's values.
        for name in [
            "znode_count",
            "watch_count",
            "ephemerals_count",
            "global_sessions",
            "approximate_data_size",
            "outstanding_requests",
            "max_file_descriptor_count",
        ] {
            assert_eq!(families[name].kind, "gauge", "{name}");
            let m: f64 = mntr[&format!("zk_{name}")].parse().unwrap();
            assert_eq!(value(name), m, "{name}");
        }
        let m: f64 = mntr["zk_num_alive_connections"].parse().unwrap();
        assert_eq!(value("num_alive_connections") + 1.0, m);
        // Every numeric mntr key of ZooKeeper's is a gauge; keeperd's own are under keeperd_.
        for (key, v) in &mntr {
            let name = key.strip_prefix("zk_").unwrap();
            if v.parse::<f64>().is_err() {
                continue; // version, server_state
            }
            assert!(
                families.contains_key(name)
                    || families.contains_key(&format!("keeperd_{name}"))
                    || [
                        "snap_count",
                        "last_snapshot_index",
                        "last_snapshot_size",
                        "log_first_index",
                        "log_last_index",
                        "fsync_count"
                    ]
                    .contains(&name),
                "mntr {key} missing from /metrics"
            );
        }
        // Summaries: ZooKeeper's quantiles per detail level.
        for (name, quantiles) in [
            ("readlatency", vec!["0.5", "0.9", "0.99"]),
            ("updatelatency", vec!["0.5", "0.9", "0.99"]),
            ("fsynctime", vec!["0.5"]),
            ("snapshottime", vec!["0.5"]),
        ] {
            let f = &families[name];
            assert_eq!(f.kind, "summary");
            let qs: Vec<&str> = f
                .samples
                .iter()
                .filter_map(|(_, l, _)| l.get("quantile").map(String::as_str))
                .collect();
            assert_eq!(qs, quantiles, "{name}");
            assert!(f
                .samples
                .iter()
                .any(|(n, _, _)| *n == format!("{name}_count")));
            assert!(f
                .samples
                .iter()
                .any(|(n, _, _)| *n == format!("{name}_sum")));
        }
        let count = |family: &str| -> f64 {
            families[family]
                .samples
                .iter()
                .find(|(n, _, _)| *n == format!("{family}_count"))
                .unwrap()
                .2
        };
        assert!(count("readlatency") >= 20.0);
        assert!(count("updatelatency") >= 2.0);
        assert!(count("fsynctime") >= 2.0);
        // keeperd's figures.
        assert!(value("keeperd_raft_term") >= 1.0);
        assert_eq!(value("keeperd_raft_is_leader"), 1.0);
        assert_eq!(families["keeperd_fsyncs_total"].kind, "counter");
        assert!(value("keeperd_raft_applied_index") >= 3.0);
        srv.shutdown().await;
    })
    .await;
}
