//! keeperctl's ACL and identity commands: `getAcl`, `setAcl` (`-R` over a subtree),
//! `addauth` and `whoami`; and zkCli's ACL syntax, `scheme:id:perms[,...]` with permissions
//! from `crdwa`.

use zookeeper_client::{Acl, AuthId, Client, Permission};

use super::znodes::subtree;
use super::{explain, format_stat, print, Failure, Parsed};

/// Runs one ACL or identity command `name` (already parsed into `p`; `path` is its first
/// argument).
pub(super) async fn execute(
    client: &Client,
    name: &str,
    p: &Parsed,
    path: &str,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match name {
        "getAcl" => {
            let (acls, stat) = client.get_acl(path).await.map_err(|e| explain(e, path))?;
            for acl in &acls {
                print(&mut out, &format!("'{},'{}", acl.scheme(), acl.id()));
                print(&mut out, &format!(": {}", perm_letters(acl.permission())));
            }
            if p.has('s') {
                print(&mut out, &format_stat(&stat));
            }
        }
        "setAcl" => {
            let acls = parse_acl(&p.args[1])?;
            let targets = if p.has('R') {
                subtree(client, path).await?
            } else {
                vec![path.to_string()]
            };
            for target in &targets {
                let stat = client
                    .set_acl(target, &acls, p.version)
                    .await
                    .map_err(|e| explain(e, target))?;
                if p.has('s') && target == path {
                    print(&mut out, &format_stat(&stat));
                }
            }
        }
        "addauth" => {
            let (scheme, auth) = (&p.args[0], &p.args[1]);
            client
                .auth(scheme, auth.as_bytes())
                .await
                .map_err(|e| Failure::op(format!("addauth {scheme}: {e}")))?;
        }
        "whoami" => {
            let users = client
                .list_auth_users()
                .await
                .map_err(|e| Failure::op(format!("whoami: {e}")))?;
            print(&mut out, "Auth scheme: User");
            for user in users {
                print(&mut out, &format!("{}: {}", user.scheme(), user.user()));
            }
        }
        other => return Err(Failure::usage(format!("unknown command: {other}"))),
    }
    Ok(())
}

/// zkCli's `scheme:id:perms[,scheme:id:perms]`; the id may contain ':' (digest user:hash).
pub(super) fn parse_acl(text: &str) -> Result<Vec<Acl>, Failure> {
    let mut acls = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (Some(first), Some(last)) = (part.find(':'), part.rfind(':')) else {
            return Err(Failure::usage(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        };
        if first == last {
            return Err(Failure::usage(format!(
                "{part} does not have the form scheme:id:perm"
            )));
        }
        let scheme = &part[..first];
        let id = &part[first + 1..last];
        let perms = parse_perms(&part[last + 1..])?;
        acls.push(Acl::new(perms, AuthId::new(scheme, id)));
    }
    if acls.is_empty() {
        return Err(Failure::usage("empty acl"));
    }
    Ok(acls)
}

fn parse_perms(letters: &str) -> Result<Permission, Failure> {
    let mut perms = Permission::NONE;
    for c in letters.chars() {
        perms = perms
            | match c.to_ascii_lowercase() {
                'r' => Permission::READ,
                'w' => Permission::WRITE,
                'c' => Permission::CREATE,
                'd' => Permission::DELETE,
                'a' => Permission::ADMIN,
                _ => {
                    return Err(Failure::usage(format!(
                        "unknown permission {c:?}: use letters from crdwa"
                    )))
                }
            };
    }
    Ok(perms)
}

/// ZKUtil.getPermString order: c d r w a.
fn perm_letters(perms: Permission) -> String {
    [
        (Permission::CREATE, 'c'),
        (Permission::DELETE, 'd'),
        (Permission::READ, 'r'),
        (Permission::WRITE, 'w'),
        (Permission::ADMIN, 'a'),
    ]
    .into_iter()
    .filter(|(p, _)| perms.has(*p))
    .map(|(_, c)| c)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acls_like_zkcli() {
        let acls = parse_acl("world:anyone:cdrwa,digest:u:abc=:rw,ip:10.0.0.0/8:r").unwrap();
        assert_eq!(acls.len(), 3);
        assert_eq!((acls[1].scheme(), acls[1].id()), ("digest", "u:abc="));
        assert_eq!(perm_letters(acls[0].permission()), "cdrwa");
        assert_eq!(perm_letters(acls[1].permission()), "rw");
        assert_eq!(acls[2].id(), "10.0.0.0/8");
        assert!(parse_acl("world:anyone").is_err());
        assert!(parse_acl("world:anyone:x").is_err());
    }
}
