"""Watch events honour ACLs (CVE-2024-23944), checked against ZooKeeper 3.8 as the oracle.

A watcher that may not READ a znode gets no event about it: not through an `exists`
watch (which needs no permission to set), not through a persistent or recursive watch
on a readable parent. Events about readable znodes still arrive. The same sequence runs
on ZooKeeper 3.8 (Debian ships the fix) and on keeperd; the events the unauthenticated
watcher received must be equal, and equal to the list written here.
"""

import os
import re
import subprocess
import threading
import time

import pytest
from kazoo.security import make_digest_acl

from conftest import ZKCLI, make_client

pytestmark = pytest.mark.timeout(120)

ALICE = ("alice", "alice-secret")
EVENT = re.compile(r"WatchedEvent state:SyncConnected type:(\w+) path:(\S+)")


class ZkCli:
    """Bob: an unauthenticated zkCli.sh session fed commands on stdin; prints its watch
    events (kazoo has no persistent watches, zkCli does: addWatch -m)."""

    def __init__(self, hosts):
        env = dict(os.environ)
        env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"
        self.proc = subprocess.Popen(
            [str(ZKCLI), "-server", hosts],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait_for(self, line, timeout=30):
        """Waits until zkCli printed `line` (commands run in order: all before it are done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line in self.lines:
                return
            time.sleep(0.05)
        pytest.fail(f"zkCli did not print {line!r}: {self.lines[-20:]}")

    def finish(self):
        self.send("quit")
        self.proc.wait(timeout=60)
        self.reader.join(timeout=10)
        return "\n".join(self.lines)


def run_sequence(server):
    """Alice changes znodes, some only she may read; returns the events Bob's watches got."""
    alice = make_client(server.hosts(), auth_data=[("digest", "%s:%s" % ALICE)])
    try:
        mine = [make_digest_acl(*ALICE, all=True)]
        alice.create("/w", b"")
        alice.create("/w/secret", b"s", acl=mine)
        bob = ZkCli(server.hosts())
        # exists needs no permission: Bob may set these watches, but must not hear of
        # changes to what he cannot read.
        bob.send("stat -w /w/secret")
        bob.send("stat -w /w/later")
        bob.send("addWatch -m PERSISTENT_RECURSIVE /w")
        bob.send("ls -w /w")
        # ls prints the children once every watch before it is set.
        bob.wait_for("[secret]")

        alice.set("/w/secret", b"changed")  # NodeDataChanged on an unreadable node
        alice.create("/w/hidden", b"", acl=mine)  # unreadable child of a readable parent
        alice.create("/w/open", b"")  # readable
        alice.set("/w/open", b"x")
        alice.delete("/w/secret")  # NodeDeleted of an unreadable node
        alice.create("/w/later", b"", acl=mine)  # what the missing-node exists watch waits for
        alice.delete("/w/hidden")
        alice.set("/w", b"parent")
        # Bob's last command: every event for him precedes this reply.
        bob.send("sync /")
        time.sleep(1.0)
        out = bob.finish()
        # type None is the session's connection event, not a watch.
        return [m.groups() for m in EVENT.finditer(out) if m.group(1) != "None"]
    finally:
        alice.stop()
        alice.close()


EXPECTED = [
    # The one-shot child watch fires for the first child created: the parent is readable,
    # so its children changing is visible even when the child is not.
    ("NodeChildrenChanged", "/w"),
    ("NodeCreated", "/w/open"),
    ("NodeDataChanged", "/w/open"),
    ("NodeDataChanged", "/w"),
]


def test_watch_events_need_read_permission(servers):
    got = {}
    for kind in ("zookeeper", "keeperd"):
        srv = servers(kind)
        try:
            got[kind] = run_sequence(srv)
        finally:
            srv.stop()
    assert got["keeperd"] == got["zookeeper"], got
    assert got["keeperd"] == EXPECTED, got
