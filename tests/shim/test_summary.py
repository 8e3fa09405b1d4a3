"""qmail-logmsg -s: the parser on hand-written logs (stamps or none, pid
reuse, lines before 'New session', sessions still open at the end, other
programs' lines), and the installed executable over a log the real shim
wrote under tcpserver, raw and stamped by multilog, read back with awk."""

import io
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys

import pytest
from helpers import executable

from qmailverify.shim.summary import summarise, tai64n

P = b"qmail-smtpd: pid %d from %s: "
NOTE = b"Note recipient verification explicitly disabled.\n"
GOOD, BAD = "alice@demo.example", "nobody-here@demo.example"
NEW0 = "soft_data=0 would_refuse=0 would_defer=0 delayed=0 harvest_421=0 "


def run(lines: list[bytes]) -> list[str]:
    out = io.StringIO()
    summarise(iter(lines), out)
    return out.getvalue().splitlines()


def fields(line: str) -> tuple[str, dict]:
    """A line split as awk does: the record word, then KEY=VALUE fields."""
    word, *pairs = line.split()
    assert all(p.count("=") == 1 for p in pairs), line
    return word, dict(p.split("=") for p in pairs)


def decode(value: str) -> str:
    """An element of a value back to the address, as an awk script would."""
    for code in ("20", "2C", "3D", "3A", "3C", "3E", "2D", "25"):    # %25 last
        value = value.replace("%" + code, chr(int(code, 16)))
    return value


def sessions_and_total(out: list[str]) -> tuple[list[dict], dict]:
    records = [fields(line) for line in out]
    assert [w for w, _ in records] == ["session"] * (len(out) - 1) + ["total"]
    return [f for _, f in records[:-1]], records[-1][1]


def test_sessions_without_stamps_pid_reuse_and_open_sessions():
    log = [
        b"tcpserver: status: 1/40\n",
        P % (7, b"10.0.0.1") + b"New session\n",
        P % (7, b"10.0.0.1") + b"Sender <a@x>\n",
        P % (7, b"10.0.0.1") + b"Recipient <one@y>\n",
        P % (7, b"10.0.0.1") + b"Recipient <two@y>\n",
        P % (7, b"10.0.0.1") + b"Unverified mailbox at RCPT time\n",
        P % (7, b"10.0.0.1") + b"Recipient <three@z>\n",
        P % (7, b"10.0.0.1") + b"Recipient <one@y> refused: 553 sorry\n",
        P % (7, b"10.0.0.1") + b"Message accepted: qp 9, 1 recipient\n",
        P % (7, b"10.0.0.1") + b"Session ended: QUIT\n",
        P % (7, b"10.0.0.2") + b"New session\n",          # the pid again, a new session
        P % (7, b"10.0.0.2") + b"Recipient <x@y>\n",
        P % (7, b"10.0.0.2") + b"Timeout (no response from verification server)\n",
        P % (7, b"10.0.0.2") + b"Session ended: verification failure\n",
        P % (8, b"10.0.0.3") + b"New session\n",
    ]
    out = run(log)
    # The old format's assertions, adapted: key=value fields, refusals counted
    # in refused= and by reason in reasons=, the ended text %-encoded.
    assert out[0] == ("session start=- length=- pid=7 ip=10.0.0.1 newsession=yes sender=a@x "
                      "accepted=1 refused=2 refused_rcpts=one@y,two@y reasons=553:1,unverified:1 "
                      "refused_data=0 messages=1 controls_421=0 " + NEW0 + "ended=QUIT")
    assert out[1] == ("session start=- length=- pid=7 ip=10.0.0.2 newsession=yes sender=- "
                      "accepted=0 refused=1 refused_rcpts=x@y reasons=qv-451:1 "
                      "refused_data=0 messages=0 controls_421=0 " + NEW0
                      + "ended=verification%20failure")
    assert out[2] == ("session start=- length=- pid=8 ip=10.0.0.3 newsession=yes sender=- "
                      "accepted=0 refused=0 refused_rcpts=- reasons=- "
                      "refused_data=0 messages=0 controls_421=0 " + NEW0 + "ended=open")
    assert out[3] == ("total sessions=3 accepted=1 refused=3 refused_data=0 messages=1 "
                      "controls_421=0 " + NEW0 + "reasons=553:1,qv-451:1,unverified:1 "
                      "ended=QUIT:1,open:1,verification%20failure:1")


