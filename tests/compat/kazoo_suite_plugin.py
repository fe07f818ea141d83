"""pytest plugin that runs kazoo's own test suite against one external server.

Loaded by test_kazoo_suite.py into a child pytest (``-p kazoo_suite_plugin``)
that collects ``kazoo.tests``. It is not a test module of tests/compat itself.

kazoo's harness (kazoo.testing.harness) normally builds a ZookeeperCluster
(three JVMs from ZOOKEEPER_PATH/ZOOKEEPER_CLASSPATH) through
``get_global_cluster()``; every KazooTestHarness reaches the servers only
through that cluster object (``self.cluster``, ``self.servers``). The least
invasive redirection is therefore to replace ``get_global_cluster`` with one
returning an ``ExternalCluster``: one "server" whose address is
``$KAZOO_SUITE_HOSTS`` (host:port of the server the outer test started),
always running, and which refuses (skips) any attempt to stop/restart it.
Everything else of the harness runs unchanged: the per-test chroot
``/kazootests<uuid>``, the chrooted ``self.client``, expire_session and
lose_connection (client-side injections). The only addition is a cleanup of
the test's chroot after teardown, since the server lives for the whole run.

Tests that need to control the cluster (stop/restart nodes, several servers,
SASL/Kerberos JAAS config, TLS, read-only mode) are skipped by SKIPS below,
each with its reason; docs/kazoo-suite.md lists the same.

With ``$KAZOO_SUITE_RECONFIG=1`` the external server is server 1 of a 3-node
ensemble with reconfigEnabled=true and the harness's super digest (the outer
test's second run, limited to test_client.py::TestReconfig): the TestReconfig
skip is lifted for that run only.

Outcomes are written as JSON (nodeid -> passed/failed/skipped, plus the
failure text and duration) to ``$KAZOO_SUITE_RESULTS``.
"""

import json
import os
import re
import time

import pytest

HOSTS = os.environ.get("KAZOO_SUITE_HOSTS", "")
RESULTS = os.environ.get("KAZOO_SUITE_RESULTS", "")
RECONFIG = os.environ.get("KAZOO_SUITE_RECONFIG") == "1"
RECONFIG_PATTERN = r"test_client\.py::TestReconfig::"

# (regex on the test's nodeid relative to kazoo/tests, reason). Checked in order.
SKIPS = [
    # --- needs control of the server processes ---------------------------
    (r"::test_update_host_list$",
     "stops and restarts cluster[0]; grows the client's host list to 3 servers"),
    (r"::test_request_queuing_session_(expired|recovered)$",
     "stops and restarts the server (cluster[0].stop()/run())"),
    (r"test_connection\.py::TestReadOnlyMode::",
     "stops two of three servers to put the third in read-only mode"),
    (RECONFIG_PATTERN,
     "reconfig needs a 3-node ensemble with reconfigEnabled and the "
     "harness's super digest (run separately, see test_kazoo_suite.py)"),
    # --- needs a server configuration we do not give the external server -----
    (r"test_sasl\.py::",
     "SASL (DIGEST-MD5/GSSAPI) needs a JAAS config in the server "
     "(ZOOKEEPER_JAAS_AUTH) and, for GSSAPI, a Kerberos KDC"),
    (r"test_client\.py::TestSSLClient::",
     "TLS needs the harness's secure client port and generated certificates"),
]


class ExternalServer:
    """Stands for one ManagedZooKeeper of kazoo.testing.common."""

    def __init__(self, address):
        self.address = address
        self.secure_address = address
        self.running = True
        self.host = address.rsplit(":", 1)[0]
        self.server_port = int(address.rsplit(":", 1)[1])

    def run(self):
        pytest.skip("test tries to (re)start a server; the external server "
                    "is not controlled by kazoo's harness")

    def stop(self):
        pytest.skip("test tries to stop a server; the external server is not "
                    "controlled by kazoo's harness")

    def destroy(self):
        self.stop()

    def get_logs(self, num_lines=100):
        return []


