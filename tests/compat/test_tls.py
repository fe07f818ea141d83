"""TLS on secureClientPort and the x509 scheme, differential against ZooKeeper 3.8.

A test PKI is made once per module with openssl and Java 17's keytool in a temp dir:
a CA; the server's keystore made by keytool (PKCS12: PBES2/AES-256, HmacSHA256) and
signed by the CA, valid for 127.0.0.1; a PKCS12 trust store made by keytool; client
keystores made by openssl (alice: CN=alice, bob: a multi-RDN subject with an escaped
comma and the x509 super user, carol: CN=carol) and one from another CA (mallory).

Every scenario runs against keeperd and against Debian's ZooKeeper 3.8 with the same
zoo.cfg lines and keystores, through ZooKeeper's own Java client (zkCli's ZooKeeperMain
with zookeeper.client.secure=true and the Netty socket), and the outputs are compared.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import HOST, JAVA_DIR, ZK_JAR, free_port, keeperd_bin

KINDS = ("keeperd", "zookeeper")
NOISE = ("SLF4J:", "Welcome to ZooKeeper!", "JLine support is disabled", "Connecting to")
BOB = "CN=bob,OU=Eng,O=Acme\\, Inc.,C=US"
# netty-codec and netty-resolver are not on zookeeper.jar's manifest Class-Path, and the
# Netty client socket (and ZooKeeper's Netty server) need them.
NETTY = [JAVA_DIR / j for j in ("netty-codec.jar", "netty-resolver.jar",
                                "netty-transport-native-unix-common.jar")]


def run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60, **kw)


@pytest.fixture(scope="module")
def pki():
    if not shutil.which("keytool") or not shutil.which("openssl"):
        pytest.fail("keytool and openssl are needed: run scripts/setup")
    d = Path(tempfile.mkdtemp(prefix="tls-pki-"))
    ext = d / "leaf.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def ca(name):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", d / f"{name}.key", "-out", d / f"{name}.pem", "-subj", f"/CN={name}"])

    def sign(csr, crt, ca_name):
        run(["openssl", "x509", "-req", "-in", csr, "-CA", d / f"{ca_name}.pem",
             "-CAkey", d / f"{ca_name}.key", "-CAcreateserial", "-days", "2",
             "-out", crt, "-extfile", ext])

    ca("ca")
    ca("otherca")
    # The server's keystore, all by keytool: key pair, CSR, the CA's reply.
    ks = ["-keystore", d / "server.p12", "-storepass", "serverpw"]
    run(["keytool", "-genkeypair", "-alias", "server", "-keyalg", "RSA", "-keysize", "2048",
         "-dname", "CN=localhost", "-validity", "2", *ks])
    run(["keytool", "-certreq", "-alias", "server", "-file", d / "server.csr", *ks])
    sign(d / "server.csr", d / "server.crt", "ca")
    run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", d / "ca.pem", *ks])
    run(["keytool", "-importcert", "-noprompt", "-alias", "server", "-file", d / "server.crt",
         *ks])
    run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", d / "ca.pem",
         "-keystore", d / "trust.p12", "-storepass", "trustpw"])
    for user, subj, ca_name in [
        ("alice", "/CN=alice", "ca"),
        ("bob", "/C=US/O=Acme, Inc./OU=Eng/CN=bob", "ca"),
        ("carol", "/CN=carol", "ca"),
        ("mallory", "/CN=mallory", "otherca"),
    ]:
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d / f"{user}.key",
             "-out", d / f"{user}.csr", "-subj", subj])
        sign(d / f"{user}.csr", d / f"{user}.crt", ca_name)
        run(["openssl", "pkcs12", "-export", "-in", d / f"{user}.crt", "-inkey",
             d / f"{user}.key", "-certfile", d / f"{ca_name}.pem", "-name", user,
             "-out", d / f"{user}.p12", "-passout", f"pass:{user}pw"])
    # A Java keystore, to check that keeperd refuses it with the conversion command.
    run(["keytool", "-genkeypair", "-alias", "x", "-keyalg", "RSA", "-dname", "CN=x",
         "-storetype", "JKS", "-keystore", d / "old.jks", "-storepass", "oldpass1"])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_cfg(pki, **over):
    cfg = {
        "secureClientPort": str(free_port()),
        "secureClientPortAddress": HOST,
        # ZooKeeper serves TLS only with its Netty connection factory and needs the x509
        # provider named; keeperd accepts both lines (x509 is built in).
        "serverCnxnFactory": "org.apache.zookeeper.server.NettyServerCnxnFactory",
        "authProvider.x509": "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
        "ssl.keyStore.location": str(pki / "server.p12"),
        "ssl.keyStore.password": "serverpw",
        "ssl.trustStore.location": str(pki / "ca.pem"),
        "ssl.trustStore.type": "PEM",
        # A properties file: the backslash before the comma is itself escaped.
        "X509AuthenticationProvider.superUser": BOB.replace("\\", "\\\\"),
    }
    cfg.update(over)
    return cfg


def java_client(server, user, commands, pki, secure=True, timeout=60):
    """ZooKeeperMain over TLS as `user` (None: no client certificate); merged output."""
    cp = [str(ZK_JAR)] + [str(j) for j in NETTY if j.exists()]
    props = []
    if secure:
        props += ["-Dzookeeper.client.secure=true",
                  "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
                  f"-Dzookeeper.ssl.trustStore.location={pki / 'trust.p12'}",
                  "-Dzookeeper.ssl.trustStore.password=trustpw"]
        if user:
            props += [f"-Dzookeeper.ssl.keyStore.location={pki / (user + '.p12')}",
                      f"-Dzookeeper.ssl.keyStore.password={user}pw"]
    port = server.extra_cfg["secureClientPort"] if secure else server.port
    script = "".join(c + "\n" for c in list(commands) + ["quit"])
    res = subprocess.run(
        ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx128m", "-cp",
         ":".join(cp), *props, "org.apache.zookeeper.ZooKeeperMain",
         "-server", f"{HOST}:{port}"],
        input=script.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=timeout)
    lines = [ln for ln in res.stdout.decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith(NOISE)]
    return connected_first(lines)


def connected_first(lines):
    """zkCli prints the SyncConnected event from its event thread while the main thread
    already runs the piped commands, so the two interleave by timing, on either server:
    put the event first, where it happened. The event is two lines ("WATCHER::", then the
    event), and a command's output can land between them too."""
    sync = "WatchedEvent state:SyncConnected type:None path:null"
    if sync in lines:
        i = lines.index(sync)
        heads = [j for j in range(i) if lines[j] == "WATCHER::"]
        if heads:
            w = heads[-1]
            lines = ["WATCHER::", sync] + lines[:w] + lines[w + 1:i] + lines[i + 1:]
    return lines


