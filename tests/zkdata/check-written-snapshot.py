#!/usr/bin/env python3
"""By-hand check that Apache ZooKeeper 3.8 loads a snapshot written by zkfiles::snapshot::write.

    cargo test --release --lib zkfiles::tests::write_a_snapshot_for_zookeeper -- --ignored
    (with ZKFILES_OUT set; this script sets it and runs cargo itself)

Starts ZooKeeper on 127.0.0.1 (free port) on a dataDir holding only that snapshot, reads the
nodes back with kazoo, and looks for digest complaints in ZooKeeper's log.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
fix = __import__("make-fixtures")

ROOT = Path(__file__).resolve().parents[2]

with tempfile.TemporaryDirectory() as work:
    work = Path(work)
    data = work / "data"
    env = dict(os.environ, ZKFILES_OUT=str(data))
    subprocess.run(
        ["cargo", "test", "--release", "--lib", "zkfiles::tests::write_a_snapshot_for_zookeeper",
         "--", "--ignored"], cwd=ROOT, env=env, check=True, capture_output=True)
    print(sorted(p.name for p in (data / "version-2").iterdir()))
    port = fix.free_port()
    (work / "zoo.cfg").write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n")
    cp = [str(fix.ZK_JAR), str(fix.JAVA_DIR / "slf4j-simple.jar")]
    with open(work / "server.log", "wb") as log:
        zkp = subprocess.Popen(
            ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", ":".join(cp),
             "org.apache.zookeeper.server.ZooKeeperServerMain", str(work / "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        fix.wait_port(port, zkp, time.time() + 60)
        zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10.0)
        zk.start(timeout=15)
        for p in ["/hello", "/readonly", "/eph"]:
            data_, st = zk.get(p)
            print(p, data_, "acl", zk.get_acls(p)[0], "owner", hex(st.ephemeralOwner))
        print("children of /:", sorted(zk.get_children("/")))
        zk.stop()
        zk.close()
    finally:
        zkp.send_signal(signal.SIGTERM)
        zkp.wait(timeout=30)
    text = (work / "server.log").read_text(errors="replace")
    for line in text.splitlines():
        if "igest" in line or "ERROR" in line or "snapshot" in line.lower():
            print("LOG:", line[:220])
