"""Kafka (ZooKeeper mode) against the server, emulated with ZooKeeper's own Java client.

tests/compat/kafka/KafkaEmu.java is compiled with javac against Debian's
/usr/share/java/zookeeper.jar (cached by source hash) and run as ONE JVM that
hosts several "brokers", each with its own session, chroot /kafka01 and the
znode traffic of a Kafka 2.8 (or 1.1) broker and controller as Kafka's
KafkaZkClient issues it (apache/kafka, kafka.zk.KafkaZkClient): top-level paths, /cluster/id,
checked-ephemeral registration via multi, controller election via multi with
/controller_epoch, fenced check+op writes, child/data/exists watches, producer
id blocks, config change notifications; plus the admin flows of kafka-topics,
kafka-configs and kafka-reassign-partitions with --zookeeper (own session each).

The JVM speaks a line protocol (see KafkaEmu.java): pytest sends commands and
reads replies plus asynchronous events (every watch event each broker's
session received, elections, controller actions). The asserts check the znode
tree through a separate kazoo observer (payloads, versions, czxid/mzxid,
ephemeralOwner, sequential names) and the events, and are the same for
ZooKeeper 3.8 (COMPAT_SERVER=zookeeper, the oracle) and keeperd.

Servers: `zk_servers` yields the list of servers the brokers connect to (one
today). For an ensemble, set COMPAT_KAFKA_CONNECT=h1:p1,h2:p2,h3:p3 (servers
started elsewhere), or make `zk_servers` return the members of an ensemble
fixture once conftest.py has one; every connect string, proxy and observer is
built from that list.
"""

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from kazoo.exceptions import BadVersionError, NodeExistsError, RuntimeInconsistency

from conftest import (
    HOST, JAVA_DIR, SASL_PROVIDER, ZK_JAR, Ensemble, free_port, make_client, sasl_client_flags,
    sasl_kazoo, sasl_server_flags,
)

CHROOT = "/kafka01"
SRC_DIR = Path(__file__).resolve().parent / "kafka"
REPLY_TIMEOUT = 40.0
EVENT_TIMEOUT = 20.0

TOP_LEVEL_11 = [
    "/consumers", "/brokers/ids", "/brokers/topics", "/config/changes",
    "/admin/delete_topics", "/brokers/seqid", "/isr_change_notification",
    "/latest_producer_id_block", "/log_dir_event_notification", "/config/topics",
    "/config/clients", "/config/users", "/config/brokers",
]
TOP_LEVEL_28 = TOP_LEVEL_11 + ["/config/ips"]

NODEEXISTS, BADVERSION, RUNTIMEINCONSISTENCY = -110, -103, -2

pytestmark = pytest.mark.timeout(90)


# --------------------------------------------------------------- compilation


def _java_tools():
    java, javac = shutil.which("java"), shutil.which("javac")
    if not (java and javac):
        pytest.fail("java/javac not found on PATH: run scripts/setup")
    if not ZK_JAR.exists():
        pytest.fail(f"{ZK_JAR} missing: run scripts/setup (libzookeeper-java)")
    return java, javac


@pytest.fixture(scope="session")
def emu_classes():
    """KafkaEmu compiled into a temp dir, reused while the sources are unchanged."""
    _, javac = _java_tools()
    sources = sorted(SRC_DIR.glob("*.java"))
    h = hashlib.sha256()
    for src in sources:
        h.update(src.name.encode() + b"\0" + src.read_bytes())
    h.update(str(ZK_JAR.resolve()).encode())
    out = Path(tempfile.gettempdir()) / f"keeperd-compat-kafkaemu-{h.hexdigest()[:16]}"
    if (out / "KafkaEmu.class").exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix="kafkaemu-build-"))
    # zookeeper.jar's manifest Class-Path brings jute, jackson, netty, slf4j.
    res = subprocess.run(
        [javac, "-nowarn", "-d", str(tmp), "-cp", str(ZK_JAR)] + [str(s) for s in sources],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
    )
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail("javac KafkaEmu failed:\n" + res.stdout.decode(errors="replace"))
    try:
        tmp.rename(out)
    except OSError:  # a concurrent run got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------ servers


# The keeperd ensemble behind `zk_servers`, when there is one (for the failover test).
_ENSEMBLE = None


@pytest.fixture(scope="module")
def zk_servers(server, tmp_path_factory):
    """host:port of every server the brokers use. keeperd runs as a 3-node ensemble (as
    brokers see it in production, connect string of all three); the ZooKeeper oracle runs
    standalone. COMPAT_KAFKA_CONNECT=h1:p1,... points at servers started elsewhere;
    COMPAT_KAFKA_ENSEMBLE=0 uses the single keeperd server instead."""
    external = os.environ.get("COMPAT_KAFKA_CONNECT", "").strip()
    if external:
        yield [hp.strip() for hp in external.split(",") if hp.strip()]
        return
    if server.kind == "keeperd" and os.environ.get("COMPAT_KAFKA_ENSEMBLE", "1") != "0":
        from conftest import Ensemble

        global _ENSEMBLE
        # AdminServers on loopback ports of their own, for the console's Kafka view.
        admin = {"admin.enableServer": "true", "admin.serverAddress": HOST}
        ens = Ensemble(tmp_path_factory.mktemp("kafka-ensemble"), 3, admin)
        for member in ens.members:
            member.extra_cfg["admin.serverPort"] = str(free_port())
        ens.start()
        _ENSEMBLE = ens
        try:
            yield ens.hosts()
        finally:
            _ENSEMBLE = None
            ens.stop()
        return
    yield [server.hosts()]


@pytest.fixture
def zk(zk_servers):
    """The observer: a kazoo session without chroot, reading the tree."""
    client = make_client(",".join(zk_servers))
    yield client
    client.stop()
    client.close()


# ---------------------------------------------------------------- emulation


