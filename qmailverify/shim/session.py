"""qmail-logmsg's SMTP session: a pure state machine, no descriptors.

Events in: client_data(bytes), client_end() (input ended), client_gone()
(output failed), server_data(bytes) (qmail-smtpd's output), server_end(),
answer(Answer) (to the address in .ask).  Actions out, taken and cleared
by the pump: .to_server, .to_client, .logs (whole lines), .ask (an
address to verify), .close_input (close qmail-smtpd's input once
.to_server is written), .hold (seconds: write nothing more to the client
for that long, then send the event release()), .phase == DONE (end once
.to_client is written).

A hold (harvest limits, commands.py) pauses the session: no command
is taken until release(); the clock stays with the pump, so a hold
changes when replies go out, never what they say.

THE INVARIANT: every command the client sent is decided by the same rules
whatever way its bytes arrived: one byte at a time, all at once,
pipelined in any grouping, with the client's side closed right after the
last byte, or with the connection dropped.  So: commands are taken one at
a time, and the next only when qmail-smtpd has answered the one before
(its reply, not the command, changes the transaction: view.py) and
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
  BODY      pass the DATA body on up to CR LF . CR LF; input ended inside
            it: close qmail-smtpd's input (it queues nothing)
  OPAQUE    after STARTTLS, pass raw bytes both ways; ended: close
  CLOSING   no more client input is taken (after QUIT, a 421, our own 451,
            a dropped client); waiting for qmail-smtpd to exit
  DONE      qmail-smtpd has exited: the session ends once the client has
            what it is owed; later client bytes are dropped
qmail-smtpd exiting (server_end) moves any phase to DONE.
"""

from qmailverify.shim.commands import (
    CHECK,
    CLOSING,
    COMMANDS,
    DONE,
    R451,
    READY,
    REPLY,
    Commands,
    Policy,
)
from qmailverify.shim.smtp import BodyEnd, ReplyReader, split_command
from qmailverify.shim.view import (
    AUTHLINE,
    BODY,
    COMMAND,
    EXIT,
    OPAQUE,
    TIMEOUT_REPLY,
    View,
    exits,
)

HIGH_WATER = 1 << 20     # a buffer this full is not read into (here, and by the pump)

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
        self.hold, self.held = None, False        # .hold: an action; .held: until release()

    # -- events ----------------------------------------------------------
    def start(self) -> None:
        if self.policy.mode and self.policy.mode.note:
            self.log(self.policy.mode.note.encode())
        for note in self.policy.notes:
            self.log(note.encode("utf-8", "replace"))
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
        self.consume(len(self.inbuf))
        self.to_server.clear()
        self.log(b"Session ended: " + (self.ending or "ended by qmail-smtpd").encode())

    def answer(self, answer) -> None:
        if self.phase != CHECK:                   # too late: the session is ending
            return
        (line, addr), self.checking = self.checking, None
        self.phase = READY
        self.rcpt_answered(line, addr, answer)
        self.advance()

    def release(self) -> None:
        """The hold asked for has passed."""
        self.held = False
        self.advance()

    def hold_for(self, seconds: float, refusals: int) -> None:
        self.log(b"Delaying RCPT reply %gs (%d refused recipients from this IP)"
                 % (seconds, refusals))
        self.hold, self.held = seconds, True

    # -- what the pump asks ----------------------------------------------
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
        while self.phase in (READY, AUTHLINE, BODY, OPAQUE) and not self.held:
            if self.phase == BODY or self.phase == OPAQUE:
                end = self.body.feed(self.inbuf) if self.phase == BODY else -1
                if end < 0:                       # all of it is body: hand it over
                    self.pass_through()
                    if self.client_ended:
                        self.stop_input("dropped by the client")
                    return
                self.forward(self.consume(end), "message", None)
                continue
            nl = self.inbuf.find(b"\n", self.scanned)
            if nl < 0:
                self.scanned = len(self.inbuf)
                if self.client_ended:             # a line without its newline never runs
                    self.stop_input("dropped by the client")
                return
            line = self.consume(nl + 1)
            if line.find(b"\n") != nl:          # never: one line, one command
                self.fail(R451, b"internal error: a command line held a newline", "internal error")
                return
            if self.phase == AUTHLINE:
                self.forward(line, "auth", None)
            else:
                verb, arg = split_command(line)
                COMMANDS.get(verb, Commands.smtp_other)(self, line, arg)

    def consume(self, n: int) -> bytes:
        """Take n bytes from the front of the client's input.  The only
        way input leaves inbuf: what was scanned for a newline is scanned
        again from the new front (a stale offset would merge lines)."""
        taken = bytes(self.inbuf[:n])
        del self.inbuf[:n]
        self.scanned = 0
        return taken

    def pass_through(self) -> None:
        """All of the client's input goes on to qmail-smtpd as it is (the
        body, or after STARTTLS): moved, not copied, where nothing waits."""
        if self.to_server:
            self.to_server += self.inbuf
            self.inbuf.clear()
        else:
            self.to_server, self.inbuf = self.inbuf, bytearray()
        self.scanned = 0

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
        self.consume(len(self.inbuf))
        self.checking, self.ask, self.close_input = None, None, True

    def log(self, message: bytes) -> None:
        self.logs.append(self.policy.prefix + message + b"\n")

    # -- qmail-smtpd's side ------------------------------------------------
    def reply(self, reply: bytes) -> None:
        self.to_client += reply
        why = "timeout" if reply.startswith(TIMEOUT_REPLY) else "ended by qmail-smtpd"
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
