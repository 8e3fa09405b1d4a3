"""qmail-logmsg in front of a stand-in qmail-smtpd, under Debian's real
tcpserver, driven with smtplib and with raw pipelined bytes."""

import re
import smtplib
import socket
import time

import pytest
from helpers import BAD, GOOD, last_session_pid, lines_of, raw_session

from qmailverify.shim.session import HIGH_WATER

pytestmark = pytest.mark.system   # runs the installed programs, as root


def data_session(port: int, head: bytes, rest: bytes, timeout=30) -> bytes:
    """Send head (ending in DATA), wait for 354, send rest; read to the 221."""
    with socket.create_connection(("127.0.0.1", port), timeout) as c:
        c.sendall(head)
        got = b""
        while b"354 " not in got:
            got += c.recv(65536)
        c.sendall(rest)
        while b"221 " not in got:
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def rcpt_code(port: int, address: str) -> int:
    """HELO, MAIL and one RCPT with smtplib: the RCPT's reply code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.helo("x")
        c.mail("s@example.org")
        return c.rcpt(address)[0]


def test_immediate_mode_refuses_a_bad_rcpt_itself(shim):
    s = shim(VERIFY=":PORT")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("client.example")
        c.mail("sender@example.org")
        assert c.rcpt(GOOD)[0] == 250
        code, msg = c.rcpt(BAD)
        assert (code, msg) == (550, b"sorry, no mailbox here by that name. (#5.1.1)")
        c.data(b"Subject: hi\r\n\r\nhello\r\n")
    log = s.wait_for("Session ended", count=2)
    received = s.received()
    assert BAD.encode() not in received and GOOD.encode() in received
    assert lines_of(log, last_session_pid(log)) == [
        "New session", "Received EHLO client.example", "Sender <sender@example.org>",
        f"Recipient <{GOOD}>", f"Recipient <{BAD}>", f"Unverified mailbox at RCPT time: <{BAD}>",
        re.search(r"Message accepted: qp \d+, 1 recipient", log).group(0),
        "Remote end QUIT: quitting", "Session ended: QUIT"]


def test_deferred_mode_refuses_data_and_a_new_transaction_starts_clean(shim):
    s = shim(VERIFY="DEFER,:PORT")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.helo("client.example")
        c.mail("sender@example.org")
        assert c.rcpt(BAD)[0] == 250
        assert c.rcpt(GOOD)[0] == 250
        assert c.docmd("DATA") == (554, b"sorry, invalid mailbox name(s). (#5.1.1)")
        c.mail("sender@example.org")               # a new MAIL clears the failure
        assert c.rcpt(GOOD)[0] == 250
        c.data(b"Subject: hi\r\n\r\nhello\r\n")
        c.mail("sender@example.org")
        c.rcpt(BAD)
        c.rset()                                   # and so does RSET
        c.mail("sender@example.org")
        c.rcpt(GOOD)
        assert c.data(b"hello\r\n")[0] == 250
        c.mail("sender@example.org")
        c.rcpt(BAD)
        c.helo("again.example")                    # and so does HELO: this DATA
        assert c.docmd("DATA")[0] == 503           # goes to qmail-smtpd (MAIL first)
    log = s.wait_for("Session ended", count=2)
    received = s.received().lower()
    assert received.count(b"rcpt to:<" + BAD.encode() + b">") == 3
    assert received.count(b"data\r\n") == 3         # the refused DATA never arrived
    assert f"Unverified mailbox(es) at DATA time: <{BAD}>" in lines_of(log, last_session_pid(log))


def test_pipelined_session_keeps_order_and_passes_bytes_untouched(shim):
    s = shim(VERIFY=":PORT")
    body = (b"Subject: pipelined\r\n\r\n..a dot-stuffed line\r\nRCPT TO:<" + BAD.encode() +
            b">\r\n\xe9\xff 8-bit bytes\r\n" + b"x" * 5000 + b"\r\n.\r\n")
    head = (b"EHLO client.example\r\nMAIL FROM:<s@example.org>\r\n"
            b"RCPT TO:<" + BAD.encode() + b">\r\nRCPT TO:<" + GOOD.encode() + b">\r\n"
            b"RCPT TO:<x@notours.example>\r\nDATA\r\n")
    got = data_session(s.port, head, body + b"NOOP\r\nQUIT\r\n")
    codes = [line[:4] for line in got.split(b"\r\n") if line]
    assert codes == [b"220 ", b"250-", b"250-", b"250 ", b"250 ", b"550 ", b"250 ", b"553 ",
                     b"354 ", b"250 ", b"250 ", b"221 "]
    refused = b"RCPT TO:<" + BAD.encode() + b">\r\n"
    assert s.received() == head.replace(refused, b"") + body + b"NOOP\r\nQUIT\r\n"
    log = s.wait_for("Session ended", count=2)
    mine = lines_of(log, last_session_pid(log))
    assert "Recipient <x@notours.example> refused: 553 sorry, that domain isn't in my list " \
           "of allowed rcpthosts (#5.7.1)" in mine


def test_rcpthosts_and_relayclient_skip_verification(shim, verifyd):
    assert rcpt_code(shim(VERIFY=":PORT", RELAYCLIENT="").port, BAD) == 250
    s2 = shim(VERIFY=":PORT")
    assert rcpt_code(s2.port, "y@notours.example") == 553
    s2.wait_for("Session ended", count=2)
    # the daemon answers in order and logs when idle: once a later query's
    # line is in its log, any query the shim made would be there too
    verifyd.ask(b"marker@demo.example")
    log = verifyd.wait_for("marker@demo.example denied.")
    assert BAD not in log and "notours" not in log


def test_unset_and_empty_verify(shim):
    assert rcpt_code(shim().port, BAD) == 250
    s2 = shim(VERIFY="")
    assert rcpt_code(s2.port, BAD) == 250
    log = s2.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[0] == "Note recipient verification explicitly disabled."


def test_no_answer_from_the_daemon_gives_451_and_ends_the_session(shim):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        s = shim(VERIFY=f":{silent.getsockname()[1]}", VERIFY_TIMEOUT="1")
        got = raw_session(s.port, b"HELO x\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<"
                          + GOOD.encode() + b">\r\nNOOP\r\n", read_until=b"451 ")
        assert got.endswith(b"451 qv temporary failure (#4.3.0)\r\n")
        log = s.wait_for("Session ended", count=2)
        assert lines_of(log, last_session_pid(log))[-2:] == [
            "Timeout (no response from verification server)",
            "Session ended: verification failure"]
        assert b"NOOP" not in s.received()
    finally:
        silent.close()


def test_daemon_not_running_gives_451_at_once(shim):
    from helpers import free_port
    s = shim(VERIFY=f":{free_port()}")
    t0 = time.monotonic()
    got = raw_session(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<" + GOOD.encode() + b">\r\n",
                      read_until=b"451 ")
    assert got.endswith(b"451 qv temporary failure (#4.3.0)\r\n")
    assert time.monotonic() - t0 < 4
    log = s.wait_for("Session ended", count=2)
    assert "temporary failure (connection refused)" in lines_of(log, last_session_pid(log))


def test_unparsable_verify_server_is_a_setup_failure(shim):
    s = shim(VERIFY="DEFER,192.168.1")
    got = raw_session(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<" + GOOD.encode() + b">\r\n",
                      read_until=b"451 ")
    assert got.endswith(b"451 qv setup failure (#4.3.0)\r\n")
    log = s.wait_for("Session ended", count=2)
    assert any(line.startswith("setup failure (unable to parse VERIFY server")
               for line in lines_of(log, last_session_pid(log)))


def test_starttls_makes_the_shim_step_aside(shim):
    s = shim(VERIFY=":PORT", FAKE_TLS="1")
    opaque = b"\x16\x03\x01 pretend TLS RCPT TO:<" + BAD.encode() + b">\r\n"
    got = raw_session(s.port, b"EHLO x\r\nSTARTTLS\r\n" + opaque, read_until=opaque)
    assert got.endswith(b"220 ready for tls\r\n" + opaque)
    with socket.create_connection(("127.0.0.1", s.port), 10):
        pass
    log = s.wait_for("Session ended", count=3)
    assert "STARTTLS: session encrypted, no longer inspected" in log


def test_auth_counts_as_a_relay_client(shim):
    s = shim(VERIFY=":PORT", FAKE_AUTH="1")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.ehlo("x")
        c.login("user", "secret")
        c.mail("s@example.org")
        assert c.rcpt(BAD)[0] == 250
    s.wait_for("AUTH accepted: recipients no longer verified")


def test_client_dropping_the_connection_ends_both_sides(shim):
    s = shim(VERIFY=":PORT")
    with socket.create_connection(("127.0.0.1", s.port), 10) as c:
        c.sendall(b"HELO x\r\nMAIL FROM:<s@example.org>\r\n")
        c.recv(100)
    log = s.wait_for("Session ended: dropped by the client")
    pid = last_session_pid(log)
    s.wait_for(f"tcpserver: end {pid} status")


def test_qmail_smtpd_timeout_is_passed_on_and_logged(shim):
    s = shim(VERIFY=":PORT", FAKE_TIMEOUT="1")
    got = raw_session(s.port, b"HELO x\r\n", read_until=b"451 ")
    assert got.endswith(b"451 timeout (#4.4.2)\r\n")
    s.wait_for("Session ended: timeout")


def test_a_big_body_streams_through_unchanged(shim):
    s = shim(VERIFY=":PORT")
    body = b"".join(b"line %d .\r\n..dots\r\n" % i for i in range(100000)) + b".\r\n"
    got = data_session(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<" + GOOD.encode()
                       + b">\r\nDATA\r\n", body + b"QUIT\r\n")
    assert b"250 ok 1764000000 qp" in got
    assert s.received().endswith(b"DATA\r\n" + body + b"QUIT\r\n")


def test_shim_usage_and_missing_program():
    import subprocess

    from helpers import executable
    r = subprocess.run([executable("qmail-logmsg")], capture_output=True, text=True)
    assert r.returncode == 100 and r.stderr.startswith("qmail-logmsg: usage:")
    r = subprocess.run([executable("qmail-logmsg"), "/nonexistent/qmail-smtpd"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert r.returncode == 111
    assert r.stderr == "qmail-logmsg: fatal: unable to run /nonexistent/qmail-smtpd: file does not exist\n"



# -- a half-closing client, qmail-smtpd's own view, failing closed ----

def half_closed(port: int, data: bytes, timeout=30) -> bytes:
    """Write the whole session at once, shut the sending side (as nc -N
    does), and read every reply until the shim closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return got
            got += chunk