@pytest.mark.system
def test_tai64n_stamps_give_start_and_length():
    start, end = b"@4000000069253f1000000000", b"@4000000069253f1a1dcd6500"
    if shutil.which("tai64nlocal") is None:
        pytest.skip("tai64nlocal (Debian's daemontools) is not installed")
    local = subprocess.run(["tai64nlocal"], input=start + b" x\n", capture_output=True,
                           env={"TZ": "UTC", "PATH": os.environ["PATH"]}).stdout.decode()
    out = run([start + b" " + P % (5, b"1.2.3.4") + b"New session\n",
               end + b" " + P % (5, b"1.2.3.4") + b"Session ended: dropped by the client\n"])
    _, s = fields(out[0])
    # to the second, as daemontools says (adapted: ISO 8601 in one field, length a number)
    assert s["start"] == local[:10] + "T" + local[11:19] + "Z" and s["length"] == "10.5"
    assert tai64n(end[1:]) - tai64n(start[1:]) == 10.5
    assert decode(s["ended"]) == "dropped by the client"


def test_a_line_before_new_session_belongs_to_the_session_that_starts():
    stamp = b"@40000000692540%02x00000000 "
    log = [
        stamp % 0 + P % (7, b"10.0.0.1") + NOTE,          # VERIFY="": the note comes first
        stamp % 0 + P % (7, b"10.0.0.1") + b"New session\n",
        stamp % 1 + P % (8, b"10.0.0.2") + b"New session\n",
        stamp % 2 + P % (7, b"10.0.0.1") + b"Session ended: QUIT\n",
        stamp % 3 + P % (8, b"10.0.0.2") + b"Recipient <a@y>\n",
        stamp % 4 + P % (8, b"10.0.0.2") + NOTE,          # pid 8 died unlogged; its pid's next session
        stamp % 9 + P % (8, b"10.0.0.3") + b"New session\n",
        stamp % 9 + P % (9, b"10.0.0.4") + NOTE,          # cut off before its New session
    ]
    sessions, total = sessions_and_total(run(log))
    assert [(s["pid"], s["ip"], s["length"], s["ended"]) for s in sessions] == [
        ("7", "10.0.0.1", "2.0", "QUIT"), ("8", "10.0.0.2", "2.0", "open"),
        ("8", "10.0.0.3", "5.0", "open")]
    assert total["sessions"] == "3" and total["accepted"] == "1"


def test_a_log_that_starts_inside_a_session_gives_its_tail():
    log = [P % (7, b"10.0.0.1") + b"Recipient <a@y>\n",      # New session was in the last file
           P % (7, b"10.0.0.1") + b"Unverified mailbox at RCPT time\n",
           P % (7, b"10.0.0.1") + b"Session ended: QUIT\n",
           P % (8, b"10.0.0.2") + b"Session ended: dropped by the client\n"]
    sessions, total = sessions_and_total(run(log))
    assert [(s["pid"], s["newsession"], s["refused_rcpts"]) for s in sessions] == [
        ("7", "no", "a@y"), ("8", "no", "-")]


def test_refused_recipients_are_listed_and_survive_an_awk_split():
    odd = b"a b,c=d%e:f@y"          # as the log could hold it, were ':' not cleaned
    log = [P % (7, b"10.0.0.1") + b"New session\n",
           P % (7, b"10.0.0.1") + b"Sender <>\n",
           P % (7, b"10.0.0.1") + b"Recipient <ok@y>\n",
           P % (7, b"10.0.0.1") + b"Recipient <" + odd + b">\n",
           P % (7, b"10.0.0.1") + b"Unverified mailbox at RCPT time\n",
           P % (7, b"10.0.0.1") + b"Recipient <->\n",
           P % (7, b"10.0.0.1") + b"Recipient <>\n",
           P % (7, b"10.0.0.1") + b"Recipient <-> refused: 553 sorry\n",
           P % (7, b"10.0.0.1") + b"Recipient <> refused: 555 syntax error (#5.5.4)\n",
           P % (7, b"10.0.0.1") + b"Session ended: QUIT\n"]
    sessions, _ = sessions_and_total(run(log))
    s = sessions[0]
    assert s["sender"] == "<>" and s["accepted"] == "1" and s["refused"] == "3"
    assert [decode(a) for a in s["refused_rcpts"].split(",")] == [odd.decode(), "-", "<>"]
    assert s["reasons"] == "553:1,555:1,unverified:1"


