//! `DataTree` tests of ACLs: the digest, world, ip, super and auth schemes, what each
//! permission guards, getACL's redaction, and the skipACL option.

use super::*;

#[test]
fn acl_digest_world_ip_super_auth() {
    let mut h = H::new();
    let alice = Id::new("digest", "alice:hash");
    let bob = Id::new("digest", "bob:hash");
    // "auth" expands to the digest ids of the requester.
    let r = h.create_acl(
        "/alice",
        acl(perms::ALL, "auth", ""),
        std::slice::from_ref(&alice),
    );
    assert_eq!(
        r,
        Ok(Response::Create {
            path: "/alice".into()
        })
    );
    assert_eq!(
        h.t.get_acl("/alice", std::slice::from_ref(&alice))
            .unwrap()
            .0,
        acl(perms::ALL, "digest", "alice:hash")
    );
    // "auth" with no digest id (ip does not count) is InvalidAcl.
    let ip = Id::new("ip", "127.0.0.1");
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "auth", ""), std::slice::from_ref(&ip)),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "digest", "nocolon"), &[]),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "world", "nobody"), &[]),
        Err(ZkError::InvalidAcl)
    );
    assert_eq!(
        h.create_acl("/x", acl(perms::ALL, "sasl", "who"), &[]),
        Err(ZkError::InvalidAcl)
    );

    // NoAuth on every operation for bob, allowed for alice.
    let ba = [bob.clone()];
    assert_eq!(h.t.get_data("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.get_children("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.get_acl("/alice", &ba), Err(ZkError::NoAuth));
    assert_eq!(h.t.all_children_number("/alice", &ba), Err(ZkError::NoAuth));
    assert!(h.t.exists("/alice").is_some(), "exists is unchecked");
    assert!(h.t.get_data("/alice", std::slice::from_ref(&alice)).is_ok());
    let set = h.req_as(S1, &ba, set_req("/alice", Some(b"x"), -1)).result;
    assert_eq!(set, Err(ZkError::NoAuth));
    let mk = |p: &str| Request::Create {
        op: OpCode::Create,
        req: CreateRequest {
            path: p.into(),
            data: None,
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        },
    };
    assert_eq!(
        h.req_as(S1, &ba, mk("/alice/c")).result,
        Err(ZkError::NoAuth)
    );
    assert!(h
        .req_as(S1, std::slice::from_ref(&alice), mk("/alice/c"))
        .result
        .is_ok());
    let del = Request::Delete(DeleteRequest {
        path: "/alice/c".into(),
        version: -1,
    });
    assert_eq!(h.req_as(S1, &ba, del.clone()).result, Err(ZkError::NoAuth));
    let setacl = |version| {
        Request::SetAcl(SetAclRequest {
            path: "/alice".into(),
            acl: Acl::read_unsafe(),
            version,
        })
    };
    assert_eq!(h.req_as(S1, &ba, setacl(-1)).result, Err(ZkError::NoAuth));
    let check = Request::Check(CheckVersionRequest {
        path: "/alice".into(),
        version: -1,
    });
    assert_eq!(
        h.req_as(S1, &ba, check.clone()).result,
        Err(ZkError::NoAuth)
    );
    // super bypasses everything.
    let sup = [Id::new("super", "")];
    assert!(h.req_as(S1, &sup, del).result.is_ok());
    assert!(h.t.get_data("/alice", &sup).is_ok());
    // setACL: aversion check and +1.
    let aa = [alice.clone()];
    assert_eq!(
        h.req_as(S1, &aa, setacl(3)).result,
        Err(ZkError::BadVersion)
    );
    let r = h.req_as(S1, &aa, setacl(0)).result.unwrap();
    assert!(matches!(r, Response::Stat(s) if s.aversion == 1));
    assert_eq!(h.t.get_acl("/alice", &[]).unwrap().0, Acl::read_unsafe());
    // World read-only now: anybody reads, nobody writes (not even alice).
    assert!(h.t.get_data("/alice", &[]).is_ok());
    let set = h.req_as(S1, &aa, set_req("/alice", None, -1)).result;
    assert_eq!(set, Err(ZkError::NoAuth));

    // ip ACL with a mask.
    h.create_acl("/net", acl(perms::ALL, "ip", "10.1.0.0/16"), &[])
        .unwrap();
    assert!(h.t.get_data("/net", &[Id::new("ip", "10.1.200.3")]).is_ok());
    assert_eq!(
        h.t.get_data("/net", &[Id::new("ip", "10.2.0.1")]),
        Err(ZkError::NoAuth)
    );
    assert_eq!(h.t.get_data("/net", &[]), Err(ZkError::NoAuth));

    // getACL with READ but no ADMIN hides digest hashes.
    let mixed = vec![
        Acl {
            perms: perms::READ,
            id: Id::new("world", "anyone"),
        },
        Acl {
            perms: perms::ALL,
            id: alice.clone(),
        },
    ];
    h.create_acl("/mixed", mixed.clone(), &[]).unwrap();
    let seen = h.t.get_acl("/mixed", &[]).unwrap().0;
    assert_eq!(seen[1].id.id, "alice:x");
    assert_eq!(h.t.get_acl("/mixed", &[alice]).unwrap().0, mixed);
}

#[test]
fn skip_acl_option() {
    let mut h = H::with(TreeOptions {
        skip_acl: true,
        ..Default::default()
    });
    h.create_acl("/locked", acl(perms::READ, "digest", "u:h"), &[])
        .unwrap();
    assert!(h.t.get_data("/locked", &[]).is_ok());
    assert!(h.set("/locked", Some(b"x"), -1).is_ok());
    assert!(h.create("/locked/c", None, 0).is_ok());
    // Invalid ACLs are still refused.
    assert_eq!(h.create_acl("/x", vec![], &[]), Err(ZkError::InvalidAcl));
}
