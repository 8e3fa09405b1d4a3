"""The running daemon as process tools and signals see it: pgrep -x,
pidof and ps -C find it by its command name whatever its title says;
ALRM logs a statistics line, USR1 and USR2 are logged and ignored."""

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import env_for, wait_until


def titled(d):
    """Wait until the daemon has set its title (it does so as it starts)."""
    return wait_until(lambda: b" answered, controls loaded" in Path(f"/proc/{d.proc.pid}/cmdline")
                      .read_bytes())


def pids(*command):
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    out = subprocess.run(list(command), capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


@pytest.mark.system
def test_process_tools_find_it_by_name_after_a_title_change(p1_tree, start):
    d = start(env_for(p1_tree))
    titled(d)
    d.ask(b"kim@example.com")
    wait_until(lambda: b" 1 query answered," in Path(f"/proc/{d.proc.pid}/cmdline").read_bytes())
    assert Path(f"/proc/{d.proc.pid}/comm").read_text() == "qmail-verify\n"
    assert d.proc.pid in pids("pgrep", "-x", "qmail-verify")
    assert d.proc.pid in pids("pidof", "qmail-verify")
    assert d.proc.pid in pids("ps", "-C", "qmail-verify", "-o", "pid=")
    args = subprocess.run(["ps", "-o", "args=", "-p", str(d.proc.pid)], capture_output=True,
                          text=True).stdout
    assert args.startswith(f"qmail-verify 127.0.0.1:{d.port}: 1 query answered, controls loaded ")


STATS = re.compile(r"qmail-verify: stats: queries=(\d+) permitted=(\d+) denied=(\d+) "
                   r"temporary=(\d+) unanswered=(\d+) shed=\d+ harvest_refusals=\d+ harvest_ips=\d+ "
                   r"harvest_evicted=\d+ uptime=(\d+) controls_age=(\d+)\n")


@pytest.mark.system
def test_alrm_logs_the_statistics(p1_tree, start):
    d = start(env_for(p1_tree))
    d.ask(b"kim@example.com")
    d.ask(b"ghost@example.com")
    d.ask(b"nobody@example.com")
    (p1_tree["qmail"] / "users" / "cdb").write_bytes(b"garbage")
    d.ask(b"kim@example.com", extended=True)
    assert d.ask(b"kim@example.com", timeout=0.5) is None
    d.signal(signal.SIGALRM)
    m = STATS.search(d.wait_for("qmail-verify: stats: "))
    assert m, d.log()
    assert [int(x) for x in m.groups()[:5]] == [5, 1, 2, 1, 1]
    assert d.proc.poll() is None and d.ask(b"x@example.org") == b"\x10"


@pytest.mark.system
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2])
def test_usr1_and_usr2_are_logged_and_ignored(p1_tree, start, signum):
    d = start(env_for(p1_tree))
    d.signal(signum)
    d.wait_for(f"qmail-verify: received {signum.name}: ignored.\n")
    assert d.proc.poll() is None and d.ask(b"kim@example.com") == b"\x90kim"


def test_each_queued_signal_is_dispatched_to_the_handler_of_its_name():
    import io

    from qmailverify.daemon.loop import Daemon, Log
    from qmailverify.daemon.signals import SignalQueue
    for signum in SignalQueue.QUEUED:
        name = signal.Signals(signum).name
        assert callable(getattr(Daemon, "handle_" + name[3:].lower(), None)), name
    d = object.__new__(Daemon)                 # no socket: only what the handlers use
    d.log = Log(io.BytesIO())
    assert Daemon.dispatch(d, signal.SIGTERM) == 0
    assert Daemon.dispatch(d, signal.SIGINT) == 0
    assert Daemon.dispatch(d, signal.SIGUSR1) is None
    assert d.log.stream.getvalue() == (b"qmail-verify: exiting on SIGTERM.\n"
                                       b"qmail-verify: exiting on SIGINT.\n"
                                       b"qmail-verify: received SIGUSR1: ignored.\n")
