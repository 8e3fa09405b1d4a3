"""qmail-logmsg's rollout and harvest settings under Debian's real
tcpserver, with the real qmail-verify: a temporary answer for one recipient, the soft and
log-only rollouts, and the harvest limits across sessions."""

import re
import shutil
import signal
import smtplib
import time

import pytest
from helpers import BAD, GOOD, last_session_pid, lines_of

pytestmark = pytest.mark.system   # runs the installed programs, as root

R451RCPT = (451, b"qv temporary failure, try again later (#4.3.0)")


def test_a_temporary_answer_mid_session_is_451_for_that_rcpt_only(shim, demo_tree):
    s = shim(VERIFY=":PORT")
    cdb = demo_tree["qmail"] / "users" / "cdb"
    saved = cdb.with_name("cdb.saved")
    shutil.copy2(cdb, saved)
    try:
        with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:
            c.helo("client.example")
            c.mail("sender@example.org")
            assert c.rcpt(GOOD)[0] == 250
            cdb.write_bytes(b"garbage")                 # the daemon cannot know: status 2
            assert c.rcpt(BAD) == R451RCPT
            assert c.noop()[0] == 250                   # the session goes on
            shutil.copy2(saved, cdb)
            assert c.rcpt(BAD)[0] == 550
            assert c.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250
    finally:
        if saved.exists():
            shutil.copy2(saved, cdb)
            saved.unlink()
    log = s.wait_for("Session ended", count=2)
    mine = lines_of(log, last_session_pid(log))
    assert "Temporary failure at RCPT time (users/cdb unusable)" in mine
    assert mine[-1] == "Session ended: QUIT"
    assert s.received().lower().count(b"rcpt to:") == 1      # only the good one


def test_soft_rollout_gives_450_and_451(shim):
    s = shim(VERIFY=":PORT", VERIFY_ROLLOUT="soft")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt(BAD) == (450, b"sorry, no mailbox here by that name, try again later "
                                    b"(#4.1.1)")
        assert c.rcpt(GOOD)[0] == 250
    d = shim(VERIFY="DEFER,:PORT", VERIFY_ROLLOUT="soft")
    with smtplib.SMTP("127.0.0.1", d.port, timeout=30) as c:
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt(BAD)[0] == 250
        assert c.docmd("DATA") == (451, b"sorry, invalid mailbox name(s), try again later "
                                        b"(#4.1.1)")
    log = s.wait_for("Session ended", count=2)
    assert f"Unverified mailbox at RCPT time (soft: 450): <{BAD}>" in lines_of(
        log, last_session_pid(log))
    log = d.wait_for("Session ended", count=2)
    assert f"Unverified mailbox(es) at DATA time (soft: 451): <{BAD}>" in lines_of(
        log, last_session_pid(log))


def test_log_only_rollout_accepts_and_logs_what_it_would_refuse(shim):
    for verify, when in ((":PORT", "RCPT"), ("DEFER,:PORT", "DATA")):
        s = shim(VERIFY=verify, VERIFY_ROLLOUT="log")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:
            c.helo("x")
            c.mail("s@example.org")
            assert c.rcpt(BAD)[0] == 250
            assert c.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250
        log = s.wait_for("Session ended", count=2)
        assert f"Would refuse <{BAD}> at {when} time (log-only)" in \
            lines_of(log, last_session_pid(log))
        assert BAD.encode() in s.received()


def test_an_unknown_rollout_enforces_and_warns(shim):
    s = shim(VERIFY=":PORT", VERIFY_ROLLOUT="sfot")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt(BAD)[0] == 550
    log = s.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[0] == \
        "warning: unknown VERIFY_ROLLOUT 'sfot': enforcing"


def session_lines(log: str, ip: str) -> list[list[str]]:
    """Each session's lines from ip, in order."""
    sessions: dict[str, list[str]] = {}
    for pid, message in re.findall(rf"qmail-smtpd: pid (\d+) from {re.escape(ip)}: (.*)", log):
        sessions.setdefault(pid, []).append(message)
    return list(sessions.values())


def timed_rcpt(c: smtplib.SMTP, address: str) -> tuple[int, float]:
    t0 = time.monotonic()
    code = c.rcpt(address)[0]
    return code, time.monotonic() - t0


def test_a_harvester_is_delayed_then_421d_across_sessions_and_others_are_not(shim, verifyd):
    s = shim(VERIFY=":PORT", VERIFY_HARVEST_DELAY="2", VERIFY_HARVEST_DROP="5",
             VERIFY_HARVEST_STEP="0.4", VERIFY_HARVEST_MAXDELAY="1")
    harvester = {"source_address": ("127.0.0.2", 0), "timeout": 30}
    with smtplib.SMTP("127.0.0.1", s.port, **harvester) as c:
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt("a-" + BAD)[0] == c.rcpt("b-" + BAD)[0] == 550
        code, took = timed_rcpt(c, "c-" + BAD)              # the third refusal: over 2
        assert code == 550 and took >= 0.35
    with smtplib.SMTP("127.0.0.1", s.port, timeout=30) as c:   # another IP: untouched
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt(GOOD)[0] == 250 and c.rcpt(BAD)[0] == 550
    with smtplib.SMTP("127.0.0.1", s.port, **harvester) as c:
        c.helo("x")
        c.mail("s@example.org")
        code, took = timed_rcpt(c, GOOD)                     # a valid one waits alike
        assert code == 250 and took >= 0.35
        assert c.rcpt("d-" + BAD)[0] == 550
        assert c.rcpt("e-" + BAD) == (421, b"too many unknown recipients from your address, "
                                            b"try again later (#4.7.1)")
    with smtplib.SMTP("127.0.0.1", s.port, **harvester) as c:
        c.helo("x")
        c.mail("s@example.org")
        assert c.rcpt(GOOD)[0] == 421                        # the count outlives sessions
    log = s.wait_for("Session ended: harvest limit", count=2)
    first, second, third = session_lines(log, "127.0.0.2")
    assert "Delaying RCPT reply 0.4s (3 refused recipients from this IP)" in first
    assert second[-2:] == ["Harvest limit: 5 refused recipients from this IP",
                           "Session ended: harvest limit"]
    assert "Delaying RCPT reply 0.8s (4 refused recipients from this IP)" in second
    assert third[-2] == "Harvest limit: 5 refused recipients from this IP"
    normal = session_lines(log, "127.0.0.1")[-1]
    assert not any(line.startswith("Delaying") for line in normal)
    assert f"Unverified mailbox at RCPT time: <{BAD}>" in normal
    assert b"d-" + BAD.encode() not in s.received()
    verifyd.signal(signal.SIGALRM)
    stats = re.search(r"stats: .*", verifyd.wait_for("stats: ")).group(0)
    assert " harvest_refusals=6 harvest_ips=2 harvest_evicted=0 " in stats   # 5 + the other's 1
