//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` applies them on the server.
//!
//! ZooKeeper checks Java `char`s (UTF-16 code units). Every supplementary character is a
//! surrogate pair there, and surrogates are rejected, so checking Rust `char`s and rejecting
//! everything above the BMP gives the same verdict.

/// Whether `path` is a valid absolute znode path: starts with `/`, no empty segment, no
/// trailing `/` (except the root), no `.` or `..` segment, no NUL or control characters.
pub(crate) fn validate_path(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    if path.len() == 1 {
        return true;
    }
    if path.ends_with('/') {
        return false;
    }
    // Java walks the chars with `lastc` (i-1) and looks at i-2 and i+1 for `.` and `..`.
    let mut before_last: char = '\0';
    let mut last: char = '/';
    let mut chars = path.chars().skip(1).peekable();
    while let Some(c) = chars.next() {
        let next_ends_segment = matches!(chars.peek(), None | Some('/'));
        let invalid = match c {
            '\0' => true,
            '/' => last == '/',
            '.' if last == '.' => before_last == '/' && next_ends_segment,
            '.' => last == '/' && next_ends_segment,
            _ => is_forbidden_char(c),
        };
        if invalid {
            return false;
        }
        before_last = last;
        last = c;
    }
    true
}

fn is_forbidden_char(c: char) -> bool {
    matches!(c,
        '\u{1}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        // Java's '\ud800'..='\uf8ff': surrogates (never a Rust char) and the private use area.
        | '\u{e000}'..='\u{f8ff}'
        | '\u{fff0}'..='\u{ffff}')
        // Supplementary characters are surrogate pairs in Java, hence rejected there.
        || c > '\u{ffff}'
}

/// The parent of `path` as ZooKeeper computes it (`path.substring(0, lastIndexOf('/'))`),
/// with the root's alias `""` mapped to `"/"`. `None` when there is no `/` at all.
pub(crate) fn parent_of(path: &str) -> Option<&str> {
    let slash = path.rfind('/')?;
    Some(if slash == 0 { "/" } else { &path[..slash] })
}

/// The last segment of `path` (after the last `/`).
pub(crate) fn name_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub(crate) fn join(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + 1 + name.len());
    s.push_str(parent);
    if parent != "/" {
        s.push('/');
    }
    s.push_str(name);
    s
}

/// Length of `s` in UTF-16 code units, which is what Java's `String.length()` counts (used
/// for approximateDataSize so mntr matches ZooKeeper on non-ASCII paths too).
pub(crate) fn java_len(s: &str) -> u64 {
    s.chars().map(|c| c.len_utf16() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/", "/a", "/a/b", "/a.b", "/...", "/a/.b", "/a/b..", "/é", "/a b",
        ] {
            assert!(validate_path(p), "{p:?} should be valid");
        }
    }

    #[test]
    fn invalid_paths() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/./a",
            "/../a",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{fff0}",
            "/a\u{1f600}",
        ] {
            assert!(!validate_path(p), "{p:?} should be invalid");
        }
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a/"), Some("/a"));
        assert_eq!(parent_of("a"), None);
        assert_eq!(name_of("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(java_len("/é😀"), 4);
    }
}
