"""The per-command handlers of qmail-logmsg's session (session.py),
one smtp_VERB method a verb, dispatched from COMMANDS as qmail's
commands.c does; and the Policy they decide by.

Each takes the whole line (newline included) and its argument, and
either forwards the line to qmail-smtpd (Session.forward: the phase
becomes REPLY until it answers), answers itself (550, 554), starts a
check (phase CHECK, .ask set) or ends the session (Session.fail: 421,
451).  A RCPT is checked only where qmail-smtpd would accept it: inside
a transaction it opened, an address it can parse (after the localiphost
rewrite), no RELAYCLIENT, no AUTH, a domain rcpthosts lists.

rcpt_answered() carries out qmail-verify's answer to a checked RCPT, by
the rollout mode and the harvest limits (protocol/verifyenv.py):

  answer          enforce           soft              log
  deliverable     forwarded         forwarded         forwarded
  not, immediate  550               450               logged, forwarded
  not, deferred   forwarded, DATA   forwarded, DATA   logged, forwarded
                  gets 554          gets 451
  temporary from  451 for this      451 for this      logged, forwarded
  the daemon      RCPT only         RCPT only
  no answer, or   451, the session ends (spec 7), in every mode
  a socket error

Before that, a count of refusals from the daemon (harvest limits) at or
over VERIFY_HARVEST_DROP ends the session with 421; over
VERIFY_HARVEST_DELAY it holds the RCPT's reply (Session.hold_for).
"""

from qmailverify.clean import clean, visible
from qmailverify.protocol.verifyenv import ENFORCE, LOG, SOFT, Harvest
from qmailverify.protocol.wire import DELIVERABLE, UNDELIVERABLE
from qmailverify.qmail.controlfile import ControlError
from qmailverify.shim.ipme import IpmeError
from qmailverify.shim.smtp import addrparse

# Session phases (session.py), besides view.py's AUTHLINE, BODY, OPAQUE.
REPLY, READY, CHECK, CLOSING, DONE = "reply", "ready", "check", "closing", "done"

R550 = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
R554 = b"554 sorry, invalid mailbox name(s). (#5.1.1)\r\n"
R451 = b"451 qv temporary failure (#4.3.0)\r\n"
R451RCPT = b"451 qv temporary failure, try again later (#4.3.0)\r\n"   # this RCPT only
R450SOFT = b"450 sorry, no mailbox here by that name, try again later (#4.1.1)\r\n"
R451SOFT = b"451 sorry, invalid mailbox name(s), try again later (#4.1.1)\r\n"
R421HARVEST = b"421 too many unknown recipients from your address, try again later (#4.7.1)\r\n"
R451SETUP = b"451 qv setup failure (#4.3.0)\r\n"
R421CONTROLS = b"421 unable to read controls (#4.3.0)\r\n"
R421IPME = b"421 unable to figure out my IP addresses (#4.3.0)\r\n"


class Policy:
    """What decides a session: VERIFY, RELAYCLIENT and qmail-smtpd's controls."""

    def __init__(self, prefix: bytes, mode=None, setup_error: str | None = None,
                 relayclient: bool = False, rcpthosts=None, localiphost: bytes | None = None,
                 ipme=None, rollout: str = ENFORCE, notes: tuple[str, ...] = (),
                 harvest: Harvest | None = None, ip: bytes | None = None):
        self.prefix, self.mode, self.setup_error = prefix, mode, setup_error
        self.relayclient, self.rcpthosts = relayclient, rcpthosts
        self.localiphost, self.ipme = localiphost, ipme
        self.rollout, self.notes = rollout, notes       # notes: lines logged at the start
        self.harvest = harvest or Harvest()
        self.ip = ip if self.harvest.enabled else None  # sent to the daemon, to be counted
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

    def rcpt_answered(self, line, addr, answer):
        p, shown = self.policy, b"<" + clean(addr) + b">"
        n = answer.refusals
        if n is not None and p.harvest.drops(n):
            self.fail(R421HARVEST, b"Harvest limit: %d refused recipients from this IP" % n,
                      "harvest limit")
            return
        if n is not None and p.harvest.delay(n):
            self.hold_for(p.harvest.delay(n), n)
        if answer.code == DELIVERABLE:
            self.forward(line, "rcpt", (addr, False))
        elif answer.code == UNDELIVERABLE and p.rollout == LOG:
            when = b"DATA" if p.deferred else b"RCPT"
            self.log(b"Would refuse " + shown + b" at " + when + b" time (log-only)")
            self.forward(line, "rcpt", (addr, False))
        elif answer.code == UNDELIVERABLE and p.deferred:
            self.forward(line, "rcpt", (addr, True))
        elif answer.code == UNDELIVERABLE and p.rollout == SOFT:
            self.log(b"Unverified mailbox at RCPT time (soft: 450): " + shown)
            self.to_client += R450SOFT
        elif answer.code == UNDELIVERABLE:
            self.log(b"Unverified mailbox at RCPT time: " + shown)
            self.to_client += R550
        elif answer.remote and p.rollout == LOG:
            self.log(b"Would defer " + shown + b" at RCPT time (log-only): temporary failure ("
                     + clean(answer.reason.encode()) + b")")
            self.forward(line, "rcpt", (addr, False))
        elif answer.remote:
            self.log(b"Temporary failure at RCPT time (" + clean(answer.reason.encode()) + b")")
            self.to_client += R451RCPT
        else:
            # a local reason (a timeout, a socket error), made visible all the same
            self.fail(R451, visible(answer.log_message().encode("utf-8", "replace")),
                      "verification failure")

    def smtp_DATA(self, line, arg):
        failed = self.view.txn.failed
        shown = b" ".join(b"<" + clean(addr) + b">" for addr in failed)
        if failed and self.policy.rollout == SOFT:
            self.log(b"Unverified mailbox(es) at DATA time (soft: 451): " + shown)
            self.to_client += R451SOFT
        elif failed:
            self.log(b"Unverified mailbox(es) at DATA time: " + shown)
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
