"""The shim's session core under the fuzzer: the runner's "session"
target.  The session is pure, so a million inputs can each play a whole
SMTP conversation through it in process, against the qmail-smtpd model
(qmailverify.testing.smtpd) as the judge of what reaches qmail-smtpd.

check_session(data, world) runs one input through the pure Session
(qmailverify.shim.session) against the model and a scripted
qmail-verify, as the pump could deliver the events:

  data[0]   the policy: VERIFY ":" / "DEFER" / unset / "" / unparsable
            (a setup failure), and RELAYCLIENT (one time in four)
  data[1]   faults: this host's IPs cannot be found, rcpthosts cannot be
            read, qmail-smtpd greets with 421
  data[2:]  what the client sends; BIG stands for a line over the
            session's high-water mark (1 MiB of spaces)

Everything else comes from random.Random(data), so a run is the same for
the same input: where the client's bytes are cut, whether and when it
half-closes or drops the connection, how qmail-smtpd's output is cut,
qmail-verify's answer to each address (deliverable, not, temporary with
a reason full of control bytes, or no answer at all: the pump's
timeout), and whether and when qmail-smtpd dies (killed, or its own
"451 timeout").

The properties (an AssertionError names the one broken):
  - no exception escapes the session;
  - every log line is the session's prefix and printable ASCII;
  - nothing reaches qmail-smtpd unchecked: every RCPT the model of
    qmail-smtpd accepts while checks apply (VERIFY enabled or unparsable,
    no RELAYCLIENT, no AUTH, a transaction open, an address rcpthosts
    allows) was answered deliverable by qmail-verify just before, for
    that address; or, in deferred mode, not deliverable (the transaction
    is then marked failed) or in a transaction already failed; and a
    DATA never reaches qmail-smtpd in a failed transaction;
  - nothing is forwarded once the session must end (qmail-smtpd's input
    closed, or the session done);
  - the client sees a message accepted exactly as often as qmail-smtpd
    queued one (never a 250 for a message qmail-smtpd did not take);
  - a session whose client ended its input always ends.

The model runs with AUTH PLAIN (accepted when the response holds "ok")
and STARTTLS (then it echoes raw bytes back) offered; it judges each
line by its own state, not by the session's, and tells the Run of each
MAIL, RCPT and DATA it takes.
"""

import random

from qmailverify.protocol.client import Answer, timeout_answer
from qmailverify.protocol.verifyenv import parse_verify
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.controlfile import ControlError
from qmailverify.shim.ipme import IpmeError
from qmailverify.shim.session import CHECK, DONE, HIGH_WATER, Policy
from qmailverify.testing.fuzz.sessionpump import SessionPump
from qmailverify.testing.smtpd import ACCEPTED, ME, OWN_IPS, QmailSmtpd, Rcpthosts

PREFIX = b"qmail-smtpd: pid 1 from 10.0.0.1: "
BIG = b"\xfe\xfeBIG"
MODES = (":", "DEFER", None, "", "setup")
HOSTILE_REASON = "unable to read \x07users/\x1b[2Jcdb\r\nfake: \ufffd\x7f<x>"
PRINTABLE = bytes(range(32, 127))


class Config:
    """What data[0] and data[1] pick."""

    def __init__(self, a: int, b: int):
        self.verify = MODES[a % len(MODES)]
        self.relayclient = (a >> 3) & 3 == 3
        self.ipme_fails = b % 8 == 1
        self.rcpthosts_fails = b % 8 == 2
        self.greet_421 = (b >> 3) % 8 == 1
        self.checks = self.verify == "setup" or bool(self.verify)
        self.deferred = self.verify == "DEFER"

    def policy(self) -> Policy:
        if self.verify == "setup":
            mode, error = None, "unable to parse VERIFY server '1.2.3': bad IP"
        else:
            mode, error = parse_verify(self.verify), None
        return Policy(PREFIX, mode, error, relayclient=self.relayclient,
                      rcpthosts=FailingRcpthosts() if self.rcpthosts_fails else Rcpthosts(),
                      localiphost=ME, ipme=ipme_failing if self.ipme_fails else OWN_IPS.__contains__)


class FailingRcpthosts:
    def allowed(self, addr):
        raise ControlError("unable to read control/morercpthosts.cdb: \x1b[2J i/o error")


def ipme_failing(ip):
    raise IpmeError("no such device")


