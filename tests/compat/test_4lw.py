"""Four-letter words, as monitoring tools and operators send them.

Formats asserted here are ZooKeeper 3.8's (see reference/zookeeper-protocol.md);
values that depend on load (latencies, counters) are checked for shape only.
"""

import re
import shutil
import subprocess

import pytest

from conftest import HOST, make_client


def kv_lines(text, sep):
    out = {}
    for line in text.splitlines():
        if sep in line:
            k, v = line.split(sep, 1)
            out[k] = v
    return out


def test_ruok(server):
    assert server.four("ruok") == "imok"


def test_isro(server):
    assert server.four("isro") == "rw"


SRVR_PATTERNS = [
    r"Zookeeper version: \S.*",
    r"Latency min/avg/max: \d+/\d+(\.\d+)?/\d+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    r"Zxid: 0x[0-9a-f]+",
    r"Mode: standalone",
    r"Node count: \d+",
]


def assert_srvr_block(lines):
    """The srvr lines, in ZooKeeper's order (no Proposal sizes: not a leader)."""
    assert len(lines) == len(SRVR_PATTERNS), lines
    for line, pat in zip(lines, SRVR_PATTERNS):
        assert re.fullmatch(pat, line), (pat, line)


def test_srvr(server):
    out = server.four("srvr")
    assert out.endswith("\n")
    assert_srvr_block(out.splitlines())


def test_srvr_counts_follow_writes(server, kazoo_factory, request):
    base = "/fourlw_srvr"
    before = kv_lines(server.four("srvr"), ": ")
    zk = kazoo_factory(server.hosts())
    zk.create(base, b"x")
    zk.create(base + "/c", b"y")
    after = kv_lines(server.four("srvr"), ": ")
    assert int(after["Node count"]) == int(before["Node count"]) + 2
    assert int(after["Zxid"], 16) > int(before["Zxid"], 16)
    assert int(after["Connections"]) >= 2  # the kazoo session and this socket
    zk.delete(base, recursive=True)


def test_stat_has_clients(server, kazoo_factory):
    zk = kazoo_factory(server.hosts())
    zk.exists("/")
    out = server.four("stat")
    lines = out.splitlines()
    assert re.fullmatch(r"Zookeeper version: \S.*", lines[0])
    assert lines[1] == "Clients:"
    # One line per connection, e.g. " /127.0.0.1:50000[1](queued=0,recved=5,sent=5)",
    # then a blank line, then the srvr block.
    blank = lines.index("")
    clients = lines[2:blank]
    assert len(clients) >= 2, clients  # kazoo + this 4lw connection
    for c in clients:
        assert re.fullmatch(
            r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+.*\)", c
        ), c
    assert_srvr_block([lines[0]] + lines[blank + 1 :])


MNTR_REQUIRED = [
    "zk_version",
    "zk_avg_latency",
    "zk_max_latency",
    "zk_min_latency",
    "zk_packets_received",
    "zk_packets_sent",
    "zk_num_alive_connections",
    "zk_outstanding_requests",
    "zk_server_state",
    "zk_znode_count",
    "zk_watch_count",
    "zk_ephemerals_count",
    "zk_approximate_data_size",
    "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
    "zk_uptime",
    "zk_global_sessions",
    "zk_local_sessions",
]


def parse_mntr(out):
    vals = {}
    for line in out.splitlines():
        parts = line.split("\t")
        assert len(parts) == 2, f"mntr line is not KEY<TAB>VALUE: {line!r}"
        assert parts[0].startswith("zk_"), line
        vals[parts[0]] = parts[1]
    return vals


