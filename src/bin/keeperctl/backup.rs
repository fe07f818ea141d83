//! `keeperctl snapshot save FILE`: an online backup through the AdminServer's `snapshot`
//! command (ZooKeeper 3.9's): a plain HTTP/1.1 GET with `Authorization: digest user:pw`
//! (from `--auth digest:user:pw`), the body checked as a ZooKeeper snapshot (magic,
//! version, Adler-32 checksum) before it is written durably (temporary file, fsync,
//! rename). `keeperd restore FILE` turns it into a new dataDir.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::Failure;

/// The AdminServer address: `-admin host:port`, else the first `-server` host on 8080.
pub fn admin_address(admin: Option<&str>, server: &str) -> String {
    if let Some(a) = admin {
        return a.to_string();
    }
    let first = server.split('/').next().unwrap_or(server);
    let first = first.split(',').next().unwrap_or(first);
    let host = match first.rsplit_once(':') {
        Some((h, _)) => h,
        None => first,
    };
    format!("{host}:8080")
}

pub fn snapshot_command(
    admin: &str,
    auth: &[(String, String)],
    args: &[String],
) -> Result<(), Failure> {
    let (Some("save"), Some(file), None) =
        (args.first().map(String::as_str), args.get(1), args.get(2))
    else {
        return Err(Failure::usage("snapshot save FILE"));
    };
    let Some((_, user_password)) = auth.iter().find(|(scheme, _)| scheme == "digest") else {
        return Err(Failure::usage(
            "snapshot needs --auth digest:user:password (the super user or ALL on /)",
        ));
    };
    let mut stream = TcpStream::connect(admin)
        .map_err(|e| Failure::op(format!("cannot connect to the AdminServer at {admin}: {e}")))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(600)));
    let request = format!(
        "GET /commands/snapshot?streaming=true HTTP/1.1\r\nHost: {admin}\r\n\
         Authorization: digest {user_password}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| Failure::op(format!("{admin}: {e}")))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| Failure::op(format!("{admin}: {e}")))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Failure::op(format!("{admin}: not an HTTP response")))?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = &response[split + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        let line = head.lines().next().unwrap_or("");
        return Err(Failure::op(format!(
            "snapshot refused: {line}: {}",
            String::from_utf8_lossy(body).trim()
        )));
    }
    if let Some(len) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        if len != body.len() {
            return Err(Failure::op(format!(
                "snapshot cut short: {} of {len} bytes",
                body.len()
            )));
        }
    }
    let snap = keeperd::zkfiles::snapshot::read(body)
        .map_err(|e| Failure::op(format!("the snapshot received does not check: {e}")))?;
    write_durably(Path::new(file), body)
        .map_err(|e| Failure::op(format!("writing {file}: {e}")))?;
    println!(
        "saved {} bytes, {} znodes, {} sessions, last zxid {} to {file}",
        body.len(),
        snap.nodes.len(),
        snap.sessions.len(),
        header(&head, "last_zxid").unwrap_or("?")
    );
    Ok(())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