class ExternalCluster:
    """Stands for kazoo.testing.common.ZookeeperCluster."""

    def __init__(self, hosts):
        self._servers = [ExternalServer(h) for h in hosts.split(",") if h]

    def __getitem__(self, item):
        return self._servers[item]

    def __iter__(self):
        return iter(self._servers)

    def __len__(self):
        return len(self._servers)

    def start(self):
        pass

    def stop(self):
        pytest.skip("test tries to stop the cluster")

    def terminate(self):
        # KazooTestCase.tearDownClass terminates the cluster after every class:
        # for us that is a no-op (the outer test owns the server).
        pass

    def get_logs(self):
        return []

    def get_ssl_client_configuration(self):
        pytest.skip("TLS needs the harness's generated certificates")


_CLUSTER = None


def _external_cluster():
    global _CLUSTER
    if _CLUSTER is None:
        _CLUSTER = ExternalCluster(HOSTS)
    return _CLUSTER


def _cleanup_chroot(hosts_with_chroot):
    """Delete the harness's /kazootests<uuid> chroot of the test that ended."""
    from kazoo.client import KazooClient

    server, _, chroot = hosts_with_chroot.partition("/")
    if not chroot.startswith("kazootests"):
        return
    c = KazooClient(hosts=server, timeout=5,
                    connection_retry={"max_tries": 2, "delay": 0.1})
    try:
        c.start(timeout=5)
        c.delete("/" + chroot, recursive=True)
    except Exception:
        pass
    finally:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def pytest_configure(config):
    if not HOSTS:
        raise pytest.UsageError("KAZOO_SUITE_HOSTS (host:port) is not set")
    # Never let anything of kazoo's start ZooKeeper or read these.
    for var in ("ZOOKEEPER_PATH", "ZOOKEEPER_CLASSPATH", "ZOOKEEPER_VERSION",
                "ZOOKEEPER_JAAS_AUTH", "CI"):
        os.environ.pop(var, None)
    from kazoo.testing import harness

    harness.get_global_cluster = _external_cluster
    orig_teardown = harness.KazooTestHarness.teardown_zookeeper

    def teardown_zookeeper(self):
        hosts = getattr(self, "hosts", None)
        orig_teardown(self)
        if hosts:
            _cleanup_chroot(hosts)

    harness.KazooTestHarness.teardown_zookeeper = teardown_zookeeper
    config._kazoo_suite_results = {}


def _short_id(nodeid):
    i = nodeid.find("kazoo/tests/")
    return nodeid[i + len("kazoo/tests/"):] if i >= 0 else nodeid


def pytest_collection_modifyitems(config, items):
    for item in items:
        sid = _short_id(item.nodeid)
        for pattern, reason in SKIPS:
            if RECONFIG and pattern == RECONFIG_PATTERN:
                continue
            if re.search(pattern, sid):
                item.add_marker(pytest.mark.skip(reason=f"kazoo-suite: {reason}"))
                break


def pytest_runtest_logreport(report):
    res = _RESULTS_BY_CONFIG
    sid = _short_id(report.nodeid)
    entry = res.setdefault(sid, {"outcome": "passed", "duration": 0.0})
    entry["duration"] = round(entry["duration"] + report.duration, 3)
    if report.when == "call" or report.outcome != "passed":
        if report.outcome == "failed":
            entry["outcome"] = "failed"
            entry["when"] = report.when
            text = str(report.longrepr)
            entry["longrepr"] = text[-4000:]
        elif report.outcome == "skipped" and entry["outcome"] != "failed":
            entry["outcome"] = "skipped"
            lr = report.longrepr
            entry["reason"] = lr[2] if isinstance(lr, tuple) else str(lr)


_RESULTS_BY_CONFIG = {}


def pytest_sessionfinish(session, exitstatus):
    if RESULTS:
        with open(RESULTS, "w") as f:
            json.dump({"finished": time.time(), "exitstatus": int(exitstatus),
                       "tests": _RESULTS_BY_CONFIG}, f, indent=1, sort_keys=True)
