"""qmail-logmsg: session logging and VERIFY for an unpatched qmail-smtpd.

    tcpserver ... qmail-logmsg /var/qmail/bin/qmail-smtpd
    qmail-logmsg -s < /service/qmail-smtpd/log/main/current

The relay, thin around the pure session (smtpsession.py, which says what
is decided and how): it reads qmail-smtpd's controls the session needs
(control/rcpthosts, morercpthosts.cdb, localiphost or me) before anything
else, so that trouble answers "421 unable to read controls (#4.3.0)" in
place of the greeting, as qmail-smtpd would, and qmail-smtpd is never
started; then it starts qmail-smtpd on two pipes and moves bytes between
the client (fds 0 and 1), qmail-smtpd and, for each RCPT to check, a UDP
query to qmail-verify, with one select() loop.  The session log goes to
stderr.  Only what a session needs is imported: the summariser (-s) and
the UDP client (at the first check) come in when asked for.
"""

import os
import select
import sys
import time

from .clean import clean
from .controlfile import ControlError, read_first_line
from .errors import errtext
from .ipme import Ipme
from .rcpthosts import Rcpthosts
from .smtpcommands import CHECK, DONE, R421CONTROLS, Policy
from .smtpsession import HIGH_WATER, Session
from .spawn import reap, spawn
from .verifyenv import SetupError, parse_verify

USAGE = "qmail-logmsg: usage: qmail-logmsg program [arg ...] | qmail-logmsg -s | -h | -V"
READ = 1 << 20


def policy_from(env, prefix: bytes) -> tuple[Policy, float]:
    """The session's Policy and qmail-verify's timeout; ControlError if
    qmail-smtpd's controls cannot be read."""
    mode, setup_error, timeout = None, None, 5.0
    try:
        mode = parse_verify(env.get("VERIFY"))
        if mode.enabled:
            timeout = verify_timeout(env)
    except SetupError as e:
        setup_error = str(e)
    qmailhome = env.get("QMAILHOME") or "/var/qmail"
    control = os.path.join(qmailhome, "control")
    rcpthosts = Rcpthosts(qmailhome)
    localiphost = read_first_line(os.path.join(control, "localiphost"))
    if localiphost is None:
        localiphost = read_first_line(os.path.join(control, "me"))
    policy = Policy(prefix, mode, setup_error, "RELAYCLIENT" in env, rcpthosts, localiphost, Ipme())
    return policy, timeout


def verify_timeout(env) -> float:
    try:
        timeout = float(env.get("VERIFY_TIMEOUT") or 5)
    except ValueError:
        timeout = 0
    if not 0 < timeout <= 300:
        raise SetupError(f"bad VERIFY_TIMEOUT {env.get('VERIFY_TIMEOUT')!r}")
    return timeout


def discard_input() -> None:
    """Read what the client sent and nobody will: closing a socket with
    unread input resets the connection, which can lose our last reply."""
    os.set_blocking(0, False)
    for _ in range(64):
        try:
            if not os.read(0, READ):
                return
        except OSError:
            return


