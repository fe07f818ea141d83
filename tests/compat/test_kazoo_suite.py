"""kazoo's own test suite (kazoo.tests, 2.11.0) against the server we started.

A child pytest collects ``kazoo.tests`` with kazoo_suite_plugin.py loaded: the
plugin points kazoo's KazooTestHarness at our one external server instead of
the three-JVM cluster it would start itself, skips (with a reason) the tests
that need to control the cluster, and writes every test's outcome as JSON.

test_client.py::TestReconfig needs what one server cannot give: a 3-node
ensemble with reconfigEnabled=true and the super digest of kazoo's harness
(``super:test``). test_kazoo_reconfig starts such an ensemble (conftest's
Ensemble) and runs a second child limited to that class, pointed at server 1,
with the plugin's TestReconfig skip lifted (KAZOO_SUITE_RECONFIG=1).

The assertion: every test listed in kazoo_suite_expected.txt passes (the
TestReconfig ones in the second run, the others in the first). That list is
what passes against ZooKeeper 3.8 under the same harness; regenerate it with

    COMPAT_SERVER=zookeeper KAZOO_SUITE_WRITE_EXPECTED=1 \\
        python3 -m pytest tests/compat/test_kazoo_suite.py -q

kazoo's wheel ships kazoo/tests; if the installed kazoo lacks them, the sdist of
the same version is fetched with ``pip download --no-binary :all:`` into a temp
dir (nothing from it is kept). If neither works the test fails and says so.

Environment: KAZOO_SUITE_BUDGET (s, default 300, whole child run),
KAZOO_SUITE_TEST_TIMEOUT (s, default 30, per kazoo test),
KAZOO_SUITE_RECONFIG_BUDGET (s, default 120, the TestReconfig child run),
KAZOO_SUITE_DUMP=DIR (write the outcome JSON and a summary there),
KAZOO_SUITE_K=EXPR (pass -k EXPR to both children, for debugging only: the
comparison is then limited to the selected tests).
"""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from conftest import Ensemble, server_kinds, super_digest

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "kazoo_suite_expected.txt"
BUDGET = float(os.environ.get("KAZOO_SUITE_BUDGET", "300"))
TEST_TIMEOUT = int(os.environ.get("KAZOO_SUITE_TEST_TIMEOUT", "30"))
# The suite has ~490 tests; far fewer results means the run broke, not that
# the server is good.
MIN_RESULTS = 300

# The TestReconfig run: its own child, on a 3-node ensemble.
RECONFIG_BUDGET = float(os.environ.get("KAZOO_SUITE_RECONFIG_BUDGET", "120"))
# A -k expression, not a node id: pytest names the tests relative to the
# argument, and the plugin's skip patterns expect "test_client.py::...".
RECONFIG_SELECT = "TestReconfig"
RECONFIG_PREFIX = "test_client.py::TestReconfig::"
# kazoo.testing.harness.get_global_cluster() starts ZooKeeper >= 3.5 with
# reconfigEnabled=true and -Dzookeeper.DigestAuthenticationProvider.superDigest=
# this; test_add_remove_observer authenticates as digest super:test.
HARNESS_SUPER = ("super", "test")
HARNESS_SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
RECONFIG_CFG = {
    "reconfigEnabled": "true",
    "DigestAuthenticationProvider.superDigest": HARNESS_SUPER_DIGEST,
}

pytestmark = pytest.mark.timeout(BUDGET + 120)


def _installed_tests():
    try:
        import kazoo.tests  # noqa: F401
    except ImportError:
        return None
    d = Path(kazoo.tests.__file__).parent
    return d if (d / "test_client.py").exists() else None


def _sdist_tests(tmp):
    """Fetch kazoo's sdist of the installed version; return the dir to put
    first on PYTHONPATH (it holds kazoo/ with kazoo/tests/), or an error."""
    from kazoo.version import __version__ as version

    dl = tmp / "sdist"
    dl.mkdir()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
           ":all:", f"kazoo=={version}", "-d", str(dl)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, f"`{' '.join(cmd)}` timed out after 120 s"
    archives = list(dl.glob("kazoo-*.tar.gz"))
    if out.returncode != 0 or not archives:
        return None, (f"`{' '.join(cmd)}` failed ({out.returncode}):\n"
                      f"{out.stderr[-2000:]}")
    with tarfile.open(archives[0]) as tf:
        tf.extractall(dl, filter="data")
    roots = [p.parents[2] for p in dl.glob("kazoo-*/kazoo/tests/test_client.py")]
    if not roots:
        return None, f"{archives[0].name} has no kazoo/tests/test_client.py"
    return roots[0], None


def _locate_tests(tmp):
    """(extra PYTHONPATH entries, description) or pytest.fail."""
    d = _installed_tests()
    if d is not None:
        return [], f"installed wheel ({d})"
    root, err = _sdist_tests(tmp)
    if root is None:
        pytest.fail(
            "kazoo's own test files are unavailable: the installed kazoo has no "
            "kazoo/tests and fetching its sdist failed: " + err, pytrace=False)
    return [str(root)], f"sdist ({root})"


