"""kazoo's own test suite (kazoo.tests, 2.11.0) against the server we started.

A child pytest collects ``kazoo.tests`` with kazoo_suite_plugin.py loaded: the
plugin points kazoo's KazooTestHarness at our one external server instead of
the three-JVM cluster it would start itself, skips (with a reason) the tests
that need to control the cluster, and writes every test's outcome as JSON.

The assertion: every test listed in kazoo_suite_expected.txt passes. That list
is what passes against ZooKeeper 3.8 under the same harness; regenerate it with

    COMPAT_SERVER=zookeeper KAZOO_SUITE_WRITE_EXPECTED=1 \\
        python3 -m pytest tests/compat/test_kazoo_suite.py -q

kazoo's wheel ships kazoo/tests; if the installed kazoo lacks them, the sdist of
the same version is fetched with ``pip download --no-binary :all:`` into a temp
dir (nothing from it is kept). If neither works the test fails and says so.

Environment: KAZOO_SUITE_BUDGET (s, default 300, whole child run),
KAZOO_SUITE_TEST_TIMEOUT (s, default 30, per kazoo test),
KAZOO_SUITE_DUMP=DIR (write the outcome JSON and a summary there),
KAZOO_SUITE_K=EXPR (pass -k EXPR to the child, for debugging only: the
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

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "kazoo_suite_expected.txt"
BUDGET = float(os.environ.get("KAZOO_SUITE_BUDGET", "300"))
TEST_TIMEOUT = int(os.environ.get("KAZOO_SUITE_TEST_TIMEOUT", "30"))
# The suite has ~490 tests; far fewer results means the run broke, not that
# the server is good.
MIN_RESULTS = 300

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


def _run_child(server, tmp, extra_path):
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
    env["KAZOO_SUITE_HOSTS"] = server.hosts()
    env["KAZOO_SUITE_RESULTS"] = str(results)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(tmp),
           "-p", "kazoo_suite_plugin", "--pyargs", "kazoo.tests", "-q", "-rfE",
           "--durations=15"]
    if os.environ.get("KAZOO_SUITE_K"):
        cmd += ["-k", os.environ["KAZOO_SUITE_K"]]
    log = tmp / "child.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=BUDGET)
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


def _read_expected():
    if not EXPECTED.exists():
        pytest.fail(f"{EXPECTED} missing: generate it against ZooKeeper "
                    "(see this file's docstring)", pytrace=False)
    return [ln.strip() for ln in EXPECTED.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def test_kazoo_own_suite(server, tmp_path):
    extra_path, source = _locate_tests(tmp_path)
    results, text, rc, timed_out, elapsed = _run_child(server, tmp_path, extra_path)
    tail = "\n".join(text.splitlines()[-60:])
    if timed_out:
        pytest.fail(f"kazoo's suite did not finish within {BUDGET:.0f}s "
                    f"(KAZOO_SUITE_BUDGET)\n--- child output tail ---\n{tail}",
                    pytrace=False)
    if not results.exists():
        pytest.fail(f"kazoo's suite wrote no results (exit {rc})\n"
                    f"--- child output tail ---\n{tail}", pytrace=False)
    tests = json.loads(results.read_text())["tests"]
    by = {"passed": [], "failed": [], "skipped": []}
    for tid, r in sorted(tests.items()):
        by[r["outcome"]].append(tid)
    summary = (f"kazoo {source} against {server.kind} {server.hosts()}: "
               f"{len(by['passed'])} passed, {len(by['failed'])} failed, "
               f"{len(by['skipped'])} skipped in {elapsed:.0f}s")
    print("\n" + summary)
    for tid in by["failed"]:
        print(f"  FAILED {tid} ({tests[tid].get('when')})")
    dump = os.environ.get("KAZOO_SUITE_DUMP")
    if dump:
        Path(dump).mkdir(parents=True, exist_ok=True)
        (Path(dump) / f"kazoo-suite-{server.kind}.json").write_text(
            results.read_text())
        (Path(dump) / f"kazoo-suite-{server.kind}.log").write_text(text)
    if not os.environ.get("KAZOO_SUITE_K"):
        assert len(tests) >= MIN_RESULTS, (
            f"only {len(tests)} results from kazoo's suite (expected ~490): the "
            f"run broke\n--- child output tail ---\n{tail}")

    if os.environ.get("KAZOO_SUITE_WRITE_EXPECTED"):
        assert server.kind == "zookeeper", (
            "KAZOO_SUITE_WRITE_EXPECTED only with COMPAT_SERVER=zookeeper")
        EXPECTED.write_text(
            "# kazoo 2.11.0's own tests that pass against ZooKeeper 3.8 under\n"
            "# kazoo_suite_plugin.py (one external server); generated by\n"
            "# test_kazoo_suite.py with KAZOO_SUITE_WRITE_EXPECTED=1.\n"
            f"# {summary.split(': ', 1)[1]}\n"
            + "".join(f"{t}\n" for t in by["passed"]))
        return

    expected = _read_expected()
    if os.environ.get("KAZOO_SUITE_K"):
        expected = [t for t in expected if t in tests]
    missing = [t for t in expected if tests.get(t, {}).get("outcome") != "passed"]
    if missing:
        lines = [f"{len(missing)} of the {len(expected)} kazoo tests that pass "
                 f"against ZooKeeper 3.8 did not pass against {server.kind}:"]
        for t in missing:
            r = tests.get(t)
            if r is None:
                lines.append(f"--- {t}: not run")
                continue
            lines.append(f"--- {t}: {r['outcome']} ({r.get('when', '')}) "
                         f"{r.get('reason', '')}")
            if r.get("longrepr"):
                lines.append("\n".join(r["longrepr"].splitlines()[-25:]))
        pytest.fail("\n".join(lines), pytrace=False)
