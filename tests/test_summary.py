"""qmail-logmsg -s on hand-written logs: stamps or none, pid reuse,
sessions still open at the end, other programs' lines."""

import io
import os
import shutil
import subprocess

import pytest

from qmailverify.summary import summarise, tai64n

P = b"qmail-smtpd: pid %d from %s: "


def run(lines: list[bytes]) -> list[str]:
    out = io.StringIO()
    summarise(iter(lines), out)
    return out.getvalue().splitlines()


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
    assert out[0] == "- - 10.0.0.1 sender=<a@x> accepted=1 refused=553:1,unverified:1 messages=1 ended=QUIT"
    assert out[1] == "- - 10.0.0.2 sender=- accepted=0 refused=qv-451:1 messages=0 ended=verification failure"
    assert out[2] == "- - 10.0.0.3 sender=- accepted=0 refused=0 messages=0 ended=open"
    table = dict(line.rsplit(None, 1) for line in out[4:])
    assert table["sessions"] == "3" and table["recipients accepted"] == "1"
    assert table["refused: unverified"] == "1" and table["ended: open"] == "1"


def test_tai64n_stamps_give_start_and_length():
    start, end = b"@4000000069253f1000000000", b"@4000000069253f1a1dcd6500"
    if shutil.which("tai64nlocal") is None:
        pytest.skip("tai64nlocal (Debian's daemontools) is not installed")
    local = subprocess.run(["tai64nlocal"], input=start + b" x\n", capture_output=True,
                           env={"TZ": "UTC", "PATH": os.environ["PATH"]}).stdout.decode()
    out = run([start + b" " + P % (5, b"1.2.3.4") + b"New session\n",
               end + b" " + P % (5, b"1.2.3.4") + b"Session ended: dropped by the client\n"])
    assert out[0].startswith(local[:19] + " 10.5s 1.2.3.4 ")      # to the second, as daemontools says
    assert tai64n(end[1:]) - tai64n(start[1:]) == 10.5
    assert out[0].endswith("ended=dropped by the client")
