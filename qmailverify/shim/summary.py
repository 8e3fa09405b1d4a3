"""qmail-logmsg -s: one line per SMTP session from qmail-logmsg's log.

The job of the awk script that shipped with qmail-logmsg, in a form an awk
script can read in turn.  Only `qmail-logmsg -s` imports this module (the
shim's per-session path never does), so it may take its time.

Input, on stdin: qmail-logmsg's lines, 'qmail-smtpd: pid PID from IP:
MESSAGE', with or without multilog's '@TAI64N ' stamp; other programs'
lines are skipped.  A line logged before a session's 'New session' (the
'Note ...' of VERIFY="", always) is held and belongs to the session that
then starts under that pid; held lines never make a session of their own.
A session whose 'New session' is not in the input (it began in an earlier
log file) starts at its first line that only a running session logs.

Output, on stdout: one line a session, then one line of totals.  Each line
is a word naming the record, then space-separated KEY=VALUE fields, always
all of them and in this order:

    session start= length= pid= ip= newsession= sender= accepted= refused=
            refused_rcpts= reasons= refused_data= messages= controls_421=
            soft_data= would_refuse= would_defer= delayed= harvest_421= ended=
    total sessions= accepted= refused= refused_data= messages= controls_421=
          soft_data= would_refuse= would_defer= delayed= harvest_421= reasons= ended=

start     UTC, 2025-11-25T08:00:00Z ('-' without stamps; the first line seen)
pid, ip   as in the log
length    seconds to the session's last line, 10.5 ('-' without stamps)
newsession  'no' if the session began before the input ('yes' otherwise)
sender    the last MAIL's address; '<>' the null sender; '-' no MAIL
accepted  recipients not refused at RCPT time
refused   recipients refused at RCPT time; refused_rcpts lists them in
          order, comma-separated ('-' none)
reasons   REASON:COUNT,... for those recipients ('-' none): 'unverified'
          (qmail-verify said no, 550), 'soft' (the same under
          VERIFY_ROLLOUT=soft, 450), 'qv-temp' (the daemon could not know
          now: 451 for that recipient, the session went on), 'qv-451' (no
          answer or a socket error: 451 and the end), 'qv-setup' (VERIFY
          cannot be parsed), 'harvest-421' (the harvest limit: 421 and the
          end), 'controls-421' (421 unable to read controls) or
          qmail-smtpd's own reply code
refused_data  DATA commands answered 554 in deferred mode; the recipient
          the line names was taken at RCPT time, so it counts as accepted
          and is in no list
messages  messages accepted
controls_421  1 if the session ended with '421 unable to read controls'
          (a shim line starting 'unable to read controls', at the greeting
          or at a RCPT, or qmail-smtpd's 421 to a RCPT), else 0
soft_data DATA commands answered 451 in deferred mode under VERIFY_ROLLOUT=soft
would_refuse  recipients VERIFY_ROLLOUT=log accepted that would have been
          refused ('Would refuse' lines; they count as accepted)
would_defer   the same for temporary answers ('Would defer' lines)
delayed   RCPT replies held back by the harvest limits
harvest_421  1 if the session ended at the harvest limit, else 0
ended     how the shim said the session ended; 'open' if it did not (yet)
In the total line ended is HOW:COUNT,... and the rest are sums.

Encoding: a value never holds a space, so awk's fields are the KEY=VALUE
pairs and split($i, kv, "=") takes them apart.  Addresses (as cleaned in the
log) and the ended text are written with each of space % , = : < > and any
byte outside printable ASCII as %XX (hex, upper case); an empty address is
'<>' and a value that is exactly '-' is %2D, so '-' always means none.

Output errors: a write error prints 'qmail-logmsg: fatal: unable to write
output: REASON' and exits 111; a reader that has gone away (| head) ends
the program quietly through SIGPIPE, as it ends djb's tools.
"""

import os
import re
import signal
import sys
from collections import Counter

