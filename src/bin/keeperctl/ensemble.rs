//! keeperctl's ensemble commands: `config` (the data of /zookeeper/config) and `reconfig`,
//! with zkCli's reconfig options (`-file`, `-members`, `-add`, `-remove`, `-v`), its reading
//! of a dynamic config file, and its wording for a refused reconfig.

use std::io::Write;

use zookeeper_client::{Client, EnsembleUpdate};

use super::{explain, format_stat, print, wait_for, Failure, Parsed};

const CONFIG_NODE: &str = "/zookeeper/config";

/// zkCli's usage line for reconfig.
const RECONFIG_USAGE: &str = "reconfig [-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]";

/// `config [-s] [-w]`.
pub(super) async fn config(client: &Client, p: &Parsed) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let (data, stat, watcher) = if p.has('w') {
        let (d, s, w) = client
            .get_and_watch_config()
            .await
            .map_err(|e| explain(e, CONFIG_NODE))?;
        (d, s, Some(w))
    } else {
        let (d, s) = client
            .get_config()
            .await
            .map_err(|e| explain(e, CONFIG_NODE))?;
        (d, s, None)
    };
    print(&mut out, &String::from_utf8_lossy(&data));
    if p.has('s') {
        print(&mut out, &format_stat(&stat));
    }
    drop(out);
    if let Some(w) = watcher {
        wait_for(w).await;
    }
    Ok(())
}

/// A parsed `reconfig` command.
#[derive(Debug, PartialEq)]
pub(super) struct Reconfig {
    /// `-s`: print the Stat of /zookeeper/config after the new configuration.
    stat: bool,
    /// `-v`: the configuration version (hex, as in `version=`) the change applies to.
    version: Option<i64>,
    change: Change,
}

#[derive(Debug, PartialEq)]
enum Change {
    /// `-add` servers (comma-separated lines) and `-remove` ids (comma-separated).
    Incremental {
        add: Option<String>,
        remove: Option<String>,
    },
    /// `-members` or the server lines of `-file`: the whole new membership.
    Members(String),
}

/// zkCli's reconfig options. Repeated `-add`/`-remove` are joined with commas (zkCli uses
/// only the first); stray words are refused (zkCli ignores them).
pub(super) fn parse_reconfig(args: &[String]) -> Result<Reconfig, Failure> {
    let mut stat = false;
    let mut version = None;
    let mut file: Option<String> = None;
    let mut members: Option<String> = None;
    let mut add: Vec<String> = Vec::new();
    let mut remove: Vec<String> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let option = arg.as_str();
        let mut value = || {
            iter.next().cloned().ok_or_else(|| {
                Failure::usage(format!(
                    "Missing argument for option: {}",
                    option.trim_start_matches('-')
                ))
            })
        };
        match option {
            "-s" => stat = true,
            "-v" => {
                let text = value()?;
                let v = i64::from_str_radix(&text, 16).map_err(|_| {
                    Failure::usage("-v must be followed by a long (configuration version)")
                })?;
                version = Some(v);
            }
            "-file" => file = Some(value()?),
            "-members" => members = Some(value()?),
            "-add" => add.push(value()?),
            "-remove" => remove.push(value()?),
            other if other.starts_with('-') => {
                return Err(Failure::usage(format!("Unrecognized option: {other}")))
            }
            other => {
                return Err(Failure::usage(format!(
                    "reconfig: unexpected argument {other:?}"
                )))
            }
        }
    }
    let incremental = !add.is_empty() || !remove.is_empty();
    if (file.is_some() || members.is_some()) && incremental {
        return Err(Failure::usage(
            "Can't use -file or -members together with -add or -remove (mixing incremental \
             and non-incremental modes is not allowed)",
        ));
    }
    let change = match (file, members) {
        (Some(_), Some(_)) => {
            return Err(Failure::usage(
                "Can't use -file and -members together (conflicting non-incremental modes)",
            ))
        }
        (Some(path), None) => Change::Members(read_dynamic_config(&path)?),
        (None, Some(list)) => Change::Members(list),
        (None, None) if incremental => Change::Incremental {
            add: (!add.is_empty()).then(|| add.join(",")),
            remove: (!remove.is_empty()).then(|| remove.join(",")),
        },
        (None, None) => return Err(Failure::usage(RECONFIG_USAGE)),
    };
    Ok(Reconfig {
        stat,
        version,
        change,
    })
}

/// The server lines of a dynamic config file (`server.N=`, and `group.N=`/`weight.N=` of
/// hierarchical quorums), comma-joined as reconfig's member list. Blank lines, `#` comments
/// and `version=` are skipped; anything else is refused, in zkCli's words.
fn read_dynamic_config(path: &str) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let reason = e.to_string();
        let reason = reason.split(" (os error").next().unwrap_or(&reason);
        Failure::op(format!("Error processing {path}{path} ({reason})"))
    })?;
    let mut lines = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = key.trim();
        if key == "version" {
            continue;
        }
        if !["server.", "group.", "weight."]
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            return Err(Failure::op(format!(
                "Error processing {path}Unrecognised parameter: {key}"
            )));
        }
        lines.push(format!("{key}={}", value.trim()));
    }
    Ok(lines.join(","))
}

