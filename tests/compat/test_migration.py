"""Taking over a running ZooKeeper, and the way back (docs/migration.md).

Apache ZooKeeper 3.8 (Debian) writes a real dataDir: a Kafka-style tree, digest and
ip ACLs, sequential, container and TTL nodes, a multi, setData/setACL/deletes, a
small snapCount (several snapshots and logs), and a client session that stays
connected with an ephemeral. ZooKeeper is stopped and keeperd started on the same
zoo.cfg, dataDir and port: every znode must read back identical (data, Stat, ACL),
the live session must reconnect with its id and password and keep its ephemeral,
and writes go on. Then the way back: ZooKeeper on the untouched dataDir serves its
own data; ZooKeeper on `keeperd export-zk`'s output serves keeperd's writes too.

The comparison is exact: every Stat field (czxid, mzxid, pzxid, ctime, mtime,
versions, ephemeralOwner, dataLength, numChildren), null vs empty data, and the
ACL list, for every node outside /zookeeper.
"""

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kazoo.client import KazooState
from kazoo.security import make_acl, make_digest_acl

from conftest import ZKCLI, Ensemble, Server, keeperd_bin, make_client

pytestmark = pytest.mark.timeout(300)

# Small snapCount so ZooKeeper rolls several snapshots and logs; TTL nodes need
# extended types (zoo.cfg keys ZooKeeper does not know become zookeeper.* system
# properties, so this works from the file).
ZK_CFG = {"snapCount": "40", "extendedTypesEnabled": "true", "maxSessionTimeout": "60000"}
ALICE = ("alice", "alice-secret")


