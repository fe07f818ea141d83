"""Shared fixtures for the compatibility suite.

Every test here talks to a real server process over 127.0.0.1: either keeperd
(``$KEEPERD_BIN start-foreground <tmp>/zoo.cfg``) or Apache ZooKeeper 3.8 from
Debian (``java ... ZooKeeperServerMain <tmp>/zoo.cfg``), the oracle.

COMPAT_SERVER selects which kind the ordinary tests run against:
  keeperd (default) | zookeeper | both
test_differential.py always runs ZooKeeper as side A; side B is keeperd unless
COMPAT_SERVER=zookeeper, in which case the oracle is compared with itself (the
way the suite itself is validated).

Invariants this file keeps: servers listen on loopback only, start-up waits are
bounded (COMPAT_STARTUP_TIMEOUT, default 30 s), every server started is stopped
(SIGTERM, then SIGKILL) even when a test fails, and a server that fails to start
or dies produces its log in the failure message.
"""

import atexit
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

try:
    import kazoo  # noqa: F401
    import pytest_timeout  # noqa: F401
except ImportError as exc:  # pragma: no cover - environment problem
    raise pytest.UsageError(
        f"compat suite dependency missing ({exc}); run scripts/setup"
    ) from exc

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
JAVA_DIR = Path("/usr/share/java")
ZK_JAR = JAVA_DIR / "zookeeper.jar"
ZKCLI = Path("/usr/share/zookeeper/bin/zkCli.sh")
STARTUP_TIMEOUT = float(os.environ.get("COMPAT_STARTUP_TIMEOUT", "30"))
STOP_TIMEOUT = 10.0
KINDS = ("keeperd", "zookeeper")

# Servers still running, so an interrupted session (Ctrl-C, pytest-timeout in
# a fixture) never leaves a stray JVM or keeperd behind.
_LIVE = set()


def server_kinds():
    """The server kinds the ordinary (non-differential) tests run against."""
    want = os.environ.get("COMPAT_SERVER", "keeperd").strip() or "keeperd"
    if want == "both":
        return ["zookeeper", "keeperd"]
    if want not in KINDS:
        raise pytest.UsageError(
            f"COMPAT_SERVER={want!r}: expected keeperd, zookeeper or both"
        )
    return [want]


def differential_kinds():
    """(side A, side B) for test_differential.py; A is always the oracle."""
    want = os.environ.get("COMPAT_SERVER", "both").strip() or "both"
    if want == "zookeeper":
        return ("zookeeper", "zookeeper")
    return ("zookeeper", "keeperd")


_GIVEN_PORTS = set()


def free_port():
    """A port nothing listens on right now (loopback or wildcard), and never one this
    process handed out before: the kernel may offer a just-released port again, and two
    servers of one ensemble given the same port fail in confusing ways."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


def four_letter(port, word, timeout=5.0):
    """Send a four-letter word the way `echo WORD | nc` does; return the text."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


def keeperd_bin():
    env = os.environ.get("KEEPERD_BIN")
    if env:
        # Servers run with their temp dir as cwd: a relative path must not depend on it.
        return os.path.abspath(env) if os.sep in env else env
    for profile in ("release", "debug"):
        cand = REPO_ROOT / "target" / profile / "keeperd"
        if cand.exists():
            return str(cand)
    pytest.fail(
        "KEEPERD_BIN is not set and no target/{release,debug}/keeperd exists: "
        "run through `cargo test --release --test compat` or set KEEPERD_BIN"
    )


def super_digest(user, password):
    """The `user:base64(sha1(user:password))` value of DigestAuthenticationProvider.superDigest."""
    digest = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(digest).decode()}"


def zookeeper_cmd(cfg, quorum=False):
    """ZooKeeper 3.8 on `cfg`: ZooKeeperServerMain, or QuorumPeerMain for an ensemble member."""
    if not ZK_JAR.exists():
        pytest.fail(f"{ZK_JAR} missing: run scripts/setup (libzookeeper-java)")
    java = shutil.which("java")
    if not java:
        pytest.fail("java not found on PATH: run scripts/setup")
    # zookeeper.jar's manifest Class-Path brings netty, jute, slf4j-api, ...;
    # slf4j-simple gives the server a log (on stderr, captured to server.log).
    cp = [str(ZK_JAR)]
    # Not on the manifest's Class-Path, but the Netty connection factory (TLS on
    # secureClientPort) needs them.
    for jar in ("netty-codec.jar", "netty-resolver.jar"):
        if (JAVA_DIR / jar).exists():
            cp.append(str(JAVA_DIR / jar))
    if (JAVA_DIR / "slf4j-simple.jar").exists():
        cp.append(str(JAVA_DIR / "slf4j-simple.jar"))
    return [
        java,
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.showDateTime=true",
        "-cp",
        ":".join(cp),
        (
            "org.apache.zookeeper.server.quorum.QuorumPeerMain"
            if quorum
            else "org.apache.zookeeper.server.ZooKeeperServerMain"
        ),
        str(cfg),
    ]


