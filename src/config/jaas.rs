//! JAAS login configuration files, as the JDK's `ConfigFile` reads them, and the JVM `-D`
//! options ZooKeeper operators put in SERVER_JVMFLAGS / JVMFLAGS / `conf/java.env`.
//!
//! A JAAS file holds named sections of login modules:
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_kafka="kafka-secret"
//!     user_admin="admin-secret";
//! };
//! ```
//!
//! `Name { Class Flag [option=value ...]; ... };`, with `//`, `/* */` and `#` comments,
//! quoted or bare values, and `${property}` expansion (not supported here: a value using it
//! is an error rather than a silently wrong password). ZooKeeper's SaslServerCallbackHandler
//! takes every `user_NAME="password"` option of every module of its section as a DIGEST-MD5
//! credential. Pure text in, values out; reading files is the caller's.

/// One `Class Flag options;` entry of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    /// required, requisite, sufficient or optional (lower-cased).
    pub flag: String,
    /// `name=value` in file order.
    pub options: Vec<(String, String)>,
}

/// A named section (application name) and its modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub modules: Vec<LoginModule>,
}

/// ZooKeeper's digest login module, the only one whose sections keeperd can serve.
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

/// Parses a whole JAAS file. Errors say the line: `line 3: expected ';' after ...`.
pub fn parse(text: &str) -> Result<Vec<Section>, String> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, at: 0 };
    let mut sections: Vec<Section> = Vec::new();
    while p.peek().is_some() {
        let (name, line) = p.word("a section name")?;
        p.punct('{', &format!("after section name {name:?}"))?;
        let mut modules = Vec::new();
        loop {
            if p.is_punct('}') {
                p.at += 1;
                break;
            }
            let (class, _) = p.word("a login module class name or '}'")?;
            let (flag, fline) = p.word(&format!("a control flag after {class}"))?;
            let flag = flag.to_ascii_lowercase();
            if !matches!(
                flag.as_str(),
                "required" | "requisite" | "sufficient" | "optional"
            ) {
                return Err(format!(
                    "line {fline}: control flag {flag:?} of {class} is not required, requisite, \
                     sufficient or optional"
                ));
            }
            let mut options = Vec::new();
            while !p.is_punct(';') {
                let (key, kline) = p.word(&format!("an option or ';' in {class}"))?;
                p.punct('=', &format!("after option {key:?}"))?;
                let (value, _) = p.value(&format!("a value for option {key:?}"))?;
                if value.contains("${") {
                    return Err(format!(
                        "line {kline}: option {key:?} uses ${{...}} property expansion, which \
                         keeperd does not do; write the value itself"
                    ));
                }
                options.push((key, value));
            }
            p.at += 1;
            modules.push(LoginModule {
                class,
                flag,
                options,
            });
        }
        p.punct(';', &format!("after the '}}' of section {name:?}"))?;
        if sections.iter().any(|s| s.name == name) {
            return Err(format!("line {line}: section {name:?} is defined twice"));
        }
        sections.push(Section { name, modules });
    }
    Ok(sections)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Punct(char),
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(Tok, usize)> {
        self.tokens.get(self.at)
    }

    fn last_line(&self) -> usize {
        self.tokens.last().map_or(1, |t| t.1)
    }

    fn is_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some((Tok::Punct(p), _)) if *p == c)
    }

    fn word(&mut self, what: &str) -> Result<(String, usize), String> {
        match self.peek().cloned() {
            Some((Tok::Word(w), line)) => {
                self.at += 1;
                Ok((w, line))
            }
            Some((t, line)) => Err(format!("line {line}: expected {what}, found {}", show(&t))),
            None => Err(format!(
                "line {}: expected {what}, found the end",
                self.last_line()
            )),
        }
    }

    fn value(&mut self, what: &str) -> Result<(String, usize), String> {
        match self.peek().cloned() {
            Some((Tok::Word(w) | Tok::Quoted(w), line)) => {
                self.at += 1;
                Ok((w, line))
            }
            Some((t, line)) => Err(format!("line {line}: expected {what}, found {}", show(&t))),
            None => Err(format!(
                "line {}: expected {what}, found the end",
                self.last_line()
            )),
        }
    }

    fn punct(&mut self, c: char, context: &str) -> Result<(), String> {
        match self.peek() {
            Some((Tok::Punct(p), _)) if *p == c => {
                self.at += 1;
                Ok(())
            }
            Some((t, line)) => Err(format!(
                "line {line}: expected '{c}' {context}, found {}",
                show(t)
            )),
            None => Err(format!(
                "line {}: expected '{c}' {context}, found the end",
                self.last_line()
            )),
        }
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Quoted(q) => format!("\"{q}\""),
        Tok::Punct(c) => format!("'{c}'"),
    }
}

