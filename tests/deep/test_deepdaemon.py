"""Deep mode through the installed daemon (VERIFY_DEEP=1), on real files:
a vpopmail domain as vpopmail's tools write it (vpoptree.py, chowned to
the vpopmail uid as vadddomain leaves it), a Plesk-style bouncesaying
domain, and system users whose .qmail-default forwards; with the default
configuration the 1.32 answer stays."""

import os
import re
import signal

import pytest


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


def test_forwards_are_followed_and_loops_are_temporary(vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    assert d.ask(b"fwd-x@mx.example") == b"\xf0fwd-x"                    # -> bob@example.com
    assert d.ask(b"fwd-gone-x@mx.example") == b"\xf1fwd-gone-x"          # -> nobody: deleted
    assert d.ask(b"fwd-loop-x@mx.example", timeout=2.0) is None          # legacy: silence
    assert d.ask(b"fwd-loop-x@mx.example", extended=True) == b"\xf2forward loop"
    d.wait_for("fwd-loop-x@mx.example not answered: temporary failure: forward loop.")


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
