//! Java `.properties` syntax, as `java.util.Properties.load` reads it, because that is what
//! ZooKeeper uses for zoo.cfg and the dynamic config file. Unlike `Properties`, every entry
//! keeps the line it started on so that validation errors can point at it, and duplicates are
//! kept in order (the caller decides; Java lets the last one win).
//!
//! ```text
//! # comment            ! also a comment        (only when first non-blank character)
//! key=value            key: value    key value (separator: first unescaped = : or blank)
//! key = long \         trailing odd backslash continues the logical line; the next
//!       value          line's leading blanks are dropped
//! key=a\tb\u0041       escapes: \t \n \r \f \uXXXX, any other \c is c
//! ```

/// One `key=value` of a properties text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The unescaped key, trimmed.
    pub key: String,
    /// The unescaped value, trimmed at both ends (ZooKeeper trims; Java keeps trailing blanks).
    pub value: String,
    /// 1-based number of the line the logical line starts on, for error messages.
    pub line: usize,
}

/// A syntax fault: only a malformed `\uXXXX` escape can be one (Java throws there too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Java's whitespace set for properties: space, tab, form feed.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Parses a whole properties text into entries in file order.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries = Vec::new();
    // Split on \n, \r\n and lone \r, as Java's LineReader does.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n').enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let start_line = index + 1;
        let first = raw.trim_start_matches(is_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            // Comment lines never continue, even if they end in a backslash.
            continue;
        }
        let mut logical = String::from(first);
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches(is_blank)),
                None => break,
            }
        }
        let (raw_key, raw_value) = split_key_value(&logical);
        let key = unescape(raw_key, start_line)?;
        let value = unescape(raw_value, start_line)?;
        entries.push(Entry {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            line: start_line,
        });
    }
    Ok(entries)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or blank; blanks around the separator and at most
/// one `=`/`:` after leading blanks are skipped, like Java.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut sep_is_blank = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' {
            key_end = i;
            break;
        } else if is_blank(c) {
            key_end = i;
            sep_is_blank = true;
            break;
        }
    }
    let key = &line[..key_end];
    if key_end == line.len() {
        return (key, "");
    }
    let mut rest = &line[key_end..];
    if sep_is_blank {
        rest = rest.trim_start_matches(is_blank);
        if let Some(r) = rest.strip_prefix(['=', ':']) {
            rest = r;
        }
    } else {
        rest = &rest[1..];
    }
    (key, rest.trim_start_matches(is_blank))
}

fn unescape(s: &str, line: usize) -> Result<String, SyntaxError> {
    if !s.contains('\\') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| SyntaxError {
                        line,
                        message: format!("malformed \\uxxxx escape: \\u{hex}"),
                    })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    fn e(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn separators_comments_and_blanks() {
        let text = "# comment\n! bang comment\n\n  tickTime=2000\nclientPort: 2181\n\
                    dataDir /var/zk\ninitLimit = 10  \nempty=\nbare\n";
        assert_eq!(
            kv(text),
            vec![
                e("tickTime", "2000", 4),
                e("clientPort", "2181", 5),
                e("dataDir", "/var/zk", 6),
                e("initLimit", "10", 7),
                e("empty", "", 8),
                e("bare", "", 9),
            ]
        );
    }

    #[test]
    fn continuation_lines_keep_the_first_line_number() {
        let text = "a=1\n4lw.commands.whitelist=mntr, \\\n    ruok,\\\n\tsrvr\nb=2\n";
        assert_eq!(
            kv(text),
            vec![
                e("a", "1", 1),
                e("4lw.commands.whitelist", "mntr, ruok,srvr", 2),
                e("b", "2", 5),
            ]
        );
    }

    #[test]
    fn escaped_backslash_does_not_continue() {
        assert_eq!(
            kv("p=C:\\\\zk\\\\\nq=1"),
            vec![e("p", "C:\\zk\\", 1), e("q", "1", 2)]
        );
    }

    #[test]
    fn comment_with_trailing_backslash_does_not_continue() {
        assert_eq!(kv("# x \\\na=1"), vec![e("a", "1", 2)]);
    }

    #[test]
    fn escapes_and_crlf() {
        assert_eq!(
            kv("a\\=b=c\\u0041\\td\r\nx\\ y:z\r"),
            vec![e("a=b", "cA\td", 1), e("x y", "z", 2)]
        );
        assert!(parse("a=\\u12").is_err());
    }

    #[test]
    fn value_may_contain_separators() {
        assert_eq!(
            kv("server.1=zk1:2888:3888;2181\nk = =v"),
            vec![e("server.1", "zk1:2888:3888;2181", 1), e("k", "=v", 2)]
        );
    }
}
