//! A certificate's subject as ZooKeeper's X509AuthenticationProvider names a client:
//! `X509Certificate.getSubjectX500Principal().getName()`, the RFC 2253 form. Its rules, as
//! Java applies them:
//! - RDNs in reverse order of the DER (most specific first), joined by `,` without spaces;
//!   attributes of one multi-valued RDN joined by `+`;
//! - the keywords CN, C, L, ST, O, OU, STREET, DC and UID; any other attribute type is its
//!   dotted OID and its value `#` + the hex of the value's DER encoding (so emailAddress is
//!   `1.2.840.113549.1.9.1=#16...`);
//! - string values with `, + " \ < > ;` escaped by a backslash, as are a leading `#` or
//!   space and a trailing space.

use x509_parser::prelude::{FromDer, X509Certificate};

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `#` + hex of the DER encoding (tag, length, contents) of a primitive universal value.
fn hex_der(tag: u32, data: &[u8]) -> String {
    let mut der = vec![tag as u8];
    let len = data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(data);
    let mut s = String::from("#");
    for b in der {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The RFC 2253 subject of a DER certificate; None when it does not parse.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type().to_id_string();
                    match (keyword(&oid), atv.as_str()) {
                        (Some(k), Ok(v)) => format!("{k}={}", escape(v)),
                        (Some(k), Err(_)) => {
                            format!("{k}={}", hex_der(atv.attr_value().tag().0, atv.as_slice()))
                        }
                        (None, _) => format!(
                            "{oid}={}",
                            hex_der(atv.attr_value().tag().0, atv.as_slice())
                        ),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// Names a certificate gives its holder: subject common names and DNS subjectAltNames.
pub fn names(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(cert_der) else {
        return Vec::new();
    };
    let mut out: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                out.push(d.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rfc_2253() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#a"), "\\#a");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn hex_der_encodes_tag_and_length() {
        assert_eq!(hex_der(0x16, b"a@b"), "#1603614062");
        assert_eq!(hex_der(0x0c, &[b'x'; 200])[..7], *"#0c81c8");
    }
}