def _run_child(hosts, tmp, extra_path, select=None, budget=BUDGET,
               extra_env=None):
    results = tmp / "results.json"
    ini = tmp / "pytest.ini"
    # Our own ini (not tests/compat/pytest.ini): kazoo's tests emit
    # unraisable-thread warnings that our ini turns into errors.
    ini.write_text(
        "[pytest]\n"
        "addopts = -p no:cacheprovider\n"
        f"timeout = {TEST_TIMEOUT}\n"
        "timeout_method = signal\n"
        "log_level = WARNING\n"
    )
    env = dict(os.environ)
    for var in ("ZOOKEEPER_PATH", "ZOOKEEPER_CLASSPATH", "ZOOKEEPER_VERSION",
                "ZOOKEEPER_JAAS_AUTH", "CI", "PYTEST_ADDOPTS"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join(
        extra_path + [str(HERE)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.pop("KAZOO_SUITE_RECONFIG", None)
    env["KAZOO_SUITE_HOSTS"] = hosts
    env["KAZOO_SUITE_RESULTS"] = str(results)
    env.update(extra_env or {})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tmp),
           "-p", "kazoo_suite_plugin", "--pyargs", "kazoo.tests", "-q", "-rfE",
           "--durations=15"]
    k = [e for e in (select, os.environ.get("KAZOO_SUITE_K")) if e]
    if k:
        cmd += ["-k", " and ".join(f"({e})" for e in k)]
    log = tmp / "child.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
    elapsed = time.monotonic() - start
    text = log.read_text(errors="replace")
    return results, text, proc.returncode, timed_out, elapsed


def _is_reconfig(tid):
    return tid.startswith(RECONFIG_PREFIX)


def _read_expected():
    if not EXPECTED.exists():
        pytest.fail(f"{EXPECTED} missing: generate it against ZooKeeper "
                    "(see this file's docstring)", pytrace=False)
    return [ln.strip() for ln in EXPECTED.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def _write_expected(part, counts, passed):
    """Rewrite EXPECTED with this run's passing tests and counts; the other
    run's lines (TestReconfig, or everything else) are kept as they are."""
    mine = _is_reconfig if part == "reconfig" else (lambda t: not _is_reconfig(t))
    runs = {}
    kept = []
    if EXPECTED.exists():
        for ln in EXPECTED.read_text().splitlines():
            ln = ln.strip()
            for name in ("suite", "reconfig"):
                if ln.startswith(f"# {name} run: "):
                    runs[name] = ln
            if ln and not ln.startswith("#") and not mine(ln):
                kept.append(ln)
    runs[part] = f"# {part} run: {counts}"
    EXPECTED.write_text(
        "# kazoo 2.11.0's own tests that pass against ZooKeeper 3.8 under\n"
        "# kazoo_suite_plugin.py; generated by test_kazoo_suite.py with\n"
        "# KAZOO_SUITE_WRITE_EXPECTED=1. Two runs: the suite on one server (its\n"
        "# TestReconfig skipped), TestReconfig on a 3-node reconfig ensemble.\n"
        + "".join(f"{runs[n]}\n" for n in ("suite", "reconfig") if n in runs)
        + "".join(f"{t}\n" for t in sorted(set(kept) | set(passed))))


def _outcomes(what, results, text, rc, timed_out, budget, budget_var):
    """The child's per-test outcomes, or pytest.fail if the run broke."""
    tail = "\n".join(text.splitlines()[-60:])
    if timed_out:
        pytest.fail(f"{what} did not finish within {budget:.0f}s "
                    f"({budget_var})\n--- child output tail ---\n{tail}",
                    pytrace=False)
    if not results.exists():
        pytest.fail(f"{what} wrote no results (exit {rc})\n"
                    f"--- child output tail ---\n{tail}", pytrace=False)
    tests = json.loads(results.read_text())["tests"]
    by = {"passed": [], "failed": [], "skipped": []}
    for tid, r in sorted(tests.items()):
        by[r["outcome"]].append(tid)
    return tests, by, tail


def _counts(by, elapsed):
    return (f"{len(by['passed'])} passed, {len(by['failed'])} failed, "
            f"{len(by['skipped'])} skipped in {elapsed:.0f}s")


def _dump(name, results, text):
    dump = os.environ.get("KAZOO_SUITE_DUMP")
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"{name}.json").write_text(results.read_text())
        (Path(dump) / f"{name}.log").write_text(text)


def _missing(expected, tests, kind):
    """Failure text for the expected tests that did not pass, or None."""
    if os.environ.get("KAZOO_SUITE_K"):
        expected = [t for t in expected if t in tests]
    missing = [t for t in expected if tests.get(t, {}).get("outcome") != "passed"]
    if not missing:
        return None
    lines = [f"{len(missing)} of the {len(expected)} kazoo tests that pass "
             f"against ZooKeeper 3.8 did not pass against {kind}:"]
    for t in missing:
        r = tests.get(t)
        if r is None:
            lines.append(f"--- {t}: not run")
            continue
        lines.append(f"--- {t}: {r['outcome']} ({r.get('when', '')}) "
                     f"{r.get('reason', '')}")
        if r.get("longrepr"):
            lines.append("\n".join(r["longrepr"].splitlines()[-25:]))
    return "\n".join(lines)


def test_kazoo_own_suite(server, tmp_path):
    extra_path, source = _locate_tests(tmp_path)
    results, text, rc, timed_out, elapsed = _run_child(
        server.hosts(), tmp_path, extra_path)
    tests, by, tail = _outcomes("kazoo's suite", results, text, rc, timed_out,
                                BUDGET, "KAZOO_SUITE_BUDGET")
    counts = _counts(by, elapsed)
    print(f"\nkazoo {source} against {server.kind} {server.hosts()}: {counts}")
    for tid in by["failed"]:
        print(f"  FAILED {tid} ({tests[tid].get('when')})")
    _dump(f"kazoo-suite-{server.kind}", results, text)
    if not os.environ.get("KAZOO_SUITE_K"):
        assert len(tests) >= MIN_RESULTS, (
            f"only {len(tests)} results from kazoo's suite (expected ~490): the "
            f"run broke\n--- child output tail ---\n{tail}")

    if os.environ.get("KAZOO_SUITE_WRITE_EXPECTED"):
        assert server.kind == "zookeeper", (
            "KAZOO_SUITE_WRITE_EXPECTED only with COMPAT_SERVER=zookeeper")
        _write_expected("suite", counts, by["passed"])
        return

    # TestReconfig is skipped here; test_kazoo_reconfig runs it.
    expected = [t for t in _read_expected() if not _is_reconfig(t)]
    failure = _missing(expected, tests, server.kind)
    if failure:
        pytest.fail(failure, pytrace=False)


@pytest.fixture(params=server_kinds())
def reconfig_ensemble(request, tmp_path):
    """3 servers with reconfigEnabled=true and the harness's super digest."""
    ens = Ensemble(tmp_path / "ensemble", 3, RECONFIG_CFG, kind=request.param)
    try:
        yield ens.start()
    finally:
        ens.stop()


def test_kazoo_reconfig(reconfig_ensemble, tmp_path):
    """kazoo's test_client.py::TestReconfig, its client on server 1 of a
    3-node ensemble configured as kazoo's harness configures its own."""
    assert super_digest(*HARNESS_SUPER) == HARNESS_SUPER_DIGEST
    ens = reconfig_ensemble
    kind = ens.kind
    hosts = ens.members[0].hosts()
    child = tmp_path / "child"
    child.mkdir()
    extra_path, source = _locate_tests(child)
    results, text, rc, timed_out, elapsed = _run_child(
        hosts, child, extra_path, select=RECONFIG_SELECT,
        budget=RECONFIG_BUDGET, extra_env={"KAZOO_SUITE_RECONFIG": "1"})

    def logs():
        return "".join(
            f"\n--- {kind} server {m.sid} ({m.hosts()}) log, last lines ---\n"
            f"{m.log_tail(60)}" for m in ens.members)

    tests, by, tail = _outcomes("kazoo's TestReconfig", results, text, rc,
                                timed_out, RECONFIG_BUDGET,
                                "KAZOO_SUITE_RECONFIG_BUDGET")
    counts = _counts(by, elapsed)
    print(f"\nkazoo {source} TestReconfig against a 3-node {kind} ensemble "
          f"(client on {hosts}): {counts}")
    for tid in by["failed"]:
        print(f"  FAILED {tid} ({tests[tid].get('when')})")
    _dump(f"kazoo-suite-reconfig-{kind}", results, text)
    stray = [t for t in tests if not _is_reconfig(t)]
    assert not stray, f"the TestReconfig run ran other tests: {stray}"
    if not os.environ.get("KAZOO_SUITE_K"):
        assert len(tests) >= 3, (
            f"only {len(tests)} results from TestReconfig (expected 3): the run "
            f"broke\n--- child output tail ---\n{tail}")

    if os.environ.get("KAZOO_SUITE_WRITE_EXPECTED"):
        assert kind == "zookeeper", (
            "KAZOO_SUITE_WRITE_EXPECTED only with COMPAT_SERVER=zookeeper")
        _write_expected("reconfig", counts, by["passed"])
        return

    expected = [t for t in _read_expected() if _is_reconfig(t)]
    if not expected:
        pytest.fail(f"{EXPECTED} lists no TestReconfig test: regenerate it "
                    "(see this file's docstring)", pytrace=False)
    failure = _missing(expected, tests, kind)
    if failure:
        pytest.fail(failure + logs(), pytrace=False)
