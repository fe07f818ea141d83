//! Client SASL as ZooKeeper 3.8 serves it (ZooKeeperServer.processSasl with the JDK's
//! DIGEST-MD5 server and ZooKeeper's SaslServerCallbackHandler), and enforced authentication
//! (AuthenticationHelper). The reader calls `step` for each sasl request (opcode 102) and
//! `refused` for every other request; both are pure decisions on the connection's state.
//!
//! - Service "zookeeper", server name and realm "zk-sasl-md5", qop auth, users from the JAAS
//!   `Server` section (`zookeeper.SASLAuthenticationProvider.superPassword` replaces the
//!   password of a listed user `super`).
//! - Success adds `sasl:<user>` to the connection's identities (and `super` when the user is
//!   one of `zookeeper.superUser[.N]`); they travel with its writes like addauth's.
//! - Failure answers AUTHFAILED (SESSIONCLOSEDREQUIRESASLAUTH when SASL is enforced) and
//!   closes the connection; the session lives on until it expires. With
//!   `zookeeper.allowSaslFailedClients=true` (and SASL not enforced) the connection stays,
//!   answered OK with no token. Without a SASL server (no JAAS `Server` section) every sasl
//!   request is answered OK with no token, as ZooKeeper does when its SASL server is null.

pub mod digest_md5;

use bytes::Bytes;
use tracing::{info, warn};

use self::digest_md5::{DigestMd5Server, Step};
use crate::config::ClientAuth;
use crate::proto::{Id, ZkError};

/// ZooKeeperSaslServer's protocol and server name (the client's digest-uri is
/// "zookeeper/zk-sasl-md5").
pub const SERVICE: &str = "zookeeper";
pub const SERVER_NAME: &str = "zk-sasl-md5";

/// What to answer a sasl request with.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// OK with this token (None: a null buffer); the connection goes on.
    Token(Option<Bytes>),
    /// OK with the last token; the connection now also holds `ids`.
    Authenticated { token: Bytes, ids: Vec<Id> },
    /// This error, then the connection closes.
    Failed(ZkError),
}

/// Evaluates one client token. `exchange` is the connection's DIGEST-MD5 server, created on
/// its first sasl request.
pub fn step(
    auth: &ClientAuth,
    exchange: &mut Option<DigestMd5Server>,
    token: &[u8],
    session_id: i64,
) -> Answer {
    let Some(users) = &auth.sasl_users else {
        return Answer::Token(None);
    };
    let server = exchange.get_or_insert_with(|| {
        use base64::Engine;
        let nonce = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        DigestMd5Server::new(SERVICE, SERVER_NAME, nonce)
    });
    let password = |user: &str| {
        let listed = users.0.get(user)?;
        Some(match &auth.super_password {
            Some(p) if user == "super" => p.clone(),
            _ => listed.clone(),
        })
    };
    match server.evaluate(token, password) {
        Ok(Step::Continue(token)) => Answer::Token(Some(Bytes::from(token))),
        Ok(Step::Complete {
            token, username, ..
        }) => {
            // SaslServerCallbackHandler authorizes the authentication id (the user name; a
            // DIGEST-MD5 name has no Kerberos host or realm to strip), not the authzid.
            let mut ids = vec![Id::new("sasl", username.clone())];
            let is_super = auth.super_users.contains(&username);
            if is_super {
                ids.push(Id::new("super", ""));
            }
            info!(
                session = format_args!("0x{session_id:x}"),
                user = %username,
                is_super,
                "SASL authenticated"
            );
            Answer::Authenticated {
                token: Bytes::from(token),
                ids,
            }
        }
        Err(e) => {
            warn!(session = format_args!("0x{session_id:x}"), error = %e,
                "client failed to SASL authenticate");
            if auth.allow_sasl_failed_clients && !auth.sasl_required() {
                Answer::Token(None)
            } else if auth.sasl_required() {
                Answer::Failed(ZkError::SessionClosedRequireSaslAuth)
            } else {
                Answer::Failed(ZkError::AuthFailed)
            }
        }
    }
}

