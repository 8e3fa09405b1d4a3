"""Deep mode through the installed daemon (VERIFY_DEEP=1), on real files:
a vpopmail domain as vpopmail's tools write it
(qmailverify/testing/vpoptree.py, chowned to the vpopmail uid as
vadddomain leaves it), a Plesk-style bouncesaying
domain, and system users whose .qmail-default forwards; with the default
configuration the 1.32 answer stays."""

import os
import re
import signal

import pytest

from qmailverify.testing.vpoptree import FWD_UID, chown_tree

pytestmark = pytest.mark.system   # runs the installed programs, as root


def test_default_configuration_keeps_the_1_32_answer(vtree, start):
    t, env = vtree
    d = start(env)
    assert d.ask(b"nobody@example.com") == b"\xc0example.com"       # [12]: the default file exists
    assert d.ask(b"anyone@plesk.example") == b"\xc0plesk.example"
    assert d.ask(b"fwd-loop-x@mx.example", extended=True) == b"\xc0fwd-loop-x"
    d.signal(signal.SIGALRM)
    log = d.wait_for("stats:")
    assert "trace:" not in log and "parked=" not in log


def test_vpopmail_files_answers_as_vdelivermail_would(vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    assert d.ask(b"bob@example.com") == b"\xf0example.com"
    assert d.ask(b"Alice@EXAMPLE.COM") == b"\xf0example.com"
    assert d.ask(b"bob@example.net") == b"\xf0example.com"              # alias domain
    assert d.ask(b"nobody@example.com") == b"\xf1example.com"           # '' delete
    assert d.ask(b"locked@example.com") == b"\xf1example.com"           # vmoduser -b
    assert d.ask(b"info@example.com") == b"\xa0example.com"             # .qmail-info first [10]
    assert d.ask(b"anyone@plesk.example") == b"\xf1plesk.example"       # bouncesaying alone
    d.wait_for("nobody@example.com denied.")


def test_a_new_vpopmail_user_is_seen_at_once(vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    assert d.ask(b"carol@example.com") == b"\xf1example.com"
    dom = t.domain_dir(b"example.com")
    with open(dom + b"/vpasswd", "ab") as f:
        f.write(b"carol:x:1:0:carol:" + dom + b"/carol:NOQUOTA\n")
    t.write_vpasswd_cdb(b"example.com")
    assert d.ask(b"carol@example.com") == b"\xf0example.com"


def test_forwards_are_followed_and_a_loop_bounces(vtree, start):
    t, env = vtree
    fwd = t.root + b"/fwd"
    t.write(fwd + b"/.qmail-both-default", b"&fwd-both-again@mx.example\n./Maildir/\n", 0o644)
    os.chown(fwd + b"/.qmail-both-default", FWD_UID, FWD_UID)
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    assert d.ask(b"fwd-x@mx.example") == b"\xf0fwd-x"                    # -> bob@example.com
    assert d.ask(b"fwd-gone-x@mx.example") == b"\xf1fwd-gone-x"          # -> nobody: deleted
    assert d.ask(b"fwd-loop-x@mx.example") == b"\xf1fwd-loop-x"          # qmail-local: "looping"
    assert d.ask(b"fwd-both-x@mx.example") == b"\xf0fwd-both-x"          # its mailbox delivers


def sticky_user(t, mode=0o1755):
    """The system user sticky (uid 7093), home mode mode, ~/.qmail-x a
    mailbox; and the virtual domain gone.example, whose users/assign
    home does not exist."""
    home = t.root + b"/sticky"
    os.makedirs(home)
    t.write(home + b"/.qmail-x", b"./Maildir/\n", 0o644)
    chown_tree(home, 7093, 7093)
    os.chmod(home, mode)
    with open(t.root + b"/passwd", "ab") as f:
        f.write(b"sticky:x:7093:7093::%s:/bin/sh\n" % home)
    with open(t.qmail + b"/control/virtualdomains", "ab") as f:
        f.write(b"gone.example:gone.example\n")
    t.add_alias_domain(b"gone.example", b"gone.example")
    return home


@pytest.mark.parametrize("mode,why", [(0o1755, b"home directory is sticky"),
                                      (0o757, b"home directory is writable")])
def test_qmail_local_defers_at_the_home_whatever_the_extension(vtree, start, mode, why):
    t, env = vtree
    sticky_user(t, mode)
    d = start({**env, "VERIFY_DEEP": "1"})
    for addr in (b"sticky", b"sticky-x", b"sticky-nope"):            # [9], [10], [14] in 1.32
        assert d.ask(addr + b"@mx.example", extended=True) == (b"\xf2qmail-local: " + why)[:33]
    assert d.ask_unanswered(b"sticky-x@mx.example") is None
    reply = d.ask(b"anyone@gone.example", extended=True)
    assert reply == b"\xf2qmail-local: unable to enter a home directory"[:33]    # no path
    d.wait_for(f"anyone@gone.example temporary failure: qmail-local: unable to switch to "
               f"{os.fsdecode(t.vpop)}/domains/gone.example: file does not exist.")


def test_a_forward_whose_only_target_defers_is_temporary(vtree, start):
    t, env = vtree
    sticky_user(t)
    fwd = t.root + b"/fwd"
    t.write(fwd + b"/.qmail-st-default", b"&sticky@mx.example\n", 0o644)
    t.write(fwd + b"/.qmail-nohome-default", b"&anyone@gone.example\n", 0o644)
    chown_tree(fwd, FWD_UID, FWD_UID)
    d = start({**env, "VERIFY_DEEP": "1"})
    assert d.ask(b"fwd-st-x@mx.example", extended=True)[:1] == b"\xf2"
    assert d.ask(b"fwd-nohome-x@mx.example", extended=True)[:1] == b"\xf2"


def test_a_writable_dot_qmail_file_defers(vtree, start):
    t, env = vtree
    fwd = t.root + b"/fwd"
    t.write(fwd + b"/.qmail-open", b"./Maildir/\n", 0o646)
    t.write(fwd + b"/.qmail", b"./Maildir/\n", 0o646)
    chown_tree(fwd, FWD_UID, FWD_UID)
    d = start({**env, "VERIFY_DEEP": "1"})
    for addr in (b"fwd-open", b"fwd"):                                 # [10], [9] in 1.32
        assert d.ask(addr + b"@mx.example", extended=True) == \
            b"\xf2qmail-local: .qmail file is writable"[:33]
    assert d.ask_unanswered(b"fwd-open@mx.example") is None


def test_a_default_that_is_not_a_regular_file_is_passed_over(vtree, start):
    t, env = vtree
    fwd = t.root + b"/fwd"
    os.mkfifo(fwd + b"/.qmail-gone-fifo-default")
    os.mkdir(fwd + b"/.qmail-gone-dir-default")
    chown_tree(fwd, FWD_UID, FWD_UID)
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    for addr in (b"fwd-gone-fifo-x", b"fwd-gone-dir-x"):              # on to .qmail-gone-default
        assert d.ask(addr + b"@mx.example", extended=True) == b"\xf1" + addr


def test_an_unreadable_store_is_temporary_never_denied(vtree, start):
    t, env = vtree
    dom = t.domain_dir(b"example.com")
    for name in (b"/vpasswd", b"/vpasswd.cdb"):
        os.chmod(dom + name, 0)                 # the vpopmail uid may not read them
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files", "VERIFY_TRACE": "1"})
    assert d.ask(b"bob@example.com", timeout=2.0) is None
    reply = d.ask(b"bob@example.com", extended=True)
    assert reply == b"\xf2vdelivermail: vpopmail user file"[:33]   # no path, no errno
    d.wait_for("bob@example.com temporary failure: vdelivermail: unable to read ")
    assert "/vpasswd.cdb: " in d.log()
    d.signal(signal.SIGALRM)
    log = d.wait_for("stats:")
    assert re.search(r"stats: queries=2 permitted=0 denied=0 temporary=1 unanswered=1 shed=0 "
                     r"harvest_refusals=0 harvest_ips=0 harvest_evicted=0 parked=0 late=0 ", log)


def test_an_unreadable_default_file_is_temporary(vtree, start):
    t, env = vtree
    os.chmod(t.root + b"/fwd/.qmail-default", 0o600)
    os.chown(t.root + b"/fwd/.qmail-default", 0, 0)     # fwd can stat it, not read it
    d = start({**env, "VERIFY_DEEP": "1"})
    reply = d.ask(b"fwd-x@mx.example", extended=True)
    assert reply == b"\xf2unable to read a .qmail file"          # no path, no errno
    d.wait_for("fwd-x@mx.example temporary failure: unable to open ")
    assert "/fwd/.qmail-default: access denied." in d.log()


def test_without_a_store_vdelivermail_is_a_program_and_qmail_local_deferrals_are_temporary(
        vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1"})
    assert d.ask(b"nobody@example.com") == b"\xf0example.com"
    os.chmod(t.domain_dir(b"example.com"), 0o1700)      # sticky home: "user is editing"
    assert d.ask(b"nobody@example.com", extended=True) == \
        (b"\xf2qmail-local: home directory is sticky")[:33]


def test_the_trace_is_one_splittable_line_per_decision(vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files", "VERIFY_TRACE": "1"})
    assert d.ask(b"nobody@example.com") == b"\xf1example.com"
    assert d.ask(b"someone@elsewhere.example") == b"\x10"
    log = d.wait_for("someone@elsewhere.example permitted")
    traces = [line.split(" ", 2)[2] for line in log.splitlines() if line.startswith("qmail-verify: trace: ")]
    assert len(traces) == 2
    fields = [dict(kv.split("=", 1) for kv in line.split(" ")) for line in traces]
    assert fields[0] == {"pos": "15", "code": "denied", "user": "example.com", "ip": "-",
                         "addr": "nobody@example.com",
                         "reason": "vdelivermail:_no_such_user,_mail_deleted"}
    assert fields[1]["pos"] == "1" and fields[1]["user"] == "-"
    assert "qmail-verify: nobody@example.com denied.\n" in log     # the default line stays


@pytest.mark.parametrize("env, why", [
    ({"VERIFY_VPOPMAIL": "files"}, "VERIFY_VPOPMAIL needs VERIFY_DEEP=1"),
    ({"VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "ldap"}, "VERIFY_VPOPMAIL must be files or mysql"),
    ({"VERIFY_DEEP": "yes"}, "VERIFY_DEEP must be 0 or 1"),
    ({"VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "mysql", "VERIFY_VPOPMAIL_MYSQL_FILE": "/nonexistent/x"},
     "unable to read /nonexistent/x"),
])
def test_unusable_settings_are_refused_at_start(vtree, env, why):
    from helpers import run_once
    t, base = vtree
    out = run_once({**base, **env})
    assert out.returncode == 111
    assert why in out.stderr and len(out.stderr.splitlines()) == 1