def test_mntr(server, kazoo_factory):
    out = server.four("mntr")
    assert out.endswith("\n")
    vals = parse_mntr(out)
    missing = [k for k in MNTR_REQUIRED if k not in vals]
    assert not missing, f"mntr lacks {missing}"
    assert vals["zk_server_state"] == "standalone"
    for k in MNTR_REQUIRED:
        if k in ("zk_version", "zk_server_state"):
            continue
        float(vals[k])  # numeric
    assert int(vals["zk_znode_count"]) >= 4  # /, /zookeeper, quota, config

    zk = kazoo_factory(server.hosts())
    zk.create("/fourlw_mntr_eph", b"", ephemeral=True)
    vals2 = parse_mntr(server.four("mntr"))
    assert int(vals2["zk_znode_count"]) == int(vals["zk_znode_count"]) + 1
    assert int(vals2["zk_ephemerals_count"]) == int(vals["zk_ephemerals_count"]) + 1
    zk.delete("/fourlw_mntr_eph")


def nc_word(server, word):
    nc = shutil.which("nc")
    if nc is None:
        pytest.fail("nc not installed: run scripts/setup (netcat-openbsd)")
    res = subprocess.run(
        f"echo {word} | {nc} {HOST} {server.port}",
        shell=True,
        capture_output=True,
        timeout=15,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.decode()


def test_mntr_via_nc(server):
    """What operators type: `echo mntr | nc host port`.

    `echo` sends "mntr\n": the server reads 4 bytes, answers and closes with the
    newline still unread, so the kernel may reset the connection and nc can lose
    part or all of the answer. ZooKeeper 3.8 does exactly that in roughly one
    run out of ten (observed here: 0 bytes, or a cut-off last line), so for it
    we allow retries; keeperd must get it right first time (drain the input or
    shut down writes before closing).
    """
    attempts = 5 if server.kind == "zookeeper" else 1
    for _ in range(attempts):
        out = nc_word(server, "mntr")
        if out.endswith("\n") and "zk_server_state" in out:
            break
    assert out.endswith("\n"), f"truncated mntr via nc: {out[-200:]!r}"
    vals = parse_mntr(out)
    assert vals["zk_server_state"] == "standalone"
    assert "zk_znode_count" in vals
    for _ in range(attempts):
        out = nc_word(server, "ruok")
        if out == "imok":
            break
    assert out == "imok"


def test_wchs(server, kazoo_factory):
    zk = kazoo_factory(server.hosts())
    zk.create("/fourlw_wchs", b"")
    zk.get("/fourlw_wchs", watch=lambda ev: None)
    zk.exists("/fourlw_wchs_missing", watch=lambda ev: None)
    out = server.four("wchs")
    m = re.fullmatch(
        r"(\d+) connections watching (\d+) paths\nTotal watches:(\d+)\n", out
    )
    assert m, repr(out)
    conns, paths, total = map(int, m.groups())
    assert conns >= 1 and paths >= 2 and total >= 2
    zk.delete("/fourlw_wchs")


def test_conf(server):
    out = server.four("conf")
    vals = kv_lines(out, "=")
    assert vals.get("clientPort") == str(server.port)
    assert vals.get("tickTime") == "2000"
    assert vals["dataDir"].startswith(str(server.data_dir))
    assert vals.get("maxSessionTimeout") == "40000"
    assert vals.get("minSessionTimeout") == "4000"


def test_cons_lists_connections(server, kazoo_factory):
    zk = kazoo_factory(server.hosts())
    zk.exists("/")
    out = server.four("cons")
    assert re.search(r"^ /127\.0\.0\.1:\d+\[\d+\]\(", out, re.M), out


def test_unknown_bytes_are_not_a_word(server):
    """A connection starting with a non-word is a (bad) client handshake, not 4lw."""
    out = server.four("xyzw", timeout=3)
    assert "imok" not in out and "Zookeeper version" not in out


def test_whitelist(server, servers):
    """Only srvr whitelisted: other known words get ZooKeeper's refusal text."""
    srv = servers(server.kind, {"4lw.commands.whitelist": "srvr"})
    assert srv.four("srvr").startswith("Zookeeper version: ")
    for word in ("ruok", "mntr", "stat", "conf", "wchs", "isro"):
        assert (
            srv.four(word) == f"{word} is not executed because it is not in the whitelist.\n"
        ), word