def test_unable_to_read_controls_is_counted():
    log = [P % (7, b"10.0.0.1") + b"unable to read controls (control/rcpthosts: access denied)\n",
           P % (7, b"10.0.0.1") + b"New session\n",
           P % (7, b"10.0.0.1") + b"Session ended: unable to read controls\n",
           P % (8, b"10.0.0.2") + b"New session\n",           # at a RCPT, the shim's own 421
           P % (8, b"10.0.0.2") + b"Sender <s@x>\n",
           P % (8, b"10.0.0.2") + b"Recipient <a@y>\n",
           P % (8, b"10.0.0.2") + b"Recipient <b@y>\n",
           P % (8, b"10.0.0.2") + b"unable to read controls (control/morercpthosts.cdb: "
                                  b"input/output error)\n",
           P % (8, b"10.0.0.2") + b"Session ended: unable to read controls\n",
           P % (9, b"10.0.0.3") + b"New session\n",           # qmail-smtpd's own, passed on
           P % (9, b"10.0.0.3") + b"Recipient <c@y>\n",
           P % (9, b"10.0.0.3") + b"Recipient <c@y> refused: 421 unable to read controls (#4.3.0)\n",
           P % (9, b"10.0.0.3") + b"Session ended: ended by qmail-smtpd\n"]
    sessions, total = sessions_and_total(run(log))
    assert [(s["controls_421"], s["accepted"], s["refused_rcpts"], s["reasons"]) for s in sessions] \
        == [("1", "0", "-", "-"), ("1", "1", "b@y", "controls-421:1"),
            ("1", "0", "c@y", "controls-421:1")]
    assert total["controls_421"] == "3" and total["sessions"] == "3"


def test_deferred_refusals_and_setup_failures():
    log = [P % (7, b"10.0.0.1") + b"New session\n",
           P % (7, b"10.0.0.1") + b"Recipient <a@y>\n",
           P % (7, b"10.0.0.1") + b"Unverified mailbox(es) at DATA time\n",
           P % (7, b"10.0.0.1") + b"Recipient <b@y>\n",
           P % (7, b"10.0.0.1") + b"setup failure (unable to parse VERIFY server)\n",
           P % (7, b"10.0.0.1") + b"Session ended: verification setup failure\n"]
    sessions, _ = sessions_and_total(run(log))
    assert (sessions[0]["refused_data"], sessions[0]["accepted"], sessions[0]["reasons"]) == \
        ("1", "1", "qv-setup:1")


# -- the installed executable ------------------------------------------------

def summary_of(data: bytes, tmp_path) -> list[str]:
    path = tmp_path / "log"
    path.write_bytes(data)
    with open(path, "rb") as log:
        r = subprocess.run([executable("qmail-logmsg"), "-s"], stdin=log, capture_output=True)
    assert (r.returncode, r.stderr) == (0, b"")
    return r.stdout.decode().splitlines()


def awk_fields(text: str) -> list[dict]:
    """What awk makes of the output: every field split at its '='."""
    if shutil.which("awk") is None:
        pytest.skip("awk is not installed")
    prog = '{ for (i = 2; i <= NF; i++) { n = split($i, kv, "="); printf "%s %d %s\\t", kv[1], n, kv[2] } print "" }'
    r = subprocess.run(["awk", prog], input=text, capture_output=True, text=True, check=True)
    rows = []
    for line in r.stdout.splitlines():
        cells = [c.split(" ") for c in line.rstrip("\t").split("\t")]
        assert all(n == "2" for _, n, _ in cells), line
        rows.append({k: v for k, _, v in cells})
    return rows