def zkcli(hosts, *argv):
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx128m"
    res = subprocess.run(
        [str(ZKCLI), "-server", hosts, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 0, res.stderr.decode()


def dump(hosts):
    """Every node outside /zookeeper: path -> (data, Stat tuple, ACLs)."""
    c = make_client(hosts, auth_data=[("digest", "%s:%s" % ALICE)])
    try:
        out = {}
        stack = ["/"]
        while stack:
            path = stack.pop()
            if path == "/zookeeper":
                continue
            data, stat = c.get(path)
            acls, _ = c.get_acls(path)
            out[path] = (
                data,
                tuple(stat),
                sorted((a.perms, a.id.scheme, a.id.id) for a in acls),
            )
            for ch in c.get_children(path):
                stack.append(path.rstrip("/") + "/" + ch)
        return out
    finally:
        c.stop()
        c.close()


def write_history(hosts):
    """The data a Kafka cluster on ZooKeeper would leave, and every txn type."""
    c = make_client(hosts, auth_data=[("digest", "%s:%s" % ALICE)])
    try:
        c.ensure_path("/kafka01/brokers/topics")
        c.ensure_path("/kafka01/config/topics")
        c.create("/kafka01/controller_epoch", b"3")
        for t in range(12):
            c.create(
                f"/kafka01/brokers/topics/t{t}",
                b'{"version":2,"partitions":{"0":[1,2,3]}}',
            )
            c.create(f"/kafka01/config/topics/t{t}", b'{"version":1,"config":{}}')
        for i in range(90):
            c.create(f"/bulk/n{i:03}", b"x" * (i % 7), makepath=True)
        for i in range(0, 90, 3):
            c.set(f"/bulk/n{i:03}", b"changed")
        for i in range(0, 90, 5):
            c.delete(f"/bulk/n{i:03}")
        c.create("/nulldata", None)
        c.create("/empty", b"")
        c.create("/secret", b"alice only", acl=[make_digest_acl(*ALICE, all=True)])
        c.create("/byip", b"loopback", acl=[make_acl("ip", "127.0.0.1", read=True, write=True)])
        c.create("/reacl", b"")
        c.set_acls("/reacl", [make_digest_acl(*ALICE, read=True, admin=True)])
        for _ in range(3):
            c.create("/seq/job-", b"", sequence=True, makepath=True)
        tx = c.transaction()
        tx.create("/multi", b"m")
        tx.create("/multi/a", b"")
        tx.set_data("/empty", b"via multi")
        tx.commit()
        tx = c.transaction()
        tx.create("/multi/b", b"")
        tx.check("/multi", version=5)  # fails: nothing of it happens
        tx.commit()
    finally:
        c.stop()
        c.close()
    zkcli(hosts, "create", "-c", "/container", "c")
    zkcli(hosts, "create", "/container/child", "")
    zkcli(hosts, "create", "-t", "3600000", "/ttl", "t")


def broker(hosts):
    """A client that stays connected through the switch, with an ephemeral, as a broker."""
    b = make_client(
        hosts,
        timeout=30.0,
        connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 1},
    )
    b.create("/kafka01/brokers/ids/1", b'{"host":"h1","port":9092}', ephemeral=True, makepath=True)
    states = []
    b.add_listener(states.append)
    return b, states


def wait_connected(client, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.state == KazooState.CONNECTED:
            return
        time.sleep(0.1)
    raise AssertionError(f"client did not reconnect (state {client.state})")


def newest_log(version2):
    """ZooKeeper's newest txn log file (by the zxid in its name)."""
    logs = [p for p in version2.iterdir() if p.name.startswith("log.")]
    return max(logs, key=lambda p: int(p.name[4:], 16))


def records_in(log):
    """How many txn records a ZooKeeper log holds: after the 16-byte file header, each is
    an 8-byte checksum, a 4-byte length, the txn and an end byte; zeros (preallocated
    space) follow the last one."""
    raw = log.read_bytes()
    at, n = 16, 0
    while at + 12 <= len(raw):
        length = int.from_bytes(raw[at + 8 : at + 12], "big")
        if length == 0 or at + 12 + length + 1 > len(raw):
            break
        at += 12 + length + 1
        n += 1
    return n


def files_of(version2):
    """Name -> sha1 of every file in a version-2 directory."""
    return {
        p.name: hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(Path(version2).iterdir())
        if p.is_file()
    }


def switch(srv, kind, kill=False):
    """Stops `srv` (SIGKILL: a crash; else SIGTERM) and starts `kind` on its zoo.cfg and port."""
    if kill:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
    srv.stop()
    srv.kind = kind
    srv._write_cfg()
    srv.spawn()
    return srv


def keeperd(*args):
    res = subprocess.run(
        [keeperd_bin(), *args], capture_output=True, timeout=120, stdin=subprocess.DEVNULL
    )
    return res.returncode, res.stdout.decode(), res.stderr.decode()


def test_standalone_takeover_and_the_way_back(tmp_path):
    srv = Server("zookeeper", tmp_path / "zk", ZK_CFG)
    srv.start()
    b = None
    try:
        write_history(srv.hosts())
        b, states = broker(srv.hosts())
        before = dump(srv.hosts())
        assert before["/kafka01/brokers/ids/1"][1][7] == b.client_id[0]
        assert len(before) > 100
        v2 = srv.data_dir / "version-2"
        switch(srv, "keeperd", kill=True)
        zk_files = files_of(v2)
        assert sum(n.startswith("snapshot.") for n in zk_files) >= 3, zk_files
        assert sum(n.startswith("log.") for n in zk_files) >= 3, zk_files

        srv._wait_ready()
        log = srv.log_text()
        assert "taken over" in log, srv.log_tail()
        # The broker's session came back with its id and ZooKeeper's password.
        wait_connected(b)
        assert KazooState.LOST not in states, states
        after = dump(srv.hosts())
        assert after.keys() == before.keys()
        for path in before:
            assert after[path] == before[path], path
        b.create("/kafka01/brokers/ids/2", b"{}", ephemeral=True)
        c = make_client(srv.hosts())
        c.set("/kafka01/controller_epoch", b"4")
        c.create("/written-on-keeperd", b"new")
        zxid_before = max(s[1][1] for s in before.values())
        assert c.exists("/written-on-keeperd").czxid > zxid_before
        c.stop()
        c.close()
        # The broker goes (closeSession deletes its ephemerals), then the state to carry back.
        b.stop()
        b.close()
        b = None
        final = dump(srv.hosts())
        assert "/kafka01/brokers/ids/1" not in final
        # keeperd changed none of ZooKeeper's files and wrote none of its own there.
        assert files_of(v2) == zk_files
        assert (srv.data_dir / "keeperd").is_dir()

        # The way back, 1: ZooKeeper on the same dataDir serves its own data.
        switch(srv, "zookeeper")
        srv._wait_ready()
        c = make_client(srv.hosts())
        assert c.get("/kafka01/controller_epoch")[0] == b"3"
        assert c.exists("/written-on-keeperd") is None
        assert c.exists("/secret") is not None
        c.stop()
        c.close()
        srv.stop()

        # The way back, 2: export-zk carries keeperd's writes to ZooKeeper.
        srv.kind = "keeperd"
        srv._write_cfg()
        out = tmp_path / "export"
        code, stdout, stderr = keeperd("export-zk", str(out), str(srv.cfg_path))
        assert code == 0, stderr
        assert "snapshot." in stdout
        back = Server("zookeeper", tmp_path / "back", ZK_CFG)
        back.data_dir = out
        back.start()
        try:
            exported = dump(back.hosts())
        finally:
            back.stop()
        assert exported.keys() == final.keys()
        for path in final:
            assert exported[path] == final[path], path
    finally:
        if b is not None:
            b.stop()
            b.close()
        srv.stop()


def test_import_dry_run_and_bad_data_dirs(tmp_path):
    srv = Server("zookeeper", tmp_path / "zk", ZK_CFG)
    srv.start()
    try:
        write_history(srv.hosts())
        # Fewer writes than snapCount after the last roll: the newest log holds several
        # records, so a bad one has good ones after it (not a torn tail).
        c = make_client(srv.hosts())
        for i in range(12):
            c.set("/empty", b"%d" % i)
        c.stop()
        c.close()
        # ZooKeeper rolls its log after a random 20-40 txns here (snapCount 40), so the
        # roll can fall among these writes, or on the session's close: write on (a session
        # each time, so the close is counted too) until the newest log holds 3 records.
        for i in range(12, 100):
            if records_in(newest_log(srv.data_dir / "version-2")) >= 3:
                break
            c = make_client(srv.hosts())
            c.set("/empty", b"%d" % i)
            c.stop()
            c.close()
    finally:
        srv.stop()
    v2 = srv.data_dir / "version-2"
    srv.kind = "keeperd"
    srv._write_cfg()
    code, out, err = keeperd("import", str(srv.cfg_path))
    assert code == 0, err
    assert "last zxid: 0x" in out and "znodes:" in out, out
    assert "digest: matches" in out, out
    assert not (srv.data_dir / "keeperd").exists(), "a dry run writes nothing"

    # A corrupt record in the middle of a log: a clear error, no start, nothing changed.
    # The newest log starts right after the newest snapshot: replay needs it.
    victim = newest_log(v2)
    assert records_in(victim) >= 3
    raw = bytearray(victim.read_bytes())
    raw[16 + 8 + 4 + 20] ^= 0xFF  # inside the first record's txn bytes
    victim.write_bytes(bytes(raw))
    before = files_of(v2)
    srv.spawn()
    rc = srv.proc.wait(timeout=60)
    assert rc != 0
    assert victim.name in srv.log_text(), srv.log_tail()
    assert files_of(v2) == before
    assert not (srv.data_dir / "keeperd" / "snapshots").exists() or not any(
        (srv.data_dir / "keeperd" / "snapshots").iterdir()
    )
    srv.stop()


def test_ensemble_takeover_with_the_seed_config(tmp_path):
    """A 3-node ZooKeeper ensemble with a 3.4-era zoo.cfg (no whitelist line)."""
    cfg = dict(ZK_CFG)
    cfg["4lw.commands.whitelist"] = None
    ens = Ensemble(tmp_path, 3, cfg, kind="zookeeper")
    ens.start()
    b = None
    try:
        hosts = ",".join(ens.hosts())
        write_history(hosts)
        b, states = broker(hosts)
        before = dump(hosts)
        for m in ens.members:
            m.stop()
        for m in ens.members:
            m.kind = "keeperd"
            m._write_cfg()
            m.spawn()
        for m in ens.members:
            m._wait_ready()
        leader = ens.leader()
        # The runbook's checks, with no whitelist line in zoo.cfg.
        assert leader.four("ruok") == "imok"
        deadline = time.monotonic() + 60
        synced = None
        while time.monotonic() < deadline:
            mntr = leader.four("mntr")
            synced = [ln for ln in mntr.splitlines() if ln.startswith("zk_synced_followers")]
            if synced == ["zk_synced_followers\t2"]:
                break
            time.sleep(0.3)
        assert synced == ["zk_synced_followers\t2"], synced
        wait_connected(b)
        assert KazooState.LOST not in states, states
        # Every member serves the same imported tree.
        for m in ens.members:
            got = dump(m.hosts())
            assert got.keys() == before.keys(), m
            for path in before:
                assert got[path] == before[path], (m, path)
        b.create("/after-switch", b"ok")
        for m in ens.members:
            c = make_client(m.hosts())
            c.sync("/")
            assert c.get("/after-switch")[0] == b"ok"
            c.stop()
            c.close()
    finally:
        if b is not None:
            b.stop()
            b.close()
        ens.stop()


def test_ensemble_takeover_after_reconfig(tmp_path):
    """A ZooKeeper ensemble that used dynamic reconfig: its logs hold reconfig txns and its
    zoo.cfg now points to a zoo.cfg.dynamic.<version> file written by ZooKeeper. keeperd
    starts on those files as they are (zoo.cfg is not rewritten by the test)."""
    from conftest import super_digest

    cfg = dict(ZK_CFG)
    cfg.update(
        {
            "tickTime": "500",
            "reconfigEnabled": "true",
            "DigestAuthenticationProvider.superDigest": super_digest("super", "test"),
        }
    )
    ens = Ensemble(tmp_path, 3, cfg, kind="zookeeper")
    ens.start()
    try:
        hosts = ",".join(ens.hosts())
        write_history(hosts)
        srv4 = ens.new_server()
        srv4.spawn()
        srv4.wait_listening()
        c = make_client(hosts, auth_data=[("digest", "super:test")])
        c.reconfig(joining=ens.server_line(srv4), leaving=None, new_members=None)
        c.create("/during-reconfig", b"4 members")
        c.reconfig(joining=None, leaving="4", new_members=None)
        c.stop()
        c.close()
        srv4.stop()
        before = dump(hosts)
        for m in ens.members:
            m.stop()
        for m in ens.members:
            assert "dynamicConfigFile" in m.cfg_path.read_text(), m.cfg_path.read_text()
            m.kind = "keeperd"
            m.spawn()  # on ZooKeeper's own zoo.cfg and dynamic file
        for m in ens.members:
            m._wait_ready()
        leader = ens.leader()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "zk_synced_followers\t2" in leader.four("mntr"):
                break
            time.sleep(0.3)
        assert "zk_synced_followers\t2" in leader.four("mntr")
        for m in ens.members:
            got = dump(m.hosts())
            assert got.keys() == before.keys(), m
            for path in before:
                assert got[path] == before[path], (m, path)
            assert "import: txns after the snapshot" in m.log_text() or "taken over" in m.log_text()
        c = make_client(hosts)
        config = c.get("/zookeeper/config")[0].decode()
        assert sorted(ln.split("=")[0] for ln in config.splitlines() if ln.startswith("server.")) == [
            "server.1",
            "server.2",
            "server.3",
        ], config
        c.create("/after-reconfig-switch", b"ok")
        c.stop()
        c.close()
    finally:
        ens.stop()