class Emu:
    """One KafkaEmu JVM: commands in, replies and events out."""

    def __init__(self, classes, servers, chroot, workdir, jvm_flags=()):
        java, _ = _java_tools()
        cp = [str(classes), str(ZK_JAR)]
        if (JAVA_DIR / "slf4j-simple.jar").exists():
            cp.append(str(JAVA_DIR / "slf4j-simple.jar"))
        cmd = [
            java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dzookeeper.admin.enableServer=false",
            *jvm_flags,
            "-cp", ":".join(cp), "KafkaEmu", ",".join(servers), chroot,
        ]
        setpriv = shutil.which("setpriv")
        if setpriv:
            cmd = [setpriv, "--pdeathsig", "KILL", "--"] + cmd
        self.log_path = Path(workdir) / "kafkaemu.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True,
        )
        self.events = []
        self.replies = {}
        self.raw = []
        self.cond = threading.Condition()
        self.seq = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait("ready", timeout=30)

    def _read(self):
        for line in self.proc.stdout:
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            with self.cond:
                self.raw.append(text)
                try:
                    msg = json.loads(text)
                except ValueError:
                    msg = {"ev": "garbage", "text": text}
                if "reply" in msg:
                    self.replies[msg["reply"]] = msg
                else:
                    self.events.append(msg)
                self.cond.notify_all()
        with self.cond:
            self.events.append({"ev": "eof"})
            self.cond.notify_all()

    def call(self, *words, ok=True, timeout=REPLY_TIMEOUT):
        """Send one command; return its reply (asserting ok unless ok=None/False)."""
        self.seq += 1
        seq = self.seq
        line = " ".join(str(w) for w in (seq,) + words) + "\n"
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self.cond:
            while seq not in self.replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(
                        f"no reply to {line.strip()!r} within {timeout}s\n{self.tail()}"
                    )
                self.cond.wait(min(left, 0.5))
            reply = self.replies.pop(seq)
        if ok is True:
            assert reply["ok"], f"{line.strip()!r} failed: {reply}"
        elif ok is False:
            assert not reply["ok"], f"{line.strip()!r} should have failed: {reply}"
        return reply

    def mark(self):
        with self.cond:
            return len(self.events)

    def find(self, kind=None, since=0, **match):
        with self.cond:
            evs = list(self.events[since:])
        return [e for e in evs if _matches(e, kind, match)]

    def wait(self, kind=None, since=0, timeout=EVENT_TIMEOUT, pred=None, **match):
        """The first event of this kind matching all fields (and pred), at index >= since."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events[since:]:
                    if _matches(e, kind, match) and (pred is None or pred(e)):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no event {kind} {match} within {timeout}s\n{self.tail()}"
                    )
                self.cond.wait(min(left, 0.5))

    def watches(self, broker, since=0):
        """(type, path) of every node watch event this broker's sessions received."""
        return [
            (e["type"], e["path"])
            for e in self.find("watch", since=since, broker=broker)
            if e["type"] != "None"
        ]

    def tail(self, n=60):
        with self.cond:
            out = "\n".join(self.raw[-n:])
        try:
            log = self.log_path.read_text(errors="replace").splitlines()[-30:]
        except OSError:
            log = []
        return f"--- emulator output (last {n}) ---\n{out}\n--- emulator stderr ---\n" + "\n".join(log)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"0 quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self._log.close()


def _matches(e, kind, match):
    if kind is not None and e.get("ev") != kind:
        return False
    return all(e.get(k) == v for k, v in match.items())


@pytest.fixture
def kafka(request, emu_classes, zk_servers, zk):
    """A fresh /kafka01 and an emulator JVM; no broker has started yet."""
    if zk.exists(CHROOT):
        zk.delete(CHROOT, recursive=True)
    yield from running_emu(request, emu_classes, zk_servers, "compat-kafka-")


