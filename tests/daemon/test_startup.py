"""qmail-verify refuses to start, in one line and exit 111, whenever it
could not do its work, detached or not; and its messages clean only the
untrusted part (a path), never the reason."""

import os
import resource
import signal
import subprocess

import pytest
from helpers import env_for, executable, free_port, run_once

from qmailverify.protocol.client import ask

pytestmark = pytest.mark.system   # runs the installed programs, as root


def one_line(r, text=None):
    assert r.returncode == 111, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    if text is not None:
        assert r.stderr == text + "\n"


def nothing_listens(port):
    assert ask(b"kim@example.com", ("127.0.0.1", port), timeout=0.5).reason == "connection refused"


# 1: -d fails before detaching

def detached(env, *args, limit=None):
    port = free_port()
    full = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{port}", **env}
    pre = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))) if limit else None
    r = subprocess.run([executable("qmail-verify"), "-d", *args], env=full, capture_output=True,
                       text=True, timeout=30, preexec_fn=pre)
    return r, port


def test_detached_with_a_pid_file_in_no_folder_fails_before_detaching(p1_tree, tmp_path):
    log = tmp_path / "log"
    r, port = detached(env_for(p1_tree), "-p", "/nonexistent/qv.pid", "-o", str(log))
    one_line(r, "qmail-verify: fatal: unable to write /nonexistent/qv.pid: file does not exist")
    nothing_listens(port)
    assert log.read_bytes() == b""


def test_detached_with_a_folder_as_pid_file_fails_before_detaching(p1_tree, tmp_path):
    r, port = detached(env_for(p1_tree), "-p", str(tmp_path), "-o", str(tmp_path / "log"))
    one_line(r, f"qmail-verify: fatal: unable to write {tmp_path}: not a regular file")
    nothing_listens(port)


def test_detached_with_no_log_folder_or_no_controls_fails_before_detaching(p1_tree, tmp_path):
    r, port = detached(env_for(p1_tree), "-o", "/nonexistent/log")
    one_line(r, "qmail-verify: fatal: unable to open /nonexistent/log: file does not exist")
    (p1_tree["qmail"] / "control" / "locals").unlink()
    (p1_tree["qmail"] / "control" / "me").unlink()
    r, port = detached(env_for(p1_tree), "-o", str(tmp_path / "log"))
    one_line(r)
    assert r.stderr.startswith("qmail-verify: Unable to read controls: neither ")


def test_trouble_after_detaching_reaches_the_starting_process(p1_tree, tmp_path):
    # with 9 descriptors the checks before detaching pass, and the detached
    # daemon (which also holds the log and the pipe back) runs short
    log, pidfile = tmp_path / "log", tmp_path / "qv.pid"
    r, port = detached(env_for(p1_tree), "-p", str(pidfile), "-o", str(log), limit=9)
    one_line(r)
    assert r.stderr.startswith("qmail-verify: fatal: ") and "too many open files" in r.stderr
    assert r.stderr.encode() in log.read_bytes()
    nothing_listens(port)


def test_detached_start_returns_once_the_daemon_listens(p1_tree, tmp_path):
    log, pidfile = tmp_path / "log", tmp_path / "qv.pid"
    r, port = detached(env_for(p1_tree), "-p", str(pidfile), "-o", str(log))
    pid = int(pidfile.read_text())
    try:
        assert (r.returncode, r.stderr) == (0, "")
        # no waiting: it said it listens before the starting process returned
        assert b"Listening on address" in log.read_bytes()
        assert ask(b"kim@example.com", ("127.0.0.1", port)).user == b"kim"
    finally:
        os.kill(pid, signal.SIGTERM)


# 2: what can be checked at start is checked

@pytest.mark.parametrize("case", ["missing", "folder"])
def test_an_unreadable_passwd_file_is_refused(p1_tree, tmp_path, case):
    path = tmp_path / "pass:wd"                    # the path is cleaned, the reason is not
    if case == "folder":
        path.mkdir()
    r = run_once(env_for(p1_tree, VERIFY_PASSWD=str(path)))
    reason = "file does not exist" if case == "missing" else "is a directory"
    one_line(r, f"qmail-verify: fatal: VERIFY_PASSWD: unable to read {tmp_path}/pass_wd: {reason}")


