"""qmail-verify-http as an admin runs it: a service directory made by
qmail-verify-http-conf, under Debian's real svscan, supervise and
multilog, in front of a real qmail-verify; never as root."""

import os
import subprocess
from pathlib import Path

import pytest
from helpers import executable, free_tcp_port, unprivileged, wait
from helpers import need_system as need
from supervised import svstat_pid

pytestmark = pytest.mark.system   # runs svscan and the installed programs


def conf(*args):
    return subprocess.run([executable("qmail-verify-http-conf"), *args], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"]})


def test_conf_refuses_root_and_bad_arguments(tmp_path):
    need()
    r = conf("root", "nobody", str(tmp_path / "x"))
    assert (r.returncode, r.stderr) == (100, "qmail-verify-http-conf: fatal: acct must not be "
                                             "root: qmail-verify-http runs as an account of its own\n")
    assert conf("nobody", "nobody", "relative").returncode == 100
    r = conf("nobody", "nobody", str(tmp_path / "x"), "1.2.3")
    assert r.returncode == 100 and "bad listen address" in r.stderr
    r = conf("nobody", "nobody", str(tmp_path / "x"), ":8998", "[::1")
    assert r.returncode == 100 and "bad server address" in r.stderr
    r = conf("no-such-account", "nobody", str(tmp_path / "x"))
    assert r.returncode == 111 and "unknown account no-such-account" in r.stderr
    assert not (tmp_path / "x").exists()


def test_the_service_under_svscan(svscan, deep_daemon):
    d, t = deep_daemon
    root, services = svscan
    port = free_tcp_port()
    service = root / "qmail-verify-http"
    r = conf("nobody", "nobody", str(service), f"127.0.0.1:{port}", f"127.0.0.1:{d.port}")
    assert r.returncode == 0, r.stderr
    assert f"made {service}" in r.stdout
    run = (service / "run").read_text()
    program = executable("qmail-verify-http")
    assert run.endswith(f"setuidgid nobody {Path(program).resolve().parent}/qmail-verify-http\n")
    assert (service / "env" / "LISTEN").read_text() == f"127.0.0.1:{port}\n"
    assert (service / "env" / "VERIFY_SERVER").read_text() == f"127.0.0.1:{d.port}\n"
    assert (service / "log" / "main").stat().st_uid == 65534
    if subprocess.run(["setuidgid", "nobody", program, "-V"], capture_output=True).returncode:
        # this installation lies where nobody may not go (see unprivileged):
        # the same uid, lent the right to reach it
        wrapper = unprivileged(program) + ["--inh-caps=+dac_read_search",
                                           "--ambient-caps=+dac_read_search"]
        (service / "run").write_text(run.replace("setuidgid nobody ", " ".join(dict.fromkeys(
            wrapper)) + " "))
    os.symlink(service, services / "qmail-verify-http")
    current = service / "log" / "main" / "current"

    def log():
        return current.read_text(errors="replace") if current.exists() else ""

    import http.client

    def deliverable(address):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            c.request("GET", f"/qd1/deliverable?{address}")
            response = c.getresponse()
            return response.status, response.read()
        except OSError:
            return None
        finally:
            c.close()

    assert wait(lambda: deliverable("bob%40example.com"), "the service to answer") == (200, b"242")
    assert deliverable("nobody%40example.com") == (200, b"0")
    wait(lambda: "127.0.0.1 deliverable nobody@example.com 200 0x00" in log(), "the log line")
    pid = svstat_pid(service)
    status = Path(f"/proc/{pid}/status").read_text()
    assert "Uid:\t65534\t65534\t65534\t65534" in status
