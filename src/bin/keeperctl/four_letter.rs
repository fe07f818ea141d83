//! `keeperctl 4lw [HOST:PORT] WORD`: one four-letter word to one server, without a session.

use std::io::Write;

use super::{Failure, FOUR_LETTER_TIMEOUT};

/// `4lw [HOST:PORT] WORD`: without HOST:PORT, the first host of -server.
pub(super) fn four_letter_command(server: &str, args: &[String]) -> Result<(), Failure> {
    let (target, word) = match args {
        [word] => {
            let first = server.split('/').next().unwrap_or(server);
            (first.split(',').next().unwrap_or(first).to_string(), word)
        }
        [target, word] => (target.clone(), word),
        _ => return Err(Failure::usage("4lw: expected [HOST:PORT] WORD")),
    };
    if word.len() != 4 {
        return Err(Failure::usage(format!(
            "4lw: {word:?} is not a four-letter word"
        )));
    }
    let (host, port) = split_host_port(&target)
        .ok_or_else(|| Failure::usage(format!("4lw: {target:?} is not HOST:PORT")))?;
    let reply = four_letter_word(&host, port, word)
        .map_err(|e| Failure::op(format!("cannot send {word} to {target}: {e}")))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(reply.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// `host`, `host:port`, `[v6]:port`; port defaults to 2181.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 2181,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => Some((s.to_string(), 2181)),
        None => Some((s.to_string(), 2181)),
    }
}

fn four_letter_word(host: &str, port: u16, word: &str) -> std::io::Result<String> {
    keeperd::admin::four_letter_word(host, port, word, FOUR_LETTER_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("h:2182"), Some(("h".into(), 2182)));
        assert_eq!(split_host_port("h"), Some(("h".into(), 2181)));
        assert_eq!(split_host_port("[::1]:2183"), Some(("::1".into(), 2183)));
        assert_eq!(split_host_port("h:x"), None);
    }
}
