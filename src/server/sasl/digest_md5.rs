//! The server side of SASL DIGEST-MD5 (RFC 2831), qop=auth only: what ZooKeeper gets from
//! the JDK's `Sasl.createSaslServer("DIGEST-MD5", "zookeeper", "zk-sasl-md5", ...)`.
//!
//! Pure: no I/O, no clock; the nonce is given by the caller (random in the server, fixed in
//! the tests, which replay RFC 2831's worked example). Two steps:
//!
//! ```text
//! client: (empty token, ignored)   server: realm="..",nonce="..",qop="auth",charset=utf-8,algorithm=md5-sess
//! client: username="..",realm="..",nonce="..",cnonce="..",nc=00000001,qop=auth,
//!         digest-uri="zookeeper/zk-sasl-md5",response=<32 hex>[,charset=utf-8][,authzid=".."]
//!                                  server: rspauth=<32 hex>             (complete)
//! ```
//!
//! Every malformed, oversized, replayed or wrong input is a `SaslError`, never a panic; after
//! an error or a completed exchange the server accepts nothing more.

use md5::{Digest, Md5};

/// The JDK refuses client responses longer than this (RFC 2831 2.1.2: 4096 bytes).
const MAX_RESPONSE: usize = 4096;

/// Why an exchange failed (logged; the client only learns that it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslError(pub String);

impl std::fmt::Display for SaslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DIGEST-MD5: {}", self.0)
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, SaslError> {
    Err(SaslError(msg.into()))
}