pub(super) async fn reconfig(client: &Client, request: Reconfig) -> Result<(), Failure> {
    let result = match &request.change {
        Change::Incremental { add, remove } => {
            let update = EnsembleUpdate::Incremental {
                joinings: add.as_deref().into_iter(),
                leavings: remove.as_deref().into_iter(),
            };
            client.update_ensemble(update, request.version).await
        }
        Change::Members(list) => {
            let update = EnsembleUpdate::New {
                ensemble: Some(list.as_str()).into_iter(),
            };
            client.update_ensemble(update, request.version).await
        }
    };
    let (data, stat) = result.map_err(explain_reconfig)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Committed new configuration:");
    let _ = writeln!(out, "{}", String::from_utf8_lossy(&data));
    if request.stat {
        let _ = writeln!(out, "{}", format_stat(&stat));
    }
    Ok(())
}

/// What zkCli prints for a refused reconfig.
fn explain_reconfig(e: zookeeper_client::Error) -> Failure {
    use zookeeper_client::Error as E;
    Failure::op(match e {
        E::NoAuth => "Insufficient permission : ".to_string(),
        E::BadVersion => "version No is not valid : ".to_string(),
        E::BadArguments(_) => "Arguments are not valid : ".to_string(),
        E::ReconfigDisabled => "KeeperErrorCode = Reconfig is disabled".to_string(),
        E::Unimplemented => "KeeperErrorCode = Unimplemented".to_string(),
        E::MarshallingError => "KeeperErrorCode = MarshallingError".to_string(),
        E::ConnectionLoss => "KeeperErrorCode = ConnectionLoss".to_string(),
        // The client library has no names for these two codes.
        E::UnexpectedErrorCode(-13) => "No quorum of new config is connected and up-to-date \
            with the leader of last committed config - try invoking reconfiguration after new \
            servers are connected and synced"
            .to_string(),
        E::UnexpectedErrorCode(-14) => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_string()
        }
        other => format!("reconfig: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconfig_options_like_zkcli() {
        let parse = |s: &str| parse_reconfig(&s.split(' ').map(String::from).collect::<Vec<_>>());
        let r = parse("-s -v 100000003 -add server.4=h:1:2;3 -remove 3,5").unwrap();
        assert!(r.stat);
        assert_eq!(r.version, Some(0x1_0000_0003));
        assert_eq!(
            r.change,
            Change::Incremental {
                add: Some("server.4=h:1:2;3".into()),
                remove: Some("3,5".into())
            }
        );
        let r = parse("-add server.4=h:1:2;3 -add server.5=h:4:5;6").unwrap();
        assert_eq!(
            r.change,
            Change::Incremental {
                add: Some("server.4=h:1:2;3,server.5=h:4:5;6".into()),
                remove: None
            }
        );
        let r = parse("-members server.1=h:1:2;3,server.2=h:4:5;6").unwrap();
        assert_eq!(
            r.change,
            Change::Members("server.1=h:1:2;3,server.2=h:4:5;6".into())
        );
        let usage = |s: &str| {
            let f = parse(s).unwrap_err();
            assert!(f.usage, "{s}");
            f.message
        };
        assert_eq!(usage("-s"), RECONFIG_USAGE);
        assert_eq!(usage("-v 1"), RECONFIG_USAGE);
        assert!(usage("-members a -add b").starts_with("Can't use -file or -members together"));
        assert!(usage("-members a -file b").starts_with("Can't use -file and -members"));
        assert_eq!(
            usage("-v 0x10 -remove 3"),
            "-v must be followed by a long (configuration version)"
        );
        assert_eq!(usage("-remove"), "Missing argument for option: remove");
        assert_eq!(usage("-x"), "Unrecognized option: -x");
        assert!(usage("-remove 3 extra").contains("unexpected argument"));
    }

    #[test]
    fn reconfig_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dyn");
        std::fs::write(
            &path,
            "# new members\n\nserver.1=h:1:2:participant;h:3\n server.2 = h:4:5;6 \nversion=100000000\n",
        )
        .unwrap();
        let path = path.to_str().unwrap().to_string();
        assert_eq!(
            read_dynamic_config(&path).unwrap(),
            "server.1=h:1:2:participant;h:3,server.2=h:4:5;6"
        );
        std::fs::write(&path, "server.1=h:1:2;3\nfoo=bar\n").unwrap();
        let f = read_dynamic_config(&path).unwrap_err();
        assert_eq!(
            f.message,
            format!("Error processing {path}Unrecognised parameter: foo")
        );
        assert!(!f.usage);
        let missing = format!("{path}.missing");
        assert_eq!(
            read_dynamic_config(&missing).unwrap_err().message,
            format!("Error processing {missing}{missing} (No such file or directory)")
        );
    }
}