from qmailverify.errors import errtext
from qmailverify.shim.sessionrecord import TALLIES, LoggedSession, counts

TAI_OFFSET = 4611686018427387914          # 2**62 + 10: TAI64 label to UTC seconds
LINE = re.compile(rb"^(?:@([0-9a-f]{24}) )?qmail-smtpd: pid (\d+) from (\S*): (.*)$")
# Lines only a running session logs; any other line before 'New session' is held.
IN_SESSION = (b"Received ", b"Sender <", b"Recipient <", b"Session ", b"Remote end QUIT",
              b"Unverified ", b"Message ", b"STARTTLS", b"AUTH ", b"Timeout (",
              b"temporary failure (", b"setup failure (", b"Temporary failure at RCPT",
              b"Would refuse <", b"Would defer <", b"Delaying RCPT reply", b"Harvest limit: ")


def tai64n(label: bytes | None) -> float | None:
    if not label:
        return None
    return int(label[:16], 16) - TAI_OFFSET + int(label[16:], 16) / 1e9


def summarise(lines, out) -> None:
    """Read log lines (bytes) and write the summary (str) to out."""
    sessions: dict[bytes, LoggedSession] = {}       # open sessions by pid
    held: dict[bytes, list] = {}              # lines before a pid's 'New session'
    totals, reasons, endings = Counter(), Counter(), Counter()

    def close(s: LoggedSession) -> None:
        refused = s.refused()
        totals.update(sessions=1, accepted=len(s.recipients) - len(refused),
                      refused=len(refused), refused_data=s.refused_data,
                      messages=s.messages, controls_421=s.controls)
        totals.update(s.tallies)
        reasons.update(r[1] for r in refused)
        endings[s.ending()] += 1
        out.write(s.line() + "\n")

    for raw in lines:
        m = LINE.match(raw.rstrip(b"\r\n"))
        if not m:
            continue
        label, pid, ip, msg = m.groups()
        when = tai64n(label)
        s = sessions.get(pid)
        if msg == b"New session" or (s is None and msg.startswith(IN_SESSION)):
            if s is not None:
                close(sessions.pop(pid))
            early = held.pop(pid, [])
            s = sessions[pid] = LoggedSession(pid, ip, None, msg == b"New session")
            for line in early:
                s.take(*line)
        elif s is None or msg.startswith(b"Note "):
            held.setdefault(pid, []).append((when, msg))   # for the session to come
            continue
        s.take(when, msg)
        if msg.startswith(b"Session ended: "):
            close(sessions.pop(pid))
    for s in sessions.values():
        close(s)

    sums = " ".join(f"{k}={totals[k]}" for k in (
        "sessions", "accepted", "refused", "refused_data", "messages", "controls_421",
        *(name for name, _ in TALLIES)))
    out.write(f"total {sums} reasons={counts(reasons)} ended={counts(endings)}\n")


class WriteError(Exception):
    pass


class Output:
    """Text to a file descriptor through os.write, so that a write error is
    ours to report (sys.stdout would repeat it at exit, with a traceback)."""

    def __init__(self, fd: int, size: int = 1 << 16):
        self.fd, self.size, self.buf = fd, size, bytearray()

    def write(self, text: str) -> None:
        self.buf += text.encode("ascii", "replace")
        if len(self.buf) >= self.size:
            self.flush()

    def flush(self) -> None:
        try:
            while self.buf:
                del self.buf[:os.write(self.fd, self.buf)]
        except OSError as e:
            raise WriteError(errtext(e.errno)) from None


def main() -> int:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # a reader gone: end quietly, as djb's tools do
    out = Output(1)
    try:
        summarise(sys.stdin.buffer, out)
        out.flush()
    except WriteError as e:
        return fatal(f"unable to write output: {e}")
    except OSError as e:
        return fatal(f"unable to read input: {errtext(e.errno)}")
    return 0


def fatal(message: str) -> int:
    try:
        os.write(2, f"qmail-logmsg: fatal: {message}\n".encode())
    except OSError:
        pass
    return 111