def running_emu(request, emu_classes, hosts, prefix, jvm_flags=()):
    """The emulator JVM on `hosts`, for a fixture to yield; after the test, its output on
    failure, and no problem it reported (errors, replies out of order, garbage)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    emu = Emu(emu_classes, hosts, CHROOT, workdir, jvm_flags)
    failed = True
    try:
        yield emu
        failed = getattr(request.node, "_compat_failed", False)
    finally:
        emu.close()
        if failed:
            print(emu.tail(200))
    errors = emu.find("error") + emu.find("response-order") + emu.find("garbage")
    shutil.rmtree(workdir, ignore_errors=True)
    assert not errors, f"emulator reported problems: {errors}"


# ------------------------------------------------------------------ helpers


def get(zk, path):
    """(data, stat) of CHROOT + path, after a sync: the observer's server may be a follower
    that has not applied a write another session (a broker on another server) just had
    acknowledged; ZooKeeper only promises that after sync."""
    zk.sync(CHROOT + path)
    return zk.get(CHROOT + path)


def get_json(zk, path):
    data, stat = get(zk, path)
    return json.loads(data), stat


def children(zk, path):
    zk.sync(CHROOT + path)
    return sorted(zk.get_children(CHROOT + path))


def start_brokers(kafka, version="2.8", timeout_ms=18000, ids=(1, 2, 3)):
    return {i: kafka.call("start", i, version, timeout_ms) for i in ids}


def create_topic(kafka, topic, parts, rf=3, version="2.8"):
    since = kafka.mark()
    kafka.call("admin", version, "create", topic, parts, rf)
    return kafka.wait("partitions-created", since=since, topic=topic)


def rotation(p, n=3, brokers=(1, 2, 3)):
    return [brokers[(p + i) % len(brokers)] for i in range(n)]


# -------------------------------------------------------------------- tests


def test_kafka28_startup_registration_and_election(kafka, zk):
    b = start_brokers(kafka)

    # chroot made by a session without it; top-level paths persistent, null data
    data, stat = zk.get(CHROOT)
    assert data is None and stat.ephemeralOwner == 0
    for p in TOP_LEVEL_28:
        if p == "/latest_producer_id_block":
            continue  # written by every broker below
        data, stat = get(zk, p)
        assert (p, data, stat.ephemeralOwner, stat.version) == (p, None, 0, 0)
    assert get(zk, "/config/changes")[1].version == 0

    # one cluster id for all three
    cid, stat = get_json(zk, "/cluster/id")
    assert cid["version"] == "1" and len(cid["id"]) == 22
    assert {b[i]["cluster_id"] for i in b} == {cid["id"]}
    assert get(zk, "/cluster")[0] is None

    # checked-ephemeral registration: multi[create(null), setData(json, 0)]
    assert children(zk, "/brokers/ids") == ["1", "2", "3"]
    epochs = []
    for i in (1, 2, 3):
        reg, stat = get_json(zk, f"/brokers/ids/{i}")
        assert reg["version"] == 5 and reg["features"] == {}
        assert reg["endpoints"] == [f"PLAINTEXT://host{i}:9092"]
        assert (reg["host"], reg["port"], reg["jmx_port"]) == (f"host{i}", 9092, -1)
        assert reg["listener_security_protocol_map"] == {"PLAINTEXT": "PLAINTEXT"}
        assert stat.ephemeralOwner == b[i]["session"]
        assert stat.version == 1, "create + setData(version 0) in one multi"
        assert stat.czxid == stat.mzxid, "both ops of the multi share one zxid"
        assert stat.czxid == b[i]["broker_epoch"], "broker epoch = czxid from the SetData result"
        epochs.append(stat.czxid)
    assert epochs == sorted(set(epochs))
    now_ms = time.time() * 1000
    assert abs(get(zk, "/brokers/ids/1")[1].ctime - now_ms) < 120000, "ctime is wall-clock ms"
    assert len({b[i]["session"] for i in b}) == 3

    # election: broker 1 wins with multi[create /controller, setData /controller_epoch]
    ctl, cstat = get_json(zk, "/controller")
    assert ctl["version"] == 1 and ctl["brokerid"] == 1 and ctl["timestamp"].isdigit()
    assert cstat.ephemeralOwner == b[1]["session"]
    edata, estat = get(zk, "/controller_epoch")
    assert edata == b"1" and estat.version == 1 and estat.ephemeralOwner == 0
    assert cstat.czxid == estat.mzxid, "/controller and /controller_epoch in one multi"
    assert (b[1]["controller"], b[1]["controller_epoch"], b[1]["controller_epoch_zk_version"]) == (True, 1, 1)
    for i in (2, 3):
        assert b[i]["controller"] is False and b[i]["active_controller"] == 1
        kafka.wait("controller-known", broker=i, controller=1)
    assert kafka.find("elected") == [kafka.find("elected")[0]]
    # its own exists watch on /controller fired NodeCreated
    assert ("NodeCreated", "/controller") in kafka.watches(1)

    # /feature created by the controller, seen by its own exists watch
    feat, fstat = get_json(zk, "/feature")
    assert feat == {"features": {}, "version": 1, "status": 1} and fstat.version == 0
    assert ("NodeCreated", "/feature") in kafka.watches(1)
    for i in (1, 2, 3):
        kafka.wait("feature", broker=i, version=0)

    # producer id blocks: getData + conditional setData, one block per broker
    blocks = sorted((b[i]["pid_block"]["block_start"], b[i]["pid_block"]["block_end"]) for i in b)
    assert blocks == [("0", "999"), ("1000", "1999"), ("2000", "2999")]
    pid, pstat = get_json(zk, "/latest_producer_id_block")
    assert pstat.version == 3
    assert pid == {"version": 1, "broker": 3, "block_start": "2000", "block_end": "2999"}

    # the controller's child watch on /brokers/ids saw 2 and 3 arrive
    kafka.wait("broker-change", broker=1, live=[1, 2, 3])
    assert ("NodeChildrenChanged", "/brokers/ids") in kafka.watches(1)
    ready = kafka.wait("controller-ready", broker=1)
    assert ready["epoch"] == 1 and ready["live"] == [1]
    st = kafka.call("state", 1)
    assert st["live"] == [1, 2, 3]
    assert {int(k): v for k, v in kafka.find("broker-change", broker=1)[-1]["epochs"].items()} == dict(
        zip((1, 2, 3), epochs)
    )

    # the same session registering again: NODEEXISTS on op 0, owner is us -> success
    again = kafka.call("register", 2)
    assert again["broker_epoch"] == b[2]["broker_epoch"]
    ne = kafka.wait("register-node-exists", broker=2)
    assert ne["codes"] == [NODEEXISTS, RUNTIMEINCONSISTENCY]
    assert ne["owner"] == b[2]["session"]

    # another session with a live broker's id: start-up fails
    dup = kafka.call("start", 2, "2.8", 18000, ok=False)
    assert "NODEEXISTS" in dup["error"]
    assert get(zk, "/brokers/ids/2")[1].ephemeralOwner == b[2]["session"]
    assert get(zk, "/brokers/ids/2")[1].version == 1


def test_kafka11_startup_plain_ephemeral_and_failover(kafka, zk):
    b = start_brokers(kafka, version="1.1", timeout_ms=6000)
    for p in TOP_LEVEL_11:
        if p != "/latest_producer_id_block":
            assert get(zk, p)[0] is None
    assert zk.exists(CHROOT + "/config/ips") is None
    assert zk.exists(CHROOT + "/feature") is None
    for i in (1, 2, 3):
        reg, stat = get_json(zk, f"/brokers/ids/{i}")
        assert reg["version"] == 4 and "features" not in reg
        assert stat.version == 0, "1.1 registers with a plain ephemeral create"
        assert stat.ephemeralOwner == b[i]["session"]
    # 1.1: create /controller, then /controller_epoch created as "1"
    ctl, cstat = get_json(zk, "/controller")
    assert ctl["brokerid"] == 1 and cstat.ephemeralOwner == b[1]["session"]
    edata, estat = get(zk, "/controller_epoch")
    assert (edata, estat.version) == (b"1", 0)
    assert (b[1]["controller_epoch"], b[1]["controller_epoch_zk_version"]) == (1, 0)

    # a topic, with 1.1 payloads and unfenced creates
    create_topic(kafka, "old", 2, version="1.1")
    topic, tstat = get_json(zk, "/brokers/topics/old")
    assert topic == {"version": 1, "partitions": {"0": [1, 2, 3], "1": [2, 3, 1]}}
    state, sstat = get_json(zk, "/brokers/topics/old/partitions/1/state")
    assert state == {"controller_epoch": 1, "leader": 2, "version": 1, "leader_epoch": 0, "isr": [2, 3, 1]}

    # failover: setData /controller_epoch "2" with version 0
    since = kafka.mark()
    kafka.call("stop", 1)
    won = kafka.wait("elected", since=since)
    assert won["broker"] in (2, 3) and won["epoch"] == 2 and won["epoch_zk_version"] == 1
    for i in (2, 3):
        assert ("NodeDeleted", "/controller") in kafka.watches(i, since=since)
    edata, estat = get(zk, "/controller_epoch")
    assert (edata, estat.version) == (b"2", 1)
    ctl, cstat = get_json(zk, "/controller")
    assert ctl["brokerid"] == won["broker"] and cstat.ephemeralOwner == b[won["broker"]]["session"]
    assert children(zk, "/brokers/ids") == ["2", "3"]
    kafka.wait("controller-ready", since=since, broker=won["broker"])
    state, sstat = get_json(zk, "/brokers/topics/old/partitions/0/state")
    assert state == {"controller_epoch": 2, "leader": 2, "version": 1, "leader_epoch": 1, "isr": [2, 3]}
    assert sstat.version == 1


def test_topic_create_list_describe_alter_delete(kafka, zk):
    start_brokers(kafka)
    since = kafka.mark()
    created = create_topic(kafka, "orders", 3)
    assert created["broker"] == 1 and created["partitions"] == [0, 1, 2]
    assert ("NodeChildrenChanged", "/brokers/topics") in kafka.watches(1, since=since)

    cfg, cstat = get_json(zk, "/config/topics/orders")
    assert cfg == {"version": 1, "config": {}} and cstat.version == 0
    topic, tstat = get_json(zk, "/brokers/topics/orders")
    assert topic == {
        "version": 3,
        "partitions": {str(p): rotation(p) for p in range(3)},
        "adding_replicas": {},
        "removing_replicas": {},
    }
    assert tstat.version == 0
    assert children(zk, "/brokers/topics/orders") == ["partitions"]
    assert children(zk, "/brokers/topics/orders/partitions") == ["0", "1", "2"]
    for p in range(3):
        assert get(zk, f"/brokers/topics/orders/partitions/{p}")[0] is None
        state, sstat = get_json(zk, f"/brokers/topics/orders/partitions/{p}/state")
        assert state == {
            "controller_epoch": 1, "leader": rotation(p)[0], "version": 1,
            "leader_epoch": 0, "isr": rotation(p),
        }
        assert sstat.version == 0 and sstat.ephemeralOwner == 0
    assert not zk.get_children(CHROOT + "/config/changes"), "topic creation sends no notification"

    kafka.call("admin", "2.8", "create", "orders", 1, 1, ok=False)
    kafka.call("admin", "2.8", "create", "wide", 1, 4, ok=False)
    assert kafka.call("admin", "2.8", "list")["topics"] == ["orders"]
    desc = kafka.call("admin", "2.8", "describe", "orders")
    assert desc["partitions"]["1"] == {"replicas": [2, 3, 1], "leader": 2, "isr": [2, 3, 1], "leader_epoch": 0}
    assert desc["config"] == {}

    # --alter --partitions 5: setData(-1); the controller's data watch fires
    since = kafka.mark()
    alt = kafka.call("admin", "2.8", "alter", "orders", 5)
    assert alt["version"] == 1
    added = kafka.wait("partitions-created", since=since, topic="orders")
    assert added["partitions"] == [3, 4]
    assert ("NodeDataChanged", "/brokers/topics/orders") in kafka.watches(1, since=since)
    assert children(zk, "/brokers/topics/orders/partitions") == ["0", "1", "2", "3", "4"]
    assert get_json(zk, "/brokers/topics/orders")[0]["partitions"]["4"] == rotation(4)
    state, _ = get_json(zk, "/brokers/topics/orders/partitions/4/state")
    assert state["leader"] == rotation(4)[0] and state["isr"] == rotation(4)
    kafka.call("admin", "2.8", "alter", "orders", 2, ok=False)

    # --delete: /admin/delete_topics/<t>; the controller removes everything
    since = kafka.mark()
    kafka.call("admin", "2.8", "delete", "orders")
    kafka.wait("topic-deleted", since=since, topic="orders")
    assert ("NodeChildrenChanged", "/admin/delete_topics") in kafka.watches(1, since=since)
    assert zk.exists(CHROOT + "/brokers/topics/orders") is None
    assert zk.exists(CHROOT + "/config/topics/orders") is None
    assert children(zk, "/admin/delete_topics") == []
    assert children(zk, "/brokers/topics") == []
    listing = kafka.call("admin", "2.8", "list")
    assert listing["topics"] == [] and listing["marked_for_deletion"] == []
    kafka.call("admin", "2.8", "delete", "orders", ok=False)
    # the controller's watches are still armed: a new topic after a deletion works
    create_topic(kafka, "orders2", 1)


def test_config_changes_notify_every_broker(kafka, zk):
    start_brokers(kafka)
    create_topic(kafka, "logs", 1)

    since = kafka.mark()
    r = kafka.call("admin", "2.8", "add-config", "logs", "retention.ms=3600000")
    assert r["notification"] == "/config/changes/config_change_0000000000"
    for i in (1, 2, 3):
        ev = kafka.wait("config-change", since=since, broker=i, notification="config_change_0000000000")
        assert ev["entity_path"] == "topics/logs" and ev["config"] == {"retention.ms": "3600000"}
        assert ("NodeChildrenChanged", "/config/changes") in kafka.watches(i, since=since)
    cfg, cstat = get_json(zk, "/config/topics/logs")
    assert cfg == {"version": 1, "config": {"retention.ms": "3600000"}} and cstat.version == 1
    note, nstat = get_json(zk, "/config/changes/config_change_0000000000")
    assert note == {"version": 2, "entity_path": "topics/logs"} and nstat.ephemeralOwner == 0

    since = kafka.mark()
    r = kafka.call("admin", "2.8", "add-config", "logs", "cleanup.policy=compact,retention.ms=1000")
    assert r["notification"] == "/config/changes/config_change_0000000001"
    for i in (1, 2, 3):
        ev = kafka.wait("config-change", since=since, broker=i, notification="config_change_0000000001")
        assert ev["config"] == {"retention.ms": "1000", "cleanup.policy": "compact"}

    since = kafka.mark()
    r = kafka.call("admin", "2.8", "delete-config", "logs", "retention.ms")
    assert r["notification"] == "/config/changes/config_change_0000000002"
    for i in (1, 2, 3):
        ev = kafka.wait("config-change", since=since, broker=i, notification="config_change_0000000002")
        assert ev["config"] == {"cleanup.policy": "compact"}
    cfg, cstat = get_json(zk, "/config/topics/logs")
    assert cfg == {"version": 1, "config": {"cleanup.policy": "compact"}} and cstat.version == 3
    assert children(zk, "/config/changes") == [f"config_change_{n:010d}" for n in range(3)]
    # each broker handled each notification exactly once
    for i in (1, 2, 3):
        assert len(kafka.find("config-change", broker=i)) == 3


def test_reassign_partitions(kafka, zk):
    start_brokers(kafka)
    create_topic(kafka, "moves", 2)

    since = kafka.mark()
    r = kafka.call("admin", "2.8", "reassign", "moves", 0, "2,3,1")
    assert r["data"] == {"version": 1, "partitions": [{"topic": "moves", "partition": 0, "replicas": [2, 3, 1]}]}
    done = kafka.wait("reassignment-done", since=since, broker=1)
    assert done["partitions"] == ["moves/0"]
    w = kafka.watches(1, since=since)
    assert ("NodeCreated", "/admin/reassign_partitions") in w
    assert zk.exists(CHROOT + "/admin/reassign_partitions") is None
    kafka.wait("watch", since=since, broker=1, type="NodeDeleted", path="/admin/reassign_partitions")
    topic, tstat = get_json(zk, "/brokers/topics/moves")
    assert topic["partitions"] == {"0": [2, 3, 1], "1": [2, 3, 1]}
    assert tstat.version == 1
    state, sstat = get_json(zk, "/brokers/topics/moves/partitions/0/state")
    assert state == {"controller_epoch": 1, "leader": 1, "version": 1, "leader_epoch": 1, "isr": [2, 3, 1]}
    assert sstat.version == 1

    # the exists watch was armed again: a second reassignment is seen too
    since = kafka.mark()
    kafka.call("admin", "2.8", "reassign", "moves", 1, "3,1,2")
    kafka.wait("reassignment-done", since=since, broker=1, partitions=["moves/1"])
    assert get_json(zk, "/brokers/topics/moves")[0]["partitions"]["1"] == [3, 1, 2]
    state, sstat = get_json(zk, "/brokers/topics/moves/partitions/1/state")
    assert (state["leader"], state["leader_epoch"], sstat.version) == (2, 1, 1)
    assert zk.exists(CHROOT + "/admin/reassign_partitions") is None


def test_controller_failover_on_session_close(kafka, zk):
    b = start_brokers(kafka)
    create_topic(kafka, "ha", 3)
    kafka.wait("broker-change", broker=1, live=[1, 2, 3])

    since = kafka.mark()
    kafka.call("stop", 1)
    won = kafka.wait("elected", since=since)
    w = won["broker"]
    other = 5 - w
    assert w in (2, 3) and (won["epoch"], won["epoch_zk_version"]) == (2, 2)
    for i in (2, 3):
        kafka.wait("watch", since=since, broker=i, type="NodeDeleted", path="/controller")
    # the loser either saw the new /controller first, or lost the multi race
    kafka.wait(since=since, broker=other, pred=lambda e: e["ev"] in ("election-lost", "controller-known"))
    lost = kafka.find("election-lost", since=since, broker=other)
    for e in lost:
        assert e["code"] in (NODEEXISTS, BADVERSION) and e["controller"] == w
        if e["code"] == NODEEXISTS:
            assert e["codes"] == [NODEEXISTS, RUNTIMEINCONSISTENCY]
        else:
            assert e["codes"] == [0, BADVERSION]
    assert len(kafka.find("elected", since=since)) == 1

    ctl, cstat = get_json(zk, "/controller")
    assert ctl["brokerid"] == w and cstat.ephemeralOwner == b[w]["session"]
    edata, estat = get(zk, "/controller_epoch")
    assert (edata, estat.version) == (b"2", 2)
    assert cstat.czxid == estat.mzxid
    assert children(zk, "/brokers/ids") == ["2", "3"]

    # partition 0 was led by 1: new leader elected with a fenced write at epoch 2
    ready = kafka.wait("controller-ready", since=since, broker=w)
    assert ready["live"] == [2, 3] and ready["topics"] == ["ha"]
    kafka.wait("leaders-elected", since=since, broker=w, why="failover", partitions=["ha/0"])
    s0, st0 = get_json(zk, "/brokers/topics/ha/partitions/0/state")
    assert s0 == {"controller_epoch": 2, "leader": 2, "version": 1, "leader_epoch": 1, "isr": [2, 3]}
    assert st0.version == 1
    s1, st1 = get_json(zk, "/brokers/topics/ha/partitions/1/state")
    assert (s1["controller_epoch"], s1["leader"], st1.version) == (1, 2, 0)

    # a write fenced with the old controller's epoch version is refused
    t = zk.transaction()
    t.check(CHROOT + "/controller_epoch", 1)
    t.set_data(CHROOT + "/brokers/topics/ha/partitions/1/state", b"stale")
    res = t.commit()
    assert isinstance(res[0], BadVersionError) and isinstance(res[1], RuntimeInconsistency)
    assert get(zk, "/brokers/topics/ha/partitions/1/state")[1].version == 0
    # a contender with the old epoch: the election multi reports the first failing op
    t = zk.transaction()
    t.create(CHROOT + "/controller", b'{"version":1,"brokerid":9,"timestamp":"0"}', ephemeral=True)
    t.set_data(CHROOT + "/controller_epoch", b"2", version=1)
    res = t.commit()
    assert [type(r) for r in res] == [NodeExistsError, RuntimeInconsistency], res
    assert get_json(zk, "/controller")[0]["brokerid"] == w

    # the new controller works: topics, and broker 1 coming back
    since = kafka.mark()
    create_topic(kafka, "ha2", 1, rf=2)
    s, _ = get_json(zk, "/brokers/topics/ha2/partitions/0/state")
    assert s == {"controller_epoch": 2, "leader": 2, "version": 1, "leader_epoch": 0, "isr": [2, 3]}
    b1 = kafka.call("start", 1, "2.8", 18000)
    assert b1["controller"] is False and b1["active_controller"] == w
    kafka.wait("broker-change", since=since, broker=w, added=[1])
    assert ("NodeChildrenChanged", "/brokers/ids") in kafka.watches(w, since=since)


def _chromium_dom(url):
    """The DOM of `url` after its scripts ran for 3 s, from headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-dev-shm-usage",
             "--virtual-time-budget=3000", f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
    return out.stdout


