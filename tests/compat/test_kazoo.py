"""kazoo (PyPI) and its recipes against the server.

Each test works under its own root path so tests can share one server per
module. Every wait is bounded; nothing sleeps to "let things settle" except
where a negative (nothing happened) has to be observed.
"""

import threading
import time

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    ConnectionClosedError,
    LockTimeout,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import EventType, ZnodeStat
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from conftest import unique_path

WAIT = 10.0  # upper bound for any single expected event


@pytest.fixture
def zk(server, kazoo_factory):
    return kazoo_factory(server.hosts())


@pytest.fixture
def zk2(server, kazoo_factory):
    return kazoo_factory(server.hosts())


@pytest.fixture
def root(request, zk):
    path = unique_path(request, "/kz")
    zk.create(path)
    yield path
    try:
        zk.delete(path, recursive=True)
    except Exception:
        pass


def wait_until(pred, timeout=WAIT, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# -- plain API: versions, Stat, errors ---------------------------------------


def test_create_get_set_versions_and_stat(zk, root):
    p = root + "/n"
    t0 = int(time.time() * 1000)
    assert zk.create(p, b"v0") == p
    data, st = zk.get(p)
    assert data == b"v0"
    assert isinstance(st, ZnodeStat)
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.dataLength == 2 and st.numChildren == 0 and st.ephemeralOwner == 0
    assert st.czxid == st.mzxid == st.pzxid
    assert abs(st.ctime - t0) < 60_000 and st.ctime == st.mtime

    st1 = zk.set(p, b"value-1", version=0)
    assert st1.version == 1 and st1.dataLength == 7
    assert st1.mzxid > st1.czxid and st1.czxid == st.czxid
    assert st1.mtime >= st1.ctime
    with pytest.raises(BadVersionError):
        zk.set(p, b"x", version=0)
    st2 = zk.set(p, b"", version=-1)
    assert st2.version == 2 and st2.dataLength == 0
    assert zk.get(p)[0] == b""

    zk.create(p + "/c1")
    zk.create(p + "/c2")
    zk.delete(p + "/c1")
    pst = zk.exists(p)
    assert pst.cversion == 3 and pst.numChildren == 1
    assert pst.pzxid > pst.mzxid
    assert pst.version == 2  # children do not bump the data version

    with pytest.raises(BadVersionError):
        zk.delete(p + "/c2", version=5)
    zk.delete(p + "/c2", version=0)


def test_null_versus_empty_data(zk, root):
    zk.create(root + "/null", None)
    zk.create(root + "/empty", b"")
    assert zk.get(root + "/null")[0] is None
    assert zk.get(root + "/empty")[0] == b""
    assert zk.exists(root + "/null").dataLength == 0


def test_errors(zk, root):
    with pytest.raises(NoNodeError):
        zk.get(root + "/missing")
    with pytest.raises(NoNodeError):
        zk.create(root + "/missing/child")
    with pytest.raises(NoNodeError):
        zk.delete(root + "/missing")
    with pytest.raises(NoNodeError):
        zk.set(root + "/missing", b"")
    assert zk.exists(root + "/missing") is None
    zk.create(root + "/x")
    with pytest.raises(NodeExistsError):
        zk.create(root + "/x")
    zk.create(root + "/x/y")
    with pytest.raises(NotEmptyError):
        zk.delete(root + "/x")
    zk.create(root + "/e", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(root + "/e/child")
    # ZooKeeper 3.8 refuses to delete its own nodes with BADARGUMENTS (but,
    # unlike what one might expect, lets clients create under /zookeeper).
    for special in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        with pytest.raises(BadArgumentsError):
            zk.delete(special)


def test_sequential_nodes(zk, root):
    names = [zk.create(root + "/job-", b"", sequence=True) for _ in range(3)]
    assert names == [f"{root}/job-{i:010d}" for i in range(3)]
    zk.delete(names[2])
    # The suffix counts child creations (sequential or not) and never rewinds;
    # deletes bump cversion but not this counter.
    assert zk.exists(root).cversion == 4
    assert zk.create(root + "/job-", sequence=True) == f"{root}/job-{3:010d}"
    assert zk.create(root + "/other", b"") == root + "/other"
    assert zk.create(root + "/", sequence=True) == f"{root}/{5:010d}"
    eph = zk.create(root + "/eph-", ephemeral=True, sequence=True)
    assert eph == f"{root}/eph-{6:010d}"
    assert zk.exists(eph).ephemeralOwner == zk.client_id[0]


def test_ephemeral_cleanup_when_client_stops(server, kazoo_factory, zk, root):
    other = kazoo_factory(server.hosts())
    other.create(root + "/eph", b"bye", ephemeral=True)
    st = zk.exists(root + "/eph")
    assert st.ephemeralOwner == other.client_id[0] != 0
    seen = threading.Event()
    zk.exists(root + "/eph", watch=lambda ev: seen.set())
    other.stop()  # closeSession
    assert seen.wait(WAIT), "no NodeDeleted after the owner closed its session"
    assert zk.exists(root + "/eph") is None
    assert zk.get_children(root) == []


def test_get_children_with_stat(zk, root):
    for n in ("b", "a", "c"):
        zk.create(f"{root}/{n}")
    children, st = zk.get_children(root, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert st.numChildren == 3 and st.cversion == 3


# -- transactions ------------------------------------------------------------


def test_transaction_commit(zk, root):
    zk.create(root + "/chk", b"0")
    t = zk.transaction()
    t.create(root + "/t1", b"a")
    t.create(root + "/t1/t2", b"b")
    t.check(root + "/chk", 0)
    t.set_data(root + "/chk", b"1")
    t.delete(root + "/t1/t2")
    res = t.commit()
    assert res[0] == root + "/t1" and res[1] == root + "/t1/t2"
    assert res[2] is True
    assert isinstance(res[3], ZnodeStat) and res[3].version == 1
    assert res[4] is True
    # one transaction, one zxid
    assert zk.exists(root + "/t1").czxid == res[3].mzxid
    assert zk.get_children(root + "/t1") == []


def test_transaction_failure_rolls_back(zk, root):
    zk.create(root + "/chk", b"0")
    t = zk.transaction()
    t.create(root + "/new", b"a")
    t.check(root + "/chk", 7)  # wrong version
    t.set_data(root + "/chk", b"1")
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, BadVersionError, RuntimeInconsistency]
    assert zk.exists(root + "/new") is None
    assert zk.get(root + "/chk")[1].version == 0

    t = zk.transaction()
    t.delete(root + "/chk")
    t.create(root + "/chk/x")  # parent deleted earlier in the same multi
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, NoNodeError]
    assert zk.exists(root + "/chk") is not None


# -- watches -----------------------------------------------------------------


def test_children_watch_and_data_watch(zk, zk2, root):
    child_calls = []
    data_calls = []
    ChildrenWatch(zk, root, lambda ch: child_calls.append(sorted(ch)))
    wait_until(lambda: child_calls == [[]], what="initial ChildrenWatch call")

    node = root + "/d"
    DataWatch(zk, node, lambda data, stat, *a: data_calls.append(data))
    wait_until(lambda: data_calls == [None], what="initial DataWatch call")

    zk2.create(node, b"one")
    wait_until(lambda: child_calls[-1:] == [["d"]], what="child added")
    wait_until(lambda: data_calls[-1:] == [b"one"], what="data created")
    zk2.set(node, b"two")
    wait_until(lambda: data_calls[-1:] == [b"two"], what="data changed")
    zk2.create(root + "/e")
    wait_until(lambda: child_calls[-1:] == [["d", "e"]], what="second child")
    zk2.delete(node)
    wait_until(lambda: data_calls[-1:] == [None], what="data deleted")
    wait_until(lambda: child_calls[-1:] == [["e"]], what="child removed")
    assert data_calls == [None, b"one", b"two", None]
    assert child_calls == [[], ["d"], ["d", "e"], ["e"]]


def test_one_shot_watches_fire_once_in_order(zk, zk2, root):
    events = []
    lock = threading.Lock()

    def watcher(ev):
        with lock:
            events.append((ev.type, ev.path))

    p = root + "/w"
    assert zk.exists(p, watch=watcher) is None
    zk2.create(p, b"")
    wait_until(lambda: len(events) == 1, what="NodeCreated")
    zk.get(p, watch=watcher)
    zk.get_children(root, watch=watcher)
    zk2.set(p, b"1")
    zk2.set(p, b"2")  # the data watch is one-shot: no second event
    zk2.create(root + "/w2")
    wait_until(lambda: len(events) == 3, what="NodeDataChanged + NodeChildrenChanged")
    time.sleep(0.3)  # a duplicate would arrive by now
    assert events == [
        (EventType.CREATED, p),
        (EventType.CHANGED, p),
        (EventType.CHILD, root),
    ]


# -- recipes -----------------------------------------------------------------


def test_lock(zk, zk2, root):
    path = root + "/lock"
    a = Lock(zk, path, "client-a")
    b = Lock(zk2, path, "client-b")
    assert a.acquire(timeout=WAIT)
    with pytest.raises(LockTimeout):
        b.acquire(timeout=0.5)
    assert a.contenders() == ["client-a"]

    got = threading.Event()

    def take():
        if b.acquire(timeout=WAIT):
            got.set()

    th = threading.Thread(target=take)
    th.start()
    wait_until(lambda: len(a.contenders()) == 2, what="b queued on the lock")
    assert a.contenders() == ["client-a", "client-b"]
    assert not got.is_set()
    a.release()
    assert got.wait(WAIT), "b never got the lock after a released it"
    th.join(WAIT)
    b.release()
    assert zk.get_children(path) == []


def test_election(server, kazoo_factory, root):
    path = root + "/election"
    c1 = kazoo_factory(server.hosts())
    c2 = kazoo_factory(server.hosts())
    leaders = []
    stop = {1: threading.Event(), 2: threading.Event()}

    def lead(n):
        leaders.append(n)
        stop[n].wait(WAIT)

    e1 = Election(c1, path, "one")
    e2 = Election(c2, path, "two")
    def run_first():
        # Its session is closed under it, so the recipe's final lock release
        # fails with ConnectionClosedError: expected here.
        try:
            e1.run(lead, 1)
        except ConnectionClosedError:
            pass

    t1 = threading.Thread(target=run_first)
    t1.start()
    wait_until(lambda: leaders == [1], what="first leader")
    t2 = threading.Thread(target=e2.run, args=(lead, 2))
    t2.start()
    wait_until(lambda: len(e1.contenders()) == 2, what="two contenders")
    assert e1.contenders() == ["one", "two"]
    c1.stop()  # the leader's session goes away
    stop[1].set()
    wait_until(lambda: leaders == [1, 2], what="failover to the second contender")
    stop[2].set()
    t1.join(WAIT)
    t2.join(WAIT)
    assert not t1.is_alive() and not t2.is_alive()


def test_barrier_and_double_barrier(zk, zk2, root):
    b = Barrier(zk, root + "/barrier")
    b.create()
    assert b.wait(0.2) is False
    released = []
    th = threading.Thread(target=lambda: released.append(Barrier(zk2, root + "/barrier").wait(WAIT)))
    th.start()
    time.sleep(0.2)
    b.remove()
    th.join(WAIT)
    assert released == [True]

    path = root + "/double"
    d1 = DoubleBarrier(zk, path, 2)
    d2 = DoubleBarrier(zk2, path, 2)
    entered = []
    th = threading.Thread(target=lambda: (d2.enter(), entered.append(2)))
    th.start()
    d1.enter()
    th.join(WAIT)
    assert entered == [2]
    th = threading.Thread(target=d2.leave)
    th.start()
    d1.leave()
    th.join(WAIT)
    assert not th.is_alive()


def test_counter(zk, zk2, root):
    c1 = Counter(zk, root + "/counter")
    c2 = Counter(zk2, root + "/counter")
    c1 += 1
    c2 += 5
    c1 -= 2
    assert c1.value == 4 and c2.value == 4
    def bump(client):
        c = Counter(client, root + "/counter")
        for _ in range(10):
            c += 1  # a versioned set, retried on BadVersion by the recipe

    threads = [threading.Thread(target=bump, args=(c,)) for c in (zk, zk2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert Counter(zk, root + "/counter").value == 24
    f = Counter(zk, root + "/fcounter", default=0.5)
    f += 1.25
    assert f.value == 1.75


def test_queue(zk, zk2, root):
    q = Queue(zk, root + "/queue")
    q.put(b"first")
    q.put(b"second")
    q.put(b"urgent", priority=10)
    assert len(q) == 3
    q2 = Queue(zk2, root + "/queue")
    assert q2.get() == b"urgent"
    assert q2.get() == b"first"
    assert q.get() == b"second"
    assert q.get() is None
    assert len(q) == 0


def test_locking_queue(zk, zk2, root):
    q = LockingQueue(zk, root + "/lq")
    q.put(b"a")
    q.put_all([b"b", b"c"])
    assert len(q) == 3
    worker = LockingQueue(zk2, root + "/lq")
    assert worker.get(WAIT) == b"a"
    assert worker.holds_lock()
    assert worker.consume()
    assert worker.get(WAIT) == b"b"
    assert worker.release()  # not consumed: back for someone else
    assert q.get(WAIT) == b"b"
    assert q.consume()
    assert q.get(WAIT) == b"c" and q.consume()
    assert q.get(0.3) is None
