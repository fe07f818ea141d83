use super::*;

/// RFC 2831 section 4, the IMAP example: user chris, password secret.
const RFC_RESPONSE: &str = "charset=utf-8,username=\"chris\",realm=\"elwood.innosoft.com\",\
nonce=\"OA6MG9tEQGm2hh\",nc=00000001,cnonce=\"OA6MHXh6VqTrRk\",\
digest-uri=\"imap/elwood.innosoft.com\",response=d388dad90d4bbd760a152321f2143af7,qop=auth";

fn rfc_server() -> DigestMd5Server {
    DigestMd5Server::new("imap", "elwood.innosoft.com", "OA6MG9tEQGm2hh".into())
}

fn chris(user: &str) -> Option<String> {
    (user == "chris").then(|| "secret".to_string())
}

fn challenged(mut s: DigestMd5Server) -> DigestMd5Server {
    assert!(matches!(s.evaluate(b"", chris), Ok(Step::Continue(_))));
    s
}

#[test]
fn rfc_2831_worked_example() {
    let mut s = rfc_server();
    let Ok(Step::Continue(challenge)) = s.evaluate(b"", chris) else {
        panic!("no challenge")
    };
    assert_eq!(
        String::from_utf8(challenge).unwrap(),
        "realm=\"elwood.innosoft.com\",nonce=\"OA6MG9tEQGm2hh\",qop=\"auth\",charset=utf-8,\
         algorithm=md5-sess"
    );
    assert!(!s.is_complete());
    let step = s.evaluate(RFC_RESPONSE.as_bytes(), chris).unwrap();
    assert_eq!(
        step,
        Step::Complete {
            token: b"rspauth=ea40f60335c427b5527b84dbabcdfffd".to_vec(),
            username: "chris".into(),
            authzid: None,
        }
    );
    assert!(s.is_complete());
    // Nothing is accepted after completion (no replay on the same exchange).
    assert!(s.evaluate(RFC_RESPONSE.as_bytes(), chris).is_err());
}

#[test]
fn whitespace_case_and_order_do_not_matter() {
    let reordered = "qop=auth , response=D388DAD90D4BBD760A152321F2143AF7,\r\n \
        Digest-URI=\"imap/elwood.innosoft.com\", cnonce=\"OA6MHXh6VqTrRk\" ,nc=00000001,,\
        nonce=\"OA6MG9tEQGm2hh\",realm=\"elwood.innosoft.com\",username=\"ch\\ris\",\
        charset=utf-8,future-directive=\"ignored\"";
    let s = challenged(rfc_server());
    assert!(matches!(
        s.clone().evaluate(reordered.as_bytes(), chris),
        Ok(Step::Complete { .. })
    ));
}

#[test]
fn wrong_password_unknown_user_and_tampering_fail() {
    let wrong = |user: &str| (user == "chris").then(|| "Secret".to_string());
    assert!(challenged(rfc_server())
        .evaluate(RFC_RESPONSE.as_bytes(), wrong)
        .unwrap_err()
        .0
        .contains("wrong password"));
    assert!(challenged(rfc_server())
        .evaluate(RFC_RESPONSE.as_bytes(), |_| None)
        .is_err());
    for (from, to) in [
        ("OA6MG9tEQGm2hh\",nc", "OA6MG9tEQGm2hX\",nc"), // not our nonce
        ("nc=00000001", "nc=00000002"),                 // not the first use
        ("qop=auth", "qop=auth-int"),                   // not offered
        ("imap/elwood", "smtp/elwood"),                 // another service
        ("realm=\"elwood", "realm=\"other"),            // another realm
        ("cnonce=\"OA6MHXh6VqTrRk\"", "cnonce=\"x\""),  // changes the digest
        ("username=\"chris\"", "username=\"chris\",authzid=\"super\""), // authzid is hashed
        (
            "d388dad90d4bbd760a152321f2143af7",
            "d388dad90d4bbd760a152321f2143af",
        ),
        ("charset=utf-8", "charset=latin1"),
    ] {
        let tampered = RFC_RESPONSE.replace(from, to);
        assert_ne!(tampered, RFC_RESPONSE, "{from}");
        assert!(
            challenged(rfc_server())
                .evaluate(tampered.as_bytes(), chris)
                .is_err(),
            "{to} accepted"
        );
    }
}

