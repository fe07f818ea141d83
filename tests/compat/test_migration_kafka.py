"""Kafka brokers keep running through the switch from a ZooKeeper ensemble to keeperd.

docs/migration.md, "An ensemble, with Kafka running": a 3-node Apache ZooKeeper 3.8
ensemble (Debian) with a 3.4-era zoo.cfg (no `4lw.commands.whitelist` line) serves three
emulated Kafka 2.8 brokers (tests/compat/kafka/KafkaEmu.java, ZooKeeper's own Java client,
chroot /kafka01, session timeout 18 s as in Kafka 2.5+) and a topic. All three ZooKeeper
servers are stopped and keeperd started on each one's zoo.cfg, dataDir and ports, well
within the session timeout. Then:

- no broker saw its session expire: same session ids, `/brokers/ids/N` and `/controller`
  ephemerals with the same owners (and czxids), the controller still elected, still after a
  whole session timeout has passed on keeperd;
- the brokers' watches came back (SetWatches): a new topic is created by the controller,
  described and listed by the emulated tools, and a config change reaches every broker;
- zxids continue above ZooKeeper's; every member serves the new topic;
- an imported session still closes as any other: broker 1 (the controller) stops, its
  ephemerals go and another broker is elected on keeperd;
- the runbook's checks: `echo ruok` answers `imok` and `echo mntr | nc leader` shows
  `zk_synced_followers\t2`, with no whitelist line in zoo.cfg.
"""

import json
import re
import time

import pytest

from conftest import Ensemble, make_client
from test_kafka import (  # noqa: F401 - emu_classes is a fixture
    CHROOT,
    create_topic,
    emu_classes,
    running_emu,
    start_brokers,
)

pytestmark = pytest.mark.timeout(150)

SESSION_MS = 18000
# The switch (first ZooKeeper stopped -> every keeperd serving; ~8 s here on 2 cores) must be
# done well within the brokers' session timeout.
SWITCH_BUDGET_S = SESSION_MS / 1000 - 3
# A 3.4-era zoo.cfg: no whitelist line (Ensemble writes initLimit/syncLimit/server.N).
CFG = {"4lw.commands.whitelist": None}


def _print_logs(ens):
    for m in ens.members:
        print(f"\n--- {m.kind} n{m.sid} log ({m.log_path}), last lines ---\n{m.log_tail(120)}")


@pytest.fixture
def ensemble(request, tmp_path):
    ens = Ensemble(tmp_path, 3, CFG, kind="zookeeper")
    try:
        ens.start()
        yield ens
    finally:
        if getattr(request.node, "_compat_failed", False):
            _print_logs(ens)
        ens.stop()


@pytest.fixture
def kafka(request, emu_classes, ensemble):  # noqa: F811 - the fixture imported above
    """The emulator JVM on the ensemble's three-server connect string."""
    yield from running_emu(request, emu_classes, ensemble.hosts(), "compat-kafka-migration-")


def srvr_field(server, name):
    for line in server.four("srvr").splitlines():
        if line.startswith(name + ": "):
            return line[len(name) + 2:].strip()
    return None


def keeperd_log(server):
    """The part of server.log written since keeperd was spawned on it (ZooKeeper's before)."""
    text = server.log_text()
    at = text.rfind("keeperd start-foreground")
    return text[at:] if at >= 0 else ""


def snapshot_of(zk):
    """What must survive the switch: registrations, controller, epoch."""
    out = {}
    for i in sorted(zk.get_children(CHROOT + "/brokers/ids")):
        data, st = zk.get(f"{CHROOT}/brokers/ids/{i}")
        out[f"/brokers/ids/{i}"] = (data, st.ephemeralOwner, st.czxid, st.mzxid, st.version)
    data, st = zk.get(CHROOT + "/controller")
    out["/controller"] = (data, st.ephemeralOwner, st.czxid, st.mzxid, st.version)
    data, st = zk.get(CHROOT + "/controller_epoch")
    out["/controller_epoch"] = (data, st.ephemeralOwner, st.czxid, st.mzxid, st.version)
    return out