class Run(SessionPump):
    """One input: the session, the model, the scripted qmail-verify and the
    schedule; the judge of what the model takes (mail, rcpt, data), with
    its findings in .violations."""

    def __init__(self, data: bytes):
        self.config = Config(data[0] if data else 0, data[1] if len(data) > 1 else 0)
        self.rng = random.Random(data)
        stream = data[2:].replace(BIG, b" " * (HIGH_WATER + 16))
        self.violations = []
        self.last_answer = None            # (address, code) qmail-verify gave last
        self.failed = False                # the transaction the model holds is failed
        super().__init__(self.config.policy(),
                         QmailSmtpd(relayclient=self.config.relayclient, auth=True, tls=True,
                                    unavailable=self.config.greet_421, judge=self))
        cuts = sorted({0, len(stream), *(self.rng.randrange(len(stream) + 1)
                                         for _ in range(self.rng.randrange(12)))})
        self.chunks = [stream[a:b] for a, b in zip(cuts, cuts[1:])]
        self.ending = self.rng.choices(("end", "gone", "idle"), (80, 8, 12))[0]
        self.kill_at = self.rng.randrange(1, 4 * len(self.chunks) + 40) \
            if self.rng.random() < 0.2 else None
        self.drop_at = self.rng.randrange(1, 4 * len(self.chunks) + 40) \
            if self.rng.random() < 0.05 else None

    def violation(self, what: str) -> None:
        self.violations.append(what)

    # -- the judge: the model tells it of each MAIL, RCPT and DATA it takes -----
    def mail(self) -> None:
        self.failed = False

    def rcpt(self, addr: bytes, relaying: bool) -> None:
        """A RCPT qmail-smtpd takes: if checks apply, was it checked?"""
        if not self.config.checks or relaying:
            return
        if self.config.rcpthosts_fails or self.config.verify == "setup":
            self.violation(f"RCPT {addr!r} reached qmail-smtpd without a check")
            return
        if self.config.deferred and self.failed:
            return                         # DATA will be refused anyway
        last, self.last_answer = self.last_answer, None
        if last == (addr, DELIVERABLE):
            return
        if self.config.deferred and last == (addr, UNDELIVERABLE):
            self.failed = True
            return
        self.violation(f"RCPT {addr!r} reached qmail-smtpd after qmail-verify's {last!r}")

    def data(self) -> None:
        if self.failed:
            self.violation("DATA reached qmail-smtpd in a failed transaction")

    # -- the pump's side --------------------------------------------------------
    def collect(self) -> None:
        s = self.s
        if s.to_server and (self.smtpd.eof or s.phase == DONE):
            self.violation(f"forwarded after the session ended: {bytes(s.to_server[:60])!r}")
        super().collect()

    def answer(self) -> None:
        q, self.question = self.question, None
        s = self.s
        if s.phase != CHECK or s.checking is None or s.checking[1] != q:
            return                         # the pump closed that query's socket
        pick = self.rng.random()
        if b"bad" in q or pick < 0.12:
            code = UNDELIVERABLE
        elif b"temp" in q or pick < 0.17:
            code = TEMPORARY
        elif b"slow" in q or pick < 0.22:
            code = "timeout"
        else:
            code = DELIVERABLE
        self.last_answer = (q, code)
        if code == "timeout":
            s.answer(timeout_answer())
        elif code == TEMPORARY:
            s.answer(Answer(TEMPORARY, reason=HOSTILE_REASON, position=6))
        else:
            s.answer(Answer(code, b"user", position=11))

    def moves(self, i: int, ended: bool) -> list[str]:
        found = super().moves()
        if not ended:
            if i < len(self.chunks):
                if self.s.wants_input():
                    found.append("client")
            elif self.ending != "idle":
                found.append("end")
        return found

    def go(self) -> "Run":
        s, rng, smtpd = self.s, self.rng, self.smtpd
        s.start()
        self.collect()
        i, ended, step = 0, False, 0
        while True:
            step += 1
            if step == self.kill_at and not smtpd.exited:
                smtpd.exited = True            # killed: what it wrote is still read
                if rng.random() < 0.5:
                    smtpd.out += b"451 timeout (#4.4.2)\r\n"
            if step == self.drop_at and not ended:
                s.client_gone()
                ended, self.ending = True, "gone"
                self.collect()
            options = self.moves(i, ended)
            if not options:
                break
            move = rng.choice(options)
            if move == "client":
                s.client_data(self.chunks[i])
                i += 1
                self.collect()
            elif move == "end":
                ended = True
                s.client_end() if self.ending == "end" else s.client_gone()
                self.collect()
            else:
                self.move(move, rng)
            if step > 100_000:
                self.violation("the session does not settle")
                break
        return self


def check_session(data: bytes, world=None) -> None:
    r = Run(data).go()
    assert not r.violations, r.violations
    for line in r.logs:
        assert line.startswith(PREFIX) and line.endswith(b"\n"), line
        assert not line[:-1].translate(None, PRINTABLE), f"raw control byte in log line {line!r}"
    accepted = bytes(r.client).count(ACCEPTED)
    if not r.smtpd.opaque:                 # after STARTTLS the client's bytes come back
        if r.ending == "gone":
            assert accepted <= len(r.smtpd.queued), (accepted, r.smtpd.queued)
        else:
            assert accepted == len(r.smtpd.queued), (accepted, r.smtpd.queued)
    if r.ending != "idle":
        assert r.s.phase == DONE and r.smtpd.exited, ("the session did not end", r.s.phase)


# -- seeds -------------------------------------------------------------------------

def rcpt(addr: bytes) -> bytes:
    return b"RCPT TO:<" + addr + b">\r\n"