def test_console_kafka_view_shows_what_the_brokers_registered(kafka, zk):
    """The web console's Kafka view on a keeperd member (docs/monitoring.md) against what
    the emulated brokers and controller wrote: brokers and endpoints, the controller,
    each partition's replicas, leader and ISR; and the page itself in Chromium."""
    if _ENSEMBLE is None:
        pytest.skip("the console is keeperd's (its 3-node ensemble)")
    start_brokers(kafka)
    create_topic(kafka, "orders", 3)
    controller = get_json(zk, "/controller")[0]["brokerid"]
    port = _ENSEMBLE.members[0].extra_cfg["admin.serverPort"]
    url = f"http://{HOST}:{port}/console/api/kafka?root={CHROOT}"
    deadline = time.monotonic() + 10
    while True:  # the member may not have applied the last writes yet
        view = json.load(urllib.request.urlopen(url, timeout=10))
        topics = {t["name"]: t for t in view.get("topics") or []}
        parts = topics.get("orders", {}).get("partitions", [])
        if len(parts) == 3 and all(p["leader"] is not None for p in parts):
            break
        assert time.monotonic() < deadline, view
        time.sleep(0.2)
    assert CHROOT in view["roots"]
    assert [b["id"] for b in view["brokers"]] == ["1", "2", "3"]
    for b in view["brokers"]:
        reg, stat = get_json(zk, f"/brokers/ids/{b['id']}")
        assert b["endpoints"] == reg["endpoints"]
        assert b["session"] == hex(stat.ephemeralOwner)
    assert view["controller"] == controller
    assert view["topic_count"] == 1
    for p in parts:
        state, _ = get_json(zk, f"/brokers/topics/orders/partitions/{p['partition']}/state")
        assert p["replicas"] == rotation(p["partition"])
        assert (p["leader"], p["isr"]) == (state["leader"], state["isr"])

    dom = _chromium_dom(f"http://{HOST}:{port}/console#kafka")
    for b in (1, 2, 3):
        assert f'data-broker="{b}"' in dom, dom
    assert 'data-topic="orders"' in dom, dom
    assert f"controller: broker {controller}" in dom, dom