def reply_codes(got: bytes) -> list[bytes]:
    return [line[:3] for line in got.split(b"\r\n") if line[3:4] == b" "]


def rcpt_line(address) -> bytes:
    return b"RCPT TO:<" + (address.encode() if isinstance(address, str) else address) + b">\r\n"


WHOLE = (b"HELO bot.example\r\nMAIL FROM:<s@example.org>\r\n" + rcpt_line(BAD) + rcpt_line(GOOD)
         + b"DATA\r\nSubject: bulk\r\n\r\nhello\r\n.\r\nQUIT\r\n")


def test_half_closing_client_immediate_mode_gets_550(shim):
    s = shim(VERIFY=":PORT")
    got = half_closed(s.port, WHOLE)
    assert reply_codes(got) == [b"220", b"250", b"250", b"550", b"250", b"354", b"250", b"221"]
    assert rcpt_line(BAD) not in s.received()
    assert s.queued() == b"T" + GOOD.encode() + b"\nSubject: bulk\r\n\r\nhello\r\n.\r\n"
    log = s.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[-1] == "Session ended: QUIT"


def half_closed_big(port: int, data: bytes, timeout=60) -> bytes:
    """half_closed() for sessions larger than the socket buffers: the
    replies are read while the session is still being written."""
    import threading
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout) as c:
        def read():
            while chunk := c.recv(65536):
                got.extend(chunk)
        reader = threading.Thread(target=read)
        reader.start()
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        reader.join(timeout)
    return bytes(got)