#[test]
fn initial_response_and_malformed_tokens_fail_without_panicking() {
    // An initial response is ignored, as the JDK's server does: the challenge follows.
    assert!(matches!(
        rfc_server().evaluate(b"username=\"chris\"", chris),
        Ok(Step::Continue(_))
    ));
    let samples: &[&[u8]] = &[
        b"",
        b",",
        b"=",
        b"username",
        b"username=",
        b"username=\"unterminated",
        b"username=\"a\\",
        b"username=\"a\"x",
        b"username=\"a\",username=\"b\"",
        b"\xff\xfe=\x00",
        b"response=d388dad90d4bbd760a152321f2143af7",
        &[b'a'; 5000],
    ];
    for &sample in samples {
        let r = challenged(rfc_server()).evaluate(sample, chris);
        assert!(r.is_err(), "{sample:?} accepted");
    }
    // Every prefix of a good response, and every single-byte corruption of it.
    for n in 0..RFC_RESPONSE.len() {
        let _ = challenged(rfc_server()).evaluate(&RFC_RESPONSE.as_bytes()[..n], chris);
        let mut b = RFC_RESPONSE.as_bytes().to_vec();
        b[n] ^= 0x80;
        assert!(challenged(rfc_server()).evaluate(&b, chris).is_err());
    }
}

/// What ZooKeeper's Java client sends: service zookeeper, server zk-sasl-md5, the realm
/// offered, and authzid = the user name (it passes the user as the authorization id).
#[test]
fn zookeeper_java_client_shape_with_authzid() {
    let nonce = "c2VydmVyLW5vbmNl";
    let mut s = DigestMd5Server::new("zookeeper", "zk-sasl-md5", nonce.into());
    let pw = |u: &str| (u == "kafka").then(|| "kafka-secret".to_string());
    let Ok(Step::Continue(c)) = s.evaluate(b"", pw) else {
        panic!()
    };
    assert!(String::from_utf8(c)
        .unwrap()
        .starts_with("realm=\"zk-sasl-md5\","));
    // The client's computation, written out independently of the server's helpers.
    let h = |b: &[u8]| hex(&Md5::digest(b));
    let (cnonce, uri) = ("Y2xpZW50", "zookeeper/zk-sasl-md5");
    let mut a1 = Md5::digest(b"kafka:zk-sasl-md5:kafka-secret").to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}:kafka").as_bytes());
    let ha1 = h(&a1);
    let ha2 = h(format!("AUTHENTICATE:{uri}").as_bytes());
    let resp = h(format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes());
    let token = format!(
        "charset=utf-8,username=\"kafka\",realm=\"zk-sasl-md5\",nonce=\"{nonce}\",nc=00000001,\
         cnonce=\"{cnonce}\",digest-uri=\"{uri}\",maxbuf=65536,response={resp},qop=auth,\
         authzid=\"kafka\""
    );
    let Ok(Step::Complete {
        token,
        username,
        authzid,
    }) = s.evaluate(token.as_bytes(), pw)
    else {
        panic!("not accepted")
    };
    let rsp = h(format!(
        "{ha1}:{nonce}:00000001:{cnonce}:auth:{}",
        h(format!(":{uri}").as_bytes())
    )
    .as_bytes());
    assert_eq!(token, format!("rspauth={rsp}").into_bytes());
    assert_eq!(
        (username.as_str(), authzid.as_deref()),
        ("kafka", Some("kafka"))
    );
}

/// RFC 2831 2.1.2.1: with charset=utf-8, names and passwords that fit ISO 8859-1 are hashed
/// in 8859-1; others in UTF-8.
#[test]
fn latin1_conversion() {
    assert_eq!(encode("é"), vec![0xe9]);
    assert_eq!(encode("€"), "€".as_bytes().to_vec());
    assert_eq!(decode(&[0xe9], false).as_deref(), Some("é"));
    assert_eq!(decode("é".as_bytes(), true).as_deref(), Some("é"));
    assert_eq!(decode(&[0xe9], true), None);
}
