//! Four-letter words to a server on 127.0.0.1, through the library's own client
//! (`keeperd::admin::four_letter_word`, which keeperctl and `keeperd status` use), and the
//! waits until a server answers or serves.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`four_letters`] gives a server for the whole answer.
pub const FOUR_LETTER_LIMIT: Duration = Duration::from_secs(3);

/// The answer to `word` from 127.0.0.1:`port` (blocking), each socket step bounded by
/// [`FOUR_LETTER_LIMIT`].
pub fn four_letter_word_blocking(port: u16, word: &str) -> std::io::Result<String> {
    keeperd::admin::four_letter_word("127.0.0.1", port, word, FOUR_LETTER_LIMIT)
}

/// The answer to `word` from 127.0.0.1:`port`, the whole exchange bounded by `limit`. The
/// library's blocking client runs on tokio's blocking pool, so that an in-process server on
/// the test's own runtime can answer meanwhile.
pub async fn four_letter_word(port: u16, word: &str, limit: Duration) -> std::io::Result<String> {
    let owned = word.to_owned();
    let ask = tokio::task::spawn_blocking(move || {
        keeperd::admin::four_letter_word("127.0.0.1", port, &owned, limit)
    });
    match tokio::time::timeout(limit, ask).await {
        Ok(answer) => answer.expect("the four-letter word thread ends"),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer to {word} on port {port} within {limit:?}"),
        )),
    }
}

/// The answer to `word`, or None when the server cannot be reached or does not answer
/// within [`FOUR_LETTER_LIMIT`].
pub async fn four_letters(port: u16, word: &str) -> Option<String> {
    four_letter_word(port, word, FOUR_LETTER_LIMIT).await.ok()
}

/// `Mode:` of a serving node (None when not reachable or not serving).
pub async fn mode(port: u16) -> Option<String> {
    let srvr = four_letters(port, "srvr").await?;
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::to_string)
}

/// `mntr` as key -> value (empty when the server does not answer).
pub async fn mntr(port: u16) -> HashMap<String, String> {
    four_letters(port, "mntr")
        .await
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The tree digest a node reports through `hash` (last line's value).
pub async fn digest(port: u16) -> Option<String> {
    let out = four_letters(port, "hash").await?;
    digest_of(&out)
}

/// The digest in a `hash` answer (its last line's value).
pub fn digest_of(hash: &str) -> Option<String> {
    hash.lines()
        .last()
        .and_then(|l| l.split(": ").nth(1))
        .map(str::to_string)
}

/// What a wait for a server asks it, and the answer that counts.
#[derive(Clone, Copy, Debug)]
pub enum Ready {
    /// `ruok` answers `imok`: the process is up (it answers even while not serving).
    Imok,
    /// `srvr` names a `Mode:`: the server serves clients.
    Serving,
}

impl Ready {
    pub fn word(self) -> &'static str {
        match self {
            Ready::Imok => "ruok",
            Ready::Serving => "srvr",
        }
    }

    pub fn seen_in(self, answer: &str) -> bool {
        match self {
            Ready::Imok => answer == "imok",
            Ready::Serving => answer.lines().any(|l| l.starts_with("Mode: ")),
        }
    }
}

/// Waits until the server on `port` is `ready`, polling every 20 ms; after `limit` panics
/// with `logs()`.
pub async fn wait_ready(port: u16, ready: Ready, limit: Duration, logs: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if four_letters(port, ready.word())
            .await
            .is_some_and(|answer| ready.seen_in(&answer))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the server on port {port} is not {ready:?} within {limit:?}; logs:\n{}",
        logs()
    );
}

/// Waits until the server on `port` answers ruok; panics with `dir/server.log` after 20 s.
pub async fn wait_serving(port: u16, dir: &Path) {
    wait_ready(port, Ready::Imok, Duration::from_secs(20), || {
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    })
    .await;
}
