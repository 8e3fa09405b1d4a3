"""qmail-logmsg -s: one line per SMTP session from qmail-logmsg's log.

Reads multilog output (each line '@TAI64N qmail-smtpd: pid PID from IP:
MESSAGE'; lines without a stamp are read too, and lines of other
programs are skipped) on stdin and prints, for each session:

    START LENGTH IP sender=<S> accepted=N refused=REASON:N,... messages=N ended=HOW

START is UTC, LENGTH in seconds ('-' without stamps), and refusal
reasons are 'unverified' (qmail-verify said no, at RCPT time),
'unverified-at-data' (deferred mode: the DATA was refused), 'qv-451'
(the daemon did not answer) and qmail-smtpd's own reply codes.  Sessions
still open at the end of the input show ended=open.  Then a table of
totals.  The job of the awk script that shipped with qmail-logmsg.
"""

import re
import sys
import time
from collections import Counter

TAI_OFFSET = 4611686018427387914          # 2**62 + 10: TAI64 label to UTC seconds
LINE = re.compile(rb"^(?:@([0-9a-f]{24}) )?qmail-smtpd: pid (\d+) from (\S*): (.*)$")
RECIPIENT = re.compile(rb"^Recipient <(.*)>$")
REFUSED = re.compile(rb"^Recipient <(.*)> refused: (\d{3})")


def tai64n(label: bytes | None) -> float | None:
    if not label:
        return None
    return int(label[:16], 16) - TAI_OFFSET + int(label[16:], 16) / 1e9


class Session:
    def __init__(self, ip: str, when: float | None):
        self.ip = ip
        self.start = self.last = when
        self.sender = None
        self.recipients: list[list] = []      # [address, refusal reason or None]
        self.data_refused = 0
        self.messages = 0
        self.ended = "open"

    def refuse_last(self, reason: str, address: bytes | None = None) -> None:
        for r in reversed(self.recipients):
            if r[1] is None and (address is None or r[0] == address):
                r[1] = reason
                return

    def take(self, msg: bytes) -> None:
        if msg.startswith(b"Sender <"):
            self.sender = msg[7:].decode("ascii", "replace")
        elif m := REFUSED.match(msg):
            self.refuse_last(m.group(2).decode(), m.group(1))
        elif m := RECIPIENT.match(msg):
            self.recipients.append([m.group(1), None])
        elif msg == b"Unverified mailbox at RCPT time":
            self.refuse_last("unverified")
        elif msg == b"Unverified mailbox(es) at DATA time":
            self.data_refused += 1
        elif msg.startswith((b"Timeout (no response", b"temporary failure (", b"setup failure (")):
            self.refuse_last("qv-451")
        elif msg.startswith(b"Message accepted"):
            self.messages += 1
        elif msg.startswith(b"Session ended: "):
            self.ended = msg[15:].decode("ascii", "replace")

    def refusals(self) -> Counter:
        c = Counter(r[1] for r in self.recipients if r[1])
        if self.data_refused:
            c["unverified-at-data"] += self.data_refused
        return c

    def accepted(self) -> int:
        return sum(1 for r in self.recipients if r[1] is None)

    def line(self) -> str:
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.start)) \
            if self.start is not None else "-"
        length = f"{self.last - self.start:.1f}s" if self.start is not None else "-"
        refused = ",".join(f"{k}:{v}" for k, v in sorted(self.refusals().items())) or "0"
        return (f"{start} {length} {self.ip} sender={self.sender or '-'} "
                f"accepted={self.accepted()} refused={refused} messages={self.messages} "
                f"ended={self.ended}")


def summarise(lines, out) -> None:
    open_sessions: dict[bytes, Session] = {}
    done: list[Session] = []

    def close(s: Session) -> None:
        done.append(s)
        out.write(s.line() + "\n")

    for raw in lines:
        m = LINE.match(raw.rstrip(b"\n"))
        if not m:
            continue
        label, pid, ip, msg = m.groups()
        when = tai64n(label)
        s = open_sessions.get(pid)
        if msg == b"New session" or s is None:
            if s is not None:
                close(s)
            s = open_sessions[pid] = Session(ip.decode("ascii", "replace"), when)
        s.last = when if when is not None else s.last
        s.take(msg)
        if msg.startswith(b"Session ended: "):
            close(open_sessions.pop(pid))
    for s in open_sessions.values():
        close(s)

    totals = Counter()
    for s in done:
        totals["sessions"] += 1
        totals["messages accepted"] += s.messages
        totals["recipients accepted"] += s.accepted()
        for reason, n in s.refusals().items():
            totals[f"refused: {reason}"] += n
        totals[f"ended: {s.ended}"] += 1
    out.write("\n")
    for key in sorted(totals, key=lambda k: (k.split(":")[0] not in
                                             ("sessions", "messages accepted",
                                              "recipients accepted"), k)):
        out.write(f"{key:<40} {totals[key]:>8}\n")


def main() -> int:
    try:
        summarise(sys.stdin.buffer, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        return 0
    return 0
