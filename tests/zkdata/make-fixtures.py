#!/usr/bin/env python3
"""Make the ZooKeeper 3.8 dataDir fixtures that src/zkfiles/tests.rs reads.

Runs a standalone Apache ZooKeeper 3.8 (Debian's /usr/share/java/zookeeper.jar) on 127.0.0.1
with a fresh dataDir per variant, drives it with kazoo through a fixed sequence of operations,
dumps what a client then sees to expected.json, stops ZooKeeper and keeps its dataDir as
tests/zkdata/<variant>/version-2/.

    variant   JVM flags                                      stop
    default   (digests on, plain snapshots)                  SIGKILL
    clean     (as default)                                   SIGTERM
    nodigest  -Dzookeeper.digest.enabled=false              SIGKILL
    gz        -Dzookeeper.snapshot.compression.method=gz     SIGKILL
    snappy    -Dzookeeper.snapshot.compression.method=snappy SIGKILL

All of them: snapCount=20 (a snapshot and a new log every 10-20 txns),
-Dzookeeper.preAllocSize=16 (16 KB log preallocation), -Dzookeeper.extendedTypesEnabled=true
(TTL nodes). To keep the fixtures small, the zero padding at the end of each log (what
preallocation leaves) is cut down to 64 zero bytes: ZooKeeper reads a zero length as the end
of a log, so that changes nothing it would read.

Usage: tests/zkdata/make-fixtures.py [variant ...]   (default: all)
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.protocol.serialization import (
    Create2,
    int_struct,
    long_struct,
    read_string,
    write_buffer,
    write_string,
)
from kazoo.security import ACL, Id, make_digest_acl, OPEN_ACL_UNSAFE

HERE = Path(__file__).resolve().parent
JAVA_DIR = Path("/usr/share/java")
ZK_JAR = JAVA_DIR / "zookeeper.jar"

VARIANTS = {
    "default": ([], signal.SIGKILL),
    "clean": ([], signal.SIGTERM),
    "nodigest": (["-Dzookeeper.digest.enabled=false"], signal.SIGKILL),
    "gz": (["-Dzookeeper.snapshot.compression.method=gz"], signal.SIGKILL),
    "snappy": (["-Dzookeeper.snapshot.compression.method=snappy"], signal.SIGKILL),
}

# Pause after each write so that snapshots (taken on another thread after a log roll) mostly
# see a quiet tree: the digest tests compare a snapshot's content with its digest trailer.
PAUSE = 0.03
KEEP_ZEROS = 64


def _acl_bytes(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    return b


class CreateRaw(namedtuple("CreateRaw", "path data acl flags")):
    """create (1) with any data, null included (kazoo's create() refuses None)."""

    type = 1

    def serialize(self):
        return (
            write_string(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
            + int_struct.pack(self.flags)
        )

    @classmethod
    def deserialize(cls, bytes, offset):
        return read_string(bytes, offset)[0]


class CreateContainer(namedtuple("CreateContainer", "path data acl")):
    """createContainer (19): a CreateRequest with the CONTAINER mode (4)."""

    type = 19

    def serialize(self):
        return (
            write_string(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
            + int_struct.pack(4)
        )

    @classmethod
    def deserialize(cls, bytes, offset):
        return Create2.deserialize(bytes, offset)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """createTTL (21): CreateTTLRequest, mode 5 (persistent) or 6 (sequential) with a TTL."""

    type = 21

    def serialize(self):
        return (
            write_string(self.path) + write_buffer(self.data) + _acl_bytes(self.acl)
            + int_struct.pack(self.flags) + long_struct.pack(self.ttl)
        )

    @classmethod
    def deserialize(cls, bytes, offset):
        return Create2.deserialize(bytes, offset)


class SetDataRaw(namedtuple("SetDataRaw", "path data version")):
    type = 5

    def serialize(self):
        return write_string(self.path) + write_buffer(self.data) + int_struct.pack(self.version)

    @classmethod
    def deserialize(cls, bytes, offset):
        return None


def call(zk, req):
    res = zk.handler.async_result()
    zk._call(req, res)
    out = res.get(timeout=10)
    time.sleep(PAUSE)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline):
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ZooKeeper exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("ZooKeeper did not start in time")


HOLDER = r"""
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1], timeout=30.0)
zk.start(timeout=15)
zk.create("/app/held-ephemeral", b"held", ephemeral=True)
print(zk.client_id[0], flush=True)
time.sleep(600)
"""


def workload(hosts, port):
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=15)
    w = lambda f, *a, **k: (f(*a, **k), time.sleep(PAUSE))[0]

    w(zk.create, "/app", b"root of the app")
    w(zk.create, "/app/persistent", b"p")
    w(zk.create, "/app/empty", b"")
    call(zk, CreateRaw("/app/null", None, OPEN_ACL_UNSAFE, 0))
    w(zk.create, "/app/eph-closed", b"goes away with its session", ephemeral=True)
    for _ in range(3):
        w(zk.create, "/app/seq-", b"s", sequence=True)
    call(zk, CreateContainer("/app/container", b"c", OPEN_ACL_UNSAFE))
    w(zk.create, "/app/container/child", b"keeps the container alive")
    call(zk, CreateTTL("/app/ttl", b"t", OPEN_ACL_UNSAFE, 5, 3_600_000))
    call(zk, CreateTTL("/app/ttlseq-", None, OPEN_ACL_UNSAFE, 6, 7_200_000))
    w(zk.create, "/app/unicode-\u00e9\u4e2d", "d\u00e9j\u00e0 vu".encode())
    w(zk.create, "/app/binary", bytes(range(256)))

    for i in range(5):
        w(zk.set, "/app/persistent", f"p{i}".encode())
    call(zk, SetDataRaw("/app/empty", None, -1))
    call(zk, SetDataRaw("/app/null", b"", -1))

    digest = make_digest_acl("alice", "secret", read=True, write=True, create=True, delete=True, admin=True)
    ip = ACL(1 | 8, Id("ip", "127.0.0.1"))
    w(zk.create, "/app/secured", b"acl", acl=[digest, ip])
    w(zk.create, "/app/acl-changed", b"a")
    w(zk.set_acls, "/app/acl-changed", [ip, ACL(31, Id("world", "anyone"))])
    w(zk.set_acls, "/app/acl-changed", [ACL(1, Id("world", "anyone")), ip])

    w(zk.create, "/app/doomed", b"x")
    w(zk.create, "/app/doomed/kid", b"y")
    w(zk.delete, "/app/doomed/kid")
    w(zk.delete, "/app/doomed")

    t = zk.transaction()
    t.create("/app/multi", b"m")
    t.create("/app/multi/a", b"ma")
    t.set_data("/app/persistent", b"by multi")
    t.check("/app/persistent", 6)
    t.delete("/app/seq-0000000004")
    res = t.commit()
    assert not any(isinstance(r, Exception) for r in res), res
    time.sleep(PAUSE)
    t = zk.transaction()
    t.create("/app/never", b"n")
    t.check("/app/persistent", 999)
    res = t.commit()
    assert any(isinstance(r, Exception) for r in res), res
    time.sleep(PAUSE)

    # Lots of small nodes, mostly in a few multis.
    w(zk.create, "/app/many", b"")
    for batch in range(2):
        t = zk.transaction()
        for i in range(30):
            t.create(f"/app/many/n{batch:02}{i:03}", f"{batch}.{i}".encode())
        t.commit()
        time.sleep(PAUSE)
    for i in range(15):
        w(zk.create, f"/app/many/single{i:03}", str(i).encode())
    for i in range(0, 15, 3):
        w(zk.set, f"/app/many/single{i:03}", b"changed")
    for i in range(1, 15, 4):
        w(zk.delete, f"/app/many/single{i:03}")

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, hosts], stdout=subprocess.PIPE, text=True)
    held_session = int(holder.stdout.readline())
    time.sleep(0.3)
    w(zk.create, "/app/last", b"written after the holder's ephemeral")
    zk.stop()
    zk.close()
    time.sleep(PAUSE)
    holder.kill()  # SIGKILL: its session stays open on the server
    holder.wait()
    return held_session


