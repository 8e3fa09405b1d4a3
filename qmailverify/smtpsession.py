"""qmail-logmsg's SMTP session: a pure state machine, no descriptors.

Events in: client_data(bytes), client_end() (input ended), client_gone()
(output failed), server_data(bytes) (qmail-smtpd's output), server_end(),
answer(Answer) (to the address in .ask).  Actions out, taken and cleared
by the relay: .to_server, .to_client, .logs (whole lines), .ask (an
address to verify), .close_input (close qmail-smtpd's input once
.to_server is written), .phase == DONE (end once .to_client is written).

THE INVARIANT: every command the client sent is decided by the same rules
whatever way its bytes arrived: one byte at a time, all at once,
pipelined in any grouping, with the client's side closed right after the
last byte, or with the connection dropped.  So: commands are taken one at
a time, and the next only when qmail-smtpd has answered the one before
(its reply, not the command, changes the transaction: smtpview.py) and
qmail-verify has answered for a RCPT.  When the client's input ends, the
commands already received are still taken in order, each through its
checks, before qmail-smtpd sees the end of its input; a last line without
its newline is dropped (qmail-smtpd would never execute it).  Nothing
reaches qmail-smtpd that has not been through the checks: when the
session must end before a command is decided (qmail-smtpd exits; no
answer from qmail-verify: 451), that command and all after it are dropped.

Phases, and what the end of the client's input does in each:
  REPLY     a command is with qmail-smtpd, its reply owed: wait for it
  READY     take the next line: a command (COMMANDS), or an AUTH response
            line in AUTHLINE; input ended and no whole line left: drop the
            rest, close qmail-smtpd's input (CLOSING)
  CHECK     a RCPT waits for qmail-verify: wait for the answer
  BODY      relay the DATA body up to CR LF . CR LF; input ended inside
            it: close qmail-smtpd's input (it queues nothing)
  OPAQUE    after STARTTLS, relay raw bytes both ways; ended: close
  CLOSING   no more client input is taken (after QUIT, a 421, our own 451,
            a dropped client); waiting for qmail-smtpd to exit
  DONE      qmail-smtpd has exited: the session ends once the client has
            what it is owed; later client bytes are dropped
qmail-smtpd exiting (server_end) moves any phase to DONE.
"""

from .clean import visible
from .smtp import BodyEnd, ReplyReader, split_command
from .smtpcommands import (AUTHLINE, BODY, CHECK, CLOSING, COMMANDS, DONE, OPAQUE, R451, R550,
                           READY, REPLY, Commands, Policy)
from .smtpview import COMMAND, EXIT, TIMEOUT, View, exits
from .wire import DELIVERABLE, UNDELIVERABLE

HIGH_WATER = 1 << 20