/// AuthenticationHelper.enforceAuthentication: true when authentication is enforced and
/// the connection holds no identity of an enforced scheme. Every request but auth (100)
/// and sasl (102) is then answered SESSIONCLOSEDREQUIRESASLAUTH and the connection closes.
pub fn refused(auth: &ClientAuth, op: i32, ids: &[Id]) -> bool {
    use crate::proto::opcode::OpCode;
    !auth.enforce_schemes.is_empty()
        && op != OpCode::Auth.code()
        && op != OpCode::Sasl.code()
        && !ids
            .iter()
            .any(|id| auth.enforce_schemes.contains(&id.scheme))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SaslUsers;
    use md5::{Digest, Md5};

    fn auth() -> ClientAuth {
        ClientAuth {
            sasl_users: Some(SaslUsers(
                [
                    ("kafka", "kafka-pw"),
                    ("super", "jaas-pw"),
                    ("ops", "ops-pw"),
                ]
                .into_iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            )),
            sasl_provider: true,
            super_users: vec!["ops".into()],
            ..ClientAuth::default()
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The client side, as the JDK computes it (authzid = user, as ZooKeeper's client sets).
    fn client_response(challenge: &[u8], user: &str, password: &str) -> Vec<u8> {
        let c = String::from_utf8(challenge.to_vec()).unwrap();
        let nonce = c
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let (cnonce, uri) = ("cn0nce", "zookeeper/zk-sasl-md5");
        let mut a1 = Md5::digest(format!("{user}:zk-sasl-md5:{password}").as_bytes()).to_vec();
        a1.extend_from_slice(format!(":{nonce}:{cnonce}:{user}").as_bytes());
        let ha1 = hex(&Md5::digest(&a1));
        let ha2 = hex(&Md5::digest(format!("AUTHENTICATE:{uri}").as_bytes()));
        let resp = hex(&Md5::digest(
            format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes(),
        ));
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"zk-sasl-md5\",nonce=\"{nonce}\",\
             nc=00000001,cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,\
             response={resp},qop=auth,authzid=\"{user}\""
        )
        .into_bytes()
    }

    fn login(auth: &ClientAuth, user: &str, password: &str) -> Answer {
        let mut ex = None;
        let Answer::Token(Some(challenge)) = step(auth, &mut ex, b"", 1) else {
            panic!("no challenge")
        };
        step(
            auth,
            &mut ex,
            &client_response(&challenge, user, password),
            1,
        )
    }

    #[test]
    fn login_gives_sasl_identity_and_super_for_super_users() {
        let a = auth();
        let Answer::Authenticated { token, ids } = login(&a, "kafka", "kafka-pw") else {
            panic!()
        };
        assert!(token.starts_with(b"rspauth="));
        assert_eq!(ids, vec![Id::new("sasl", "kafka")]);
        let Answer::Authenticated { ids, .. } = login(&a, "ops", "ops-pw") else {
            panic!()
        };
        assert_eq!(ids, vec![Id::new("sasl", "ops"), Id::new("super", "")]);
    }

    #[test]
    fn super_password_replaces_the_jaas_one_for_a_listed_super() {
        let mut a = auth();
        a.super_password = Some("prop-pw".into());
        assert!(matches!(
            login(&a, "super", "prop-pw"),
            Answer::Authenticated { .. }
        ));
        assert_eq!(
            login(&a, "super", "jaas-pw"),
            Answer::Failed(ZkError::AuthFailed)
        );
    }

    #[test]
    fn failures_as_zookeeper_answers_them() {
        let mut a = auth();
        assert_eq!(
            login(&a, "kafka", "wrong"),
            Answer::Failed(ZkError::AuthFailed)
        );
        assert_eq!(
            login(&a, "nobody", "x"),
            Answer::Failed(ZkError::AuthFailed)
        );
        a.allow_sasl_failed_clients = true;
        assert_eq!(login(&a, "kafka", "wrong"), Answer::Token(None));
        a.enforce_schemes = vec!["sasl".into()];
        assert_eq!(
            login(&a, "kafka", "wrong"),
            Answer::Failed(ZkError::SessionClosedRequireSaslAuth)
        );
        // No SASL server at all: OK, null token, whatever the client sends.
        a.sasl_users = None;
        assert_eq!(step(&a, &mut None, b"garbage", 1), Answer::Token(None));
    }

    #[test]
    fn enforcement_lets_only_auth_and_sasl_through() {
        let mut a = auth();
        let anon = [Id::new("ip", "127.0.0.1")];
        assert!(!refused(&a, 4, &anon));
        a.enforce_schemes = vec!["sasl".into()];
        for op in [1, 4, 11, -11, 101, 999] {
            assert!(refused(&a, op, &anon), "{op}");
        }
        assert!(!refused(&a, 100, &anon) && !refused(&a, 102, &anon));
        assert!(!refused(
            &a,
            4,
            &[anon[0].clone(), Id::new("sasl", "kafka")]
        ));
        assert!(refused(&a, 4, &[Id::new("digest", "u:h")]));
        a.enforce_schemes = vec!["digest".into(), "sasl".into()];
        assert!(!refused(&a, 4, &[Id::new("digest", "u:h")]));
    }
}
