"""In-process stand-ins for the session core's tests: a tiny model of an
unpatched qmail-smtpd (its replies and state exactly as qmail-smtpd.c
gives them, per the facts in the task notes), and a Harness that wires
it, a scripted qmail-verify and the pure Session together, delivering
events in any order a real relay could."""

import random

from qmail_addr import fits, parse_path

from qmailverify.protocol.client import Answer
from qmailverify.protocol.verifyenv import ENFORCE, parse_verify
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.shim.commands import DONE, Policy
from qmailverify.shim.session import Session

ME = b"local.test"
OWN_IPS = {bytes([127, 0, 0, 1]), bytes(4)}


class Exit(Exception):
    pass


def addrparse(arg: bytes, rewrite: bool = True) -> bytes | None:
    """qmail-smtpd's addrparse, written out again for the model."""
    out = parse_path(arg)
    at = out.rfind(b"@")
    if rewrite and at >= 0:
        host = bytes(out[at + 1:])
        parts = host[1:-1].split(b".")
        if (host[:1], host[-1:]) == (b"[", b"]") and len(parts) == 4 \
                and all(p.isdigit() for p in parts) \
                and bytes(int(p) % 256 for p in parts) in OWN_IPS:
            out = out[:at + 1] + ME
    return fits(out)


class QmailSmtpd:
    """Feed it bytes; it answers in .out as qmail-smtpd would; .exited."""

    def __init__(self, rcpthosts=(b"local.test",), relayclient=False):
        self.rcpthosts, self.relayclient = rcpthosts, relayclient
        self.buf, self.eof, self.exited = bytearray(), False, False
        self.out, self.queued = bytearray(), []
        self.run = self.main()
        self.step()

    def feed(self, data: bytes) -> None:
        self.buf += data
        self.step()

    def end(self) -> None:
        self.eof = True
        self.step()

    def step(self) -> None:
        if not self.exited:
            try:
                next(self.run)
            except (Exit, StopIteration):
                self.exited = True

    def getline(self):
        while b"\n" not in self.buf:
            if self.eof:
                raise Exit
            yield
        i = self.buf.index(b"\n") + 1
        line = bytes(self.buf[:i])
        del self.buf[:i]
        return line

    def getch(self):
        while not self.buf:
            if self.eof:
                raise Exit
            yield
        ch = self.buf[0]
        del self.buf[0]
        return ch

    def main(self):
        self.out += b"220 " + ME + b" ESMTP\r\n"
        seenmail, rcpts = False, []
        while True:
            line = (yield from self.getline())[:-1]
            line = line[:-1] if line.endswith(b"\r") else line
            line = line.split(b"\0")[0]
            verb, _, arg = line.partition(b" ")
            verb, arg = verb.upper(), arg.lstrip(b" ")
            if verb in (b"HELO", b"EHLO"):
                seenmail = False
                self.out += b"250 " + ME + b"\r\n" if verb == b"HELO" else \
                    b"250-" + ME + b"\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            elif verb == b"RSET":
                seenmail = False
                self.out += b"250 flushed\r\n"
            elif verb == b"MAIL":
                if addrparse(arg) is None:
                    self.out += b"555 syntax error (#5.5.4)\r\n"
                else:
                    seenmail, rcpts = True, []
                    self.out += b"250 ok\r\n"
            elif verb == b"RCPT":
                addr = addrparse(arg)
                if not seenmail:
                    self.out += b"503 MAIL first (#5.5.1)\r\n"
                elif addr is None:
                    self.out += b"555 syntax error (#5.5.4)\r\n"
                elif not self.relayclient and b"@" in addr and \
                        addr.rsplit(b"@", 1)[1].lower() not in self.rcpthosts:
                    self.out += (b"553 sorry, that domain isn't in my list of allowed "
                                 b"rcpthosts (#5.7.1)\r\n")
                else:
                    rcpts.append(addr)
                    self.out += b"250 ok\r\n"
            elif verb == b"DATA":
                if not seenmail:
                    self.out += b"503 MAIL first (#5.5.1)\r\n"
                elif not rcpts:
                    self.out += b"503 RCPT first (#5.5.1)\r\n"
                else:
                    seenmail = False
                    self.out += b"354 go ahead\r\n"
                    body = yield from self.blast()
                    self.queued.append((tuple(rcpts), body))
                    self.out += b"250 ok 1764000000 qp 4242\r\n"
            elif verb == b"QUIT":
                self.out += b"221 " + ME + b"\r\n"
                return
            elif verb == b"NOOP":
                self.out += b"250 ok\r\n"
            else:
                self.out += b"502 unimplemented (#5.5.1)\r\n"

    def blast(self):
        seen, body = b"\r\n", bytearray()
        while True:
            ch = yield from self.getch()
            if ch == 0x0A and seen[-1:] != b"\r":
                self.out += b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
                raise Exit
            body.append(ch)
            seen = (seen + bytes([ch]))[-5:]
            if seen == b"\r\n.\r\n":
                return bytes(body)


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
        s.wants_input()                  # the relay asks this every turn
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
        """What could happen next, as a relay would see it."""
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


class Rcpthosts:
    def __init__(self, hosts=(b"local.test",)):
        self.hosts = hosts

    def allowed(self, addr: bytes) -> bool:
        return b"@" not in addr or addr.rsplit(b"@", 1)[1].lower() in self.hosts


__all__ = ["QmailSmtpd", "Harness", "Rcpthosts", "DELIVERABLE", "UNDELIVERABLE", "TEMPORARY"]
