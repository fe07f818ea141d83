"""Dynamic reconfig (opcode 16) on a 3-node ensemble, driven with zkCli.sh and kazoo.

Runs against the kinds server_kinds() selects (COMPAT_SERVER=keeperd|zookeeper|both), each
test on its own fresh ensemble with reconfigEnabled=true and a superDigest. What is checked
is ZooKeeper 3.8's behaviour as recorded in docs/compatibility.md ("Dynamic reconfig"):
the bytes of /zookeeper/config (`server.N=host:quorum:election:participant[;host:port]`
lines, then `version=<hex zxid>` equal to the node's mzxid, dataVersion -1), zkCli's output,
the watch on /zookeeper/config, a server added with `reconfig -add` serving the data written
before it joined, and the error codes and zkCli texts of refused reconfigs.
"""

import subprocess
import threading
import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    MarshallingError,
    NewConfigNoQuorumError,
    NoAuthError,
    NodeExistsError,
    ReconfigDisabledError,
)
from kazoo.retry import KazooRetry

from conftest import (
    HOST,
    ZKCLI,
    Ensemble,
    four_letter,
    server_kinds,
    super_digest,
)

SUPER = "super:reconfig-secret"
RECONFIG_CFG = {
    "tickTime": "500",
    "reconfigEnabled": "true",
    "DigestAuthenticationProvider.superDigest": super_digest(*SUPER.split(":", 1)),
}
CONFIG = "/zookeeper/config"
NO_QUORUM = (
    "No quorum of new config is connected and up-to-date with the leader of last "
    "committed config - try invoking reconfiguration after new servers are connected "
    "and synced"
)
SENTINEL = "/zz_reconfig_sentinel_"
BANNER = ("Connecting to ", "Welcome to ZooKeeper!", "JLine support", "SLF4J:")


@pytest.fixture(params=server_kinds())
def kind(request):
    return request.param


def start_ensemble(kind, path, cfg=RECONFIG_CFG):
    return Ensemble(path, 3, cfg, kind=kind).start()


@pytest.fixture
def ensemble(kind, tmp_path):
    ens = start_ensemble(kind, tmp_path)
    try:
        yield ens
    finally:
        ens.stop()


@pytest.fixture
def clients(kazoo_factory):
    """kazoo clients, as super unless auth=False; closed at teardown."""

    def make(hosts, auth=True, **kw):
        if auth:
            kw["auth_data"] = [("digest", SUPER)]
        return kazoo_factory(hosts, **kw)

    return make


