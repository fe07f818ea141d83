"""Apache ZooKeeper's own zkCli.sh (Debian package) against the server.

zkCli.sh reads commands from stdin when stdin is not a terminal ("JLine support
is disabled"), so each test feeds one script to one JVM (about 0.6 s each) and
asserts on the text it prints. stdout and stderr are merged: zkCli 3.8 prints
"Created ..." and error messages on stderr, results on stdout, both line-flushed,
so the merged order follows the command order. Every script ends with `quit`,
which closes the session (EOF alone exits without closing it, leaving the
session, and its ephemerals, to expire).
"""

import os
import re
import subprocess

import pytest

from conftest import ZKCLI

NOISE = ("SLF4J:", "Welcome to ZooKeeper!", "JLine support is disabled")


def zkcli(server, commands, chroot="", timeout=60):
    """Run one zkCli.sh session; return (exit code, merged output lines)."""
    if not ZKCLI.exists():
        pytest.fail(f"{ZKCLI} missing: run scripts/setup (zookeeper package)")
    script = "".join(c + "\n" for c in list(commands) + ["quit"])
    env = dict(os.environ)
    # Client JVM start-up dominates; C1 only is plenty for a CLI.
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"
    res = subprocess.run(
        [str(ZKCLI), "-server", server.hosts(chroot)],
        input=script.encode(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=timeout,
        env=env,
    )
    lines = [
        ln
        for ln in res.stdout.decode("utf-8", "replace").splitlines()
        if not ln.startswith(NOISE)
    ]
    return res.returncode, lines


def zkcli_one(server, *argv, chroot="", timeout=60):
    """zkCli.sh -server HOST:PORT CMD ARGS... (single-command mode)."""
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"
    res = subprocess.run(
        [str(ZKCLI), "-server", server.hosts(chroot), *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=env,
    )
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def assert_in_order(lines, expected):
    """Each expected line (exact, or a compiled regex) appears, in this order."""
    pos = 0
    for exp in expected:
        for i in range(pos, len(lines)):
            ok = exp.fullmatch(lines[i]) if isinstance(exp, re.Pattern) else lines[i] == exp
            if ok:
                pos = i + 1
                break
        else:
            raise AssertionError(
                f"expected {exp!r} after line {pos} in zkCli output:\n" + "\n".join(lines)
            )


def stat_blocks(lines):
    """Parse the `key = value` Stat blocks zkCli prints (get -s, stat, ls -s)."""
    blocks, cur = [], None
    for ln in lines:
        m = re.fullmatch(r"(\w+) = (.*)", ln)
        if m:
            if m.group(1) == "cZxid":
                cur = {}
                blocks.append(cur)
            if cur is not None:
                cur[m.group(1)] = m.group(2)
        else:
            cur = None
    return blocks


STAT_KEYS = [
    "cZxid",
    "ctime",
    "mZxid",
    "mtime",
    "pZxid",
    "cversion",
    "dataVersion",
    "aclVersion",
    "ephemeralOwner",
    "dataLength",
    "numChildren",
]


def test_kafka_layout_and_chroot(server):
    broker = '{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"host":"h1","port":9092}'
    rc, out = zkcli(
        server,
        [
            "create /kafka01",
            "create /kafka01/brokers",
            "create /kafka01/brokers/ids",
            "ls /kafka01/brokers/ids",
            f"create /kafka01/brokers/ids/1 '{broker}'",
            "create /kafka01/brokers/ids/2 b2",
            "ls /kafka01/brokers/ids",
            "get /kafka01/brokers/ids/1",
            "get /kafka01",
        ],
    )
    assert rc == 0, out
    assert_in_order(
        out,
        [
            "WatchedEvent state:SyncConnected type:None path:null",
            "Created /kafka01",
            "Created /kafka01/brokers",
            "Created /kafka01/brokers/ids",
            "[]",
            "Created /kafka01/brokers/ids/1",
            "Created /kafka01/brokers/ids/2",
            "[1, 2]",
            broker,
            "null",  # created without data: null, not empty
            "WatchedEvent state:Closed type:None path:null",
        ],
    )

    # The chroot connect string Kafka uses: host:port/kafka01.
    rc, out = zkcli(
        server,
        [
            "ls /brokers/ids",
            "get /brokers/ids/2",
            "create /brokers/topics",
            "ls /",
            "ls /kafka01",
        ],
        chroot="/kafka01",
    )
    # In script mode the exit code is that of the last command (ls /kafka01
    # fails under the chroot), so no assert on rc here.
    assert_in_order(
        out,
        [
            "[1, 2]",
            "b2",
            "Created /brokers/topics",
            "[brokers]",
            "Node does not exist: /kafka01",
        ],
    )
    rc, stdout, _ = zkcli_one(server, "ls", "/kafka01/brokers")
    assert rc == 0 and "[ids, topics]" in stdout.splitlines(), stdout


def test_single_command_mode(server):
    rc, stdout, stderr = zkcli_one(server, "ls", "/zookeeper")
    assert rc == 0, stderr
    assert "[config, quota]" in stdout.splitlines(), stdout
    rc, stdout, stderr = zkcli_one(server, "get", "/zkcli_missing_node")
    assert rc != 0
    assert "Node does not exist: /zkcli_missing_node" in stderr.splitlines(), stderr


def test_ephemeral_and_sequential(server):
    rc, out = zkcli(
        server,
        [
            "create /zc_es",
            "create -e /zc_es/eph e1",
            "create -s /zc_es/seq- s",
            "create -s /zc_es/seq- s",
            "create -e -s /zc_es/es- x",
            "ls /zc_es",
            "stat /zc_es/eph",
            "create /zc_es/eph/child",
        ],
    )
    assert_in_order(
        out,
        [
            "Created /zc_es",
            "Created /zc_es/eph",
            # The suffix is the parent's cversion: eph was child creation 0.
            "Created /zc_es/seq-0000000001",
            "Created /zc_es/seq-0000000002",
            "Created /zc_es/es-0000000003",
            "[eph, es-0000000003, seq-0000000001, seq-0000000002]",
            re.compile(r"ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*"),
            "Ephemerals cannot have children: /zc_es/eph/child",
        ],
    )
    st = stat_blocks(out)[0]
    assert list(st) == STAT_KEYS
    assert st["dataLength"] == "2" and st["numChildren"] == "0"
    # `quit` closed that session: its ephemerals are gone for the next one.
    rc, out = zkcli(server, ["ls /zc_es", "deleteall /zc_es"])
    assert rc == 0, out
    assert_in_order(out, ["[seq-0000000001, seq-0000000002]"])


def test_get_set_stat(server):
    rc, out = zkcli(
        server,
        [
            "create /zc_gs hello",
            "get /zc_gs",
            "set /zc_gs world",
            "get -s /zc_gs",
            "stat /zc_gs",
            "set -v 0 /zc_gs stale",
            "set -v 1 /zc_gs fresh",
            "get /zc_gs",
            "create /zc_gs again",
            "get /zc_gs_missing",
            "stat /zc_gs_missing",
            "create /zc_gs/empty ''",
            "get /zc_gs/empty",
            "ls -s /zc_gs",
        ],
    )
    assert_in_order(
        out,
        [
            "Created /zc_gs",
            "hello",
            "world",
            re.compile(r"cZxid = 0x[0-9a-f]+"),
            re.compile(r"cZxid = 0x[0-9a-f]+"),
            "version No is not valid : /zc_gs",
            "fresh",
            "Node already exists: /zc_gs",
            "Node does not exist: /zc_gs_missing",
            "Node does not exist: /zc_gs_missing",
            "Created /zc_gs/empty",
            "",  # empty data prints an empty line, unlike null
            "[empty]",
        ],
    )
    blocks = stat_blocks(out)
    assert len(blocks) == 3, out
    for b in blocks:
        assert list(b) == STAT_KEYS, b
        assert re.fullmatch(r"0x[0-9a-f]+", b["mZxid"])
        assert b["ephemeralOwner"] == "0x0"
    get_s, stat, ls_s = blocks
    assert get_s == stat
    assert get_s["dataVersion"] == "1" and get_s["dataLength"] == "5"
    assert get_s["cversion"] == "0" and get_s["numChildren"] == "0"
    assert int(get_s["mZxid"], 16) > int(get_s["cZxid"], 16)
    assert get_s["pZxid"] == get_s["cZxid"]
    # after "set -v 1" and one child create
    assert ls_s["dataVersion"] == "2" and ls_s["numChildren"] == "1"
    assert ls_s["cversion"] == "1"
    assert int(ls_s["pZxid"], 16) > int(ls_s["mZxid"], 16)
    assert ls_s["cZxid"] == get_s["cZxid"]
    zkcli(server, ["deleteall /zc_gs"])


def test_delete_and_deleteall(server):
    rc, out = zkcli(
        server,
        [
            "create /zc_del",
            "create /zc_del/a",
            "create /zc_del/a/b",
            "create /zc_del/c",
            "delete /zc_del",
            "delete /zc_del/c",
            "ls /zc_del",
            "delete /zc_del/c",
            "deleteall /zc_del",
            "ls /zc_del",
            "ls /",
        ],
    )
    assert_in_order(
        out,
        [
            "Created /zc_del/c",
            "Node not empty: /zc_del",
            "[a]",
            "Node does not exist: /zc_del/c",
            "Node does not exist: /zc_del",
        ],
    )
    root = [ln for ln in out if ln.startswith("[") and "zookeeper" in ln][-1]
    assert "zc_del" not in root
