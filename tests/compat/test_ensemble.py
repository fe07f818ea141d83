"""Real clients on a 3-node keeperd ensemble through a leader kill.

kazoo connected with the three-node connect string must see ConnectionLoss (SUSPENDED) and
recover with the same session: its ephemeral stays, its watches still fire, writes go on.
ZooKeeper's own zkCli.sh must work against any member with the multi-host connect string.
"""

import os
import signal
import subprocess
import threading
import time

import pytest
from kazoo.client import KazooState
from kazoo.retry import KazooRetry

from conftest import ZKCLI, Ensemble, four_letter


@pytest.fixture
def ensemble(tmp_path):
    ens = Ensemble(tmp_path, 3, {"tickTime": "200"}).start()
    try:
        yield ens
    finally:
        ens.stop()


def leader_of(ens, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = []
        for m in ens.members:
            if not m.alive():
                continue
            try:
                srvr = four_letter(m.port, "srvr", timeout=1.0)
            except OSError:
                continue
            if "Mode: leader" in srvr:
                leaders.append(m)
        if len(leaders) == 1:
            return leaders[0]
        time.sleep(0.05)
    raise AssertionError("no single leader")


def test_kazoo_keeps_its_session_through_a_leader_kill(ensemble):
    from kazoo.client import KazooClient

    # Connect to the leader first, so killing it forces a reconnect to another member with
    # the session id and password, and watches restored by setWatches.
    leader = leader_of(ensemble)
    others = [m.hosts() for m in ensemble.members if m is not leader]
    hosts = ",".join([leader.hosts()] + others)
    states = []
    client = KazooClient(
        hosts=hosts,
        randomize_hosts=False,
        timeout=6.0,
        connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5),
        command_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5, deadline=30),
    )
    client.add_listener(states.append)
    client.start(timeout=20)
    try:
        session = client.client_id[0]
        client.create("/broker", b"1", ephemeral=True)
        client.ensure_path("/topics")
        fired = threading.Event()
        client.get_children("/topics", watch=lambda ev: fired.set())

        assert client._connection._socket.getpeername()[1] == leader.port, "on the leader"
        os.killpg(leader.proc.pid, signal.SIGKILL)
        leader.proc.wait(timeout=10)

        # Writes go on (retried across the ConnectionLoss) once a new leader is elected. A
        # retried create may find its first attempt applied: NodeExists is success here.
        from kazoo.exceptions import NodeExistsError

        try:
            client.retry(client.create, "/topics/t1", b"x")
        except NodeExistsError:
            pass
        assert fired.wait(20), "child watch survived the failover"
        assert client.client_id[0] == session, "same session after recovery"
        assert client.exists("/broker") is not None, "ephemeral of the live session kept"
        new_leader = leader_of(ensemble)
        assert new_leader is not leader
        assert KazooState.SUSPENDED in states, "the connection to the leader was lost"
        assert states[-1] == KazooState.CONNECTED
        assert KazooState.LOST not in states, "the session was kept"
        port = client._connection._socket.getpeername()[1]
        assert port != leader.port, "reconnected to another member"
    finally:
        client.stop()
        client.close()


def test_zkcli_with_a_multi_host_connect_string(ensemble):
    hosts = ",".join(ensemble.hosts())
    out = subprocess.run(
        [str(ZKCLI), "-server", hosts],
        input="create /kafka01\ncreate /kafka01/brokers\nls /kafka01\nquit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = out.stdout + out.stderr
    assert "Created /kafka01/brokers" in text, text
    assert "[brokers]" in text, text
    # Every member has the data.
    for m in ensemble.members:
        one = subprocess.run(
            [str(ZKCLI), "-server", m.hosts(), "ls", "/kafka01"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "[brokers]" in one.stdout + one.stderr