def zkcli(hosts, commands, auth=True, timeout=90):
    """Runs `commands` in one zkCli.sh session (after `addauth digest super:...` unless
    auth=False); returns each command's output, stdout and stderr merged in order, without
    zkCli's banner and watcher notices. Commands are told apart by a `get` of a missing
    sentinel node after each one ("Node does not exist: <sentinel>")."""
    script = [f"addauth digest {SUPER}"] if auth else []
    for i, command in enumerate(commands):
        script += [command, f"get {SENTINEL}{i}"]
    script.append("quit")
    proc = subprocess.run(
        [str(ZKCLI), "-server", hosts],
        input="\n".join(script) + "\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    text = proc.stdout
    outputs = []
    rest = text
    for i in range(len(commands)):
        marker = f"Node does not exist: {SENTINEL}{i}"
        before, found, rest = rest.partition(marker)
        assert found, f"zkCli output lacks {marker!r}:\n{text}"
        outputs.append(_clean(before))
    return outputs


def _clean(chunk):
    lines = []
    skip_next_blank = False
    for line in chunk.splitlines():
        if line.startswith(BANNER):
            continue
        if line == "WATCHER::" or line.startswith("WatchedEvent state:"):
            skip_next_blank = True
            continue
        if skip_next_blank and not line.strip():
            continue
        skip_next_blank = False
        lines.append(line)
    return "\n".join(lines).strip("\n")


def parse_config(data):
    """/zookeeper/config data (bytes or zkCli text) -> ({id: line}, version hex string)."""
    if isinstance(data, bytes):
        data = data.decode()
    assert data, "empty /zookeeper/config (ZooKeeper fills it in before it serves clients)"
    servers = {}
    version = None
    for line in data.split("\n"):
        if line.startswith("server."):
            sid = int(line[len("server."):].split("=", 1)[0])
            servers[sid] = line
        elif line.startswith("version="):
            version = line[len("version="):]
        else:
            raise AssertionError(f"unexpected line {line!r} in config {data!r}")
    assert version is not None, f"no version= line in {data!r}"
    int(version, 16)  # hex, without 0x
    assert not version.startswith("0x"), version
    return servers, version


def member_line(ens, srv, client=False):
    """The line /zookeeper/config shows for `srv`: role participant, client part only if
    the configuration was given one."""
    q, e = ens.peers[srv.sid]
    line = f"server.{srv.sid}={HOST}:{q}:{e}:participant"
    return f"{line};{HOST}:{srv.port}" if client else line


def initial_lines(ens):
    return {m.sid: member_line(ens, m) for m in ens.members}


def wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def retrying(fn, *args, deadline=20):
    """fn(*args), retried through ConnectionLoss while the ensemble settles."""
    return KazooRetry(max_tries=-1, delay=0.1, max_delay=1, deadline=deadline)(fn, *args)


def synced_followers(srv):
    for line in four_letter(srv.port, "mntr", timeout=2.0).splitlines():
        if line.startswith("zk_synced_followers"):
            return int(line.split()[1])
    return None


def committed(output):
    """The config text of zkCli's `Committed new configuration:` reply."""
    head, _, body = output.partition("\n")
    assert head == "Committed new configuration:", output
    return body


@pytest.mark.timeout(240)
def test_add_server_4_then_remove_it(ensemble, clients):
    ens = ensemble
    hosts = ",".join(ens.hosts())
    c = clients(hosts)
    c.create("/before", b"written before the reconfig")

    data, stat = c.get(CONFIG)
    servers, version = parse_config(data)
    assert servers == initial_lines(ens), data
    assert data.endswith(f"\nversion={version}".encode()), "no trailing newline"
    assert stat.mzxid == int(version, 16), (stat, version)
    assert stat.version == -1 and stat.czxid == 0 and stat.ctime == 0, stat

    fired = []
    got_event = threading.Event()

    def watcher(event):
        fired.append(event)
        got_event.set()

    c.get(CONFIG, watch=watcher)

    # Server 4 first, with a zoo.cfg listing 1..4; then the incremental add.
    n4 = ens.new_server()
    n4.spawn()
    n4.wait_listening()
    reply, shown = zkcli(hosts, [f"reconfig -add {ens.server_line(n4)}", "config"])
    new_config = committed(reply)
    assert new_config == shown, (reply, shown)
    servers4, version4 = parse_config(shown)
    expected = {**initial_lines(ens), 4: member_line(ens, n4, client=True)}
    assert servers4 == expected, shown
    assert int(version4, 16) > int(version, 16)

    assert got_event.wait(20), "watch on /zookeeper/config did not fire"
    assert fired[0].type == "CHANGED" and fired[0].path == CONFIG, fired

    data4, stat4 = c.get(CONFIG)
    assert data4.decode() == new_config
    assert stat4.mzxid == int(version4, 16), (stat4, version4)
    assert stat4.version == -1, stat4
    assert stat4.data_length == len(data4)

    # The new member serves, with the data written before it joined.
    n4.wait_serving()
    c4 = clients(n4.hosts())
    c4.sync("/")
    assert c4.get("/before")[0] == b"written before the reconfig"
    assert c4.get(CONFIG)[0] == data4
    c4.create("/through_4", b"x")
    c.sync("/")
    assert c.exists("/through_4") is not None
    c4.stop()

    reply, shown = zkcli(hosts, ["reconfig -remove 4", "config"])
    assert committed(reply) == shown
    servers_after, version_after = parse_config(shown)
    assert servers_after == initial_lines(ens), shown
    assert int(version_after, 16) > int(version4, 16)
    c.sync("/")
    data, stat = c.get(CONFIG)
    assert data.decode() == shown
    assert stat.mzxid == int(version_after, 16)


@pytest.mark.timeout(240)
def test_members_replaces_the_whole_list(ensemble, clients):
    ens = ensemble
    hosts = ",".join(ens.hosts())
    members = ",".join(ens.server_line(m) for m in ens.members)
    reply, shown = zkcli(hosts, [f"reconfig -members {members}", "config -s"])
    servers, version = parse_config(committed(reply))
    assert servers == {m.sid: member_line(ens, m, client=True) for m in ens.members}
    config_text, _, stat_text = shown.partition("\ncZxid = ")
    assert config_text == committed(reply)
    assert f"mZxid = 0x{version}" in stat_text, shown
    assert "dataVersion = -1" in stat_text, shown
    # Every member serves the same configuration afterwards.
    for m in ens.members:
        one = clients(m.hosts(), auth=False)
        one.sync("/")
        assert one.get(CONFIG)[0].decode() == config_text, m


@pytest.mark.timeout(240)
def test_refused_reconfigs(ensemble, clients):
    ens = ensemble
    hosts = ",".join(ens.hosts())
    c = clients(hosts)
    anonymous = clients(hosts, auth=False)
    before, stat_before = c.get(CONFIG)
    _, version = parse_config(before)

    # Not running and never started: a joining line for them is valid, but no quorum of
    # a 6-voter configuration (4 needed) is connected.
    ghosts = [ens.new_server() for _ in range(3)]
    ghost_lines = ",".join(ens.server_line(g) for g in ghosts)
    outs = zkcli(
        hosts,
        [
            "reconfig -v 12345 -remove 3",
            f"reconfig -add {ens.server_line(ghosts[0], client=False)}",
            "reconfig -remove 2,3",
            f"reconfig -add {ghost_lines}",
            "config",
        ],
    )
    assert outs[0] == "version No is not valid : ", outs
    assert outs[1] == "Arguments are not valid : ", outs
    assert outs[2] == "Arguments are not valid : ", outs
    assert outs[3] == NO_QUORUM, outs
    assert outs[4] == before.decode(), "failed reconfigs leave the config alone"

    (noauth,) = zkcli(hosts, ["reconfig -remove 3"], auth=False)
    assert noauth == "Insufficient permission : ", noauth

    with pytest.raises(NoAuthError):
        anonymous.reconfig(joining=None, leaving="3", new_members=None)
    with pytest.raises(BadVersionError):
        c.reconfig(joining=None, leaving="3", new_members=None, from_config=0x12345)
    with pytest.raises(BadArgumentsError):
        c.reconfig(
            joining=ens.server_line(ghosts[0], client=False),
            leaving=None,
            new_members=None,
        )
    with pytest.raises(BadArgumentsError):
        c.reconfig(joining=None, leaving="2,3", new_members=None)
    with pytest.raises(NewConfigNoQuorumError):
        c.reconfig(joining=ghost_lines, leaving=None, new_members=None)
    with pytest.raises(MarshallingError):
        c.reconfig(joining=None, leaving="abc", new_members=None)

    data, stat = c.get(CONFIG)
    assert data == before and stat.mzxid == stat_before.mzxid

    # A reconfig that changes nothing (9 is no member) with the right -v still commits a
    # new configuration: same servers, new version, and the watch fires.
    fired = threading.Event()
    c.get(CONFIG, watch=lambda event: fired.set())
    (reply,) = zkcli(hosts, [f"reconfig -v {version} -remove 9"])
    servers, new_version = parse_config(committed(reply))
    assert servers == initial_lines(ens)
    assert int(new_version, 16) > int(version, 16)
    assert fired.wait(20), "watch did not fire for a no-op reconfig"
    data, stat = c.get(CONFIG)
    assert stat.mzxid == int(new_version, 16)


@pytest.mark.timeout(240)
def test_no_synced_quorum_left(ensemble, clients):
    ens = ensemble
    leader = ens.leader()
    stopped, other = [m for m in ens.members if m is not leader]
    stopped.stop()
    # Both kinds report the followers the leader has in sync; wait until it saw the stop.
    wait_for(lambda: synced_followers(leader) == 1, 30, "the leader to drop the follower")
    c = clients(leader.hosts())
    before = c.get(CONFIG)[0]
    # {leader, stopped} would have to be a quorum of the new configuration.
    (out,) = zkcli(leader.hosts(), [f"reconfig -remove {other.sid}"])
    assert out == NO_QUORUM, out
    with pytest.raises(NewConfigNoQuorumError):
        c.reconfig(joining=None, leaving=str(other.sid), new_members=None)
    assert c.get(CONFIG)[0] == before


@pytest.mark.timeout(240)
def test_remove_the_leader(ensemble, clients):
    ens = ensemble
    leader = ens.leader()
    rest = [m for m in ens.members if m is not leader]
    c = clients(rest[0].hosts())
    c.create("/before", b"1")
    # Asked on the leader itself, which answers before it hands leadership over.
    (reply,) = zkcli(leader.hosts(), [f"reconfig -remove {leader.sid}"])
    servers, version = parse_config(committed(reply))
    assert servers == {m.sid: member_line(ens, m) for m in rest}, reply

    # One of the remaining two leads; both serve the new configuration and the data.
    def new_leader():
        return any(m.mode() == "leader" for m in rest)

    wait_for(new_leader, 30, "a new leader among the remaining servers")
    for m in rest:
        one = clients(m.hosts(), auth=False)
        retrying(one.sync, "/")
        data, stat = retrying(one.get, CONFIG)
        assert data.decode() == committed(reply), m
        assert stat.mzxid == int(version, 16)
        assert retrying(one.get, "/before")[0] == b"1"
    writer = clients(rest[1].hosts(), auth=False)
    try:
        retrying(writer.create, "/after", b"2")
    except NodeExistsError:
        pass  # a retried create whose first attempt was applied


@pytest.mark.timeout(180)
def test_reconfig_disabled(kind, tmp_path, clients):
    ens = start_ensemble(kind, tmp_path, {"tickTime": "500"})
    try:
        hosts = ",".join(ens.hosts())
        c = clients(hosts, auth=False)
        data, _ = c.get(CONFIG)
        servers, _ = parse_config(data)
        assert servers == initial_lines(ens), data
        line = f"server.4={HOST}:1:2;{HOST}:3"
        (out,) = zkcli(hosts, [f"reconfig -add {line}"], auth=False)
        assert out == "KeeperErrorCode = Reconfig is disabled", out
        with pytest.raises(ReconfigDisabledError):
            c.reconfig(joining=line, leaving=None, new_members=None)
    finally:
        ens.stop()