def dump(hosts):
    zk = KazooClient(hosts=hosts, timeout=10.0, auth_data=[("digest", "alice:secret")])
    zk.start(timeout=15)
    nodes = {}

    def walk(path):
        data, st = zk.get(path)
        acls, _ = zk.get_acls(path)
        nodes[path] = {
            "data": None if data is None else base64.b64encode(data).decode(),
            "stat": {
                "czxid": st.czxid, "mzxid": st.mzxid, "ctime": st.ctime, "mtime": st.mtime,
                "version": st.version, "cversion": st.cversion, "aversion": st.aversion,
                "ephemeralOwner": st.ephemeralOwner, "dataLength": st.dataLength,
                "numChildren": st.numChildren, "pzxid": st.pzxid,
            },
            "acl": [{"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id} for a in acls],
        }
        for c in sorted(zk.get_children(path)):
            walk(("" if path == "/" else path) + "/" + c)

    walk("/")
    zk.stop()
    zk.close()
    return nodes


def trim_logs(vdir):
    for f in sorted(vdir.glob("log.*")):
        b = f.read_bytes()
        end = len(b.rstrip(b"\0"))
        if len(b) - end > KEEP_ZEROS:
            f.write_bytes(b[: end + KEEP_ZEROS])


def make(variant):
    flags, stop = VARIANTS[variant]
    work = Path(tempfile.mkdtemp(prefix=f"zkfix-{variant}-"))
    try:
        data = work / "data"
        data.mkdir()
        port = free_port()
        (work / "zoo.cfg").write_text(
            f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
            "snapCount=20\nadmin.enableServer=false\nmaxSessionTimeout=60000\n"
        )
        cp = [str(ZK_JAR)]
        if (JAVA_DIR / "slf4j-simple.jar").exists():
            cp.append(str(JAVA_DIR / "slf4j-simple.jar"))
        cmd = [
            "java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.preAllocSize=16", "-Dzookeeper.extendedTypesEnabled=true",
            *flags, "-cp", ":".join(cp), "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(work / "zoo.cfg"),
        ]
        with open(work / "server.log", "wb") as log:
            zkp = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            hosts = f"127.0.0.1:{port}"
            wait_port(port, zkp, time.time() + 60)
            held = workload(hosts, port)
            nodes = dump(hosts)
            time.sleep(0.5)
            zkp.send_signal(stop)
            zkp.wait(timeout=30)
        finally:
            if zkp.poll() is None:
                zkp.kill()
                zkp.wait()
        out = HERE / variant
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(data / "version-2", out / "version-2")
        trim_logs(out / "version-2")
        # One node a line: small, and diffs stay readable.
        lines = [f"{json.dumps(p)}: {json.dumps(n, sort_keys=True)}" for p, n in sorted(nodes.items())]
        (out / "expected.json").write_text(
            f'{{"held_session": {held},\n"nodes": {{\n' + ",\n".join(lines) + "\n}}\n"
        )
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"{variant}: {len(nodes)} nodes, held session {held:#x}, {size} bytes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    for v in sys.argv[1:] or list(VARIANTS):
        make(v)