def test_big_bodies_pipelined_before_354_leave_every_later_command_checked(shim):
    """A body bigger than the shim's buffer, sent before DATA's 354, must
    not make the shim lose its place: the next transaction's RCPT is
    checked, and a nonexistent recipient is never queued."""
    pad = b"X" * (HIGH_WATER + (HIGH_WATER >> 2)) + b"\r\n.\r\n"   # past the shim's buffer
    data = (b"HELO x\r\nMAIL FROM:<a@b.test>\r\n" + rcpt_line(GOOD) + b"DATA\r\n" + pad
            + b"MAIL FROM:<a@b.test>\r\n" + rcpt_line(BAD) + b"DATA\r\n" + pad + b"QUIT\r\n")
    for verify, refused in ((":PORT", b"550"), ("DEFER,:PORT", b"554")):
        s = shim(VERIFY=verify)
        got = half_closed_big(s.port, data)
        assert refused in reply_codes(got), (verify, reply_codes(got))
        s.wait_for("Session ended")
        assert b"T" + BAD.encode() not in s.queued(), verify


def test_half_closing_client_deferred_mode_gets_554_and_nothing_is_queued(shim):
    s = shim(VERIFY="DEFER,:PORT")
    got = half_closed(s.port, WHOLE)
    assert reply_codes(got)[:6] == [b"220", b"250", b"250", b"250", b"250", b"554"]
    assert reply_codes(got)[-1] == b"221"            # the body's lines were commands
    s.wait_for("Session ended", count=2)
    assert s.queued() == b"" and b"DATA" not in s.received()