def test_kafka_brokers_ride_through_the_switch_to_keeperd(kafka, ensemble):
    ens = ensemble
    cfg_before = {m.sid: m.cfg_path.read_text() for m in ens.members}
    for text in cfg_before.values():
        assert "4lw.commands.whitelist" not in text
    # ZooKeeper 3.8 with a 3.4-era zoo.cfg answers srvr only.
    assert "not in the whitelist" in ens.members[0].four("ruok")
    zk_leader = ens.leader()

    # --- Kafka on ZooKeeper
    b = start_brokers(kafka, timeout_ms=SESSION_MS)
    for i in (1, 2, 3):
        assert kafka.find("session", broker=i)[-1]["timeout"] == SESSION_MS
    sessions = {i: b[i]["session"] for i in (1, 2, 3)}
    assert len(set(sessions.values())) == 3
    assert b[1]["controller"] is True
    create_topic(kafka, "before", 3)
    kafka.wait("broker-change", broker=1, live=[1, 2, 3])

    zk = make_client(",".join(ens.hosts()))
    try:
        before = snapshot_of(zk)
        topics_before = sorted(zk.get_children(CHROOT + "/brokers/topics"))
    finally:
        zk.stop()
        zk.close()
    for i in (1, 2, 3):
        assert before[f"/brokers/ids/{i}"][1] == sessions[i]
    ctl = json.loads(before["/controller"][0])
    assert ctl["brokerid"] == 1 and before["/controller"][1] == sessions[1]
    assert topics_before == ["before"]
    zk_zxid = int(srvr_field(zk_leader, "Zxid"), 16)
    states_before = {i: kafka.call("state", i) for i in (1, 2, 3)}

    # --- the switch: stop every ZooKeeper, start keeperd on each, same zoo.cfg
    since = kafka.mark()
    t0 = time.monotonic()
    for m in ens.members:
        m.stop()
    stopped = time.monotonic() - t0
    for m in ens.members:
        assert m.cfg_path.read_text() == cfg_before[m.sid]
        m.kind = "keeperd"
        m.spawn()
    started_at = time.monotonic()
    for m in ens.members:
        m._wait_ready()
    serving = time.monotonic() - t0
    print(f"switch: ZooKeeper stopped in {stopped:.1f}s, keeperd serving {serving:.1f}s after the first stop")
    assert serving < SWITCH_BUDGET_S, f"the switch took {serving:.1f}s"
    for m in ens.members:
        assert "taken over" in keeperd_log(m), m.log_tail()

    # --- the brokers reconnect with their sessions
    for i in (1, 2, 3):
        kafka.wait("watch", since=since, broker=i, type="None", state="Disconnected", timeout=20)
        kafka.wait("watch", since=since, broker=i, type="None", state="SyncConnected", timeout=30)
    reconnected = time.monotonic() - t0
    print(f"brokers reconnected {reconnected:.1f}s after the first stop")

    # --- the runbook's checks, with no whitelist line
    leader = ens.leader(timeout=30)
    assert leader.four("ruok") == "imok"
    for m in ens.members:
        assert m.four("ruok") == "imok", m
        assert "not in the whitelist" in m.four("cons"), m
    deadline = time.monotonic() + 30
    synced = None
    while time.monotonic() < deadline:
        synced = [
            ln for ln in leader.four("mntr").splitlines() if ln.startswith("zk_synced_followers")
        ]
        if synced == ["zk_synced_followers\t2"]:
            break
        time.sleep(0.3)
    assert synced == ["zk_synced_followers\t2"], synced
    assert sorted(m.mode() for m in ens.members) == ["follower", "follower", "leader"]

    # --- registrations, controller and sessions as before
    zk = make_client(",".join(ens.hosts()))
    try:
        assert snapshot_of(zk) == before
        for i in (1, 2, 3):
            st = kafka.call("state", i)
            assert st["session"] == sessions[i]
            assert (st["controller"], st["active_controller"], st["controller_epoch"]) == (
                states_before[i]["controller"],
                states_before[i]["active_controller"],
                states_before[i]["controller_epoch"],
            )

        # --- the controller's watches are back: a new topic, described by the tools
        create_topic(kafka, "after", 3)
        assert kafka.call("admin", "2.8", "list")["topics"] == ["after", "before"]
        desc = kafka.call("admin", "2.8", "describe", "after")
        assert sorted(desc["partitions"]) == ["0", "1", "2"]
        for p, part in desc["partitions"].items():
            assert part["leader"] == part["replicas"][0], (p, part)
            assert sorted(part["isr"]) == [1, 2, 3] and part["leader_epoch"] == 0, (p, part)
        st = zk.exists(CHROOT + "/brokers/topics/after")
        assert st.czxid > zk_zxid, f"new zxid {st.czxid:#x} not above ZooKeeper's {zk_zxid:#x}"
        assert st.czxid >> 32 > zk_zxid >> 32, "keeperd's term is above ZooKeeper's epoch"
        # Every broker's child watch on /config/changes came back too.
        mark = kafka.mark()
        r = kafka.call("admin", "2.8", "add-config", "after", "retention.ms=60000")
        note = r["notification"].rsplit("/", 1)[1]
        for i in (1, 2, 3):
            kafka.wait("config-change", since=mark, broker=i, notification=note)

        # Every member serves the new topic.
        for m in ens.members:
            c = make_client(m.hosts())
            try:
                c.sync(CHROOT)
                assert sorted(c.get_children(CHROOT + "/brokers/topics")) == ["after", "before"], m
            finally:
                c.stop()
                c.close()

        # A whole session timeout on keeperd later, nothing has expired.
        wait = SESSION_MS / 1000 + 3 - (time.monotonic() - started_at)
        if wait > 0:
            time.sleep(wait)
        assert snapshot_of(zk) == before
    finally:
        zk.stop()
        zk.close()
    assert not kafka.find("expired"), kafka.find("expired")
    assert not kafka.find("reregistered")
    assert not kafka.find("watch", state="Expired")
    assert not kafka.find("elected", since=since), "no new controller election"
    assert not kafka.find("resigned", since=since)
    for i in (1, 2, 3):
        assert kafka.call("state", i)["session"] == sessions[i]

    # An imported session closes like any other: the controller's ephemerals go, and the
    # other brokers (imported sessions too) elect a new controller on keeperd.
    mark = kafka.mark()
    kafka.call("stop", 1)
    won = kafka.wait("elected", since=mark)
    assert won["broker"] in (2, 3) and won["epoch"] == int(before["/controller_epoch"][0]) + 1
    zk = make_client(",".join(ens.hosts()))
    try:
        assert sorted(zk.get_children(CHROOT + "/brokers/ids")) == ["2", "3"]
        data, st = zk.get(CHROOT + "/controller")
        assert json.loads(data)["brokerid"] == won["broker"]
        assert st.ephemeralOwner == sessions[won["broker"]]
    finally:
        zk.stop()
        zk.close()

    # keeperd's logs: no errors, nothing of refused or expired sessions. (This ensemble has
    # no quorum secret: the start-up warning that its session passwords derive from a public
    # constant is expected.)
    for m in ens.members:
        bad = [
            ln
            for ln in keeperd_log(m).splitlines()
            if " ERROR " in ln
            or (
                " WARN " in ln
                and re.search(r"(?i)session|password|expir", ln)
                and "derive from a public constant" not in ln
            )
        ]
        assert not bad, (m, bad[:20])
