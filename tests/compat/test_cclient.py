"""ZooKeeper's C client (Debian zookeeper-bin: cli_mt, libzookeeper-mt 3.8).

cli_mt reads commands on stdin, one per line, and prints results on stderr.
create/get/ls/ls2 are asynchronous in it, and set/delete are synchronous and
silent unless they fail, so the driver here uses the asynchronous forms
(``aset``, ``adelete``), whose completions print ``<path>: rc = N``, and sends
each command only after the previous one's output is complete. create always
writes the data "new" (cli.c). The same script and asserts run against
ZooKeeper 3.8 and keeperd; zxids and times, which legitimately differ, are
only compared among themselves.

Every wait is bounded; the process is killed if it does not quit.
"""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import unique_path

CLI = Path(os.environ.get("CLI_MT", "/usr/lib/zookeeper/bin/cli_mt"))
WAIT = 15.0

pytestmark = pytest.mark.timeout(120)


class CliMt:
    """One cli_mt process; stdout and stderr merged into one line stream."""

    def __init__(self, hosts, *extra):
        if not CLI.exists():
            pytest.fail(f"{CLI} missing: run scripts/setup (zookeeper-bin)",
                        pytrace=False)
        self.proc = subprocess.Popen(
            [str(CLI), "-h", hosts, *extra], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, bufsize=0)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read(4096)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            with self.cond:
                self.lines.extend(x.decode("utf-8", "replace") for x in done)
                self.cond.notify_all()
        with self.cond:
            if buf:
                self.lines.append(buf.decode("utf-8", "replace"))
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, start=0, what="output"):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while True:
                new = self.lines[start:]
                if pred(new):
                    return new
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError(
                        f"cli_mt: no {what} within {WAIT}s; transcript:\n"
                        + "\n".join(self.lines))
                self.cond.wait(left)

    def connected(self):
        """Wait for the session; return its id ("Got a new session id: 0x...")."""
        new = self.wait_for(
            lambda new: any(ln.startswith("Got a new session id: ") for ln in new),
            what="CONNECTED_STATE and a session id")
        line = next(ln for ln in new if ln.startswith("Got a new session id: "))
        self.session_id = int(line.split(": ")[1], 16)
        return self.session_id

    def cmd(self, line, done):
        """Send one command; return its output lines once done(lines) holds."""
        with self.cond:
            start = len(self.lines)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.wait_for(done, start, what=f"complete output for {line!r}")

    def quit(self):
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=WAIT)
        finally:
            self.close()

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


@pytest.fixture
def cli(server):
    made = []

    def make(hosts=None, *extra):
        c = CliMt(hosts or server.hosts(), *extra)
        made.append(c)
        c.connected()
        return c

    yield make
    for c in made:
        c.close()


# -- what a finished command's output looks like ------------------------------


def _rc_line(lines, path):
    for ln in lines:
        m = re.match(r"^\[?(\S+?)\]?: rc = (-?\d+)", ln)
        if m and m.group(1) == path:
            return int(m.group(2))
    return None


def create_done(path):
    # "[path]: rc = N" then, if N == 0, "\tname = <created>"
    def done(lines):
        rc = _rc_line(lines, path)
        return rc is not None and (rc != 0 or any(ln.startswith("\tname = ") for ln in lines))
    return done


def stat_done(path):
    # rc line, then a Stat dump ending with ephemeralOwner (or "null")
    def done(lines):
        rc = _rc_line(lines, path)
        if rc is None:
            return False
        i = next(i for i, ln in enumerate(lines) if re.match(rf"^\[?{re.escape(path)}\]?: rc", ln))
        return any(ln.startswith("\tephemeralOwner = ") or ln == "null"
                   for ln in lines[i:])
    return done


def ls_done(path):
    # "path: rc = N", children, then a second "time = N msec"
    def done(lines):
        if _rc_line(lines, path) is None:
            return False
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{path}: rc"))
        return any(ln.startswith("time = ") for ln in lines[i:])
    return done


def rc_done(path):
    return lambda lines: _rc_line(lines, path) is not None