class Session(Commands):
    def __init__(self, policy: Policy):
        self.policy = policy
        self.view = View()
        self.phase, self.owed = REPLY, ("greeting", None)
        self.inbuf, self.scanned = bytearray(), 0
        self.replies, self.body = ReplyReader(), None
        self.checking = None                      # (line, addr) of the RCPT being verified
        self.client_ended = False
        self.ending = None                        # why the session ends, once known
        self.to_server, self.to_client, self.logs = bytearray(), bytearray(), []
        self.ask, self.close_input = None, False

    # -- events ----------------------------------------------------------
    def start(self) -> None:
        if self.policy.mode and self.policy.mode.note:
            self.log(self.policy.mode.note.encode())
        self.log(b"New session")

    def client_data(self, data: bytes) -> None:
        if self.phase not in (CLOSING, DONE):
            self.inbuf += data
            self.advance()

    def client_end(self) -> None:
        self.client_ended = True
        self.advance()

    def client_gone(self) -> None:
        self.client_ended = True
        self.to_client.clear()
        self.stop_input("dropped by the client")

    def server_data(self, data: bytes) -> None:
        if self.view.opaque:
            self.to_client += data
            return
        for reply in self.replies.feed(data):
            self.reply(reply)
            if self.view.opaque:                  # the rest is TLS
                self.to_client += self.replies.buf
                self.replies.buf = b""
                break
        self.advance()

    def server_end(self) -> None:
        if self.phase == DONE:
            return
        self.to_client += self.replies.buf        # a reply cut short, as it came
        self.replies.buf = b""
        self.phase, self.checking, self.ask = DONE, None, None
        self.inbuf.clear()
        self.to_server.clear()
        self.log(b"Session ended: " + (self.ending or "ended by qmail-smtpd").encode())

    def answer(self, answer) -> None:
        if self.phase != CHECK:                   # too late: the session is ending
            return
        (line, addr), self.checking = self.checking, None
        self.phase = READY
        if answer.code == DELIVERABLE:
            self.forward(line, "rcpt", (addr, False))
        elif answer.code == UNDELIVERABLE and self.policy.deferred:
            self.forward(line, "rcpt", (addr, True))
        elif answer.code == UNDELIVERABLE:
            self.log(b"Unverified mailbox at RCPT time")
            self.to_client += R550
        else:
            # the reason came over the network: no control byte reaches the log
            self.fail(R451, visible(answer.log_message().encode("utf-8", "replace")),
                      "verification failure")
        self.advance()

    # -- what the relay asks ---------------------------------------------
    def wants_input(self) -> bool:
        """False while enough client input waits to be decided."""
        if self.phase in (CLOSING, DONE) or self.client_ended:
            return False
        if len(self.inbuf) < HIGH_WATER or self.phase in (BODY, OPAQUE):
            return True
        nl = self.inbuf.find(b"\n", self.scanned)  # a long line is read whole
        if nl < 0:
            self.scanned = len(self.inbuf)
        return nl < 0

    # -- the client's side -----------------------------------------------
    def advance(self) -> None:
        while self.phase in (READY, AUTHLINE, BODY, OPAQUE):
            if self.phase == BODY or self.phase == OPAQUE:
                end = self.body.feed(self.inbuf) if self.phase == BODY else -1
                if end < 0:
                    self.to_server += self.inbuf
                    self.inbuf.clear()
                    if self.client_ended:
                        self.stop_input("dropped by the client")
                    return
                self.forward(bytes(self.inbuf[:end]), "message", None)
                del self.inbuf[:end]
                continue
            nl = self.inbuf.find(b"\n", self.scanned)
            if nl < 0:
                self.scanned = len(self.inbuf)
                if self.client_ended:             # a line without its newline never runs
                    self.stop_input("dropped by the client")
                return
            line = bytes(self.inbuf[:nl + 1])
            del self.inbuf[:nl + 1]
            self.scanned = 0
            if self.phase == AUTHLINE:
                self.forward(line, "auth", None)
            else:
                verb, arg = split_command(line)
                COMMANDS.get(verb, Commands.smtp_other)(self, line, arg)

    def forward(self, line: bytes, kind: str, arg) -> None:
        self.to_server += line
        self.phase, self.owed = REPLY, (kind, arg)

    def fail(self, reply: bytes, message: bytes, why: str) -> None:
        self.log(message)
        self.to_client += reply
        self.stop_input(why)

    def stop_input(self, why: str) -> None:
        """Take no more client input; why the session ends, if not yet known."""
        self.ending = self.ending or why
        if self.phase != DONE:
            self.phase = CLOSING
        self.inbuf.clear()
        self.scanned = 0
        self.checking, self.ask, self.close_input = None, None, True

    def log(self, message: bytes) -> None:
        self.logs.append(self.policy.prefix + message + b"\n")

    # -- qmail-smtpd's side ------------------------------------------------
    def reply(self, reply: bytes) -> None:
        self.to_client += reply
        why = "timeout" if reply.startswith(TIMEOUT) else "ended by qmail-smtpd"
        if self.phase != REPLY:                   # unasked: its timeout, say
            if exits(reply) and self.phase != DONE:
                self.stop_input(why)
            return
        (kind, arg), self.owed = self.owed, None
        after, messages = self.view.replied(kind, arg, reply)
        for message in messages:
            self.log(message)
        if after == EXIT:
            self.stop_input("QUIT" if kind == "quit" else why)
        else:
            self.phase = READY if after == COMMAND else after
            if after == BODY:
                self.body = BodyEnd()