/// The outcome of one successful step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the client's next one.
    Continue(Vec<u8>),
    /// Authenticated: send this last token (rspauth). `authzid` is what the client asked to
    /// act as, if it said.
    Complete {
        token: Vec<u8>,
        username: String,
        authzid: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing received yet: the next token must be empty (DIGEST-MD5 has no initial
    /// response) and is answered with the challenge.
    Start,
    /// The challenge was sent: the next token is the digest-response.
    Challenged,
    /// Authenticated, or failed: nothing more is accepted.
    Done,
}

/// One DIGEST-MD5 exchange (one per connection).
#[derive(Debug, Clone)]
pub struct DigestMd5Server {
    /// Service name (`serv-type` of digest-uri): "zookeeper".
    protocol: String,
    /// Server name (`host` of digest-uri), also the realm offered: "zk-sasl-md5".
    server_name: String,
    realm: String,
    nonce: String,
    state: State,
}

impl DigestMd5Server {
    /// A server for `protocol/server_name`, offering `server_name` as its realm, as the JDK
    /// does when no realm property is set.
    pub fn new(protocol: &str, server_name: &str, nonce: String) -> DigestMd5Server {
        DigestMd5Server {
            protocol: protocol.to_string(),
            server_name: server_name.to_string(),
            realm: server_name.to_string(),
            nonce,
            state: State::Start,
        }
    }

    /// Offers `realm` instead of the server name (RFC 2831's example uses one).
    pub fn with_realm(mut self, realm: &str) -> DigestMd5Server {
        self.realm = realm.to_string();
        self
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Evaluates the client's token. `password` looks a user's password up (None: unknown
    /// user). Any error ends the exchange.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        password: impl Fn(&str) -> Option<String>,
    ) -> Result<Step, SaslError> {
        let state = std::mem::replace(&mut self.state, State::Done);
        match state {
            State::Start => {
                // DIGEST-MD5 has no initial response; like the JDK's server, whatever the
                // first token holds is answered with the challenge.
                let _ = token;
                self.state = State::Challenged;
                Ok(Step::Continue(self.challenge().into_bytes()))
            }
            State::Challenged => self.check_response(token, password),
            State::Done => fail("authentication already completed or failed"),
        }
    }

    fn challenge(&self) -> String {
        format!(
            "realm=\"{}\",nonce=\"{}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
            quote(&self.realm),
            quote(&self.nonce)
        )
    }

    fn check_response(
        &self,
        token: &[u8],
        password: impl Fn(&str) -> Option<String>,
    ) -> Result<Step, SaslError> {
        if token.len() > MAX_RESPONSE {
            return fail(format!("response of {} bytes is too long", token.len()));
        }
        let d = Directives::parse(token)?;
        let utf8 = match d.get("charset") {
            None => false,
            Some(c) if c.eq_ignore_ascii_case("utf-8") => true,
            Some(c) => return fail(format!("unsupported charset {c:?}")),
        };
        let text = |name: &str| -> Result<Option<String>, SaslError> {
            d.get_raw(name)
                .map(|raw| {
                    decode(raw, utf8).ok_or_else(|| SaslError(format!("{name} is not UTF-8")))
                })
                .transpose()
        };
        let username = text("username")?.ok_or_else(|| SaslError("no username".into()))?;
        let realm = text("realm")?.unwrap_or_default();
        let authzid = text("authzid")?;
        let nonce = d.require("nonce")?;
        let cnonce = d.require("cnonce")?;
        let nc = d.require("nc")?;
        let digest_uri = d.require("digest-uri")?;
        let response = d.require("response")?;
        let qop = d.get("qop").unwrap_or("auth");
        if let Some(alg) = d.get("algorithm") {
            if alg != "md5-sess" {
                return fail(format!("unsupported algorithm {alg:?}"));
            }
        }

        if nonce != self.nonce {
            return fail("nonce mismatch");
        }
        if cnonce.is_empty() {
            return fail("empty cnonce");
        }
        if nc != "00000001" {
            return fail(format!("nonce count {nc:?} is not 00000001"));
        }
        if qop != "auth" {
            return fail(format!("qop {qop:?} was not offered (auth only)"));
        }
        if !realm.is_empty() && realm != self.realm {
            return fail(format!("realm {realm:?} was not offered"));
        }
        let expected_uri = format!("{}/{}", self.protocol, self.server_name);
        // serv-type "/" host [ "/" serv-name ]: the JDK compares case-insensitively.
        if !digest_uri.eq_ignore_ascii_case(&expected_uri) {
            return fail(format!("digest-uri {digest_uri:?} is not {expected_uri:?}"));
        }
        if response.len() != 32 || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail("response is not 32 hex digits");
        }
        let Some(password) = password(&username) else {
            return fail(format!("no password for user {username:?}"));
        };

        let a1 = a1_hash(
            &username,
            &realm,
            &password,
            nonce,
            cnonce,
            authzid.as_deref(),
        );
        let expected = kd_hex(
            &a1,
            nonce,
            nc,
            cnonce,
            qop,
            &format!("AUTHENTICATE:{digest_uri}"),
        );
        if !constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return fail(format!("wrong password for user {username:?}"));
        }
        let rspauth = kd_hex(&a1, nonce, nc, cnonce, qop, &format!(":{digest_uri}"));
        Ok(Step::Complete {
            token: format!("rspauth={rspauth}").into_bytes(),
            username,
            authzid: authzid.filter(|a| !a.is_empty()),
        })
    }
}

