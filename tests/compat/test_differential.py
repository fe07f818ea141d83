"""Differential tests: the same scripted sequences against two servers.

Side A is always Apache ZooKeeper 3.8 (the oracle). Side B is keeperd, or a
second ZooKeeper when COMPAT_SERVER=zookeeper (how this file validates itself:
ZooKeeper against ZooKeeper must always agree).

Each sequence is a function of (side, root). It drives kazoo's plain calls
(retries disabled) and, where kazoo would rewrite or lacks an operation,
kazoo's own request records sent raw (`raw`). Every call's outcome is recorded
as a result or an exception class; the two sides' records are then normalised
and compared:
  * zxids (czxid/mzxid/pzxid) are replaced by their order of first appearance
    in the side's records (Z0, Z1, ...); 0 stays 0;
  * ctime/mtime are only checked to be plausible (inside the run's wall-clock
    window, mtime >= ctime) — then recorded as "t";
  * ephemeralOwner becomes the name of the side's client owning that session;
  * version, cversion, aversion, dataLength, numChildren, data, paths, error
    classes, per-op multi results: exact;
  * children lists are sorted; watch events are (type, path) in delivery
    order per watching client.
"""

import difflib
import os
import threading
import time
from collections import defaultdict

import pytest
from kazoo.exceptions import KazooException
from kazoo.protocol.serialization import Create, Create2, Delete, GetData, SetData, Sync
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, make_digest_acl

from conftest import (
    SASL_CLIENTS, SASL_PROVIDER, ServerFactory, differential_kinds, make_client,
    sasl_server_flags,
)

WAIT = 5.0  # bound on waiting for an expected watch event
SETTLE = 0.25  # time allowed for an unexpected extra event to show up
CONTAINER = 4  # CreateMode.CONTAINER flag value


class CreateContainer(Create2):
    """createContainer (opcode 19): same body and reply as create2."""

    type = 19


def start_pair(extra_cfg=None, jvm_flags=None):
    kinds = differential_kinds()
    factory = ServerFactory()
    try:
        a = factory(kinds[0], extra_cfg, jvm_flags)
        b = factory(kinds[1], extra_cfg, jvm_flags)
        yield a, b
    finally:
        factory.close(failed=False)


@pytest.fixture(scope="module")
def pair():
    yield from start_pair()


@pytest.fixture(scope="module")
def sasl_pair(jaas_dir):
    """Both servers with SASL set up the way Kafka's system tests start ZooKeeper
    (tests/kafkatest/services/zookeeper.py): all by JVM options, the provider included."""
    flags = [
        f"-Dzookeeper.authProvider.sasl={SASL_PROVIDER}",
        "-DjaasLoginRenew=3600000",
        *sasl_server_flags(jaas_dir),
    ]
    yield from start_pair(jvm_flags=flags)


class Side:
    """One server's run of a sequence: clients, recorded outcomes, events."""

    def __init__(self, server):
        self.server = server
        self.clients = {}
        self.sessions = {}  # session id -> client name
        self.records = []  # (label, kind, value, sort_lists)
        self.events = defaultdict(list)  # watch tag -> [(type, path)]
        self.reported = defaultdict(int)
        self.lock = threading.Lock()
        self.t_start = int(time.time() * 1000)

    def client(self, name="a", **kw):
        if name not in self.clients:
            c = make_client(self.server.hosts(), **kw)
            self.clients[name] = c
            self.sessions[c.client_id[0]] = name
        return self.clients[name]

    def close(self, name):
        c = self.clients.pop(name)
        c.stop()
        c.close()

    def shutdown(self):
        for name in list(self.clients):
            try:
                self.close(name)
            except Exception:
                pass

    def do(self, label, fn, sort=False):
        try:
            self.records.append((label, "ok", fn(), sort))
        except KazooException as exc:
            self.records.append((label, "err", type(exc).__name__, False))

    def watch(self, tag):
        def cb(ev):
            with self.lock:
                self.events[tag].append((str(ev.type), ev.path))

        return cb

    def expect_events(self, n, label="events"):
        """Wait for n new events in total, allow extras to show, record them."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self.lock:
                total = sum(len(v) for v in self.events.values())
            if total - sum(self.reported.values()) >= n:
                break
            time.sleep(0.02)
        time.sleep(SETTLE)
        with self.lock:
            new = {}
            for tag in sorted(self.events):
                fresh = self.events[tag][self.reported[tag] :]
                self.reported[tag] = len(self.events[tag])
                if fresh:
                    new[tag] = fresh
        self.records.append((label, "ok", new, False))


def raw(client, request):
    """Send one of kazoo's request records as is (no path normalisation)."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=10)


