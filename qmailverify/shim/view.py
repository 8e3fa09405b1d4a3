"""qmail-smtpd's own view of the session, as its replies tell it.

qmail-logmsg must judge each RCPT by the transaction qmail-smtpd has, and
qmail-smtpd's state changes on what it answers, not on what it was asked
(qmail-smtpd.c):

  MAIL   250 opens a new transaction; anything else (555) changes nothing
  RCPT   2xx adds a recipient (and, in deferred mode, a bad one marks the
         transaction failed); anything else changes nothing
  DATA   354: the body follows, then its own reply ends the transaction;
         503: nothing changes (after "RCPT first" the transaction is still
         open); any other reply: the transaction is over
  RSET, HELO, EHLO   2xx: the transaction is over
  QUIT   qmail-smtpd exits after its reply; so it does after any 421, its
         "451 timeout" and its "451 See .../smtplf.html" (a bare LF in a body)
  STARTTLS  220: the rest is encrypted;  AUTH  334: a response line
         follows, 2xx: the client counts as a relay client

View.replied() applies one reply and says what qmail-smtpd reads next.
The transaction is replaced in one place only: View.new_transaction().
"""

from qmailverify.clean import clean
from qmailverify.shim.smtp import reply_code

# What qmail-smtpd reads after a reply.
COMMAND, BODY, AUTHLINE, OPAQUE, EXIT = "command", "body", "authline", "opaque", "exit"


class Transaction:
    """qmail-smtpd's seenmail and recipient count, and VERIFY's deferred
    failure: the recipients qmail-verify refused that qmail-smtpd took (in
    deferred mode; the DATA refusal names them)."""
    __slots__ = ("open", "recipients", "failed")

    def __init__(self, open_: bool = False):
        self.open, self.recipients, self.failed = open_, 0, []


TIMEOUT_REPLY = b"451 timeout (#4.4.2)"
STRAY_LF = b"451 See http://pobox.com/~djb/docs/smtplf.html."


def exits(reply: bytes) -> bool:
    """Is this a reply after which qmail-smtpd exits, whatever was asked?"""
    return reply.startswith((b"421", TIMEOUT_REPLY, STRAY_LF))


def first_line(reply: bytes) -> bytes:
    return clean(reply.split(b"\n", 1)[0].rstrip(b"\r"))


class View:
    def __init__(self):
        self.txn = Transaction()
        self.authenticated = False
        self.opaque = False

    def new_transaction(self, open_: bool = False) -> None:
        self.txn = Transaction(open_)

    def replied(self, kind: str, arg, reply: bytes) -> tuple[str, list[bytes]]:
        """Apply qmail-smtpd's reply to a command of this kind: (what it
        reads next, log messages)."""
        after, messages = getattr(self, "after_" + kind)(reply_code(reply), reply, arg)
        return (EXIT if exits(reply) else after), messages

    def after_greeting(self, code, reply, arg):
        return (COMMAND if code == 220 else EXIT), []

    def after_plain(self, code, reply, arg):
        return COMMAND, []

    def after_helo(self, code, reply, arg):
        if 200 <= code < 300:
            self.new_transaction()
        return COMMAND, []

    after_rset = after_helo

    def after_mail(self, code, reply, arg):
        if code == 250:
            self.new_transaction(open_=True)
        return COMMAND, []

    def after_rcpt(self, code, reply, arg):
        addr, bad = arg
        if 200 <= code < 300:
            self.txn.recipients += 1
            if bad:
                self.txn.failed.append(addr)
            return COMMAND, []
        return COMMAND, [b"Recipient <" + clean(addr or b"") + b"> refused: " + first_line(reply)]

    def after_data(self, code, reply, arg):
        if code == 354:
            return BODY, []
        if code != 503:
            self.new_transaction()
        return COMMAND, []

    def after_message(self, code, reply, arg):
        n = self.txn.recipients
        self.new_transaction()
        if not 200 <= code < 300:
            return COMMAND, [b"Message refused: " + first_line(reply)]
        words = reply.split()
        qp = words[words.index(b"qp") + 1] if b"qp" in words[:-1] else b"unknown"
        return COMMAND, [b"Message accepted: qp " + clean(qp) +
                         b", %d recipient%s" % (n, b"" if n == 1 else b"s")]

    def after_quit(self, code, reply, arg):
        return EXIT, []

    def after_starttls(self, code, reply, arg):
        if code != 220:
            return COMMAND, []
        self.opaque = True
        return OPAQUE, [b"STARTTLS: session encrypted, no longer inspected"]

    def after_auth(self, code, reply, arg):
        if code == 334:
            return AUTHLINE, []
        if 200 <= code < 300:
            self.authenticated = True
            return COMMAND, [b"AUTH accepted: recipients no longer verified"]
        return COMMAND, []
