"""Client SASL (DIGEST-MD5 through JAAS), as Kafka uses it, against ZooKeeper 3.8 and keeperd.

ZooKeeper's own Java client (Debian's zookeeper.jar) runs sasl/SaslProbe.java with a JAAS
`Client`-style section (DigestLoginModule username/password) per user. Each server gets
the same zoo.cfg (authProvider.1=...SASLAuthenticationProvider, superUser) and the same
JAAS `Server` section: ZooKeeper through -Djava.security.auth.login.config on its java
command line, keeperd through the same option in SERVER_JVMFLAGS. The same sequence runs
on both (a login that creates a znode with a `sasl:` ACL, an anonymous client, another
user, a wrong password, an unknown user, a superUser; then enforced authentication with
enforce.auth.* and with sessionRequireClientSASLAuth) and the transcripts must be equal,
and equal to what is written here.
"""

import hashlib
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import HOST, SASL_PROVIDER, ZK_JAR, sasl_client_flags, sasl_server_flags

pytestmark = pytest.mark.timeout(300)

SRC = Path(__file__).resolve().parent / "sasl" / "SaslProbe.java"


@pytest.fixture(scope="module")
def probe_classes():
    """SaslProbe compiled into a temp dir, reused while the source is unchanged."""
    javac = shutil.which("javac")
    if not javac or not ZK_JAR.exists():
        pytest.fail("javac or zookeeper.jar missing: run scripts/setup")
    h = hashlib.sha256(SRC.read_bytes() + str(ZK_JAR.resolve()).encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"keeperd-compat-saslprobe-{h}"
    if (out / "SaslProbe.class").exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix="saslprobe-build-"))
    res = subprocess.run(
        [javac, "-nowarn", "-d", str(tmp), "-cp", str(ZK_JAR), str(SRC)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
    )
    if res.returncode != 0:
        pytest.fail("javac SaslProbe failed:\n" + res.stdout.decode(errors="replace"))
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def probe(classes, jaas_dir, srv, section, *commands):
    """Runs SaslProbe as `section` (None: no SASL) against `srv`; returns its lines."""
    java = shutil.which("java")
    props = ["-Dzookeeper.sasl.client=false"]
    if section:
        props = sasl_client_flags(jaas_dir, section)
    cmd = [java, "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *props,
           "-cp", f"{ZK_JAR}:{classes}", "SaslProbe", f"{HOST}:{srv.port}", *commands]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    out = res.stdout.decode(errors="replace").splitlines()
    assert res.returncode == 0, f"{section}: exit {res.returncode}\n{out}\n{res.stderr[-3000:]}"
    return [f"{section or 'anonymous'}: {line}" for line in out]


def start(servers, kind, jaas_dir, extra):
    cfg = {"authProvider.1": SASL_PROVIDER, "superUser": "admin", **extra}
    return servers(kind, cfg, jvm_flags=sasl_server_flags(jaas_dir))


def acl_sequence(classes, jaas_dir, srv):
    run = lambda section, *cmds: probe(classes, jaas_dir, srv, section, *cmds)  # noqa: E731
    return (
        run("kafka", "whoami", "create /kafka sasl:kafka:31 secret", "get /kafka",
            "getAcl /kafka", "create /mine auth::31 x", "getAcl /mine",
            "create /bad sasl:a@b@c:31")
        + run(None, "whoami", "get /kafka", "get /mine", "exists /kafka",
              "setAcl /kafka world:anyone:31", "create /kafka/child world:anyone:31")
        + run("other", "whoami", "get /kafka", "setAcl /kafka world:anyone:31")
        + run("wrong", "get /kafka")
        + run("unknown", "get /kafka")
        + run("admin", "whoami", "get /kafka", "get /mine")
    )


EXPECTED_ACLS = [
    "kafka: whoami -> [ip:127.0.0.1, sasl:kafka]",
    "kafka: create /kafka sasl:kafka:31 secret -> /kafka",
    "kafka: get /kafka -> secret",
    "kafka: getAcl /kafka -> sasl:kafka:31",
    "kafka: create /mine auth::31 x -> /mine",
    "kafka: getAcl /mine -> sasl:kafka:31",
    "kafka: create /bad sasl:a@b@c:31 -> INVALIDACL",
    "kafka: events [SyncConnected, SaslAuthenticated]",
    "anonymous: whoami -> [ip:127.0.0.1]",
    "anonymous: get /kafka -> NOAUTH",
    "anonymous: get /mine -> NOAUTH",
    "anonymous: exists /kafka -> true",
    "anonymous: setAcl /kafka world:anyone:31 -> NOAUTH",
    "anonymous: create /kafka/child world:anyone:31 -> NOAUTH",
    "anonymous: events [SyncConnected]",
    "other: whoami -> [ip:127.0.0.1, sasl:other]",
    "other: get /kafka -> NOAUTH",
    "other: setAcl /kafka world:anyone:31 -> NOAUTH",
    "other: events [SyncConnected, SaslAuthenticated]",
    "wrong: get /kafka -> AUTHFAILED",
    "wrong: events [SyncConnected, AuthFailed]",
    "unknown: get /kafka -> AUTHFAILED",
    "unknown: events [SyncConnected, AuthFailed]",
    "admin: whoami -> [ip:127.0.0.1, sasl:admin, super:]",
    "admin: get /kafka -> secret",
    "admin: get /mine -> x",
    "admin: events [SyncConnected, SaslAuthenticated]",
]


def test_sasl_logins_and_acls_match_zookeeper(servers, probe_classes, jaas_dir):
    transcripts = {}
    for kind in ("zookeeper", "keeperd"):
        srv = start(servers, kind, jaas_dir, {})
        transcripts[kind] = acl_sequence(probe_classes, jaas_dir, srv)
        srv.stop()
    assert transcripts["keeperd"] == transcripts["zookeeper"]
    assert transcripts["zookeeper"] == EXPECTED_ACLS


def enforce_sequence(classes, jaas_dir, srv):
    run = lambda section, *cmds: probe(classes, jaas_dir, srv, section, *cmds)  # noqa: E731
    return (
        run(None, "exists /", "sleep 500")
        + run("kafka", "create /e sasl:kafka:31 e", "get /e", "whoami")
        + run("wrong", "get /e")
        + run("other", "get /e", "exists /e")
    )


EXPECTED_ENFORCED = [
    "anonymous: exists / -> SESSIONCLOSEDREQUIRESASLAUTH",
    "anonymous: sleep 500 -> ok",
    "anonymous: events [SyncConnected, Disconnected]",
    "kafka: create /e sasl:kafka:31 e -> /e",
    "kafka: get /e -> e",
    "kafka: whoami -> [ip:127.0.0.1, sasl:kafka]",
    "kafka: events [SyncConnected, SaslAuthenticated]",
    "wrong: get /e -> AUTHFAILED",
    "wrong: events [SyncConnected, AuthFailed]",
    "other: get /e -> NOAUTH",
    "other: exists /e -> true",
    "other: events [SyncConnected, SaslAuthenticated]",
]


@pytest.mark.parametrize(
    "extra",
    [
        {"enforce.auth.enabled": "true", "enforce.auth.schemes": "sasl"},
        {"sessionRequireClientSASLAuth": "true"},
    ],
    ids=["enforce.auth", "sessionRequireClientSASLAuth"],
)
def test_enforced_sasl_matches_zookeeper(servers, probe_classes, jaas_dir, extra):
    transcripts = {}
    for kind in ("zookeeper", "keeperd"):
        srv = start(servers, kind, jaas_dir, extra)
        transcripts[kind] = enforce_sequence(probe_classes, jaas_dir, srv)
        srv.stop()
    assert transcripts["keeperd"] == transcripts["zookeeper"]
    assert transcripts["zookeeper"] == EXPECTED_ENFORCED


def test_sasl_identities_travel_in_a_keeperd_ensemble(tmp_path, probe_classes, jaas_dir):
    """A SASL login on a follower: its write goes to the leader with the connection's
    `sasl:` identity (the leader applies the ACL with it), every member then enforces the
    ACL, and a client that moves to another member logs in again there. The JAAS file comes
    from keeperd's own zoo.cfg key here."""
    from conftest import Ensemble

    cfg = {
        "tickTime": "200",
        "authProvider.1": SASL_PROVIDER,
        "keeperd.jaasConfigFile": str(jaas_dir / "server.conf"),
    }
    ens = Ensemble(tmp_path, 3, cfg).start()
    try:
        leader = ens.leader()
        followers = [m for m in ens.members if m is not leader]
        run = lambda srv, section, *cmds: probe(  # noqa: E731
            probe_classes, jaas_dir, srv, section, *cmds
        )
        assert run(followers[0], "kafka", "create /ens sasl:kafka:31 v", "get /ens",
                   "getAcl /ens") == [
            "kafka: create /ens sasl:kafka:31 v -> /ens",
            "kafka: get /ens -> v",
            "kafka: getAcl /ens -> sasl:kafka:31",
            "kafka: events [SyncConnected, SaslAuthenticated]",
        ]
        for srv in ens.members:
            assert run(srv, "kafka", "get /ens")[0] == "kafka: get /ens -> v"
            assert run(srv, None, "get /ens")[0] == "anonymous: get /ens -> NOAUTH"
            assert run(srv, "other", "get /ens")[0] == "other: get /ens -> NOAUTH"
        # A follower forwards the write of an authenticated session to the leader, which
        # checks the ACL with the identities sent along: another user may not change it.
        assert run(followers[1], "other", "setAcl /ens world:anyone:31")[0] == \
            "other: setAcl /ens world:anyone:31 -> NOAUTH"
    finally:
        ens.stop()


def _frame(payload):
    return struct.pack(">i", len(payload)) + payload


def _read_frame(sock):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    head = exactly(4)
    if head is None:
        return None
    return exactly(struct.unpack(">i", head)[0])


def raw_sasl(srv, tokens):
    """Connects with a raw ConnectRequest, sends each token as a sasl request (xid 1, 2,
    ...), returns [(xid, err, rest of the body)] and whether the server then closed."""
    with socket.create_connection((HOST, srv.port), timeout=10) as s:
        s.sendall(_frame(struct.pack(">iqiqi16s?", 0, 0, 10000, 0, 16, b"\0" * 16, False)))
        assert _read_frame(s) is not None
        out = []
        for xid, token in enumerate(tokens, 1):
            body = struct.pack(">ii", xid, 102)
            body += struct.pack(">i", -1) if token is None else struct.pack(">i", len(token)) + token
            s.sendall(_frame(body))
            reply = _read_frame(s)
            if reply is None:
                break
            rxid, _zxid, err = struct.unpack(">iqi", reply[:16])
            # An error's body (the null token) whole; of a challenge, whether there is one.
            out.append((rxid, err, reply[16:] if err else len(reply) > 20))
        try:
            closed = s.recv(1) == b""
        except socket.timeout:
            closed = False
        return out, closed


def test_malformed_sasl_tokens_are_refused_as_zookeeper_does(servers, jaas_dir):
    """Garbage where the digest-response belongs: AUTHFAILED with a null token, then the
    connection closes, on both servers. A first token with content is answered with the
    challenge anyway; a null token closes the connection unanswered. The server keeps
    serving."""
    garbage = [
        b"username=\"kafka\",response=" + b"z" * 32,
        b"\xff\xfe\x00=,,\"",
        b"a" * 5000,
        b"",
    ]
    results = {}
    for kind in ("zookeeper", "keeperd"):
        srv = start(servers, kind, jaas_dir, {})
        got = []
        for token in garbage:
            got.append(raw_sasl(srv, [b"", token]))
        got.append(raw_sasl(srv, [b"username=\"kafka\""]))
        got.append(raw_sasl(srv, [None, b"x"]))
        assert srv.four("ruok") == "imok"
        results[kind] = got
        srv.stop()
    assert results["keeperd"] == results["zookeeper"]
    challenge_ok = (1, 0)
    for replies, closed in results["zookeeper"][:4]:
        assert replies[0][:2] == challenge_ok and replies[1] == (2, -115, b"\xff\xff\xff\xff")
        assert closed
    # A first token that is not empty is ignored: the challenge follows.
    assert results["zookeeper"][4] == ([challenge_ok + (True,)], False)
    # A null token: the connection closes without an answer.
    assert results["zookeeper"][5] == ([], True)


def kazoo_sequence(srv):
    """kazoo with SASL DIGEST-MD5 (pure-sasl): login, a `sasl:` ACL, an anonymous reader,
    a wrong password."""
    from kazoo.client import KazooClient
    from kazoo.security import ACL, Id, Permissions

    def client(**sasl):
        kw = {"sasl_options": {"mechanism": "DIGEST-MD5", **sasl}} if sasl else {}
        return KazooClient(hosts=srv.hosts(), timeout=5,
                           connection_retry={"max_tries": 1}, **kw)

    out = []
    c = client(username="kafka", password="kafka-secret")
    c.start(timeout=10)
    out.append(c.create("/kz", b"v", acl=[ACL(Permissions.ALL, Id("sasl", "kafka"))]))
    out.append(c.get("/kz")[0])
    out.append([(a.id.scheme, a.id.id, a.perms) for a in c.get_acls("/kz")[0]])
    c.stop()
    c.close()
    anon = client()
    anon.start(timeout=10)
    try:
        anon.get("/kz")
        out.append("anonymous read")
    except Exception as exc:  # noqa: BLE001 - the exception type is the outcome
        out.append(type(exc).__name__)
    anon.stop()
    anon.close()
    bad = client(username="kafka", password="wrong")
    try:
        bad.start(timeout=5)
        bad.get("/kz")
        out.append("wrong password read")
    except Exception as exc:  # noqa: BLE001
        out.append(type(exc).__name__)
    finally:
        bad.stop()
        bad.close()
    return out


def test_kazoo_sasl_digest_md5_matches_zookeeper(servers, jaas_dir):
    try:
        import puresasl  # noqa: F401
    except ImportError:
        pytest.fail("pure-sasl missing: run scripts/setup")
    outcomes = {}
    for kind in ("zookeeper", "keeperd"):
        srv = start(servers, kind, jaas_dir, {})
        outcomes[kind] = kazoo_sequence(srv)
        srv.stop()
    assert outcomes["keeperd"] == outcomes["zookeeper"]
    assert outcomes["zookeeper"] == [
        "/kz", b"v", [("sasl", "kafka", 31)], "NoAuthError", "AuthFailedError"
    ]