def test_broker_session_expiry_and_reregistration(kafka, zk):
    b = start_brokers(kafka, ids=(1, 2))
    b[3] = kafka.call("start", 3, "2.8", 4000, "proxy")
    session_ev = kafka.find("session", broker=3)[-1]
    assert session_ev["timeout"] == 4000
    create_topic(kafka, "exp", 1)
    kafka.wait("broker-change", broker=1, live=[1, 2, 3])
    old_stat = get(zk, "/brokers/ids/3")[1]
    assert old_stat.ephemeralOwner == b[3]["session"]

    # cut broker 3 off: no heartbeats, the server expires the session
    since = kafka.mark()
    t0 = time.monotonic()
    kafka.call("partition", 3)
    gone = kafka.wait("broker-change", since=since, broker=1, dead=[3], timeout=30)
    elapsed = time.monotonic() - t0
    assert gone["live"] == [1, 2]
    assert elapsed >= 2.5, f"session of 4000 ms expired after {elapsed:.1f}s"
    assert zk.exists(CHROOT + "/brokers/ids/3") is None
    assert ("NodeChildrenChanged", "/brokers/ids") in kafka.watches(1, since=since)
    kafka.wait("leaders-elected", since=since, broker=1, why="broker-failure", partitions=["exp/0"])
    s, st = get_json(zk, "/brokers/topics/exp/partitions/0/state")
    assert s == {"controller_epoch": 1, "leader": 1, "version": 1, "leader_epoch": 1, "isr": [1, 2]}
    assert st.version == 1

    # back on the network: the old session is refused (Expired), a new one registers
    kafka.call("heal", 3)
    kafka.wait("watch", since=since, broker=3, type="None", state="Expired", timeout=30)
    exp = kafka.wait("expired", since=since, broker=3)
    assert exp["session"] == b[3]["session"]
    rereg = kafka.wait("reregistered", since=since, broker=3, timeout=30)
    assert rereg["session"] != b[3]["session"]
    new_reg, new_stat = get_json(zk, "/brokers/ids/3")
    assert new_stat.ephemeralOwner == rereg["session"]
    assert new_stat.czxid == rereg["broker_epoch"] > old_stat.czxid
    assert new_stat.version == 1 and new_reg["version"] == 5
    back = kafka.wait("broker-change", since=since, broker=1, added=[3])
    assert back["live"] == [1, 2, 3]
    kafka.wait("controller-known", since=since, broker=3, controller=1)
    ctl, cstat = get_json(zk, "/controller")
    assert ctl["brokerid"] == 1 and cstat.ephemeralOwner == b[1]["session"]
    assert get(zk, "/controller_epoch")[0] == b"1"