def test_a_bad_fastforward_cdb_is_refused(p1_tree, tmp_path):
    ff = tmp_path / "aliases.cdb"
    r = run_once(env_for(p1_tree, VERIFY_FASTFORWARDCDB=str(ff)))
    one_line(r, f"qmail-verify: fatal: VERIFY_FASTFORWARDCDB: unable to read {ff}: "
                "file does not exist")
    ff.write_bytes(b"not a cdb")
    r = run_once(env_for(p1_tree, VERIFY_FASTFORWARDCDB=str(ff)))
    one_line(r, f"qmail-verify: fatal: VERIFY_FASTFORWARDCDB: {ff} is not a cdb file")


def test_a_bad_users_cdb_is_refused_and_a_missing_one_is_fine(p1_tree, start):
    cdb = p1_tree["qmail"] / "users" / "cdb"
    good = cdb.read_bytes()
    cdb.write_bytes(b"garbage")
    r = run_once(env_for(p1_tree))
    one_line(r, f"qmail-verify: fatal: users/cdb: {cdb} is not a cdb file")
    cdb.unlink()
    assert start(env_for(p1_tree)).ask(b"kim@example.com") == b"\x90kim"
    cdb.write_bytes(good)


@pytest.mark.parametrize("case", ["missing", "file"])
def test_a_qmailhome_that_is_no_folder_is_refused(p1_tree, tmp_path, case):
    home = tmp_path / "qmail"
    if case == "file":
        home.write_text("")
    r = run_once(env_for(p1_tree, QMAILHOME=str(home)))
    reason = f"unable to use {home}: file does not exist" if case == "missing" \
        else f"{home} is not a directory"
    one_line(r, f"qmail-verify: fatal: QMAILHOME: {reason}")


# 3: reasons are not cleaned, paths are

def test_later_trouble_is_logged_with_its_reason_intact(p1_tree, start, tmp_path):
    passwd = tmp_path / "pass:wd"
    passwd.write_bytes(p1_tree["passwd"].read_bytes())
    d = start(env_for(p1_tree, VERIFY_PASSWD=str(passwd)))
    passwd.unlink()
    assert d.ask(b"kim@example.com", timeout=1.0) is None
    d.wait_for(f"kim@example.com not answered: temporary failure: unable to read "
               f"{tmp_path}/pass_wd: file does not exist.")
    locals_ = p1_tree["qmail"] / "control" / "locals"
    locals_.unlink()
    locals_.mkdir()
    d.signal(signal.SIGHUP)
    d.wait_for(f"qmail-verify: warning: Unable to read controls: unable to read "
               f"{locals_}: is a directory: keeping the old ones.\n")


# 4: the controls

def test_an_empty_control_me_without_locals_is_refused(p1_tree):
    control = p1_tree["qmail"] / "control"
    (control / "locals").unlink()
    (control / "me").write_text("\nmail.example.com\n")
    r = run_once(env_for(p1_tree))
    one_line(r, f"qmail-verify: Unable to read controls: the first line of {control}/me is "
                f"empty and there is no {control}/locals: exiting.")


# 5: short of descriptors, it refuses before it says it listens

def limited(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


@pytest.mark.parametrize("limit", [5, 6, 7])
def test_too_few_descriptors_is_one_line_before_listening(p1_tree, limit):
    full = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{free_port()}", **env_for(p1_tree)}
    r = subprocess.run([executable("qmail-verify")], env=full, capture_output=True, text=True,
                       timeout=20, preexec_fn=limited(limit))
    one_line(r)
    assert r.stderr.startswith("qmail-verify: fatal: ") and "too many open files" in r.stderr


def test_eight_descriptors_are_enough(p1_tree, start):
    d = start(env_for(p1_tree), wrapper=["softlimit", "-o", "8"])
    assert d.ask(b"kim@example.com") == b"\x90kim"
    assert d.ask(b"kim-nosuch@example.com") == b"\xe1kim-nosuch"
