"""Debian's daemontools in the tests: svscan started on a folder of the
test's own (the svscan fixture, registered in conftest.py), and the pid
svstat reports for a service."""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import need_system as need
from helpers import wait, world_tempdir


def svstat_pid(service: Path) -> int | None:
    out = subprocess.run(["svstat", str(service)], capture_output=True, text=True).stdout
    m = re.search(r": up \(pid (\d+)\)", out)
    return int(m.group(1)) if m else None


@pytest.fixture
def svscan():
    need("svscan", "supervise", "svc", "svstat", "multilog", "envdir", "softlimit", "setuidgid")
    root = world_tempdir("qv-svscan-")
    services = root / "service"
    services.mkdir()
    out = open(root / "svscan.out", "wb")
    proc = subprocess.Popen(["svscan", str(services)], stdout=out, stderr=out,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    yield root, services
    for link in services.iterdir():
        subprocess.run(["svc", "-dx", str(link), str(link / "log")], capture_output=True)
    proc.terminate()
    proc.wait(10)
    # everything started here runs under root: nothing may be left behind
    def leftovers():
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        return [line for line in ps.splitlines() if str(root) in line]
    try:
        wait(lambda: not leftovers(), "supervise and the daemon to exit", timeout=15)
    finally:
        for line in leftovers():
            os.kill(int(line.split()[0]), signal.SIGKILL)
        out.close()
        shutil.rmtree(root)