class Server:
    """One running server process and what a test needs to reach it."""

    def __init__(self, kind, workdir, extra_cfg=None, quorum=False, jvm_flags=None):
        self.kind = kind
        # `-Dname=value` options: on ZooKeeper's java command line; for keeperd in
        # SERVER_JVMFLAGS, where it reads them as zkServer.sh would pass them to the JVM.
        self.jvm_flags = list(jvm_flags or [])
        # An ensemble member: ZooKeeper then runs QuorumPeerMain (keeperd needs no switch).
        self.quorum = quorum
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cfg_path = self.workdir / "zoo.cfg"
        self.log_path = self.workdir / "server.log"
        self.port = None
        self.proc = None
        self.extra_cfg = dict(extra_cfg or {})

    # -- lifecycle ---------------------------------------------------------

    def _write_cfg(self):
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        cfg.update(self.extra_cfg)
        # A None value drops a default key (e.g. a 3.4-era zoo.cfg without a whitelist).
        self.cfg_path.write_text(
            "".join(f"{k}={v}\n" for k, v in cfg.items() if v is not None)
        )

    def start(self):
        last_error = None
        # A port chosen free can be taken before the server binds it; retry
        # with a new port a couple of times rather than fail the run.
        for _attempt in range(3):
            self.port = free_port()
            self._write_cfg()
            self.spawn()
            try:
                self._wait_ready()
                return self
            except _PortTaken as exc:
                last_error = exc
                self.stop()
        raise RuntimeError(f"{self.kind}: could not bind a free port: {last_error}")

    def spawn(self):
        """Starts the process on the current port and config, without waiting for it."""
        env = None
        if self.kind == "keeperd":
            cmd = [keeperd_bin(), "start-foreground", str(self.cfg_path)]
            if self.jvm_flags:
                env = {**os.environ, "SERVER_JVMFLAGS": " ".join(self.jvm_flags)}
        else:
            cmd = zookeeper_cmd(self.cfg_path, self.quorum)
            cmd[1:1] = self.jvm_flags
        # If pytest itself is killed (SIGKILL skips every cleanup), the
        # kernel still stops the server: util-linux's setpriv sets the
        # parent-death signal and execs the server.
        setpriv = shutil.which("setpriv")
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "KILL", "--"] + cmd
        log = open(self.log_path, "ab")
        log.write(f"### {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        log.close()
        _LIVE.add(self)

    def _wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        last = "no answer"
        # ruok is the probe, unless the whitelist refuses it; srvr is always allowed.
        probe = "ruok" if self._allows("ruok") else "srvr"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                log = self.log_text()
                if "Address already in use" in log:
                    raise _PortTaken(f"port {self.port}")
                self.stop()
                pytest.fail(
                    f"{self.kind} exited with status {rc} before answering {probe} "
                    f"on {HOST}:{self.port}\n--- server log ---\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                last = four_letter(self.port, probe, timeout=1.0)
                if last == "imok":
                    # ZooKeeper answers imok as soon as its listener is bound,
                    # before the database is loaded (isro then says "null"):
                    # srvr only reports a version once requests are served.
                    last = four_letter(self.port, "srvr", timeout=1.0)
                if last.startswith("Zookeeper version:"):
                    self._check_ownership()
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.stop()
        pytest.fail(
            f"{self.kind} did not answer {probe} on {HOST}:{self.port} within "
            f"{STARTUP_TIMEOUT:.0f}s (last answer: {last!r})\n"
            f"--- server log ---\n{self.log_tail()}",
            pytrace=False,
        )

    def wait_listening(self, timeout=None):
        """Waits until the client port answers ruok (serving or not, e.g. a server that is
        not a member yet); fails with the log if the process exits first."""
        deadline = time.monotonic() + (timeout or STARTUP_TIMEOUT)
        last = "no answer"
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(
                    f"{self.kind} exited with status {rc} before answering ruok on "
                    f"{HOST}:{self.port}\n--- server log ---\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                last = four_letter(self.port, "ruok", timeout=1.0)
                if last == "imok":
                    return self
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        pytest.fail(
            f"{self.kind} did not answer ruok on {HOST}:{self.port} (last: {last!r})\n"
            f"--- server log ---\n{self.log_tail()}",
            pytrace=False,
        )

    def wait_serving(self):
        """Waits until srvr reports a version (the server serves clients)."""
        self._wait_ready()
        return self

    def mode(self):
        """`leader`, `follower`, `observer`, `standalone`, or None when not serving."""
        try:
            srvr = four_letter(self.port, "srvr", timeout=1.0)
        except OSError:
            return None
        for line in srvr.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):].strip()
        return None

    def _check_ownership(self):
        """Make sure the imok came from our process, not a squatter on the port."""
        time.sleep(0.05)
        if self.proc.poll() is not None:
            raise _PortTaken(f"port {self.port} answered but our process exited")
        if self._allows("conf"):
            conf = four_letter(self.port, "conf", timeout=2.0)
            for line in conf.splitlines():
                if line.startswith("dataDir="):
                    if not line[len("dataDir="):].startswith(str(self.data_dir)):
                        raise _PortTaken(f"port {self.port} is served by {line}")

    def _allows(self, word):
        """Whether this server answers `word` under its zoo.cfg's whitelist."""
        wl = self.extra_cfg.get("4lw.commands.whitelist", "*")
        if wl is None:
            # No whitelist line: ZooKeeper 3.5.3+ answers srvr only; keeperd the
            # read-only monitoring words.
            return word == "srvr" or (
                self.kind == "keeperd" and word in ("ruok", "stat", "mntr", "conf", "isro")
            )
        words = [w.strip() for w in wl.split(",")]
        return "*" in words or word in words or word == "srvr"

    def stop(self):
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=STOP_TIMEOUT)

    # -- helpers for tests -------------------------------------------------

    def hosts(self, chroot=""):
        return f"{HOST}:{self.port}{chroot}"

    def four(self, word, timeout=5.0):
        return four_letter(self.port, word, timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=80):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self):
        return f"<{self.kind} {HOST}:{self.port}>"