/// H(A1) for md5-sess: H( H(user:realm:password) : nonce : cnonce [: authzid] ).
fn a1_hash(
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    authzid: Option<&str>,
) -> [u8; 16] {
    let mut inner = Md5::new();
    inner.update(encode(username));
    inner.update(b":");
    inner.update(encode(realm));
    inner.update(b":");
    inner.update(encode(password));
    let mut a1 = Md5::new();
    a1.update(inner.finalize());
    a1.update(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(z) = authzid.filter(|z| !z.is_empty()) {
        a1.update(b":");
        a1.update(z.as_bytes());
    }
    a1.finalize().into()
}

/// HEX( KD( HEX(H(A1)), nonce:nc:cnonce:qop:HEX(H(A2)) ) ), KD(k, s) = H(k:s).
fn kd_hex(a1: &[u8; 16], nonce: &str, nc: &str, cnonce: &str, qop: &str, a2: &str) -> String {
    let a2 = hex(&Md5::digest(a2.as_bytes()));
    let kd = Md5::digest(format!("{}:{nonce}:{nc}:{cnonce}:{qop}:{a2}", hex(a1)).as_bytes());
    hex(&kd)
}

/// RFC 2831 2.1.2.1: with charset=utf-8, a string whose characters all fit ISO 8859-1 is
/// hashed as ISO 8859-1, any other as UTF-8. Without the charset the client's strings are
/// 8859-1 already; a password from the JAAS file that is not is hashed as UTF-8 (it cannot
/// match what such a client computed either way).
fn encode(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 0x100) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// A directive's bytes as text: UTF-8 with charset=utf-8, else ISO 8859-1.
fn decode(raw: &[u8], utf8: bool) -> Option<String> {
    if utf8 {
        String::from_utf8(raw.to_vec()).ok()
    } else {
        Some(raw.iter().map(|&b| b as char).collect())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A value for a quoted-string: `"` and `\` escaped.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The directives of a digest-response: `name=value` or `name="quoted"`, separated by
/// commas with optional whitespace (RFC 2831 `1#( directive )`). Names are compared
/// case-insensitively; a name given twice is an error; unknown names are kept and ignored.
struct Directives {
    list: Vec<(String, Vec<u8>)>,
}

impl Directives {
    fn parse(input: &[u8]) -> Result<Directives, SaslError> {
        let mut list: Vec<(String, Vec<u8>)> = Vec::new();
        let mut i = 0;
        let skip_lws = |i: &mut usize| {
            while *i < input.len() && matches!(input[*i], b' ' | b'\t' | b'\r' | b'\n') {
                *i += 1;
            }
        };
        loop {
            skip_lws(&mut i);
            // Empty list elements (",,") are allowed by the #rule.
            while i < input.len() && input[i] == b',' {
                i += 1;
                skip_lws(&mut i);
            }
            if i >= input.len() {
                break;
            }
            let start = i;
            while i < input.len() && is_token_char(input[i]) {
                i += 1;
            }
            if i == start {
                return fail(format!("malformed response at byte {i}"));
            }
            let name = String::from_utf8_lossy(&input[start..i]).to_ascii_lowercase();
            skip_lws(&mut i);
            if i >= input.len() || input[i] != b'=' {
                return fail(format!("directive {name:?} has no value"));
            }
            i += 1;
            skip_lws(&mut i);
            let mut value = Vec::new();
            if i < input.len() && input[i] == b'"' {
                i += 1;
                loop {
                    match input.get(i) {
                        None => return fail(format!("unterminated quoted value of {name:?}")),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let Some(&c) = input.get(i + 1) else {
                                return fail(format!("unterminated quoted value of {name:?}"));
                            };
                            value.push(c);
                            i += 2;
                        }
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
            } else {
                let vstart = i;
                while i < input.len() && is_token_char(input[i]) {
                    i += 1;
                }
                value.extend_from_slice(&input[vstart..i]);
            }
            if list.iter().any(|(n, _)| *n == name) {
                return fail(format!("directive {name:?} given twice"));
            }
            list.push((name, value));
            skip_lws(&mut i);
            match input.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return fail(format!("malformed response at byte {i}")),
            }
        }
        Ok(Directives { list })
    }

    fn get_raw(&self, name: &str) -> Option<&[u8]> {
        self.list
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// An ASCII directive (nonce, nc, qop, ...): None when absent or not ASCII.
    fn get(&self, name: &str) -> Option<&str> {
        self.get_raw(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| v.is_ascii())
    }

    fn require(&self, name: &str) -> Result<&str, SaslError> {
        self.get(name)
            .ok_or_else(|| SaslError(format!("no {name} (or not ASCII)")))
    }
}

/// RFC 2616 token characters: printable ASCII except separators.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

#[cfg(test)]
#[path = "digest_md5_tests.rs"]
mod tests;
