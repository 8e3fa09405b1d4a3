"""One SMTP session as qmail-logmsg logged it, for qmail-logmsg -s
(summary.py, which finds the sessions in the log and writes the totals).

A LoggedSession takes its session's lines one at a time and keeps what
the summary line needs: the sender, each recipient and why it was
refused, the counts; then it writes that line.  The fields and their
encoding are described once, in summary.py's docstring.
"""

import re
import time
from collections import Counter

RECIPIENT = re.compile(rb"^Recipient <(.*)>$")
REFUSED = re.compile(rb"^Recipient <(.*)> refused: (\d{3})(.*)")
CONTROLS = re.compile(rb"^(?:421 )?unable to read controls")
# The shim's own refusal of the recipient it logged last, by message start
# (the C patch's words start the first two, the address follows them).
SHIM_REFUSAL = ((b"Unverified mailbox at RCPT time (soft", "soft"),
                (b"Unverified mailbox at RCPT time", "unverified"),
                (b"Temporary failure at RCPT time (", "qv-temp"),
                (b"Harvest limit: ", "harvest-421"),
                (b"Timeout (no response", "qv-451"), (b"temporary failure (", "qv-451"),
                (b"setup failure (", "qv-setup"))
# Counted per session (the field, then the start of the lines it counts).
TALLIES = (("soft_data", b"Unverified mailbox(es) at DATA time (soft"),
           ("would_refuse", b"Would refuse <"), ("would_defer", b"Would defer <"),
           ("delayed", b"Delaying RCPT reply "), ("harvest_421", b"Harvest limit: "))
# The 554 to DATA in deferred mode: the C patch's words, alone in its log
# and in older logs of ours, followed by ': <ADDRESS>' now.
DATA_REFUSAL = b"Unverified mailbox(es) at DATA time"
KEEP = frozenset(range(33, 127)) - frozenset(b"%,=:<>")


def encode(value: bytes) -> str:
    """value as one field element: no space, comma, '=' or ':' (summary.py's Encoding)."""
    if not value:
        return "<>"
    if value == b"-":
        return "%2D"
    return "".join(chr(b) if b in KEEP else f"%{b:02X}" for b in value)


def counts(c: Counter) -> str:
    return ",".join(f"{k}:{n}" for k, n in sorted(c.items())) or "-"


class LoggedSession:
    """One session's record, from its log lines."""

    def __init__(self, pid: bytes, ip: bytes, when: float | None, newsession: bool):
        self.pid, self.ip, self.newsession = pid, ip, newsession
        self.start = self.last = when
        self.sender = None
        self.recipients: list[list] = []      # [address, refusal reason or None]
        self.current = None                   # the recipient the shim is deciding
        self.refused_data = self.messages = self.controls = 0
        self.tallies = Counter()
        self.ended = None

    def refuse(self, entry: list | None, reason: str) -> None:
        if entry is not None and entry[1] is None:
            entry[1] = reason
        self.current = None

    def take(self, when: float | None, msg: bytes) -> None:
        if when is not None:
            self.last = when
            if self.start is None:
                self.start = when
        if msg.startswith(b"Session ended: "):
            self.ended = msg[15:]
            if b"unable to read controls" in self.ended:
                self.controls = 1
        elif m := REFUSED.match(msg):
            code, text = m.group(2).decode(), m.group(3)
            if code == "421" and text.startswith(b" unable to read controls"):
                code, self.controls = "controls-421", 1
            entry = next((r for r in reversed(self.recipients)
                          if r[1] is None and r[0] == m.group(1)), None)
            if entry is not None:
                entry[1] = code
        elif m := RECIPIENT.match(msg):
            self.current = [m.group(1), None]
            self.recipients.append(self.current)
        elif CONTROLS.match(msg):
            self.controls = 1
            self.refuse(self.current, "controls-421")
        elif msg.startswith(b"Sender <") and msg.endswith(b">"):
            self.sender, self.current = msg[8:-1], None
        elif msg == DATA_REFUSAL or msg.startswith(DATA_REFUSAL + b": "):
            self.refused_data += 1
        elif msg.startswith(b"Message accepted"):
            self.messages += 1
        else:
            for name, start in TALLIES:
                if msg.startswith(start):
                    self.tallies[name] += 1
            for start, reason in SHIM_REFUSAL:
                if msg.startswith(start):
                    self.refuse(self.current, reason)
                    break

    def refused(self) -> list[list]:
        return [r for r in self.recipients if r[1]]

    def line(self) -> str:
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start)) \
            if self.start is not None else "-"
        length = f"{self.last - self.start:.1f}" if self.start is not None else "-"
        refused = self.refused()
        rcpts = ",".join(encode(r[0]) for r in refused) or "-"
        sender = "-" if self.sender is None else encode(self.sender)
        return (f"session start={start} length={length} pid={self.pid.decode()} "
                f"ip={self.ip.decode('ascii', 'replace')} newsession={'yes' if self.newsession else 'no'} "
                f"sender={sender} accepted={len(self.recipients) - len(refused)} "
                f"refused={len(refused)} refused_rcpts={rcpts} "
                f"reasons={counts(Counter(r[1] for r in refused))} "
                f"refused_data={self.refused_data} messages={self.messages} "
                f"controls_421={self.controls} {self.tally_fields()} ended={self.ending()}")

    def tally_fields(self) -> str:
        return " ".join(f"{name}={self.tallies[name]}" for name, _ in TALLIES)

    def ending(self) -> str:
        return "open" if self.ended is None else encode(self.ended)