def tls_word(server, word, pki, user="alice"):
    """A four-letter word over TLS (openssl s_client); what comes back."""
    args = ["openssl", "s_client", "-quiet", "-connect",
            f"{HOST}:{server.extra_cfg['secureClientPort']}", "-CAfile", str(pki / "ca.pem")]
    if user:
        args += ["-cert", str(pki / f"{user}.crt"), "-key", str(pki / f"{user}.key")]
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        p.stdin.write(word.encode())
        p.stdin.flush()
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out.decode("utf-8", "replace")


def both(servers, cfg, scenario):
    """Runs `scenario(server)` on ZooKeeper and keeperd with the same zoo.cfg lines."""
    out = {}
    for kind in KINDS:
        srv = servers(kind, dict(cfg, secureClientPort=str(free_port())))
        out[kind] = scenario(srv)
        srv.stop()
    assert out["keeperd"] == out["zookeeper"], (
        "keeperd and ZooKeeper differ:\n--- zookeeper\n" + "\n".join(map(str, out["zookeeper"]))
        + "\n--- keeperd\n" + "\n".join(map(str, out["keeperd"])))
    return out["keeperd"]


def test_x509_identity_acl_and_super_user(servers, pki):
    def scenario(srv):
        return [
            java_client(srv, "alice", [
                "create /tls hello", "get /tls", "whoami",
                "create /tls/mine secret x509:CN=alice:cdrwa", "getAcl /tls/mine",
                "get /tls/mine", "create /tls/auth a auth:x:cdra", "getAcl /tls/auth",
            ], pki),
            # Another verified client does not pass alice's x509 ACL ...
            java_client(srv, "carol", ["whoami", "get /tls/mine", "set /tls/mine x"], pki),
            # ... the x509 super user does, and whoami names it (escaped comma and all).
            java_client(srv, "bob", ["whoami", "get /tls/mine", "set /tls/mine x"], pki),
            # The plain client port keeps working beside the secure one; its clients have
            # no certificate, so no x509 id.
            java_client(srv, None, ["get /tls", "get /tls/mine", "whoami"], pki, secure=False),
        ]

    runs = both(servers, tls_cfg(pki), scenario)
    alice, carol, bob, plain = runs
    assert "x509: CN=alice" in alice and "Created /tls/mine" in alice, alice
    assert "secret" in alice and "'x509,'CN=alice" in alice, alice
    assert carol.count("Insufficient permission : /tls/mine") == 2, carol
    assert f"x509: {BOB}" in bob and "super: " in bob and "secret" in bob, bob
    assert "hello" in plain and "Insufficient permission : /tls/mine" in plain, plain


