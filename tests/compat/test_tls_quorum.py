"""Mutual TLS between keeperd servers (sslQuorum=true with the ssl.quorum.* keys).

A test PKI is made with openssl in a temp dir: a CA, one certificate per server
(CN=server.N, subjectAltName IP:127.0.0.1) kept as a PEM keystore (certificate and key
in one file) in the server's own directory, and a certificate from another CA. The
zoo.cfg lines are the same on every server; `ssl.quorum.keyStore.location` is relative,
so each server (run with its directory as the working directory) finds its own.

What is checked: the ensemble elects a leader and serves writes over TLS; a connection
that does not complete a TLS handshake with a certificate the trust store vouches for is
closed before any frame is read; a server's valid certificate used to claim another
server's id is refused (keeperd binds certificates naming `server.N` to id N), and so is
a certificate issued for another address (hostname verification).
"""

import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import HOST, Ensemble, make_client


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=60)


@pytest.fixture(scope="module")
def ensemble():
    d = Path(tempfile.mkdtemp(prefix="tls-quorum-"))
    pki = d / "pki"
    pki.mkdir()
    ext = pki / "leaf.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n")
    # server.2's name on a certificate for another address (rule 2: hostnameVerification).
    (pki / "elsewhere.ext").write_text(ext.read_text().replace("IP:127.0.0.1", "IP:10.9.9.9"))
    for ca in ("ca", "otherca"):
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", pki / f"{ca}.key", "-out", pki / f"{ca}.pem", "-subj", f"/CN={ca}"])
    for name, cn, ca, extfile in [
        ("server.1", "server.1", "ca", ext),
        ("server.2", "server.2", "ca", ext),
        ("server.3", "server.3", "ca", ext),
        ("mallory", "mallory", "otherca", ext),
        ("elsewhere", "server.2", "ca", pki / "elsewhere.ext"),
    ]:
        run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", pki / f"{name}.key",
             "-out", pki / f"{name}.csr", "-subj", f"/CN={cn}"])
        run(["openssl", "x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / f"{ca}.pem",
             "-CAkey", pki / f"{ca}.key", "-CAcreateserial", "-days", "2",
             "-out", pki / f"{name}.crt", "-extfile", extfile])
    ens = Ensemble(d, n=3, extra_cfg={
        "sslQuorum": "true",
        "ssl.quorum.keyStore.location": "quorum.pem",
        "ssl.quorum.trustStore.location": str(pki / "ca.pem"),
    })
    for srv in ens.members:
        name = f"server.{srv.sid}"
        (srv.workdir / "quorum.pem").write_text(
            (pki / f"{name}.crt").read_text() + (pki / f"{name}.key").read_text())
    ens.pki = pki
    try:
        ens.start()
        yield ens
    finally:
        ens.stop()
        shutil.rmtree(d, ignore_errors=True)


def hello(sender, to):
    """The Hello frame: u32 len | version 1 | type 1 | u64 from | u64 to."""
    return struct.pack(">IBBQQ", 18, 1, 1, sender, to)


def closed_by_server(sock, timeout=5.0):
    """True when the server closes the connection within `timeout` (a TLS alert may come
    first; the quorum port never answers a peer with a frame)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if sock.recv(4096) == b"":
                return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except (socket.timeout, TimeoutError):
        return False
    return False


def tls_context(pki, name=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(pki / "ca.pem")
    if name:
        ctx.load_cert_chain(pki / f"{name}.crt", pki / f"{name}.key")
    return ctx


def quorum_port(ens, sid):
    return ens.peers[sid][0]


def wait_for_log(srv, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in srv.log_text():
            return True
        time.sleep(0.1)
    return False


def test_ensemble_with_ssl_quorum_serves_writes(ensemble):
    leader = ensemble.leader()
    for srv in ensemble.members:
        assert "peers authenticate with mutual TLS" in srv.log_text(), srv.log_tail()
    first = ensemble.members[0]
    zk = make_client(first.hosts())
    zk.start(timeout=20)
    try:
        zk.create("/over-tls", b"v1")
        zk.set("/over-tls", b"v2")
    finally:
        zk.stop()
    for srv in ensemble.members:
        c = make_client(srv.hosts())
        c.start(timeout=20)
        try:
            c.sync("/over-tls")
            assert c.get("/over-tls")[0] == b"v2", srv
        finally:
            c.stop()
    assert leader.alive()


def test_connections_without_a_trusted_certificate_are_refused_before_any_frame(ensemble):
    target = ensemble.members[2]
    port = quorum_port(ensemble, target.sid)
    pki = ensemble.pki

    def refusals():
        log = target.log_text()
        return log.count("TLS handshake failed") + log.count("no TLS handshake in time")

    before = refusals()
    # A plain hello, as a server without sslQuorum (or an attacker) would send it: not a
    # TLS record the handshake can finish, so it ends with the handshake's time limit.
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(hello(2, target.sid))
        assert closed_by_server(s, timeout=10.0)
    # TLS without a client certificate, and with one from another CA.
    for name in (None, "mallory"):
        raw = socket.create_connection((HOST, port), timeout=5)
        try:
            with tls_context(pki, name).wrap_socket(raw) as s:
                s.sendall(hello(2, target.sid))
                assert closed_by_server(s), name
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass  # the handshake itself failed: refused
        finally:
            raw.close()
    deadline = time.monotonic() + 10
    while refusals() < before + 3:
        assert time.monotonic() < deadline, target.log_tail()
        time.sleep(0.1)
    # None of them got as far as the hello.
    assert "sent no hello" not in target.log_text()
    assert "did not start with a hello" not in target.log_text()


def test_a_servers_certificate_cannot_claim_another_id(ensemble):
    target = ensemble.members[2]
    port = quorum_port(ensemble, target.sid)
    pki = ensemble.pki
    # server.1's valid certificate, saying it is server 2: refused at the hello.
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with tls_context(pki, "server.1").wrap_socket(raw) as s:
            s.sendall(hello(2, target.sid))
            assert closed_by_server(s)
    assert wait_for_log(target, "it claims server id 2 but its certificate belongs to server [1]"), \
        target.log_tail()
    # The control: server.2's own certificate saying it is server 2 is kept open.
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with tls_context(pki, "server.2").wrap_socket(raw) as s:
            s.sendall(hello(2, target.sid))
            assert not closed_by_server(s, timeout=2.0)


def test_a_certificate_for_another_address_is_refused(ensemble):
    """ssl.quorum.hostnameVerification (default true): server.2's certificate issued for
    10.9.9.9 does not serve a connection from 127.0.0.1."""
    target = ensemble.members[2]
    port = quorum_port(ensemble, target.sid)
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with tls_context(ensemble.pki, "elsewhere").wrap_socket(raw) as s:
            s.sendall(hello(2, target.sid))
            assert closed_by_server(s)
    assert wait_for_log(target, "its certificate is not valid for 127.0.0.1"), target.log_tail()