GOOD, BAD = b"good@local.test", b"bad@local.test"
HELO_MAIL = b"HELO x\r\nMAIL FROM:<s@remote.test>\r\n"
BODY = b"DATA\r\nSubject: t\r\n\r\nhello\r\n..dot\r\n.\r\n"
SESSIONS = [
    HELO_MAIL + rcpt(GOOD) + BODY + b"QUIT\r\n",
    HELO_MAIL + rcpt(BAD) + rcpt(GOOD) + BODY + b"QUIT\r\n",
    HELO_MAIL + rcpt(b"temp@local.test") + rcpt(GOOD) + b"NOOP\r\n",
    HELO_MAIL + rcpt(b"slow@local.test") + rcpt(GOOD) + b"QUIT\r\n",
    b"EHLO y\r\nMAIL FROM:<>\r\n" + rcpt(b"x@remote.test") + rcpt(BAD) + BODY,
    HELO_MAIL + rcpt(b"bad@[127.0.0.1]") + rcpt(b"good@[0.0.0.0]") + rcpt(b"bad@[10.1.2.3]"),
    HELO_MAIL + b"RCPT TO:<" + b"x" * 1000 + b"@local.test>\r\n" + rcpt(BAD) + b"DATA\r\n",
    b"HELO x\r\n" + rcpt(BAD) + b"MAIL FROM:<" + b"y" * 950 + b">\r\n" + rcpt(BAD) + BODY,
    HELO_MAIL + rcpt(BAD) + b"RSET\r\n" + rcpt(GOOD) + b"MAIL FROM:<a@b>\r\n" + rcpt(GOOD) + BODY,
    HELO_MAIL + b"DATA\r\n" + rcpt(BAD) + rcpt(GOOD) + BODY + HELO_MAIL + rcpt(BAD) + BODY,
    b"EHLO x\r\nAUTH PLAIN\r\nok\r\nMAIL FROM:<a@b>\r\n" + rcpt(BAD) + BODY,
    b"EHLO x\r\nAUTH PLAIN no\r\nMAIL FROM:<a@b>\r\n" + rcpt(BAD) + rcpt(GOOD) + BODY,
    b"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01 tls" + rcpt(BAD) + b"\x00\xff",
    HELO_MAIL + rcpt(GOOD) + b"DATA\r\nbare\nlf\r\n.\r\n" + rcpt(BAD),
    HELO_MAIL + b"RCPT TO:<b\0ad@local.test>\r\nrcpt to:<BAD@LOCAL.TEST>\r\n"
    b"RCPT TO: bad@local.test\r\nRCPT TO:<\"bad\"@local.test>\r\nRCPT TO:<@r:bad@local.test>\r\n",
    HELO_MAIL + b"RCPT TO:<bad@local.test\r\n>\n" + rcpt(GOOD) + b"VRFY bad\r\n\r\n\n",
    HELO_MAIL + rcpt(GOOD) + b"RCPT TO:<" + BIG + BAD + b">\r\n" + BODY,
    HELO_MAIL + rcpt(GOOD) + b"DATA\r\n" + BIG + b"\r\n.\r\nQUIT\r\n",
    HELO_MAIL + rcpt(GOOD) + rcpt(GOOD),              # no newline at the end: never runs
    b"\0\r\n\x1b[2J\r\n" + HELO_MAIL + rcpt(b"g\x1bood@local.test") + b"QUIT\r\nRCPT TO:<a>\r\n",
]
SMTP_TOKENS = [
    b"\r\n", b"\n", b"\r", b"\0", b" ", b"<", b">", b":", b"@", b"\"", b"\\", b".", b"\r\n.\r\n",
    b"HELO x\r\n", b"EHLO y\r\n", b"MAIL FROM:<s@remote.test>\r\n", b"MAIL FROM:<>\r\n",
    b"RCPT TO:<", b"rcpt to:", b"DATA\r\n", b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n", b"VRFY x\r\n",
    b"AUTH PLAIN\r\n", b"AUTH PLAIN ok\r\n", b"ok\r\n", b"STARTTLS\r\n", b"good@local.test",
    b"bad@local.test", b"temp@local.test", b"slow@local.test", b"x@remote.test", b"@local.test",
    b"@[127.0.0.1]", b"@[10.0.0.1]", b"@[0.0.0.256]", b"@r.test:", b"\xff", b"\x1b[2J", b"\x7f",
    rcpt(GOOD), rcpt(BAD), BIG,
]
CONFIGS = [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (24, 0), (25, 0), (0, 1), (0, 2), (1, 2),
           (0, 8), (1, 8)]


def session_seeds() -> list[bytes]:
    """Every seed session under a few policies, and all of them under all."""
    out = []
    for n, session in enumerate(SESSIONS):
        for a, b in (CONFIGS[n % len(CONFIGS)], (0, 0), (1, 0)):
            out.append(bytes([a, b]) + session)
    return out + [bytes(c) + SESSIONS[0] for c in CONFIGS]