@pytest.mark.system
def test_a_log_the_shim_wrote_raw_and_stamped(shim, tmp_path):
    s = shim(VERIFY=":PORT")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.helo("x")
        c.mail("s@example.org")
        c.rcpt(GOOD)
        c.rcpt(BAD)
        c.rcpt('"no,body=at all"@demo.example')
        c.rcpt("z@notours.example")
        c.data(b"hi\r\n")
    with socket.create_connection(("127.0.0.1", s.port), 10) as c:
        c.recv(100)
    s.wait_for("Session ended", count=3)
    quiet = shim(VERIFY="")                      # its note comes before New session
    with smtplib.SMTP("127.0.0.1", quiet.port, timeout=10) as c:
        c.helo("x")
        c.mail("")
        c.rcpt(BAD)
    quiet.wait_for("Session ended", count=2)
    log = s.logpath.read_bytes() + quiet.logpath.read_bytes()
    assert NOTE in log
    variants = [log]
    if shutil.which("multilog") is None:
        pytest.skip("multilog (Debian's daemontools) is not installed")
    subprocess.run(["multilog", "t", str(tmp_path / "main")], input=log, check=True)
    variants.append((tmp_path / "main" / "current").read_bytes())
    assert variants[1].startswith(b"@4000")
    for stamped, data in enumerate(variants):
        out = summary_of(data, tmp_path)
        sessions, total = sessions_and_total(out)
        assert len(sessions) == 5                # two probes of the shims' start, three sessions
        dropped = "dropped%20by%20the%20client"
        assert [f["ended"] for f in sessions] == [dropped, "QUIT", dropped, dropped, "QUIT"]
        mail = sessions[1]
        assert (mail["sender"], mail["accepted"], mail["refused"], mail["messages"]) == \
            ("s@example.org", "1", "3", "1")
        assert [decode(a) for a in mail["refused_rcpts"].split(",")] == \
            [BAD, "no,body=at all@demo.example", "z@notours.example"]
        assert mail["reasons"] == "553:1,unverified:2"
        assert (sessions[4]["sender"], sessions[4]["accepted"]) == ("<>", "1")
        assert total["sessions"] == "5" and total["messages"] == "1"
        assert total["ended"] == "QUIT:2,dropped%20by%20the%20client:3"
        if stamped:
            assert all(f["start"].startswith("20") and float(f["length"]) >= 0 for f in sessions)
        else:
            assert all(f["start"] == f["length"] == "-" for f in sessions)
        assert awk_fields("\n".join(out) + "\n")[1]["refused_rcpts"] == mail["refused_rcpts"]


# -- output trouble -----------------------------------------------------------

def big_log(tmp_path, sessions: int):
    path = tmp_path / "log"
    with open(path, "wb") as f:
        for pid in range(sessions):
            f.write(P % (pid, b"10.0.0.1") + b"New session\n")
            f.write(P % (pid, b"10.0.0.1") + b"Session ended: QUIT\n")
    return path


@pytest.mark.system
@pytest.mark.parametrize("sessions", [1, 5000])        # at the end, and mid-stream
def test_a_full_disk_is_a_fatal_error_not_a_traceback(tmp_path, sessions):
    with open(big_log(tmp_path, sessions), "rb") as log, open("/dev/full", "wb") as full:
        r = subprocess.run([executable("qmail-logmsg"), "-s"], stdin=log, stdout=full,
                           stderr=subprocess.PIPE)
    assert (r.returncode, r.stderr) == (
        111, b"qmail-logmsg: fatal: unable to write output: no space left on device\n")


@pytest.mark.system
def test_a_closed_stdout_is_a_fatal_error(tmp_path):
    with open(big_log(tmp_path, 1), "rb") as log:
        r = subprocess.run(["sh", "-c", 'exec "$0" -s >&-', executable("qmail-logmsg")],
                           stdin=log, stderr=subprocess.PIPE)
    assert (r.returncode, r.stderr) == (
        111, b"qmail-logmsg: fatal: unable to write output: bad file descriptor\n")


