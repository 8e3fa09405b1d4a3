"""Faults: the installed qmail-verify and qmail-logmsg as real processes,
with real files broken under them while they run.  Each test is one
entry of doc/DESIGN's "When things go wrong": a defined
outcome, and never a false "not deliverable" (status 1) for trouble of
our own: a legacy client gets silence (qmail-smtpd then says 451), an
extended one status 2, the shim 451.

Not here: descriptor exhaustion at start (test_startup.py), fastforward's
cdb missing while running (test_daemon.py's fastforward test), no answer
from the daemon at all (tests/shim/test_logmsg.py), and the vpopmail
database stopped mid-run (tests/deep/test_deepsql.py)."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import cdblib
import pytest
from helpers import children, env_for, has_root_ids, wait_until

from qmailverify.qmail.cdbmake import write_cdb

pytestmark = pytest.mark.system   # runs the installed programs, as root

TEMP = 0x02                 # the status nibble of "temporarily unknown"


def temporary(d, address: bytes, kind: str, why: str) -> None:
    """The daemon's own trouble: silence to a legacy client, status 2 with
    the kind of trouble to an extended one (no path, no errno text), and a
    log line saying why."""
    assert d.ask(address, timeout=1.0) is None
    reply = d.ask(address, extended=True)
    assert reply is not None and reply[0] & 0x0F == TEMP, reply
    assert reply[1:] == kind.encode(), reply
    d.wait_for(f"{address.decode()} not answered: temporary failure: {why}")


# -- users/cdb that cannot be read to the end of a record -----------------------

def users_cdb(tree, filler: int = 0) -> Path:
    """users/cdb rewritten with filler extra records (past 50,000 the
    daemon searches it in place instead of reading it into memory)."""
    cdb = tree["qmail"] / "users" / "cdb"
    records = list(cdblib.Reader(data=cdb.read_bytes()).iteritems())
    write_cdb(str(cdb), records + [(b"!filler%d-" % i, b"x") for i in range(filler)])
    return cdb


def damaged(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[:2048 + (len(data) - 2048) * 2 // 3]
    out = bytearray(data)                  # the first record's data runs past the end
    out[2052:2056] = struct.pack("<L", len(data))
    return bytes(out)


@pytest.mark.parametrize("filler", [0, 60_000], ids=["in-memory", "in-place"])
@pytest.mark.parametrize("how", ["truncated", "record-past-end"])
def test_a_users_cdb_that_cannot_be_read_to_the_end_is_temporary(p1_tree, start, how, filler):
    cdb = users_cdb(p1_tree, filler)
    d = start(env_for(p1_tree))
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"      # in users/cdb only
    good = cdb.read_bytes()
    tmp = cdb.with_name("cdb.tmp")
    tmp.write_bytes(damaged(good, how))
    tmp.rename(cdb)                                         # as qmail-newu replaces it
    temporary(d, b"quinn@example.com", "users/cdb unusable", "users/cdb is not a cdb file")
    temporary(d, b"kim@example.com", "users/cdb unusable",       # every local address asks
              "users/cdb is not a cdb file")
    assert d.ask(b"x@example.org") == b"\x10"              # not local: still answered
    tmp.write_bytes(good)
    tmp.rename(cdb)
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"


# -- control files deleted or unreadable while running, then SIGHUP ---------------

def test_controls_deleted_then_sighup_keep_the_old_ones(p1_tree, start):
    control = p1_tree["qmail"] / "control"
    d = start(env_for(p1_tree))
    before = {a: d.ask(a) for a in (b"kim@example.com", b"hello@virt.example.org",
                                    b"kim%example.com@example.net", b"x@example.org")}
    (control / "locals").unlink()                  # locals and me both gone: no local
    (control / "me").unlink()                      # domain could be known
    d.signal(signal.SIGHUP)
    d.wait_for("qmail-verify: warning: Unable to read controls: neither ")
    assert "keeping the old ones." in d.log()
    assert {a: d.ask(a) for a in before} == before
    (control / "locals").write_text("example.com\nmail.example.com\n")
    d.signal(signal.SIGHUP)
    d.wait_for("controls reloaded.")
    assert {a: d.ask(a) for a in before} == before


def test_an_unreadable_control_file_then_sighup_keeps_the_old_ones(p1_tree, start):
    vdoms = p1_tree["qmail"] / "control" / "virtualdomains"
    d = start(env_for(p1_tree))
    assert d.ask(b"hello@virt.example.org") == b"\xa0vo-hello"
    saved = vdoms.read_bytes()
    vdoms.unlink()
    vdoms.symlink_to(vdoms.name)                   # unreadable even for root: a loop
    d.signal(signal.SIGHUP)
    d.wait_for(f"qmail-verify: warning: Unable to read controls: unable to read {vdoms}: "
               f"too many levels of symbolic links: keeping the old ones.")
    assert d.ask(b"hello@virt.example.org") == b"\xa0vo-hello"
    vdoms.unlink()                                 # an optional file gone is an empty one,
    d.signal(signal.SIGHUP)                        # as for qmail-send: the domain is not
    d.wait_for("controls reloaded.")               # local any more, so it passes
    assert d.ask(b"hello@virt.example.org") == b"\x10"
    vdoms.write_bytes(saved)
    d.signal(signal.SIGHUP)
    d.wait_for("controls reloaded.", timeout=10)
    wait_until(lambda: d.ask(b"hello@virt.example.org") == b"\xa0vo-hello", timeout=20)


# -- homes ------------------------------------------------------------------------

def test_a_home_turned_000_is_deliverable_and_logged(p1_tree, start):
    home = p1_tree["root"] / "home" / "kim"
    d = start(env_for(p1_tree))
    home.chmod(0)
    try:
        reply = d.ask(b"kim-nope@example.com")      # kim cannot search it: qmail-local defers
        assert reply == b"\xb0kim-nope"
        d.wait_for(f"Unable to stat {home}/.qmail-nope: access denied.")
        assert d.ask(b"kim@example.com") == b"\x90kim"
    finally:
        home.chmod(0o755)
    assert d.ask(b"kim-nope@example.com") == b"\xe1kim-nope"


def test_a_home_turned_into_a_file_is_deliverable_and_logged(p1_tree, start):
    home = p1_tree["root"] / "home" / "kim"
    d = start(env_for(p1_tree))
    saved = home.with_name("kim.saved")
    home.rename(saved)
    home.write_text("")
    os.chown(home, 2010, 2010)                     # still kim's: qmail-getpw takes it
    try:
        assert d.ask(b"kim-nope@example.com") == b"\xb0kim-nope"
        d.wait_for(f"Unable to stat {home}/.qmail-nope: not a directory.")
        assert d.ask(b"kim@example.com")[0] & 0x0F == 0
    finally:
        home.unlink()
        saved.rename(home)
    assert d.ask(b"kim-nope@example.com") == b"\xe1kim-nope"


# -- the passwd file rewritten between queries ------------------------------------

def test_the_passwd_file_rewritten_between_queries_is_followed_at_once(p1_tree, start):
    passwd = p1_tree["passwd"]
    d = start(env_for(p1_tree))
    text = passwd.read_bytes()
    for _ in range(20):
        with open(passwd, "r+b") as f:             # in place, the same size
            f.write(text.replace(b"\nkim:x:", b"\nkym:x:"))
        assert d.ask(b"kim@example.com") == b"\xe1alias"
        assert d.ask(b"kym@example.com") == b"\x90kym"
        tmp = passwd.with_name("passwd.new")       # replaced by rename, as vipw does
        tmp.write_bytes(text)
        tmp.rename(passwd)
        assert d.ask(b"kim@example.com") == b"\x90kim"
        assert d.ask(b"kym@example.com") == b"\xe1alias"
    passwd.unlink()                                # gone: trouble, not "no such user"
    temporary(d, b"kim@example.com", "user database unavailable", "unable to read")
    passwd.write_bytes(text)
    assert d.ask(b"kim@example.com") == b"\x90kim"


# -- descriptors exhausted while running ------------------------------------------

def nofile(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return tuple(line.split()[3:5])
    raise AssertionError("no open files limit")


def prlimit(d, limit: str) -> None:
    """prlimit on the daemon, once it shows root's ids: without
    CAP_SYS_RESOURCE the kernel lets root change only a process whose
    ids all match its own."""
    wait_until(lambda: has_root_ids(d.proc.pid))
    subprocess.run(["prlimit", f"--pid={d.proc.pid}", limit], check=True)


def test_descriptors_exhausted_while_running_is_temporary(p1_tree, start):
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    d = start(env_for(p1_tree))
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"     # users/cdb read
    assert d.ask(b"kim@example.com") == b"\x90kim"         # the passwd file read
    open_now = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
    soft, hard = nofile(d.proc.pid)                # the soft limit only: raising a hard one
    prlimit(d, f"--nofile={open_now}:{hard}")       # back may need CAP_SYS_RESOURCE
    try:
        # what is already open or cached still answers (stats need no descriptor)
        assert d.ask(b"quinn@example.com") == b"\xa0quinn"
        assert d.ask(b"kim-nope@example.com") == b"\xe1kim-nope"
        # users/cdb replaced: it cannot be opened again
        users_cdb(p1_tree)
        temporary(d, b"quinn@example.com", "users/cdb unusable",
                  "unable to read users/cdb: too many open files")
        # the passwd file changed: the same
        with open(p1_tree["passwd"], "a") as f:
            f.write("\n")
        d.signal(signal.SIGHUP)
        d.wait_for("warning: Unable to read controls: unable to read ")
        assert "too many open files: keeping the old ones." in d.log()
        assert d.ask(b"x@example.org") == b"\x10"
    finally:
        prlimit(d, f"--nofile={soft}:{hard}")
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"
    assert d.ask(b"pat@example.com") == b"\x90pat"
    d.signal(signal.SIGHUP)
    d.wait_for("controls reloaded.")


# -- a SIGHUP storm under load ----------------------------------------------------

def test_a_sighup_storm_under_load_loses_no_query(p1_tree, start):
    from helpers import load_p1
    cases = [(bytes.fromhex(c["q"]), bytes.fromhex(c["r"])) for c in load_p1()["cases"]]
    cases = [(q, r) for q, r in cases if q][:120]
    d = start(env_for(p1_tree))
    sent = [0]

    def storm():                                   # hundreds of SIGHUPs, a few ms apart
        for _ in range(300):
            d.signal(signal.SIGHUP)
            sent[0] += 1
            time.sleep(0.003)
    t = threading.Thread(target=storm)
    t.start()
    wrong, asked = [], 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", d.port))
            s.settimeout(10)
            while t.is_alive() or asked < len(cases):
                for q, r in cases:
                    s.send(q)
                    got = s.recv(100)              # a lost reply would time out here
                    asked += 1
                    if got != r:
                        wrong.append((q, r, got))
    finally:
        t.join()
    assert wrong == [] and asked >= len(cases)
    assert sent[0] == 300 and d.proc.poll() is None
    d.wait_for("controls reloaded.")
    assert "warning" not in d.log() and "fatal" not in d.log()


# -- behind the shim ------------------------------------------------------------------

def read_until(sock, text: bytes, got: bytes = b"", timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    while text not in got:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {text!r} in {got!r}")
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return got
        got += chunk
    return got


def test_the_daemon_killed_mid_session_is_451_and_the_end(shim, verifyd):
    from helpers import last_session_pid, lines_of
    s = shim(VERIFY=":PORT")
    with socket.create_connection(("127.0.0.1", s.port), 20) as c:
        got = read_until(c, b"220 ")
        c.sendall(b"HELO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@demo.example>\r\n")
        got = read_until(c, b"250 ok\r\n250 ok\r\n", got)          # the RCPT was checked
        verifyd.proc.kill()
        verifyd.proc.wait()
        c.sendall(b"RCPT TO:<carol-sales@demo.example>\r\nNOOP\r\n")
        got = read_until(c, b"451 ", got)
        assert got.endswith(b"451 qv temporary failure (#4.3.0)\r\n")
        assert read_until(c, b"never", timeout=20) == b""          # the shim closes
    log = s.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[-2:] == [
        "temporary failure (connection refused)", "Session ended: verification failure"]
    assert b"carol-sales" not in s.received() and b"NOOP" not in s.received()


def smtpd_of(shim_pid: str) -> int:
    """The stand-in qmail-smtpd: the child of the qmail-logmsg with this pid."""
    found = children(int(shim_pid))
    if not found:
        raise AssertionError(f"no child of {shim_pid}")
    return found[0]


def test_qmail_smtpd_dying_mid_data_gets_no_250_and_ends_the_session(shim):
    from helpers import last_session_pid, lines_of
    s = shim(VERIFY=":PORT")
    with socket.create_connection(("127.0.0.1", s.port), 20) as c:
        got = read_until(c, b"220 ")
        c.sendall(b"HELO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@demo.example>\r\n"
                  b"DATA\r\n")
        got = read_until(c, b"354 ", got)
        c.sendall(b"Subject: half\r\n\r\nthe first half\r\n")
        wait_until(lambda: b"the first half" in s.received(), timeout=20)
        pid = last_session_pid(s.log())
        os.kill(smtpd_of(pid), signal.SIGKILL)
        try:
            c.sendall(b"the second half\r\n.\r\nQUIT\r\n")
        except OSError:                                           # closed already
            pass
        rest = read_until(c, b"never", timeout=20)                # the shim closes
    assert b"250 ok 1764000000" not in got + rest and rest == b""
    log = s.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[-1] == "Session ended: ended by qmail-smtpd"
    assert s.queued() == b""