def test_clients_without_a_trusted_certificate_are_refused(servers, pki):
    def scenario(srv):
        return [
            java_client(srv, None, ["ls /"], pki, timeout=60),
            java_client(srv, "mallory", ["ls /"], pki, timeout=60),
            tls_word(srv, "ruok", pki, user=None),
            tls_word(srv, "ruok", pki, user="alice"),
        ]

    nocert, mallory, ruok_nocert, ruok = both(servers, tls_cfg(pki), scenario)
    assert "KeeperErrorCode = ConnectionLoss for /" in nocert, nocert
    assert "KeeperErrorCode = ConnectionLoss for /" in mallory, mallory
    # Four-letter words are answered on the TLS port, after a handshake that passed.
    assert ruok_nocert == "" and ruok == "imok", (ruok_nocert, ruok)


def test_client_auth_want_serves_anonymous_clients(servers, pki):
    def scenario(srv):
        return [
            java_client(srv, None, ["create /w x", "whoami"], pki),
            java_client(srv, "alice", ["whoami"], pki),
        ]

    anon, alice = both(servers, tls_cfg(pki, **{"ssl.clientAuth": "want"}), scenario)
    assert "Created /w" in anon and not any(ln.startswith("x509") for ln in anon), anon
    assert "x509: CN=alice" in alice, alice


def keeperd_refuses(tmp, lines):
    """keeperd's exit status and output for a zoo.cfg that must not start."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    cfg = tmp / "zoo.cfg"
    text = f"dataDir={data}\nclientPort={free_port()}\n" + "".join(f"{k}={v}\n" for k, v in lines)
    cfg.write_text(text)
    res = subprocess.run([keeperd_bin(), "start-foreground", str(cfg)], cwd=tmp,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return res.returncode, res.stdout.decode("utf-8", "replace")


def test_bad_keystores_stop_start_up_naming_the_line(pki, tmp_path):
    base = list(tls_cfg(pki).items())

    def with_(key, value):
        return [(k, v) for k, v in base if k != key] + [(key, value)]

    cases = [
        (with_("ssl.keyStore.password", "wrong"), "ssl.keyStore.password", "wrong password"),
        (with_("ssl.keyStore.location", str(pki / "missing.p12")), "ssl.keyStore.location",
         "cannot read"),
        (with_("ssl.keyStore.location", str(pki / "old.jks")), "ssl.keyStore.location",
         "-deststoretype pkcs12"),
        (with_("ssl.keyStore.type", "BKS"), "ssl.keyStore.type", "not a keystore type"),
        (with_("ssl.clientAuth", "maybe"), "ssl.clientAuth", "need, want or none"),
    ]
    for lines, key, words in cases:
        rc, out = keeperd_refuses(tmp_path, lines)
        line_no = 3 + [k for k, _ in lines].index(key)
        assert rc != 0, out
        assert f"zoo.cfg:{line_no}: {key}:" in out and words in out, (key, out)
