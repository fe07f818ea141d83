//! keeperctl's znode commands: `ls` (`ls2`, `-R`), `get`, `set`, `create`, `delete` (`rmr`),
//! `deleteall`, `stat` and `sync`, printed as zkCli prints them; and `subtree`, the
//! breadth-first walk that `ls -R`, `deleteall` and `setAcl -R` share.

use std::time::Duration;

use zookeeper_client::{Acl, Acls, AuthId, Client, CreateMode, Permission};

use super::acl::parse_acl;
use super::{explain, format_stat, print, wait_for, Failure, Parsed};

/// Runs one znode command `name` (already parsed into `p`; `path` is its first argument).
pub(super) async fn execute(
    client: &Client,
    name: &str,
    p: &Parsed,
    path: &str,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match name {
        "ls" | "ls2" => {
            if p.has('R') {
                let mut nodes = subtree(client, path).await?;
                // zkCli prints depth first (ZKUtil.visitSubTreeDFS), children in name order.
                nodes.sort_by(|a, b| {
                    let segments = |p: &str| -> Vec<String> {
                        p.split('/')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    segments(a).cmp(&segments(b))
                });
                for node in nodes {
                    print(&mut out, &node);
                }
                return Ok(());
            }
            let (mut children, stat, watcher) = if p.has('w') {
                let (c, s, w) = client
                    .get_and_watch_children(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (c, s, Some(w))
            } else {
                let (c, s) = client
                    .get_children(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (c, s, None)
            };
            children.sort();
            print(&mut out, &format!("[{}]", children.join(", ")));
            if p.has('s') || name == "ls2" {
                print(&mut out, &format_stat(&stat));
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "get" => {
            let (data, stat, watcher) = if p.has('w') {
                let (d, s, w) = client
                    .get_and_watch_data(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (d, s, Some(w))
            } else {
                let (d, s) = client.get_data(path).await.map_err(|e| explain(e, path))?;
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
        }
        "set" => {
            let stat = client
                .set_data(path, p.args[1].as_bytes(), p.version)
                .await
                .map_err(|e| explain(e, path))?;
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
        }
        "create" => {
            let mode = match (p.has('e'), p.has('s'), p.has('c')) {
                (_, _, true) => CreateMode::Container,
                (true, true, _) => CreateMode::EphemeralSequential,
                (true, false, _) => CreateMode::Ephemeral,
                (false, true, _) => CreateMode::PersistentSequential,
                (false, false, _) => CreateMode::Persistent,
            };
            let data = p.args.get(1).map(String::as_bytes).unwrap_or_default();
            let acl_list = match p.args.get(2) {
                Some(text) => parse_acl(text)?,
                None => vec![Acl::new(Permission::ALL, AuthId::anyone())],
            };
            let mut options = mode.with_acls(Acls::new(&acl_list));
            if let Some(ttl) = p.ttl {
                options = options.with_ttl(Duration::from_millis(ttl));
            }
            let (_, sequence) = client
                .create(path, data, &options)
                .await
                .map_err(|e| explain(e, path))?;
            let created = if p.has('s') {
                format!("{path}{sequence}")
            } else {
                path.to_string()
            };
            print(&mut out, &format!("Created {created}"));
        }
        "delete" | "rmr" => {
            client
                .delete(path, p.version)
                .await
                .map_err(|e| explain(e, path))?;
        }
        "deleteall" => {
            let nodes = subtree(client, path).await?;
            // Deepest first, so every node is a leaf when its turn comes.
            for node in nodes.iter().rev() {
                if node == "/" {
                    continue;
                }
                match client.delete(node, None).await {
                    Ok(()) | Err(zookeeper_client::Error::NoNode) => {}
                    Err(e) => return Err(explain(e, node)),
                }
            }
        }
        "stat" => {
            let (stat, watcher) = if p.has('w') {
                let (s, w) = client
                    .check_and_watch_stat(path)
                    .await
                    .map_err(|e| explain(e, path))?;
                (s, Some(w))
            } else {
                (
                    client
                        .check_stat(path)
                        .await
                        .map_err(|e| explain(e, path))?,
                    None,
                )
            };
            match stat {
                Some(stat) => print(&mut out, &format_stat(&stat)),
                None if watcher.is_none() => {
                    return Err(Failure::op(format!("Node does not exist: {path}")))
                }
                None => print(&mut out, &format!("Node does not exist: {path}")),
            }
            drop(out);
            if let Some(w) = watcher {
                wait_for(w).await;
            }
        }
        "sync" => {
            client.sync(path).await.map_err(|e| explain(e, path))?;
            print(&mut out, "Sync is OK");
        }
        other => return Err(Failure::usage(format!("unknown command: {other}"))),
    }
    Ok(())
}

/// `path` and every node below it, breadth first (ZKUtil.listSubTreeBFS).
pub(super) async fn subtree(client: &Client, path: &str) -> Result<Vec<String>, Failure> {
    let mut nodes = vec![path.to_string()];
    let mut i = 0;
    while i < nodes.len() {
        let node = nodes[i].clone();
        let mut children = match client.list_children(&node).await {
            Ok(c) => c,
            // Deleted meanwhile: nothing below it to visit.
            Err(zookeeper_client::Error::NoNode) if i > 0 => Vec::new(),
            Err(e) => return Err(explain(e, &node)),
        };
        children.sort();
        for child in children {
            let full = if node.ends_with('/') {
                format!("{node}{child}")
            } else {
                format!("{node}/{child}")
            };
            nodes.push(full);
        }
        i += 1;
    }
    Ok(nodes)
}