def test_half_closing_client_without_quit_still_gets_every_check(shim):
    s = shim(VERIFY=":PORT")
    got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\n" + rcpt_line(BAD) + rcpt_line(GOOD)
                      + b"RCPT TO:<" + BAD.encode() + b">")       # no newline: never run
    assert reply_codes(got) == [b"220", b"250", b"250", b"550", b"250"]
    log = s.wait_for("Session ended", count=2)
    assert lines_of(log, last_session_pid(log))[-1] == "Session ended: dropped by the client"
    assert s.received().count(b"RCPT") == 1


def test_own_ip_literal_is_checked_as_localiphost(shim, demo_tree):
    (demo_tree["qmail"] / "control" / "localiphost").write_text("demo.example\n")
    s = shim(VERIFY=":PORT")
    got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<nobody-here@[127.0.0.1]>\r\n"
                      b"RCPT TO:<alice@[127.0.0.1]>\r\nQUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"550", b"250", b"221"]
    assert b"nobody-here" not in s.received()
    log = s.wait_for("Session ended", count=2)
    assert "Recipient <nobody-here@demo.example>" in lines_of(log, last_session_pid(log))


def test_transaction_follows_qmail_smtpds_replies(shim):
    s = shim(VERIFY=":PORT")
    long_sender = b"MAIL FROM:<" + b"x" * 1000 + b"@example.org>\r\n"
    got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\nDATA\r\n" + rcpt_line(BAD)
                      + long_sender + rcpt_line(BAD) + b"QUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"503", b"550", b"555", b"550", b"221"]
    assert rcpt_line(BAD) not in s.received()
    s2 = shim(VERIFY="DEFER,:PORT")
    got = half_closed(s2.port, b"HELO x\r\nMAIL FROM:<>\r\n" + rcpt_line(BAD) + long_sender
                      + b"DATA\r\nQUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"250", b"555", b"554", b"221"]


def test_lines_over_a_mebibyte_are_decided_like_any_other(shim):
    pad = b" " * ((1 << 20) + 5)
    s = shim(VERIFY=":PORT")
    got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<" + BAD.encode() + b">"
                      + pad + b"\r\nQUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"550", b"221"]
    assert BAD.encode() not in s.received()
    s2 = shim(VERIFY="DEFER,:PORT")
    got = half_closed(s2.port, b"HELO x\r\nMAIL FROM:<>\r\n" + rcpt_line(BAD) + b"DATA" + pad
                      + b"\r\nQUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"250", b"554", b"221"]
    assert b"DATA" not in s2.received()


def test_unreadable_rcpthosts_is_421_in_place_of_the_greeting(shim, demo_tree):
    s = shim(VERIFY=":PORT")
    rcpthosts = demo_tree["qmail"] / "control" / "rcpthosts"
    rcpthosts.unlink()
    rcpthosts.mkdir()                                 # unreadable, even for root
    try:
        got = half_closed(s.port, b"HELO x\r\nQUIT\r\n")
    finally:
        rcpthosts.rmdir()
        rcpthosts.write_text("demo.example\nshop.example\n")
    assert got == b"421 unable to read controls (#4.3.0)\r\n"
    log = s.wait_for("tcpserver: end", count=2)
    pid = last_session_pid(log)
    assert lines_of(log, pid) == [
        f"unable to read controls (unable to read {rcpthosts}_ is a directory)"]
    assert f"end {pid} status 256" in log and s.received() == b""


def test_morercpthosts_cdb_open_and_read_errors_are_421(shim, demo_tree):
    s = shim(VERIFY=":PORT")
    cdb = demo_tree["qmail"] / "control" / "morercpthosts.cdb"
    cdb.symlink_to(cdb.name)                          # a loop: cannot be opened
    try:
        got = half_closed(s.port, b"HELO x\r\nQUIT\r\n")
        assert got == b"421 unable to read controls (#4.3.0)\r\n"
    finally:
        cdb.unlink()
    cdb.mkdir()                                       # opens, but cannot be read
    try:
        got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\n" + rcpt_line(GOOD)
                          + rcpt_line("x@more.example") + b"QUIT\r\n")
    finally:
        cdb.rmdir()
    assert reply_codes(got) == [b"220", b"250", b"250", b"250", b"421"]
    assert b"more.example" not in s.received() and b"QUIT" not in s.received()
    log = s.wait_for("Session ended: unable to read controls")
    assert f"unable to read controls (unable to read {cdb}_ is a directory)" in \
        lines_of(log, last_session_pid(log))


def test_help_and_version():
    import subprocess

    from helpers import executable

    from qmailverify import __version__
    r = subprocess.run([executable("qmail-logmsg"), "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: qmail-logmsg program")
    r = subprocess.run([executable("qmail-logmsg"), "-V"], capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (0, f"qmail-logmsg {__version__}\n")


def test_a_session_works_under_the_documented_memory_limit(shim, demo_tree):
    from pathlib import Path

    from helpers import executable
    run = (Path(__file__).resolve().parents[2] / "service/qmail-smtpd/run").read_text()
    limit = re.search(r" softlimit -m (\d+) ", run).group(1)
    assert int(limit) >= 20000000
    (demo_tree["qmail"] / "control" / "localiphost").write_text("demo.example\n")
    s = shim(wrapper=[executable("softlimit"), "-m", limit], VERIFY=":PORT")
    got = half_closed(s.port, b"HELO x\r\nMAIL FROM:<>\r\n" + rcpt_line(GOOD)
                      + b"RCPT TO:<nobody-here@[127.0.0.1]>\r\nQUIT\r\n")
    assert reply_codes(got) == [b"220", b"250", b"250", b"250", b"550", b"221"]



def test_djbs_usual_memory_limit_is_too_small_for_the_shim(tmp_path):
    import subprocess

    from helpers import executable
    r = subprocess.run([executable("softlimit"), "-m", "12000000", executable("qmail-logmsg"),
                        "/bin/cat"], input=b"QUIT\r\n", capture_output=True)
    assert r.returncode != 0 and r.stdout == b""       # why run sets 30000000