def test_connection_loss_without_expiry_restores_watches(kafka, zk):
    """A short cut (well under the session timeout): same session, SetWatches on reconnect."""
    b = start_brokers(kafka, ids=(1, 2))
    b[3] = kafka.call("start", 3, "2.8", 18000, "proxy")
    create_topic(kafka, "keep", 1)
    since = kafka.mark()
    kafka.call("partition", 3)
    kafka.wait("watch", since=since, broker=3, type="None", state="Disconnected")
    # a config change while broker 3 is away: its child watch on /config/changes
    # (set before the cut) must fire once the reconnect re-sends it (SetWatches)
    r = kafka.call("admin", "2.8", "add-config", "keep", "retention.ms=1")
    assert r["notification"] == "/config/changes/config_change_0000000000"
    kafka.wait("config-change", since=since, broker=1, notification="config_change_0000000000")
    assert not kafka.find("config-change", since=since, broker=3)
    time.sleep(0.5)
    kafka.call("heal", 3)
    kafka.wait("watch", since=since, broker=3, type="None", state="SyncConnected", timeout=30)
    ev = kafka.wait("config-change", since=since, broker=3, notification="config_change_0000000000")
    assert ev["config"] == {"retention.ms": "1"}
    assert ("NodeChildrenChanged", "/config/changes") in kafka.watches(3, since=since)
    assert not kafka.find("expired", broker=3)
    # same session, same registration
    assert get(zk, "/brokers/ids/3")[1].ephemeralOwner == b[3]["session"]
    assert kafka.call("state", 3)["session"] == b[3]["session"]
    # the /controller watch survived the reconnect too: a failover reaches broker 3
    since = kafka.mark()
    kafka.call("stop", 1)
    kafka.wait("watch", since=since, broker=3, type="NodeDeleted", path="/controller")
    won = kafka.wait("elected", since=since)
    assert won["epoch"] == 2 and won["broker"] in (2, 3)