class Relay:
    """Moves bytes and answers between the descriptors and the Session."""

    def __init__(self, session: Session, pid: int, sin: int, sout: int, timeout: float):
        self.s, self.pid, self.sin, self.sout, self.timeout = session, pid, sin, sout, timeout
        self.query = None
        self.client_eof = self.server_eof = False

    def run(self) -> int:
        s = self.s
        for fd in (0, 1):
            os.set_blocking(fd, False)
        s.start()
        while True:
            self.after_event()
            if s.phase == DONE and not s.to_client:
                break
            rlist, wlist = [], []
            if not self.client_eof and s.wants_input() and len(s.to_server) < HIGH_WATER:
                rlist.append(0)
            if not self.server_eof and len(s.to_client) < HIGH_WATER:
                rlist.append(self.sout)
            if self.query is not None:
                rlist.append(self.query.fileno())
            if s.to_client:
                wlist.append(1)
            if s.to_server and self.sin is not None:
                wlist.append(self.sin)
            left = None if self.query is None else max(self.query.deadline - time.monotonic(), 0)
            readable, writable, _ = select.select(rlist, wlist, [], left)
            for fd in writable:
                self.write(fd)
            for fd in readable:
                self.read(fd)
            if self.query is not None and not readable and self.query.expired():
                from .client import timeout_answer
                self.answer(timeout_answer())
        return self.finish()

    def after_event(self) -> None:
        """Carry out what the session asked for."""
        s = self.s
        for line in s.logs:
            try:
                os.write(2, line)
            except OSError:
                pass
        s.logs.clear()
        if self.query is not None and s.phase != CHECK:
            self.query.close()
            self.query = None
        if s.ask is not None:
            from .client import PendingQuery
            self.query = PendingQuery(s.ask, s.policy.mode.server, timeout=self.timeout)
            s.ask = None
            failed = self.query.send()
            if failed:
                self.answer(failed)
                return self.after_event()
        if s.close_input and not s.to_server and self.sin is not None:
            os.close(self.sin)
            self.sin = None
        if self.sin is None:
            s.to_server.clear()                   # nothing more reaches qmail-smtpd

    def answer(self, answer) -> None:
        self.query.close()
        self.query = None
        self.s.answer(answer)

    def read(self, fd: int) -> None:
        if self.query is not None and fd == self.query.fileno():
            answer = self.query.receive()
            if answer is not None:
                self.answer(answer)
            return
        try:
            data = os.read(fd, READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if fd == self.sout:
            if data:
                self.s.server_data(data)
            else:
                self.server_eof = True
                self.s.server_end()
        elif data:
            self.s.client_data(data)
        else:
            self.client_eof = True
            self.s.client_end()

    def write(self, fd: int) -> None:
        buf = self.s.to_client if fd == 1 else self.s.to_server
        if fd != 1 and self.sin is None:
            return
        try:
            del buf[:os.write(fd, buf)]
        except BlockingIOError:
            pass
        except OSError:                           # that side is gone
            buf.clear()
            if fd == 1:
                self.client_eof = True
                self.s.client_gone()
            else:
                os.close(self.sin)
                self.sin = None

    def finish(self) -> int:
        """Close the connection, then collect qmail-smtpd's exit status
        (killing it if it lingers 5 seconds after its output ended)."""
        if self.sin is not None:
            os.close(self.sin)
        if not self.client_eof:
            discard_input()
        os.close(0)
        os.close(1)
        return reap(self.pid)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["-s"]:
        from .summary import main as summarise
        return summarise()
    if argv in (["-h"], ["-V"]):
        from . import __version__
        print(USAGE.partition(": ")[2] if argv == ["-h"] else f"qmail-logmsg {__version__}")
        return 0
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 100
    env = os.environ
    prefix = f"qmail-smtpd: pid {os.getpid()} from {env.get('TCPREMOTEIP', 'unknown')}: ".encode()
    try:
        policy, timeout = policy_from(env, prefix)
    except ControlError as e:
        os.write(2, prefix + b"unable to read controls (" + clean(str(e).encode()) + b")\n")
        try:
            os.write(1, R421CONTROLS)
        except OSError:
            pass
        discard_input()
        return 1
    try:
        pid, sin, sout = spawn(argv)
    except OSError as e:
        print(f"qmail-logmsg: fatal: unable to run {argv[0]}: "
              f"{errtext(e.errno)}", file=sys.stderr)
        return 111
    try:
        return Relay(Session(policy), pid, sin, sout, timeout).run()
    except MemoryError:                           # as qmail-smtpd's die_nomem; nothing forwarded
        for fd, data in ((2, prefix + b"out of memory\n"), (1, b"421 out of memory (#4.3.0)\r\n")):
            try:
                os.write(fd, data)
            except OSError:
                pass
        return 111


if __name__ == "__main__":
    sys.exit(main())
