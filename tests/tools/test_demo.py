"""The README's first command: the demo answers as a newcomer expects,
and leaves nothing behind, however it ends."""

import os
import shutil
import signal
import subprocess

import pytest
from helpers import executable, wait_until, world_tempdir

pytestmark = pytest.mark.system   # runs the installed programs, as root


@pytest.fixture
def tmp():
    """A TMPDIR for the demo that its users (uid 7001 under root) can enter."""
    folder = world_tempdir("qv-demo-tmp-")
    yield folder
    shutil.rmtree(folder)


def run_demo(tmp, program=None, **kw):
    env = dict(os.environ, TMPDIR=str(tmp))
    return subprocess.run([program or executable("qmail-verify-demo")], capture_output=True,
                          text=True, timeout=60, env=env, **kw)


def test_demo_shows_the_daemon_answering_and_removes_its_tree(tmp):
    r = run_demo(tmp)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert "deliverable (alice) [rule 9]" in lines["alice@demo.example"]
    assert "not deliverable (alias) [rule 14]" in lines["nobody-here@demo.example"]
    assert "deliverable (carol) [rule 12]" in lines["help-billing@demo.example"]
    assert "qmail-verify: nobody-here@demo.example denied." in r.stdout
    assert "exiting on SIGTERM." in r.stdout
    assert f"for the demo tree in {tmp}/qmail-verify-demo-" in r.stdout
    assert list(tmp.iterdir()) == []


def demo_beside(tmp_path, daemon_script: str):
    """A copy of the installed qmail-verify-demo in a folder of its own,
    beside a stand-in qmail-verify: the demo runs the daemon of its own
    installation."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    demo = bindir / "qmail-verify-demo"
    shutil.copy(executable("qmail-verify-demo"), demo)
    (bindir / "qmail-verify").write_text("#!/bin/sh\n" + daemon_script)
    (bindir / "qmail-verify").chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return str(demo), tmp


def test_demo_removes_its_tree_when_the_daemon_fails(tmp_path):
    demo, tmp = demo_beside(tmp_path, "echo 'qmail-verify: fatal: no luck' >&2\nexit 111\n")
    r = run_demo(tmp, demo)
    assert r.returncode == 111
    assert r.stderr == ("qmail-verify: fatal: no luck\n"
                        "qmail-verify-demo: fatal: the daemon did not start\n")
    assert list(tmp.iterdir()) == []


def test_ctrl_c_stops_the_daemon_and_removes_the_tree(tmp_path):
    # the stand-in never says it listens: the demo waits, and is interrupted
    pidfile = tmp_path / "daemon.pid"
    demo, tmp = demo_beside(tmp_path, f"echo $$ > {pidfile}\nexec sleep 60\n")
    proc = subprocess.Popen([demo], env=dict(os.environ, TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        daemon = wait_until(lambda: int(pidfile.read_text()))
        assert [p.name[:18] for p in tmp.iterdir()] == ["qmail-verify-demo-"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (111, "qmail-verify-demo: fatal: stopped by SIGINT\n")
    assert list(tmp.iterdir()) == []
    wait_until(lambda: not os.path.exists(f"/proc/{daemon}") or
               open(f"/proc/{daemon}/stat").read().split()[2] == "Z")


def test_demo_says_what_the_parentheses_hold(tmp):
    r = run_demo(tmp)
    assert r.returncode == 0, r.stderr
    assert ("(in parentheses: the name qmail looked up, the controlling user;"
            " not necessarily an account)") in r.stdout
    assert "deliverable (alice-work) [rule 10]" in r.stdout