def test_brokers_ride_through_a_keeperd_leader_kill(kafka, zk):
    """The Java client with the three-server connect string keeps its sessions when the
    ensemble's leader is killed: registrations (ephemerals) stay with the same owners, the
    controller keeps its role, and admin work continues once a new leader is elected."""
    ens = _ENSEMBLE
    if ens is None:
        pytest.skip("needs the keeperd ensemble (ZooKeeper runs standalone as the oracle)")
    from conftest import four_letter

    b = start_brokers(kafka)
    create_topic(kafka, "before", 1)
    owners = {i: get(zk, f"/brokers/ids/{i}")[1].ephemeralOwner for i in (1, 2, 3)}
    assert owners == {i: b[i]["session"] for i in (1, 2, 3)}
    leader = next(m for m in ens.members if "Mode: leader" in four_letter(m.port, "srvr"))
    os.killpg(leader.proc.pid, signal.SIGKILL)
    leader.proc.wait(timeout=10)
    try:
        # Admin work needs the new leader; the emulated tool retries on ConnectionLoss.
        deadline = time.monotonic() + 30
        while True:
            try:
                create_topic(kafka, "after", 1)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        for i in (1, 2, 3):
            stat = get(zk, f"/brokers/ids/{i}")[1]
            assert stat.ephemeralOwner == b[i]["session"], f"broker {i} kept its session"
        ctl, _ = get_json(zk, "/controller")
        assert ctl["brokerid"] == 1
        assert children(zk, "/brokers/topics") == ["after", "before"]
    finally:
        # Bring the member back on its port so the ensemble is whole again.
        leader.spawn()


# ------------------------------------------------- zookeeper.set.acl=true (SASL)

SENSITIVE_ROOTS = ("/config/users", "/config/brokers", "/delegation_token/tokens")
# CREATOR_ALL_ACL (`auth`, ALL) as the server stores it for a session logged in as kafka.
CREATOR_ALL = ("sasl", "kafka", 31)
WORLD_READ = ("world", "anyone", 1)


def kafka_secure_acls(path):
    """The ACL Kafka 2.8 with zookeeper.set.acl=true gives `path` (chroot-relative), as it
    reads back (kafka.zk.ZkData.defaultAcls): creator ALL plus world READ, no world READ
    under the sensitive roots (credentials, broker configs, delegation tokens), and the old
    consumer path left open."""
    if path == "/consumers":
        return [("world", "anyone", 31)]
    if path.startswith(SENSITIVE_ROOTS):
        return [CREATOR_ALL]
    return [CREATOR_ALL, WORLD_READ]


@pytest.fixture(params=["zookeeper", "keeperd"])
def secure_hosts(request, tmp_path, jaas_dir, servers):
    """Servers with SASL as Kafka's docs configure them (authProvider.1 and a JAAS `Server`
    section): ZooKeeper 3.8 standalone, the oracle, or a 3-node keeperd ensemble, whose
    followers forward the brokers' writes with their `sasl:` identity."""
    cfg = {"authProvider.1": SASL_PROVIDER}
    flags = sasl_server_flags(jaas_dir)
    if request.param == "zookeeper":
        yield [servers("zookeeper", cfg, jvm_flags=flags).hosts()]
        return
    ens = Ensemble(tmp_path, 3, cfg, jvm_flags=flags).start()
    try:
        yield ens.hosts()
    finally:
        ens.stop()


