"""qmail-logmsg's issue 11 behaviour under Debian's real tcpserver, with the
real qmail-verify: a temporary answer for one recipient, the soft and
log-only rollouts, and the harvest limits across sessions."""

import shutil
import smtplib

from test_logmsg import BAD, GOOD, last_session_pid, lines_of

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
    assert "Temporary failure at RCPT time (users/cdb is not a cdb file)" in mine
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
    assert "Unverified mailbox at RCPT time (soft: 450)" in lines_of(log, last_session_pid(log))
    log = d.wait_for("Session ended", count=2)
    assert "Unverified mailbox(es) at DATA time (soft: 451)" in lines_of(log, last_session_pid(log))


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
