//! Four-letter words (`echo mntr | nc host 2181`) as pure functions: the server gathers a
//! `ServerSnapshot`, this module turns it into the exact bytes ZooKeeper 3.8 would send.
//! No I/O, no clocks: every value (including wall-clock times printed by `dump` and `cons`)
//! comes from the snapshot, so the output is testable byte for byte.
//!
//! ```text
//! connection := first 4 bytes = word  (stmk: then an 8-byte big-endian mask)
//! reply      := render(word, snapshot) ; then the server closes the connection
//! ```
//!
//! Formats were captured from ZooKeeper 3.8.0 (Debian) and are pinned by the tests in
//! `tests.rs`. Where ZooKeeper's order comes from a Java hash map (mntr, wchc, wchp, dump),
//! see the comments at each renderer.

mod ask;
pub mod commands;
pub mod metrics;
mod render;
mod snapshot;

pub use ask::four_letter_word;

pub(crate) use render::civil_from_days;
pub use render::{java_date, java_double, monitor_values, render, MntrValue};
pub use snapshot::*;

/// ZooKeeper's answer for words that need a running server while this one is not serving.
pub const ZK_NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The ZooKeeper release whose behaviour keeperd reproduces; version strings start with it
/// so tools that parse major/minor from `srvr` or `mntr` keep working.
pub const ZK_COMPAT_VERSION: &str = "3.8.0";

/// The version keeperd reports in srvr/stat/mntr/envi: `3.8.0-keeperd-<crate version>`.
pub fn version_string() -> String {
    format!("{ZK_COMPAT_VERSION}-keeperd-{}", env!("CARGO_PKG_VERSION"))
}

/// The four-letter words ZooKeeper 3.8 knows (FourLetterCommands' table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Ruok,
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    Hash,
}

impl FourLetterWord {
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Ruok,
        FourLetterWord::Stmk,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
        FourLetterWord::Mntr,
        FourLetterWord::Isro,
        FourLetterWord::Hash,
    ];

    /// Recognises a word from the first four bytes of a connection (more bytes are ignored;
    /// fewer, or an unknown word, is `None` and the bytes are a normal request frame).
    /// Case-sensitive, as in ZooKeeper (it compares the bytes as an int).
    pub fn parse(first4: &[u8]) -> Option<FourLetterWord> {
        let word = first4.get(..4)?;
        FourLetterWord::ALL
            .into_iter()
            .find(|w| w.name().as_bytes() == word)
    }

    pub fn name(self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Hash => "hash",
        }
    }

    /// Whether the word gives its normal answer while the server is not serving (no quorum
    /// yet). ruok, envi, gtmk and stmk do; isro answers `null` and the rest answer
    /// `ZK_NOT_SERVING` (see `render`).
    pub fn answers_when_not_serving(self) -> bool {
        matches!(
            self,
            FourLetterWord::Ruok
                | FourLetterWord::Envi
                | FourLetterWord::Gtmk
                | FourLetterWord::Stmk
        )
    }

    /// The listings this word prints, which the server gathers only when asked.
    pub fn need(self) -> Need {
        let w = |word| self == word;
        Need {
            watches_by_session: w(FourLetterWord::Wchc),
            watches_by_path: w(FourLetterWord::Wchp),
            ephemerals: w(FourLetterWord::Dump),
            digests: w(FourLetterWord::Hash),
            // mntr prints no directory sizes: scraping it must not walk the data dir.
            dir_sizes: matches!(self, FourLetterWord::Dirs | FourLetterWord::Conf),
            env: w(FourLetterWord::Envi),
        }
    }

    /// stmk is followed by an 8-byte big-endian trace mask; the connection must read it
    /// before answering (ZooKeeper prints the new mask, as gtmk does).
    pub fn reads_trailing_mask(self) -> bool {
        self == FourLetterWord::Stmk
    }
}

/// The mask that follows `stmk` (bytes 4..12 of the connection), if all 8 bytes are there.
pub fn parse_stmk_mask(after_word: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = after_word.get(..8)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

/// The reply to a known word that `4lw.commands.whitelist` does not allow.
pub fn not_in_whitelist(word: FourLetterWord) -> String {
    format!(
        "{} is not executed because it is not in the whitelist.\n",
        word.name()
    )
}

#[cfg(test)]
mod commands_tests;
#[cfg(test)]
mod tests;