@pytest.fixture
def secure_kafka(request, emu_classes, secure_hosts, jaas_dir):
    """The emulator as brokers with zookeeper.set.acl=true and a JAAS `Client` section."""
    flags = ["-Dkafkaemu.secure=true", *sasl_client_flags(jaas_dir)]
    yield from running_emu(request, emu_classes, secure_hosts, "compat-kafka-secure-", flags)


def tree(client, path=CHROOT):
    """Every znode at and under `path` (full paths), parents first."""
    client.sync(path)
    out = [path]
    for child in sorted(client.get_children(path)):
        out += tree(client, f"{path}/{child}")
    return out


def intruder_outcomes(client, paths):
    """What a session other than the brokers' gets for each znode: read, list, write, delete,
    create a child, set the ACL (the exception's name, or "ok")."""
    from kazoo.security import OPEN_ACL_UNSAFE

    def outcome(fn, *args):
        try:
            fn(*args)
            return "ok"
        except Exception as exc:  # noqa: BLE001 - the exception type is the outcome
            return type(exc).__name__

    out = {}
    for p in paths:
        out[p] = (
            outcome(client.get, p),
            outcome(client.get_children, p),
            outcome(client.set, p, b"intruder"),
            outcome(client.delete, p) if p != CHROOT else "-",
            outcome(client.create, f"{p}/intruder", b""),
            outcome(client.set_acls, p, OPEN_ACL_UNSAFE),
        )
        if out[p][4] == "ok":
            client.delete(f"{p}/intruder")
    return out


def expected_intruder_outcomes(paths):
    no = "NoAuthError"
    out = {}
    for p in paths:
        rel = p[len(CHROOT):] or "/"
        if rel == "/consumers":  # open: anyone may add consumer znodes, or change it
            out[p] = ("ok", "ok", "ok", no, "ok", "ok")
            continue
        read = "ok" if WORLD_READ in kafka_secure_acls(rel) else no
        out[p] = (read, read, no, no if p != CHROOT else "-", no, no)
    return out


def test_secure_kafka_sasl_acls(secure_kafka, secure_hosts):
    """Kafka 2.8 brokers with zookeeper.set.acl=true, logged in with SASL DIGEST-MD5: they
    register, elect a controller, the admin tools (logged in too) create a topic and a user
    quota; every znode carries exactly the ACL Kafka sets; anonymous clients and another
    SASL user read only what is world-readable and change nothing; the brokers still work
    (controller failover with fenced writes to znodes another broker's session created)."""
    kafka = secure_kafka
    hosts = ",".join(secure_hosts)
    b = start_brokers(kafka)
    for i in (1, 2, 3):  # each broker's session logged in
        kafka.wait("watch", broker=i, type="None", state="SaslAuthenticated", timeout=5)
    assert not kafka.find("watch", state="AuthFailed")
    assert (b[1]["controller"], b[2]["active_controller"]) == (True, 1)
    create_topic(kafka, "secure", 3)
    since = kafka.mark()
    r = kafka.call("admin", "2.8", "add-config", "users/alice", "producer_byte_rate=1024")
    assert r["notification"] == "/config/changes/config_change_0000000000"
    for i in (1, 2, 3):  # the brokers read the sensitive znode as its creator
        ev = kafka.wait("config-change", since=since, broker=i, entity_path="users/alice")
        assert ev["config"] == {"producer_byte_rate": "1024"}

    owner = sasl_kazoo(hosts, "kafka")
    anon = make_client(hosts)
    other = sasl_kazoo(hosts, "other")
    try:
        paths = tree(owner)
        for p in ("/brokers/ids/1", "/controller", "/brokers/topics/secure/partitions/2/state",
                  "/config/users/alice", "/config/brokers", "/cluster/id", "/feature",
                  "/config/changes/config_change_0000000000", "/consumers"):
            assert CHROOT + p in paths
        # The ACLs read back are Kafka's, on every znode.
        acls = {p: [(a.id.scheme, a.id.id, a.perms) for a in owner.get_acls(p)[0]] for p in paths}
        assert acls == {p: kafka_secure_acls(p[len(CHROOT):] or "/") for p in paths}
        assert acls[CHROOT + "/config/users/alice"] == [CREATOR_ALL]
        assert acls[CHROOT + "/brokers/ids/1"] == [CREATOR_ALL, WORLD_READ]
        before = {p: owner.get(p) for p in paths}

        expected = expected_intruder_outcomes(paths)
        assert intruder_outcomes(anon, paths) == expected
        assert intruder_outcomes(other, paths) == expected
        # What the intruders could read is what is there; nothing changed (but the open
        # /consumers, which they wrote).
        for p in paths:
            if p == CHROOT + "/consumers":
                continue
            anon.sync(p)
            if expected[p][0] == "ok":
                assert anon.get(p) == before[p]
            assert owner.get(p) == before[p]
        assert tree(owner) == paths
    finally:
        for c in (owner, anon, other):
            c.stop()
            c.close()

    # The brokers still work: failover, the new controller's fenced writes to znodes that
    # broker 1's session created, a new topic, all with Kafka's ACLs.
    since = kafka.mark()
    kafka.call("stop", 1)
    won = kafka.wait("elected", since=since)
    assert won["broker"] in (2, 3) and won["epoch"] == 2
    kafka.wait("leaders-elected", since=since, broker=won["broker"], why="failover",
               partitions=["secure/0"])
    create_topic(kafka, "after", 1, rf=2)
    owner = sasl_kazoo(hosts, "kafka")
    try:
        state = json.loads(owner.get(CHROOT + "/brokers/topics/secure/partitions/0/state")[0])
        assert (state["controller_epoch"], state["leader"], state["isr"]) == (2, 2, [2, 3])
        for p in tree(owner):
            got = [(a.id.scheme, a.id.id, a.perms) for a in owner.get_acls(p)[0]]
            assert got == kafka_secure_acls(p[len(CHROOT):] or "/"), p
        assert sorted(owner.get_children(CHROOT + "/brokers/topics")) == ["after", "secure"]
    finally:
        owner.stop()
        owner.close()