/// Splits into words, quoted strings (with `\` escapes) and `{ } ; =`, dropping comments.
fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let start = line;
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: unterminated /* comment")),
                        Some('/') if prev == '*' => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            prev = c;
                        }
                    }
                }
            }
            '{' | '}' | ';' | '=' => out.push((Tok::Punct(c), line)),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            None => {
                                return Err(format!("line {start}: unterminated quoted string"))
                            }
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some('r') => s.push('\r'),
                            Some(c) => s.push(c),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                        }
                    }
                }
                out.push((Tok::Quoted(s), start));
            }
            c => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    w.push(n);
                    chars.next();
                }
                out.push((Tok::Word(w), line));
            }
        }
    }
    Ok(out)
}

/// A `-Dname=value` JVM option found in an environment variable or java.env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JvmProperty {
    /// Where it was found: `SERVER_JVMFLAGS`, `JVMFLAGS` or the java.env path.
    pub source: String,
    pub name: String,
    pub value: String,
}

/// The JVM options keeperd honours, in the order they apply (a later one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JvmProperties(pub Vec<JvmProperty>);

impl JvmProperties {
    /// What zkServer.sh would hand the JVM: `java.env` in `$ZOOCFGDIR` (else the zoo.cfg's
    /// directory), which zkEnv.sh sources, then the SERVER_JVMFLAGS and JVMFLAGS variables.
    /// java.env is not run as a shell script: only its `-Dname=value` words are read.
    pub fn from_environment(config_dir: &std::path::Path) -> JvmProperties {
        let mut props = Vec::new();
        let dir = std::env::var_os("ZOOCFGDIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| config_dir.to_path_buf());
        let java_env = dir.join("java.env");
        if let Ok(text) = std::fs::read_to_string(&java_env) {
            props.extend(parse_flags(&java_env.display().to_string(), &text));
        }
        for var in ["SERVER_JVMFLAGS", "JVMFLAGS"] {
            if let Ok(text) = std::env::var(var) {
                props.extend(parse_flags(var, &text));
            }
        }
        JvmProperties(props)
    }

    /// The last value given for `name`, and where.
    pub fn get(&self, name: &str) -> Option<&JvmProperty> {
        self.0.iter().rev().find(|p| p.name == name)
    }
}

/// The `-Dname=value` words of a flags string (quotes around a word or its value dropped).
pub fn parse_flags(source: &str, text: &str) -> Vec<JvmProperty> {
    text.split_whitespace()
        .filter_map(|word| {
            // `VAR="-Dx=y` (java.env assigning the variable) holds an option after its quote.
            let word = if word.starts_with("-D") {
                word
            } else {
                &word[word.find(['"', '\''])? + 1..]
            };
            let word = word.trim_matches(|c| c == '"' || c == '\'');
            let (name, value) = word.strip_prefix("-D")?.split_once('=')?;
            let value = value.trim_matches(|c| c == '"' || c == '\'');
            (!name.is_empty()).then(|| JvmProperty {
                source: source.to_string(),
                name: name.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_server_section() {
        let text = r#"
            // Kafka's zookeeper_jaas.conf
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"   # the super user
                user_kafka="kafka \"quoted\" secret"
                /* a comment
                   over lines */
                user_bare=bare.word-1;
            };
            Client { org.apache.zookeeper.server.auth.DigestLoginModule Required
                username="kafka" password="kafka-secret"; };
        "#;
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "Server");
        assert_eq!(s[0].modules[0].class, DIGEST_LOGIN_MODULE);
        assert_eq!(
            s[0].modules[0].options,
            vec![
                ("user_super".into(), "adminsecret".into()),
                ("user_kafka".into(), "kafka \"quoted\" secret".into()),
                ("user_bare".into(), "bare.word-1".into()),
            ]
        );
        assert_eq!(s[1].modules[0].flag, "required");
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("Empty { };").unwrap()[0].modules, vec![]);
    }

    #[test]
    fn broken_files_say_the_line() {
        for (text, want) in [
            (
                "Server {\n  M required user_a=\"x\"\n};",
                "line 3: expected an option or ';'",
            ),
            (
                "Server {\n  M required user_a=\"x\";\n}",
                "line 3: expected ';' after the '}'",
            ),
            (
                "Server {\n M mandatory;\n};",
                "line 2: control flag \"mandatory\"",
            ),
            ("Server \n M required;\n};", "line 2: expected '{'"),
            (
                "Server { M required a=\"unterminated;\n};",
                "line 1: unterminated quoted string",
            ),
            ("Server { M required a=;};", "line 1: expected a value"),
            ("Server { M required a=\"${x}\";};", "property expansion"),
            ("/* open", "unterminated /* comment"),
            (
                "S { M required; };\nS { M required; };",
                "line 2: section \"S\" is defined twice",
            ),
            ("{", "line 1: expected a section name"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn jvm_flags() {
        let env = r#"export SERVER_JVMFLAGS="-Xmx1g -Djava.security.auth.login.config=/etc/zk/jaas.conf $SERVER_JVMFLAGS"
SERVER_JVMFLAGS="$SERVER_JVMFLAGS -Dzookeeper.superUser='admin'" -Dnovalue -D=x
JVMFLAGS="-Dzookeeper.sasl.serverconfig=ZkServer""#;
        let p = JvmProperties(parse_flags("java.env", env));
        assert_eq!(
            p.get("java.security.auth.login.config").unwrap().value,
            "/etc/zk/jaas.conf"
        );
        assert_eq!(p.get("zookeeper.superUser").unwrap().value, "admin");
        assert_eq!(
            p.get("zookeeper.sasl.serverconfig").unwrap().value,
            "ZkServer"
        );
        assert_eq!(p.0.len(), 3);
    }
}