def parse_stat(lines):
    text = "\n".join(lines)
    st = {}
    for key, pat in [("czxid", r"czxid=([0-9a-f]+)"), ("mzxid", r"mzxid=([0-9a-f]+)"),
                     ("version", r"\tversion=([0-9a-f]+)"),
                     ("aversion", r"aversion=([0-9a-f]+)"),
                     ("ephemeralOwner", r"ephemeralOwner = ([0-9a-f]+)")]:
        m = re.search(pat, text)
        assert m, f"no {key} in Stat dump:\n{text}"
        st[key] = int(m.group(1), 16)
    return st


def children(lines, path):
    i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{path}: rc"))
    out = []
    for ln in lines[i + 1:]:
        if not ln.startswith("\t"):
            break
        out.append(ln[1:])
    return sorted(out)


def name_of(lines):
    return next(ln[len("\tname = "):] for ln in lines if ln.startswith("\tname = "))


def get_value(lines):
    i = next(i for i, ln in enumerate(lines) if ln.startswith(" value_len = "))
    n = int(lines[i].split("=")[1])
    return n, lines[i + 1]


# -- tests -------------------------------------------------------------------


def test_create_ls_get_set_delete(cli, request):
    c = cli()
    root = unique_path(request, "/ccli")
    assert c.session_id != 0
    out = c.cmd(f"create {root}", create_done(root))
    assert _rc_line(out, root) == 0 and name_of(out) == root, out
    out = c.cmd(f"create {root}/a", create_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == 0 and name_of(out) == f"{root}/a", out
    out = c.cmd(f"create {root}/a", create_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == -110, out  # ZNODEEXISTS
    out = c.cmd(f"create {root}/no/parent", create_done(f"{root}/no/parent"))
    assert _rc_line(out, f"{root}/no/parent") == -101, out  # ZNONODE
    out = c.cmd(f"create +e {root}/eph", create_done(f"{root}/eph"))
    assert _rc_line(out, f"{root}/eph") == 0 and name_of(out) == f"{root}/eph", out
    out = c.cmd(f"create +s {root}/seq-", create_done(f"{root}/seq-"))
    # The sequence number is the parent's cversion: a and eph were created.
    assert _rc_line(out, f"{root}/seq-") == 0, out
    assert name_of(out) == f"{root}/seq-0000000002", out

    # create2 returns the new node's Stat.
    out = c.cmd(f"create2 {root}/b", stat_done(f"{root}/b"))
    assert _rc_line(out, f"{root}/b") == 0 and name_of(out) == f"{root}/b", out
    st_b = parse_stat(out)
    assert st_b["version"] == 0 and st_b["aversion"] == 0, out
    assert st_b["ephemeralOwner"] == 0 and st_b["czxid"] == st_b["mzxid"] > 0, out

    out = c.cmd(f"ls {root}", ls_done(root))
    assert _rc_line(out, root) == 0, out
    assert children(out, root) == ["a", "b", "eph", "seq-0000000002"], out
    out = c.cmd(f"ls2 {root}", stat_done(root))
    assert _rc_line(out, root) == 0, out
    assert children(out, root) == ["a", "b", "eph", "seq-0000000002"], out
    st_root = parse_stat(out)
    assert st_root["version"] == 0 and st_root["ephemeralOwner"] == 0, out

    out = c.cmd(f"get {root}/a", stat_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == 0, out
    assert get_value(out) == (3, "new"), out
    st_a = parse_stat(out)
    assert st_a["version"] == 0 and st_a["czxid"] == st_a["mzxid"], out

    # The ephemeral belongs to this session.
    out = c.cmd(f"get {root}/eph", stat_done(f"{root}/eph"))
    assert parse_stat(out)["ephemeralOwner"] == c.session_id, out

    out = c.cmd(f"aset {root}/a hello world", stat_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == 0, out
    st_set = parse_stat(out)
    assert st_set["version"] == 1 and st_set["czxid"] == st_a["czxid"], out
    assert st_set["mzxid"] > st_a["mzxid"], out
    out = c.cmd(f"get {root}/a", stat_done(f"{root}/a"))
    assert get_value(out) == (11, "hello world"), out
    assert parse_stat(out)["version"] == 1, out
    out = c.cmd(f"get {root}/missing", stat_done(f"{root}/missing"))
    assert _rc_line(out, f"{root}/missing") == -101 and "null" in out, out
    out = c.cmd(f"aset {root}/missing x", stat_done(f"{root}/missing"))
    assert _rc_line(out, f"{root}/missing") == -101, out

    out = c.cmd(f"adelete {root}", rc_done(root))
    assert _rc_line(out, root) == -111, out  # ZNOTEMPTY
    out = c.cmd(f"adelete {root}/a", rc_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == 0, out
    out = c.cmd(f"adelete {root}/a", rc_done(f"{root}/a"))
    assert _rc_line(out, f"{root}/a") == -101, out
    for child in ("b", "eph", "seq-0000000002"):
        out = c.cmd(f"adelete {root}/{child}", rc_done(f"{root}/{child}"))
        assert _rc_line(out, f"{root}/{child}") == 0, out
    out = c.cmd(f"ls {root}", ls_done(root))
    assert children(out, root) == [], out
    out = c.cmd(f"adelete {root}", rc_done(root))
    assert _rc_line(out, root) == 0, out
    out = c.cmd(f"ls {root}", ls_done(root))
    assert _rc_line(out, root) == -101, out
    assert c.quit() == 0


def test_watch_fires_in_another_client(cli, request):
    """cli's get/ls leave a watch (watch=1); a change from another client fires it."""
    root = unique_path(request, "/cclw")
    c1 = cli()
    c2 = cli()
    out = c1.cmd(f"create {root}", create_done(root))
    assert _rc_line(out, root) == 0, out
    c1.cmd(f"get {root}", stat_done(root))
    c1.cmd(f"ls {root}", ls_done(root))
    with c1.cond:
        start = len(c1.lines)
    out = c2.cmd(f"create {root}/kid", create_done(f"{root}/kid"))
    assert _rc_line(out, f"{root}/kid") == 0, out
    got = c1.wait_for(lambda ls: any("CHILD_EVENT" in ln for ln in ls), start,
                      what="CHILD_EVENT")
    assert f"Watcher CHILD_EVENT state = CONNECTED_STATE for path {root}" in got, got
    out = c2.cmd(f"aset {root} x", stat_done(root))
    assert _rc_line(out, root) == 0, out
    got = c1.wait_for(lambda ls: any("CHANGED_EVENT" in ln for ln in ls), start,
                      what="CHANGED_EVENT")
    assert f"Watcher CHANGED_EVENT state = CONNECTED_STATE for path {root}" in got, got
    for p in (f"{root}/kid", root):
        out = c2.cmd(f"adelete {p}", rc_done(p))
        assert _rc_line(out, p) == 0, out
    assert c1.quit() == 0 and c2.quit() == 0


def test_chroot(cli, server, request):
    root = unique_path(request, "/cclc")
    c = cli()
    out = c.cmd(f"create {root}", create_done(root))
    assert _rc_line(out, root) == 0, out
    cc = cli(server.hosts(root))
    out = cc.cmd("create /inside", create_done("/inside"))
    assert _rc_line(out, "/inside") == 0 and name_of(out) == "/inside", out
    out = cc.cmd("ls /", ls_done("/"))
    assert children(out, "/") == ["inside"], out
    out = c.cmd(f"ls {root}", ls_done(root))
    assert children(out, root) == ["inside"], out
    out = cc.cmd("adelete /inside", rc_done("/inside"))
    assert _rc_line(out, "/inside") == 0, out
    out = c.cmd(f"adelete {root}", rc_done(root))
    assert _rc_line(out, root) == 0, out
    assert cc.quit() == 0 and c.quit() == 0


def test_batch_mode(server, request):
    """cli_mt -c CMD runs one command and exits."""
    if not CLI.exists():
        pytest.fail(f"{CLI} missing: run scripts/setup (zookeeper-bin)", pytrace=False)
    r = subprocess.run([str(CLI), "-h", server.hosts(), "-c", "ls /zookeeper"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=WAIT)
    out = (r.stdout + r.stderr).splitlines()
    assert r.returncode == 0, out
    assert _rc_line(out, "/zookeeper") == 0, out
    assert "quota" in children(out, "/zookeeper"), out
