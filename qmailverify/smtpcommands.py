"""The per-command handlers of qmail-logmsg's session (smtpsession.py),
one smtp_VERB method a verb, dispatched from COMMANDS as qmail's
commands.c does; and the Policy they decide by.

Each takes the whole line (newline included) and its argument, and
either forwards the line to qmail-smtpd (Session.forward: the phase
becomes REPLY until it answers), answers itself (550, 554), starts a
check (phase CHECK, .ask set) or ends the session (Session.fail: 421,
451).  A RCPT is checked only where qmail-smtpd would accept it: inside
a transaction it opened, an address it can parse (after the localiphost
rewrite), no RELAYCLIENT, no AUTH, a domain rcpthosts lists.
"""

from .clean import clean
from .controlfile import ControlError
from .smtp import IpmeError, addrparse

# Session phases (smtpsession.py), besides smtpview's AUTHLINE, BODY, OPAQUE.
REPLY, READY, CHECK, CLOSING, DONE = "reply", "ready", "check", "closing", "done"

R550 = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
R554 = b"554 sorry, invalid mailbox name(s). (#5.1.1)\r\n"
R451 = b"451 qv temporary failure (#4.3.0)\r\n"
R451SETUP = b"451 qv setup failure (#4.3.0)\r\n"
R421CONTROLS = b"421 unable to read controls (#4.3.0)\r\n"
R421IPME = b"421 unable to figure out my IP addresses (#4.3.0)\r\n"


class Policy:
    """What decides a session: VERIFY, RELAYCLIENT and qmail-smtpd's controls."""

    def __init__(self, prefix: bytes, mode=None, setup_error: str | None = None,
                 relayclient: bool = False, rcpthosts=None, localiphost: bytes | None = None,
                 ipme=None):
        self.prefix, self.mode, self.setup_error = prefix, mode, setup_error
        self.relayclient, self.rcpthosts = relayclient, rcpthosts
        self.localiphost, self.ipme = localiphost, ipme
        self.checking = bool(setup_error) or bool(mode and mode.enabled)
        self.deferred = bool(mode and mode.deferred)


class Commands:
    def smtp_HELO(self, line, arg):
        self.log(b"Received HELO " + clean(arg))
        self.forward(line, "helo", None)

    def smtp_EHLO(self, line, arg):
        self.log(b"Received EHLO " + clean(arg))
        self.forward(line, "helo", None)

    def smtp_MAIL(self, line, arg):
        self.log(b"Sender <" + clean(addrparse(arg) or b"") + b">")
        self.forward(line, "mail", None)

    def smtp_RCPT(self, line, arg):
        p, txn = self.policy, self.view.txn
        try:
            addr = addrparse(arg, p.localiphost, p.ipme)
        except IpmeError as e:
            self.fail(R421IPME, b"unable to figure out my IP addresses (%s)" % str(e).encode(),
                      "unable to figure out my IP addresses")
            return
        self.log(b"Recipient <" + clean(addr or b"") + b">")
        if (addr is None or not txn.open or not p.checking or p.relayclient
                or self.view.authenticated):
            self.forward(line, "rcpt", (addr, False))     # qmail-smtpd decides alone
            return
        try:
            allowed = p.rcpthosts.allowed(addr)
        except ControlError as e:
            self.fail(R421CONTROLS, b"unable to read controls (%s)" % clean(str(e).encode()),
                      "unable to read controls")
            return
        if not allowed or (p.deferred and txn.failed):
            self.forward(line, "rcpt", (addr, False))
        elif p.setup_error:
            self.fail(R451SETUP, b"setup failure (%s)" % clean(p.setup_error.encode()),
                      "verification setup failure")
        else:
            self.phase, self.checking, self.ask = CHECK, (line, addr), addr

    def smtp_DATA(self, line, arg):
        if self.view.txn.failed:
            self.log(b"Unverified mailbox(es) at DATA time")
            self.to_client += R554
        else:
            self.forward(line, "data", None)

    def smtp_RSET(self, line, arg):
        self.log(b"Session RSET")
        self.forward(line, "rset", None)

    def smtp_QUIT(self, line, arg):
        self.log(b"Remote end QUIT: quitting")
        self.forward(line, "quit", None)

    def smtp_STARTTLS(self, line, arg):
        self.forward(line, "starttls", None)

    def smtp_AUTH(self, line, arg):
        self.forward(line, "auth", None)

    def smtp_other(self, line, arg):
        self.forward(line, "plain", None)


COMMANDS = {b"HELO": Commands.smtp_HELO, b"EHLO": Commands.smtp_EHLO, b"MAIL": Commands.smtp_MAIL,
            b"RCPT": Commands.smtp_RCPT, b"DATA": Commands.smtp_DATA, b"RSET": Commands.smtp_RSET,
            b"QUIT": Commands.smtp_QUIT, b"STARTTLS": Commands.smtp_STARTTLS,
            b"AUTH": Commands.smtp_AUTH}
