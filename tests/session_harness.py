"""A pump in process for the session core's tests: the fuzz harness's
SessionPump (the pure Session wired to the qmail-smtpd model) with
qmail-verify's verdicts scripted per address, so that a test can cut the
bytes and order the events as it likes and read back what each side
saw: what reached qmail-smtpd, the addresses asked about, the holds."""

from qmailverify.protocol.client import Answer
from qmailverify.protocol.verifyenv import ENFORCE, parse_verify
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.shim.commands import Policy
from qmailverify.testing.fuzz.sessionpump import SessionPump
from qmailverify.testing.smtpd import ME, OWN_IPS, QmailSmtpd, Rcpthosts


class Harness(SessionPump):
    """Session + QmailSmtpd + a scripted qmail-verify, and what came out."""

    def __init__(self, verify=":", relayclient=False, verdicts=None, rcpthosts=None, ipme=None,
                 rollout=ENFORCE, harvest=None, refusals=0, notes=()):
        self.verdicts = verdicts or {}
        policy = Policy(b"P: ", parse_verify(verify), relayclient=relayclient,
                        rcpthosts=rcpthosts or Rcpthosts(), localiphost=ME,
                        ipme=ipme or (lambda ip: ip in OWN_IPS), rollout=rollout,
                        harvest=harvest, ip=b"192.0.2.9", notes=notes)
        super().__init__(policy, QmailSmtpd(relayclient=relayclient))
        self.server, self.asked = bytearray(), []
        self.refusals = refusals                  # the daemon's count for this IP
        self.holds = []                           # the holds asked for, in seconds
        self.s.start()
        self.collect()

    def collect(self) -> None:
        s = self.s
        s.wants_input()                  # the pump asks this every turn
        if s.hold is not None:
            self.holds.append(s.hold)
            s.hold = None
        if s.ask is not None:
            self.asked.append(s.ask)
        self.server += s.to_server
        super().collect()

    def answer(self) -> None:
        q, self.question = self.question, None
        code = self.verdicts.get(q, DELIVERABLE)
        self.refusals += code == UNDELIVERABLE
        counted = self.refusals if self.s.policy.ip else None
        if self.s.checking and self.s.checking[1] == q:
            self.s.answer(Answer(code, reason="scripted", remote=True, refusals=counted)
                          if code != "timeout" else Answer(TEMPORARY, timeout=True))

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