@pytest.mark.system
def test_a_reader_gone_ends_it_quietly_by_sigpipe(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)                                   # as `| head -1` is once it has its line
    try:
        with open(big_log(tmp_path, 5000), "rb") as log:
            r = subprocess.run([executable("qmail-logmsg"), "-s"], stdin=log, stdout=write_end,
                               stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert (r.returncode, r.stderr) == (-signal.SIGPIPE, b"")


def test_the_shim_does_not_import_the_summariser():
    code = ("import sys, qmailverify.shim.main; "
            "print({'qmailverify.shim.summary', 'qmailverify.shim.sessionrecord'} & set(sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == "set()\n"


def test_the_new_shim_outcomes_are_counted():
    a, b = (P % (5, b"10.0.0.5"), P % (6, b"10.0.0.6"))
    log = [a + b"New session\n", a + b"Sender <s@x>\n",
           a + b"Recipient <soft@y>\n", a + b"Unverified mailbox at RCPT time (soft: 450)\n",
           a + b"Recipient <temp@y>\n", a + b"Temporary failure at RCPT time (why)\n",
           a + b"Recipient <log@y>\n", a + b"Would refuse <log@y> at RCPT time (log-only)\n",
           a + b"Recipient <logt@y>\n",
           a + b"Would defer <logt@y> at RCPT time (log-only): temporary failure (why)\n",
           a + b"Unverified mailbox(es) at DATA time (soft: 451)\n",
           a + b"Session ended: QUIT\n",
           b + b"New session\n", b + b"Recipient <h1@y>\n",
           b + b"Delaying RCPT reply 1s (3 refused recipients from this IP)\n",
           b + b"Unverified mailbox at RCPT time\n", b + b"Recipient <h2@y>\n",
           b + b"Delaying RCPT reply 2s (4 refused recipients from this IP)\n",
           b + b"Recipient <h3@y>\n",
           b + b"Harvest limit: 5 refused recipients from this IP\n",
           b + b"Session ended: harvest limit\n"]
    (first, second), total = sessions_and_total(run(log))
    assert (first["accepted"], first["refused"], first["reasons"]) == ("2", "2", "qv-temp:1,soft:1")
    assert (first["soft_data"], first["would_refuse"], first["would_defer"]) == ("1", "1", "1")
    assert first["refused_data"] == "0" and first["harvest_421"] == "0"
    assert (second["delayed"], second["harvest_421"], second["reasons"]) == \
        ("2", "1", "harvest-421:1,unverified:1")
    assert second["accepted"] == "1" and decode(second["ended"]) == "harvest limit"
    assert (total["delayed"], total["harvest_421"], total["soft_data"], total["would_refuse"]) == \
        ("2", "1", "1", "1")
    assert total["reasons"] == "harvest-421:1,qv-temp:1,soft:1,unverified:1"


def test_refusal_lines_that_name_the_address_are_counted_as_the_bare_ones():
    """The C patch's words start the line, the address follows: both forms
    (older logs have the bare words) count alike."""
    a, b = (P % (5, b"10.0.0.5"), P % (6, b"10.0.0.6"))
    log = [a + b"New session\n",
           a + b"Recipient <nosuch@test.example>\n",
           a + b"Unverified mailbox at RCPT time: <nosuch@test.example>\n",
           a + b"Recipient <soft@test.example>\n",
           a + b"Unverified mailbox at RCPT time (soft: 450): <soft@test.example>\n",
           a + b"Recipient <ok@test.example>\n",
           a + b"Session ended: QUIT\n",
           b + b"New session\n",
           b + b"Recipient <bad@test.example>\n", b + b"Recipient <ok@test.example>\n",
           b + b"Unverified mailbox(es) at DATA time: <bad@test.example>\n",
           b + b"Recipient <bad2@test.example>\n",
           b + b"Unverified mailbox(es) at DATA time (soft: 451): <bad2@test.example>\n",
           b + b"Session ended: QUIT\n"]
    (first, second), total = sessions_and_total(run(log))
    assert (first["accepted"], first["refused"], first["reasons"]) == ("1", "2", "soft:1,unverified:1")
    assert [decode(r) for r in first["refused_rcpts"].split(",")] == [
        "nosuch@test.example", "soft@test.example"]
    assert (second["refused_data"], second["soft_data"], second["accepted"]) == ("1", "1", "3")
    assert (total["refused"], total["refused_data"], total["soft_data"]) == ("2", "1", "1")


def test_a_deferred_refusal_the_shim_wrote_is_counted(shim, tmp_path):
    s = shim(VERIFY="DEFER,:PORT")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=10) as c:
        c.helo("x")
        c.mail("s@example.org")
        c.rcpt(GOOD)
        c.rcpt(BAD)
        assert c.docmd("DATA")[0] == 554
    log = s.wait_for("Session ended", count=2)
    assert f": Unverified mailbox(es) at DATA time: <{BAD}>\n" in log
    sessions, total = sessions_and_total(summary_of(s.logpath.read_bytes(), tmp_path))
    assert (sessions[-1]["refused_data"], sessions[-1]["accepted"]) == ("1", "2")
    assert total["refused_data"] == "1"