class _PortTaken(Exception):
    pass


class Ensemble:
    """N servers of one kind (keeperd by default, or ZooKeeper's QuorumPeerMain) forming one
    ensemble from server.N lines on loopback ports. `extra_cfg` goes into every zoo.cfg
    (e.g. reconfigEnabled, superDigest), `jvm_flags` to every member (as Server's). `new_server()` prepares one more server whose
    zoo.cfg lists the members and itself, for dynamic reconfig."""

    def __init__(self, workdir, n=3, extra_cfg=None, kind="keeperd", jvm_flags=None):
        self.kind = kind
        self.workdir = Path(workdir)
        self.extra_cfg = dict(extra_cfg or {})
        self.jvm_flags = list(jvm_flags or [])
        self.members = []
        # Servers made by new_server(); stopped with the ensemble.
        self.extra = []
        # server id -> (quorum port, election port)
        self.peers = {i + 1: (free_port(), free_port()) for i in range(n)}
        lines = self._server_lines(self.peers)
        for sid in self.peers:
            self.members.append(self._make(sid, lines))

    def _server_lines(self, peers):
        return {f"server.{sid}": f"{HOST}:{q}:{e}" for sid, (q, e) in peers.items()}

    def _make(self, sid, lines):
        cfg = {"initLimit": "10", "syncLimit": "5", **lines, **self.extra_cfg}
        srv = Server(self.kind, self.workdir / f"n{sid}", cfg, quorum=True, jvm_flags=self.jvm_flags)
        srv.sid = sid
        (srv.data_dir / "myid").write_text(f"{sid}\n")
        return srv

    def new_server(self, sid=None):
        """A server not in the ensemble, with its zoo.cfg written (server.N lines for the
        members and itself) and its client port chosen, not started: `spawn()` it, then
        `wait_listening()` (a ZooKeeper server serves before it is added, keeperd need not)."""
        sid = sid or max(self.peers) + 1
        self.peers[sid] = (free_port(), free_port())
        srv = self._make(sid, self._server_lines(self.peers))
        srv.port = free_port()
        srv._write_cfg()
        self.extra.append(srv)
        return srv

    def server_line(self, srv, client=True):
        """`server.N=127.0.0.1:quorum:election[;127.0.0.1:clientPort]`, zkCli's -add form."""
        q, e = self.peers[srv.sid]
        line = f"server.{srv.sid}={HOST}:{q}:{e}"
        return f"{line};{HOST}:{srv.port}" if client else line

    def leader(self, timeout=30.0):
        """The one running server whose srvr says `Mode: leader`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leaders = [
                s for s in self.members + self.extra if s.alive() and s.mode() == "leader"
            ]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.1)
        raise AssertionError(f"no single leader within {timeout}s")

    def start(self):
        # Members wait for a quorum before serving, so start them all, then wait for each.
        for srv in self.members:
            srv.port = free_port()
            srv._write_cfg()
            srv.spawn()
        for srv in self.members:
            srv._wait_ready()
        return self

    def stop(self):
        for srv in self.members + self.extra:
            srv.stop()

    def hosts(self):
        return [m.hosts() for m in self.members]


@atexit.register
def _stop_stragglers():
    for srv in list(_LIVE):
        srv.stop()


class ServerFactory:
    """Starts servers on demand inside a test; stops them all at teardown."""

    def __init__(self):
        self.servers = []

    def __call__(self, kind, extra_cfg=None, jvm_flags=None):
        workdir = tempfile.mkdtemp(prefix=f"compat-{kind}-")
        srv = Server(kind, workdir, extra_cfg, jvm_flags=jvm_flags)
        self.servers.append(srv)
        srv.start()
        return srv

    def close(self, failed):
        for srv in self.servers:
            if failed:
                _print_log(srv)
            srv.stop()
            shutil.rmtree(srv.workdir, ignore_errors=True)


def _print_log(srv):
    sys.stdout.write(
        f"\n--- {srv.kind} log ({srv.log_path}), last lines ---\n{srv.log_tail()}\n"
    )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        item._compat_failed = True


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request):
    """After a failing test, print the log tail of every server still running."""
    yield
    if getattr(request.node, "_compat_failed", False):
        for srv in list(_LIVE):
            _print_log(srv)


@pytest.fixture(scope="module", params=server_kinds())
def server(request):
    """A server of each selected kind, shared by the tests of one module."""
    factory = ServerFactory()
    try:
        yield factory(request.param)
    finally:
        factory.close(failed=False)


@pytest.fixture
def servers():
    """Start extra servers (e.g. with another config) inside one test."""
    factory = ServerFactory()
    yield factory
    factory.close(failed=False)


def make_client(hosts, **kw):
    """A kazoo client that fails fast instead of retrying forever."""
    from kazoo.client import KazooClient

    kw.setdefault("timeout", 10.0)
    kw.setdefault("connection_retry", {"max_tries": 3, "delay": 0.1, "max_delay": 1})
    kw.setdefault("command_retry", None)
    client = KazooClient(hosts=hosts, **kw)
    try:
        client.start(timeout=15)
    except Exception:
        client.stop()
        client.close()
        raise
    return client


@pytest.fixture
def kazoo_factory():
    """Make kazoo clients; every one is stopped and closed at teardown."""
    made = []

    def make(hosts, **kw):
        c = make_client(hosts, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


# ------------------------------------------------------------ SASL DIGEST-MD5
# Shared by test_sasl.py and test_kafka.py: servers configured as Kafka's docs say
# (authProvider.1 and a JAAS `Server` section with user_<name>="<password>"), clients
# with a JAAS section per user; `Client` is the section name a Kafka broker (and
# ZooKeeper's Java client by default) uses.

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

SASL_SERVER_JAAS = """
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_kafka="kafka-secret"
    user_other="other-secret"
    user_admin="admin-secret";
};
"""

# JAAS client section -> (user, password).
SASL_CLIENTS = {
    "Client": ("kafka", "kafka-secret"),
    "kafka": ("kafka", "kafka-secret"),
    "other": ("other", "other-secret"),
    "admin": ("admin", "admin-secret"),
    "wrong": ("kafka", "not-the-password"),
    "unknown": ("mallory", "whatever"),
}


@pytest.fixture(scope="module")
def jaas_dir():
    """A temp dir with server.conf (the `Server` section) and client.conf (SASL_CLIENTS)."""
    d = Path(tempfile.mkdtemp(prefix="compat-sasl-jaas-"))
    (d / "server.conf").write_text(SASL_SERVER_JAAS)
    client = "".join(
        f'{name} {{ org.apache.zookeeper.server.auth.DigestLoginModule required '
        f'username="{user}" password="{password}"; }};\n'
        for name, (user, password) in SASL_CLIENTS.items()
    )
    (d / "client.conf").write_text(client)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def sasl_server_flags(jaas_dir):
    """The server's JVM option for its JAAS file (keeperd reads it from SERVER_JVMFLAGS)."""
    return [f"-Djava.security.auth.login.config={jaas_dir / 'server.conf'}"]


def sasl_client_flags(jaas_dir, section="Client"):
    """A Java client's options to log in with the JAAS section `section`."""
    return [
        f"-Djava.security.auth.login.config={jaas_dir / 'client.conf'}",
        f"-Dzookeeper.sasl.clientconfig={section}",
    ]


def sasl_kazoo(hosts, section, **kw):
    """A started kazoo client logged in (DIGEST-MD5, pure-sasl) as SASL_CLIENTS[section]."""
    user, password = SASL_CLIENTS[section]
    options = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
    return make_client(hosts, sasl_options=options, **kw)


def unique_path(request, prefix="/t"):
    """A per-test root path, so tests sharing a server never collide."""
    name = request.node.name
    safe = "".join(ch if ch.isalnum() else "_" for ch in name)
    return f"{prefix}_{safe}_{os.getpid()}_{int(time.monotonic() * 1000) % 1000000}"
