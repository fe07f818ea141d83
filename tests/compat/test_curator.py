"""Apache Curator 5.4 recipes (Debian libcurator-*-java) against the server.

curator/CuratorRecipes.java is compiled with javac at test time against the
jars in /usr/share/java (curator-recipes -> curator-framework -> curator-client,
guava, zookeeper, zookeeper-jute, slf4j-api: their manifests' Class-Path
resolve there) and run once per recipe, with the same asserts against
ZooKeeper 3.8 and keeperd:

  leaderlatch     LeaderLatch: 3 participants, hand-over on latch close and on
                  the leader's session close
  mutex           InterProcessMutex: re-entrancy, a blocked waiter, hand-over,
                  4 workers x 10 rounds with no overlap
  atomiclong      DistributedAtomicLong: initialize, increment, add, CAS,
                  decrement, forceSet, 100 concurrent increments
  curatorcache    CuratorCache (Curator 5: one persistent recursive watch via
                  addWatch): initial load, create/change/delete to depth 3,
                  an ephemeral's session closing
  addwatch        addWatch PERSISTENT and PERSISTENT_RECURSIVE directly, then
                  removeWatches
  persistentnode  PersistentNode (ephemeral, re-created after a foreign delete,
                  setData, protected sequential), parents created as containers
                  (creatingParentContainersIfNeeded), create2's Stat, and the
                  reaping of empty containers

The server gets znode.container.checkIntervalMs=1000 so container reaping is
observable in seconds: keeperd reads it from zoo.cfg; ZooKeeper reads it only
as a Java system property, so its JVM is started with JAVA_TOOL_OPTIONS.
"""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import JAVA_DIR, ServerFactory, server_kinds

HERE = Path(__file__).resolve().parent
SRC = HERE / "curator" / "CuratorRecipes.java"
JARS = ["curator-recipes.jar", "curator-framework.jar", "curator-client.jar",
        "zookeeper.jar", "zookeeper-jute.jar", "guava.jar", "slf4j-api.jar"]
CONTAINER_INTERVAL_MS = "1000"
RUN_TIMEOUT = 120

# What each recipe prints as it passes its checks: identical for both servers.
EXPECTED_STEPS = {
    "leaderlatch": [
        "a leads; participants=3",
        "second latch leads after the first latch closed",
        "last latch leads after the leader's session closed",
    ],
    "mutex": [
        "reentrant hold, blocked waiter, hand-over",
        "4 workers x 10 rounds, no overlap",
    ],
    "atomiclong": [
        "initialize/increment/add/CAS/decrement/forceSet",
        "concurrent increments: 142",
    ],
    "curatorcache": [
        "initial [NODE_CREATED  root, NODE_CREATED /pre p]",
        "create/change/delete events down to depth 3 from one persistent "
        "recursive watch",
    ],
    "addwatch": [
        "PERSISTENT and PERSISTENT_RECURSIVE fire repeatedly without re-registering",
        "removeWatches on a persistent recursive watch",
    ],
    "persistentnode": [
        "ephemeral created under container parents",
        "re-created after a delete by another session",
        "setData",
        "protected sequential _c_<uuid>-s-<seq>",
        "create2 returns the new node's Stat",
        "empty containers reaped",
    ],
}


def _classpath():
    missing = [j for j in JARS if not (JAVA_DIR / j).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing from {JAVA_DIR}: run scripts/setup "
                    "(libcurator-recipes-java)", pytrace=False)
    return [str(JAVA_DIR / j) for j in JARS]


@pytest.fixture(scope="module")
def curator_cp(tmp_path_factory):
    cp = _classpath()
    javac = shutil.which("javac")
    if not javac:
        pytest.fail("javac not found: run scripts/setup", pytrace=False)
    out = tmp_path_factory.mktemp("curator-classes")
    r = subprocess.run([javac, "-d", str(out), "-cp", ":".join(cp), str(SRC)],
                       capture_output=True, text=True, timeout=180,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"javac failed:\n{r.stdout}\n{r.stderr}"
    simple = JAVA_DIR / "slf4j-simple.jar"
    return ":".join(cp + ([str(simple)] if simple.exists() else []) + [str(out)])


@pytest.fixture(scope="module", params=server_kinds())
def cserver(request):
    """A server with a 1 s container check interval."""
    factory = ServerFactory()
    key = "JAVA_TOOL_OPTIONS"
    saved = os.environ.get(key)
    if request.param == "zookeeper":
        os.environ[key] = ((saved + " ") if saved else "") + \
            f"-Dznode.container.checkIntervalMs={CONTAINER_INTERVAL_MS}"
    try:
        srv = factory(request.param,
                      {"znode.container.checkIntervalMs": CONTAINER_INTERVAL_MS})
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved
    try:
        yield srv
    finally:
        factory.close(failed=False)


def run_recipe(cp, srv, recipe):
    cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
           "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", cp,
           "CuratorRecipes", srv.hosts(), recipe]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"CuratorRecipes {recipe} did not finish within {RUN_TIMEOUT}s\n"
                    f"--- stdout ---\n{out}\n--- stderr ---\n{err[-3000:]}",
                    pytrace=False)
    return proc.returncode, out, err


@pytest.mark.parametrize("recipe", list(EXPECTED_STEPS))
def test_curator_recipe(curator_cp, cserver, recipe):
    rc, out, err = run_recipe(curator_cp, cserver, recipe)
    detail = f"--- stdout ---\n{out}\n--- stderr (tail) ---\n{err[-3000:]}"
    assert rc == 0 and f"PASS {recipe}" in out, \
        f"{recipe} against {cserver.kind} failed (exit {rc})\n{detail}"
    steps = [ln[len("step "):] for ln in out.splitlines() if ln.startswith("step ")]
    assert steps == EXPECTED_STEPS[recipe], detail
    # Nothing logged at ERROR by Curator/ZooKeeper's client either (unhandled
    # errors in background callbacks). WARNs on close are normal.
    bad = [ln for ln in err.splitlines() if re.search(r"\] ERROR ", ln)]
    assert not bad, f"{recipe}: errors logged by Curator:\n" + "\n".join(bad[:20])
