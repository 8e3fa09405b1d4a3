"""A pump in process for the session core's tests: the pure Session, the
qmail-smtpd model (qmailverify.testing.smtpd) and a scripted
qmail-verify wired together, delivering events in any order a real
pump could, so that a test can cut the bytes and order the events as it
likes and read back what each side saw."""

import random

from qmailverify.protocol.client import Answer
from qmailverify.protocol.verifyenv import ENFORCE, parse_verify
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.shim.commands import DONE, Policy
from qmailverify.shim.session import Session
from qmailverify.testing.smtpd import ME, OWN_IPS, QmailSmtpd, Rcpthosts


class Harness:
    """Session + QmailSmtpd + a scripted qmail-verify, and what came out."""

    def __init__(self, verify=":", relayclient=False, verdicts=None, rcpthosts=None, ipme=None,
                 rollout=ENFORCE, harvest=None, refusals=0, notes=()):
        self.smtpd = QmailSmtpd(relayclient=relayclient)
        self.verdicts = verdicts or {}
        policy = Policy(b"P: ", parse_verify(verify), relayclient=relayclient,
                        rcpthosts=rcpthosts or Rcpthosts(), localiphost=ME,
                        ipme=ipme or (lambda ip: ip in OWN_IPS), rollout=rollout,
                        harvest=harvest, ip=b"192.0.2.9", notes=notes)
        self.s = Session(policy)
        self.client, self.server, self.logs, self.asked = bytearray(), bytearray(), [], []
        self.question = None
        self.refusals = refusals                  # the daemon's count for this IP
        self.holds = []                           # the holds asked for, in seconds
        self.s.start()
        self.collect()

    def collect(self) -> None:
        s = self.s
        s.wants_input()                  # the pump asks this every turn
        self.client += s.to_client
        s.to_client.clear()
        self.logs += s.logs
        s.logs.clear()
        if s.hold is not None:
            self.holds.append(s.hold)
            s.hold = None
        if s.ask is not None:
            self.question, s.ask = s.ask, None
            self.asked.append(self.question)
        if s.to_server:
            self.server += s.to_server
            if not self.smtpd.exited:
                self.smtpd.feed(bytes(s.to_server))
            s.to_server.clear()
        if s.close_input and not self.smtpd.eof:
            self.smtpd.end()

    def moves(self) -> list[str]:
        """What could happen next, as the pump would see it."""
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
            q, self.question = self.question, None
            code = self.verdicts.get(q, DELIVERABLE)
            self.refusals += code == UNDELIVERABLE
            counted = self.refusals if self.s.policy.ip else None
            if self.s.checking and self.s.checking[1] == q:
                self.s.answer(Answer(code, reason="scripted", remote=True, refusals=counted)
                              if code != "timeout" else Answer(TEMPORARY, timeout=True))
        self.collect()

    def settle(self) -> None:
        while self.moves():
            self.move(self.moves()[0])

    def send(self, data: bytes) -> None:
        self.s.client_data(data)
        self.collect()

    def end(self) -> None:
        self.s.client_end()
        self.collect()

    def result(self):
        return bytes(self.client), bytes(self.server), list(self.logs)
