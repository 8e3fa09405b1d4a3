"""The shim's pure Session (qmailverify.shim.session) wired to the
qmail-smtpd model (qmailverify.testing.smtpd) in process, with the pump's
part played by hand: what the session writes is collected and carried
where the real pump would carry it, and the events from qmail-smtpd's
side and qmail-verify's are delivered one at a time, in whatever order
the caller picks among those a real pump could see next.

The session's tests (tests/session_harness.py) and the fuzzer's session
target (session.py) both drive the session this way; one pump for both
means the tests and the fuzzer exercise the session alike, and a change
to how the pump delivers events reaches both.  What qmail-verify answers
is the user's to script (answer()), as is the client's side."""

import random

from qmailverify.shim.session import DONE, Policy, Session
from qmailverify.testing.smtpd import QmailSmtpd


class SessionPump:
    """A Session and a QmailSmtpd, and what came out of the session:
    .client (its bytes to the client), .logs, .question (the address it
    asks qmail-verify about, until answered)."""

    def __init__(self, policy: Policy, smtpd: QmailSmtpd):
        self.s = Session(policy)
        self.smtpd = smtpd
        self.client, self.logs = bytearray(), []
        self.question = None

    def collect(self) -> None:
        """Carry what the session wrote: to the client, to the log, to
        qmail-verify, to qmail-smtpd (whose input it may close)."""
        s = self.s
        self.client += s.to_client
        s.to_client.clear()
        self.logs += s.logs
        s.logs.clear()
        if s.ask is not None:
            self.question, s.ask = s.ask, None
        if s.to_server:
            if not self.smtpd.exited:
                self.smtpd.feed(bytes(s.to_server))
            s.to_server.clear()
        if s.close_input and not self.smtpd.eof:
            self.smtpd.end()

    def moves(self) -> list[str]:
        """What could happen next besides the client's moves, as the pump
        would see it."""
        found = []
        if self.smtpd.out:
            found.append("server")
        elif self.smtpd.exited and self.s.phase != DONE:
            found.append("server_end")
        if self.question is not None:
            found.append("answer")
        if self.s.held:
            found.append("release")
        return found

    def move(self, what: str, rng: random.Random | None = None) -> None:
        """Make one of moves() happen; with rng, qmail-smtpd's output
        arrives cut where rng says, else all of it at once."""
        if what == "server":
            n = rng.randint(1, len(self.smtpd.out)) if rng else len(self.smtpd.out)
            data = bytes(self.smtpd.out[:n])
            del self.smtpd.out[:n]
            self.s.server_data(data)
        elif what == "server_end":
            self.s.server_end()
        elif what == "release":
            self.s.release()
        elif what == "answer":
            self.answer()
        self.collect()

    def answer(self) -> None:
        """qmail-verify's answer to .question, given to the session (or
        not, as the pump drops a query whose socket it closed)."""
        raise NotImplementedError