class Normaliser:
    def __init__(self, side, t_end):
        self.side = side
        self.zxids = {0: "0"}
        self.t_lo = side.t_start - 10_000
        self.t_hi = t_end + 10_000

    def zxid(self, z):
        if z not in self.zxids:
            self.zxids[z] = f"Z{len(self.zxids) - 1}"
        return self.zxids[z]

    def time(self, t):
        if t == 0:
            return 0
        return "t" if self.t_lo <= t <= self.t_hi else f"implausible:{t}"

    def owner(self, sid):
        if sid == 0:
            return 0
        return "session:" + self.side.sessions.get(sid, "unknown")

    def stat(self, st):
        out = {
            "czxid": self.zxid(st.czxid),
            "mzxid": self.zxid(st.mzxid),
            "pzxid": self.zxid(st.pzxid),
            "ctime": self.time(st.ctime),
            "mtime": self.time(st.mtime),
            "version": st.version,
            "cversion": st.cversion,
            "aversion": st.aversion,
            "ephemeralOwner": self.owner(st.ephemeralOwner),
            "dataLength": st.dataLength,
            "numChildren": st.numChildren,
        }
        if st.mtime < st.ctime:
            out["mtime"] = f"before-ctime:{st.mtime - st.ctime}"
        return out

    def value(self, v, sort=False):
        if isinstance(v, ZnodeStat):
            return ("Stat", self.stat(v))
        if isinstance(v, ACL):
            return ("ACL", v.perms, v.id.scheme, v.id.id)
        if isinstance(v, BaseException):
            return ("Error", type(v).__name__)
        if isinstance(v, dict):
            return {k: self.value(x, sort) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            items = [self.value(x, sort) for x in v]
            if sort and all(isinstance(x, str) for x in items):
                items = sorted(items)
            return type(v)(items) if isinstance(v, tuple) else items
        return v

    def lines(self):
        out = []
        for i, (label, kind, value, sort) in enumerate(self.side.records):
            norm = self.value(value, sort) if kind == "ok" else value
            out.append(f"{i:3d} {label}: {kind} {norm!r}")
        # First-appearance names hide how the zxids relate; their numeric
        # order must match too (gaps may differ: e.g. sessions, failed writes).
        order = [name for z, name in sorted(self.zxids.items()) if z != 0]
        out.append("zxid order: " + " < ".join(order))
        return out


def run_both(pair, sequence, root):
    outs = []
    for srv in pair:
        side = Side(srv)
        try:
            sequence(side, root)
        finally:
            side.shutdown()
        outs.append((srv, Normaliser(side, int(time.time() * 1000)).lines()))
    (sa, la), (sb, lb) = outs
    dump = os.environ.get("COMPAT_DIFF_DUMP")
    if dump:  # a directory: keep each side's normalised transcript for reading
        os.makedirs(dump, exist_ok=True)
        for tag, srv, lines in (("A", sa, la), ("B", sb, lb)):
            name = f"{root.strip('/')}.{tag}.{srv.kind}.txt"
            with open(os.path.join(dump, name), "w") as fh:
                fh.write("\n".join(lines) + "\n")
    if la != lb:
        diff = "\n".join(
            difflib.unified_diff(la, lb, f"A {sa.kind}", f"B {sb.kind}", lineterm="")
        )
        pytest.fail(f"{sa.kind} and {sb.kind} disagree:\n{diff}", pytrace=False)
    # Guard against sequences that silently record nothing useful.
    assert any(" ok " in line for line in la), la


# -- sequences ---------------------------------------------------------------


def seq_crud_versions(s, root):
    a = s.client()
    p = root + "/n"
    s.do("create root", lambda: a.create(root))
    s.do("create", lambda: a.create(p, b"v0"))
    s.do("get", lambda: a.get(p))
    s.do("set v0", lambda: a.set(p, b"v1", version=0))
    s.do("set stale", lambda: a.set(p, b"x", version=0))
    s.do("set any", lambda: a.set(p, b"v2", version=-1))
    s.do("exists", lambda: a.exists(p))
    s.do("create dup", lambda: a.create(p, b"again"))
    s.do("create child", lambda: a.create(p + "/c", b"c"))
    s.do("delete nonempty", lambda: a.delete(p))
    s.do("delete child bad version", lambda: a.delete(p + "/c", version=3))
    s.do("delete child", lambda: a.delete(p + "/c", version=0))
    s.do("parent after child churn", lambda: a.exists(p))
    s.do("delete stale", lambda: a.delete(p, version=0))
    s.do("delete", lambda: a.delete(p, version=2))
    s.do("get gone", lambda: a.get(p))
    s.do("exists gone", lambda: a.exists(p))
    s.do("set gone", lambda: a.set(p, b""))
    s.do("delete gone", lambda: a.delete(p))
    s.do("create no parent", lambda: a.create(root + "/x/y"))
    s.do("root stat", lambda: a.exists(root))
    s.do("sync", lambda: a.sync(root + "/does/not/matter"))


def seq_null_vs_empty(s, root):
    a = s.client()
    s.do("create root", lambda: a.create(root))
    s.do("create null", lambda: a.create(root + "/null", None))
    s.do("create empty", lambda: a.create(root + "/empty", b""))
    s.do("get null", lambda: a.get(root + "/null"))
    s.do("get empty", lambda: a.get(root + "/empty"))
    s.do("set data on null", lambda: a.set(root + "/null", b"x"))
    s.do("raw set null", lambda: raw(a, SetData(root + "/null", None, -1)))
    s.do("get back to null", lambda: a.get(root + "/null"))
    s.do(
        "raw get",
        lambda: raw(a, GetData(root + "/empty", None)),
    )


def seq_sequential(s, root):
    a = s.client()
    s.do("create root", lambda: a.create(root))
    for i in range(3):
        s.do(f"seq {i}", lambda: a.create(root + "/job-", b"", sequence=True))
    s.do("delete last", lambda: a.delete(root + "/job-0000000002"))
    s.do("seq after delete", lambda: a.create(root + "/job-", sequence=True))
    s.do("plain create", lambda: a.create(root + "/plain"))
    s.do("delete first", lambda: a.delete(root + "/job-0000000000"))
    s.do("seq bare", lambda: a.create(root + "/", sequence=True))
    s.do("seq ephemeral", lambda: a.create(root + "/e-", ephemeral=True, sequence=True))
    s.do("children", lambda: a.get_children(root), sort=True)
    s.do("root stat", lambda: a.exists(root))
    s.do("seq under missing", lambda: a.create(root + "/nope/x-", sequence=True))


def seq_ephemeral(s, root):
    a = s.client("a")
    b = s.client("b")
    s.do("create root", lambda: a.create(root))
    s.do("b creates ephemeral", lambda: b.create(root + "/eph", b"e", ephemeral=True))
    s.do("a sees owner", lambda: a.exists(root + "/eph", watch=s.watch("a")))
    s.do("child of ephemeral", lambda: b.create(root + "/eph/c"))
    s.do("seq child of ephemeral", lambda: b.create(root + "/eph/c", sequence=True))
    s.do("multi child of ephemeral", lambda: _multi_child(b, root))
    s.do("b second ephemeral", lambda: b.create(root + "/eph2", ephemeral=True))
    s.do("children", lambda: a.get_children(root, watch=s.watch("a-children")), sort=True)
    s.close("b")
    s.expect_events(2, "events after b closed")
    s.do("gone", lambda: a.exists(root + "/eph"))
    s.do("children after", lambda: a.get_children(root, include_data=True), sort=True)


def _multi_child(client, root):
    t = client.transaction()
    t.create(root + "/eph/m")
    return t.commit()


def seq_container(s, root):
    a = s.client()
    s.do("create root", lambda: a.create(root))
    s.do(
        "create container",
        lambda: raw(a, CreateContainer(root + "/box", b"c", OPEN_ACL_UNSAFE, CONTAINER)),
    )
    s.do("container stat", lambda: a.exists(root + "/box"))
    s.do("child", lambda: a.create(root + "/box/item", b""))
    s.do("delete child", lambda: a.delete(root + "/box/item"))
    s.do(
        "container dup",
        lambda: raw(a, CreateContainer(root + "/box", b"", OPEN_ACL_UNSAFE, CONTAINER)),
    )
    s.do(
        "container without flag",
        lambda: raw(a, CreateContainer(root + "/box2", b"", OPEN_ACL_UNSAFE, 0)),
    )
    s.do("create2", lambda: raw(a, Create2(root + "/c2", b"xy", OPEN_ACL_UNSAFE, 0)))


def seq_multi(s, root):
    a = s.client()
    s.do("create root", lambda: a.create(root))
    s.do("create chk", lambda: a.create(root + "/chk", b"0"))

    def ok_multi():
        t = a.transaction()
        t.create(root + "/t1", b"a")
        t.create(root + "/t1/s-", b"b", sequence=True)
        t.check(root + "/chk", 0)
        t.set_data(root + "/chk", b"1")
        t.delete(root + "/t1/s-0000000000")
        t.create(root + "/t1/e", b"", ephemeral=True)
        return t.commit()

    s.do("multi ok", ok_multi)
    s.do("after ok: t1", lambda: a.exists(root + "/t1"))
    s.do("after ok: chk", lambda: a.get(root + "/chk"))

    def failing(fail_at):
        def run():
            t = a.transaction()
            t.create(root + "/f1")
            if fail_at == "check":
                t.check(root + "/chk", 0)
            elif fail_at == "nonode":
                t.set_data(root + "/missing", b"")
            elif fail_at == "exists":
                t.create(root + "/t1")
            elif fail_at == "notempty":
                t.delete(root + "/t1")
            t.create(root + "/f2")
            t.delete(root + "/chk")
            return t.commit()

        return run

    for kind in ("check", "nonode", "exists", "notempty"):
        s.do(f"multi fails at {kind}", failing(kind))
    s.do("nothing applied", lambda: a.get_children(root), sort=True)
    s.do("chk unchanged", lambda: a.exists(root + "/chk"))

    def first_fails():
        t = a.transaction()
        t.check(root + "/chk", 99)
        t.create(root + "/g1")
        return t.commit()

    s.do("multi first op fails", first_fails)
    s.do("empty multi", lambda: a.transaction().commit())
    s.do("root stat", lambda: a.exists(root))


def seq_watches(s, root):
    a = s.client("a")
    b = s.client("b")
    p = root + "/w"
    s.do("create root", lambda: a.create(root))
    s.do("exists-watch missing", lambda: a.exists(p, watch=s.watch("a-exists")))
    s.do("getData-watch missing", lambda: a.get(p + "x", watch=s.watch("a-get-missing")))
    s.do("b create", lambda: b.create(p, b"1"))
    s.do("b create x", lambda: b.create(p + "x", b"1"))
    s.expect_events(1, "NodeCreated only for the exists watch")
    s.do("data watch", lambda: a.get(p, watch=s.watch("a-data")))
    s.do("exists watch existing", lambda: a.exists(p, watch=s.watch("a-exists2")))
    s.do("child watch", lambda: a.get_children(root, watch=s.watch("a-children")), sort=True)
    s.do("b set", lambda: b.set(p, b"2"))
    s.do("b set again", lambda: b.set(p, b"3"))
    s.expect_events(2, "NodeDataChanged once per watch")
    s.do("b create child", lambda: b.create(root + "/c"))
    s.expect_events(1, "NodeChildrenChanged")
    s.do("data watch again", lambda: a.get(p, watch=s.watch("a-data")))
    s.do("child watch again", lambda: a.get_children(root, watch=s.watch("a-children")), sort=True)
    s.do("child-of-w watch", lambda: a.get_children(p, watch=s.watch("a-children-w")), sort=True)
    s.do("b delete", lambda: b.delete(p))
    s.expect_events(3, "NodeDeleted (data + children-of-w) + parent NodeChildrenChanged")
    s.do("exists watch again", lambda: a.exists(p, watch=s.watch("a-exists3")))
    s.do("getChildren2 watch", lambda: a.get_children(root, watch=s.watch("a-gc2"), include_data=True), sort=True)
    s.do("multi creates", lambda: _multi_two(b, root, p))
    s.expect_events(2, "events from a multi")
    s.do("self-triggered watch", lambda: a.get(p, watch=s.watch("a-self")))
    s.do("a sets its own watched node", lambda: a.set(p, b"own"))
    s.expect_events(1, "own write fires own watch")


def _multi_two(client, root, p):
    t = client.transaction()
    t.create(p, b"m")
    t.create(root + "/d")
    return t.commit()


def seq_acl_digest(s, root):
    a = s.client("a", auth_data=[("digest", "alice:secret")])
    b = s.client("b")
    c = s.client("c", auth_data=[("digest", "alice:wrong")])
    mine = [make_digest_acl("alice", "secret", all=True)]
    readable = mine + [ACL(1, Id("world", "anyone"))]  # READ for everyone
    s.do("create root", lambda: a.create(root))
    s.do("create private", lambda: a.create(root + "/priv", b"p", acl=mine))
    s.do("create readable", lambda: a.create(root + "/pub", b"r", acl=readable))
    s.do("owner get", lambda: a.get(root + "/priv"))
    s.do("owner getAcl", lambda: a.get_acls(root + "/priv"))
    s.do("anon get private", lambda: b.get(root + "/priv"))
    s.do("anon exists private", lambda: b.exists(root + "/priv"))
    s.do("anon getAcl private", lambda: b.get_acls(root + "/priv"))
    s.do("anon set private", lambda: b.set(root + "/priv", b"x"))
    s.do("anon create under private", lambda: b.create(root + "/priv/c"))
    s.do("anon children private", lambda: b.get_children(root + "/priv"), sort=True)
    s.do("owner creates child", lambda: a.create(root + "/priv/kid", acl=mine))
    s.do("anon delete child of private", lambda: b.delete(root + "/priv/kid"))
    s.do("wrong password get", lambda: c.get(root + "/priv"))
    s.do("anon get readable", lambda: b.get(root + "/pub"))
    s.do("anon set readable", lambda: b.set(root + "/pub", b"x"))
    s.do("owner setAcl", lambda: a.set_acls(root + "/pub", OPEN_ACL_UNSAFE, version=0))
    s.do("owner setAcl stale", lambda: a.set_acls(root + "/pub", mine, version=0))
    s.do("anon set after setAcl", lambda: b.set(root + "/pub", b"y"))
    s.do("stat after setAcl", lambda: b.exists(root + "/pub"))
    s.do("add auth later", lambda: b.add_auth("digest", "alice:secret"))
    s.do("anon now authed get", lambda: b.get(root + "/priv"))
    s.do("create with auth scheme", lambda: a.create(root + "/authacl", acl=[ACL(31, Id("auth", ""))]))
    s.do("auth acl stored as digest", lambda: a.get_acls(root + "/authacl"))
    s.do("world create in open root", lambda: c.create(root + "/cc"))
    s.do("authed delete child", lambda: b.delete(root + "/priv/kid"))
    # delete checks the parent's ACL (open here), not the node's own
    s.do("wrong password deletes private", lambda: c.delete(root + "/priv"))


def sasl(section):
    """kazoo's login options for the JAAS section's user (DIGEST-MD5 through pure-sasl)."""
    user, password = SASL_CLIENTS[section]
    return {"sasl_options": {"mechanism": "DIGEST-MD5", "username": user, "password": password}}


def seq_acl_sasl(s, root):
    """`sasl:` ACLs (Kafka's, with zookeeper.set.acl=true) mixed with digest: a session
    logged in with SASL, one with SASL and addauth digest, another SASL user, a digest
    user, an anonymous one; reads, writes, ACL expansion and watches."""
    k = s.client("kafka", **sasl("kafka"))
    m = s.client("mixed", **sasl("kafka"))
    o = s.client("other", **sasl("other"))
    d = s.client("alice", auth_data=[("digest", "alice:secret")])
    n = s.client("anon")
    kafka_all = ACL(31, Id("sasl", "kafka"))
    world_read = ACL(1, Id("world", "anyone"))
    alice_all = make_digest_acl("alice", "secret", all=True)
    s.do("mixed addauth digest", lambda: m.add_auth("digest", "alice:secret"))
    s.do("create root", lambda: k.create(root, acl=[kafka_all, world_read]))
    s.do("creator acl", lambda: k.create(root + "/creator", b"c", acl=[ACL(31, Id("auth", ""))]))
    s.do("creator acl is sasl", lambda: k.get_acls(root + "/creator"))
    s.do("sensitive", lambda: k.create(root + "/users", b"scram", acl=[kafka_all]))
    s.do("readable", lambda: k.create(root + "/ids", b"{}", acl=[kafka_all, world_read]))
    s.do("mixed creator acl", lambda: m.create(root + "/both", b"b", acl=[ACL(31, Id("auth", ""))]))
    s.do("mixed acl has both ids", lambda: m.get_acls(root + "/both"))
    s.do("sasl and digest", lambda: k.create(
        root + "/shared", b"s", acl=[ACL(1, Id("sasl", "kafka")), alice_all]))
    for name, c in (("kafka", k), ("mixed", m), ("other", o), ("alice", d), ("anon", n)):
        for node in ("creator", "users", "ids", "both", "shared"):
            p = f"{root}/{node}"
            s.do(f"{name} get {node}", lambda c=c, p=p: c.get(p))
            s.do(f"{name} set {node}", lambda c=c, p=p: c.set(p, b"w"))
            s.do(f"{name} getAcl {node}", lambda c=c, p=p: c.get_acls(p))
        s.do(f"{name} create in root", lambda c=c, name=name: c.create(f"{root}/{name}-child"))
        s.do(f"{name} exists users", lambda c=c: c.exists(root + "/users"))
    s.do("other watches sensitive", lambda: o.exists(root + "/users", watch=s.watch("other-users")))
    s.do("anon watches readable", lambda: n.get(root + "/ids", watch=s.watch("anon-ids")))
    s.do("alice watches both", lambda: d.get(root + "/both", watch=s.watch("alice-both")))
    s.do("kafka writes users", lambda: k.set(root + "/users", b"scram2"))
    s.do("kafka writes ids", lambda: k.set(root + "/ids", b"{1}"))
    s.do("mixed writes both", lambda: m.set(root + "/both", b"b2"))
    s.expect_events(2, "events only where the watcher may READ")
    s.do("other setAcl sensitive", lambda: o.set_acls(root + "/users", [kafka_all, world_read]))
    s.do("alice deletes shared", lambda: d.delete(root + "/shared"))
    s.do("other deletes ids", lambda: o.delete(root + "/ids"))
    s.do("kafka opens ids", lambda: k.set_acls(root + "/ids", OPEN_ACL_UNSAFE))
    s.do("other writes ids now", lambda: o.set(root + "/ids", b"o"))
    s.do("children", lambda: k.get_children(root), sort=True)
    s.do("root stat", lambda: n.exists(root))


def seq_bad_arguments(s, root):
    a = s.client()
    s.do("create root", lambda: a.create(root))
    s.do("create a", lambda: a.create(root + "/a"))
    # ZooKeeper looks the parent up before validating the whole path, so an
    # invalid path whose parent is missing is NONODE, not BADARGUMENTS.
    paths = [
        root + "/a/",
        root + "/a/.",
        root + "/a/..",
        root + "/a/./b",
        root + "/a//",
        root + "//b",
        root + "/missing/",
        root + "/a/b\u0000c",
        root + "/a/\u0001",
        "relative",
        "",
        "/",
    ]
    for path in paths:
        s.do(f"raw create {path!r}", lambda path=path: raw(a, Create(path, b"", OPEN_ACL_UNSAFE, 0)))
    s.do("raw delete '/'", lambda: raw(a, Delete("/", -1)))
    s.do("raw delete trailing slash", lambda: raw(a, Delete(root + "/", -1)))
    s.do("raw sync odd path", lambda: raw(a, Sync(root + "//odd/")))
    s.do("raw seq trailing slash", lambda: raw(a, Create(root + "/", b"", OPEN_ACL_UNSAFE, 2)))
    s.do("raw seq dot", lambda: raw(a, Create(root + "/a/.", b"", OPEN_ACL_UNSAFE, 2)))
    s.do("create under /zookeeper", lambda: a.create("/zookeeper/" + root.strip("/")))
    s.do("delete it", lambda: a.delete("/zookeeper/" + root.strip("/")))
    s.do("create under /zookeeper/config", lambda: a.create("/zookeeper/config/x"))
    for special in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        s.do(f"delete {special}", lambda special=special: a.delete(special))
        s.do(f"stat {special}", lambda special=special: a.exists(special))
    s.do("children /zookeeper", lambda: a.get_children("/zookeeper"), sort=True)
    s.do("get /zookeeper/quota", lambda: a.get("/zookeeper/quota"))
    s.do("invalid flags", lambda: raw(a, Create(root + "/f", b"", OPEN_ACL_UNSAFE, 99)))
    s.do("empty acl", lambda: raw(a, Create(root + "/noacl", b"", [], 0)))
    s.do("bad acl scheme", lambda: a.create(root + "/badacl", acl=[ACL(31, Id("nosuch", "x"))]))
    s.do("still usable", lambda: a.get_children(root), sort=True)


def seq_pipelined_async(s, root):
    """Many async requests in flight on one session: results in request order."""
    a = s.client()
    s.do("create root", lambda: a.create(root))
    futures = [a.create_async(root + "/q-", b"%d" % i, sequence=True) for i in range(20)]
    futures.append(a.set_async(root, b"x"))
    futures.append(a.get_async(root + "/q-0000000005"))
    futures.append(a.create_async(root + "/q-0000000001"))
    futures.append(a.get_children_async(root))
    futures.append(a.delete_async(root + "/q-0000000000"))
    futures.append(a.exists_async(root))
    for i, f in enumerate(futures):
        s.do(f"async {i}", lambda f=f: f.get(timeout=10), sort=True)


SEQUENCES = [
    seq_crud_versions,
    seq_null_vs_empty,
    seq_sequential,
    seq_ephemeral,
    seq_container,
    seq_multi,
    seq_watches,
    seq_acl_digest,
    seq_bad_arguments,
    seq_pipelined_async,
]


@pytest.mark.parametrize("sequence", SEQUENCES, ids=lambda f: f.__name__[4:])
def test_differential(pair, sequence):
    run_both(pair, sequence, f"/diff_{sequence.__name__[4:]}")


def test_differential_sasl(sasl_pair):
    run_both(sasl_pair, seq_acl_sasl, "/diff_acl_sasl")
