"""qmail-logmsg: session logging and VERIFY for an unpatched qmail-smtpd.

    tcpserver ... qmail-logmsg /var/qmail/bin/qmail-smtpd
    qmail-logmsg -s < /service/qmail-smtpd/log/main/current

Run by tcpserver in front of the real qmail-smtpd, it starts qmail-smtpd
on a pair of pipes and relays the session, adding what the qmail-logmsg
and VERIFY patches add to qmail-smtpd:

- the session log on stderr, 'qmail-smtpd: pid PID from IP: MESSAGE';
- recipient verification by qmail-verify, as VERIFY asks (see client.py):
  immediate mode answers 550 itself and never passes the RCPT on;
  deferred mode passes every RCPT on and answers 554 to DATA itself if
  one was bad; a daemon that does not answer in time (or is in trouble)
  gets 451 and ends the session.  Only recipients qmail-smtpd would
  accept by control/rcpthosts are checked, after a MAIL it accepted, and
  none when RELAYCLIENT is set or after a successful AUTH.

Otherwise it is transparent: bytes pass in order and unchanged, with the
DATA body (dot-stuffing and all) relayed raw.  After a STARTTLS that
qmail-smtpd accepts the session is encrypted, so the shim stops looking
and relays raw bytes both ways (and says so in the log); recipients given
after that are not verified.

With -s it summarises such logs instead: see summary.py.
"""

import collections
import fcntl
import os
import select
import subprocess
import sys
import time

from .client import TIMEOUT, Query, SetupError, parse_verify, timeout_answer
from .clean import clean
from .controls import Rcpthosts
from .smtp import BodyEnd, ReplyReader, addrparse, reply_code, split_command
from .wire import DELIVERABLE, UNDELIVERABLE

USAGE = "qmail-logmsg: usage: qmail-logmsg program [arg ...] | qmail-logmsg -s"
READ = 1 << 20
PIPE_SIZE = 1 << 20          # qmail-smtpd's pipes, where Linux allows
HIGH_WATER = 1 << 20          # stop reading a side while this much waits for the other
LINE_MAX = 1 << 20            # a command line longer than this is passed on unread

R550 = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
R554 = b"554 sorry, invalid mailbox name(s). (#5.1.1)\r\n"
R451 = b"451 qv temporary failure (#4.3.0)\r\n"
R451SETUP = b"451 qv setup failure (#4.3.0)\r\n"


def _read(fd: int) -> bytes | None:
    """Data, b"" at the end (or on error), None if nothing is there yet."""
    try:
        return os.read(fd, READ)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _write(fd: int, data) -> int | None:
    """Bytes written now (0 if the descriptor is full); None if it is gone."""
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError:
        return None


class Expect:
    """A reply qmail-smtpd owes us, in order: what it answers and why."""
    __slots__ = ("kind", "arg")

    def __init__(self, kind: str, arg: bytes = b""):
        self.kind, self.arg = kind, arg


class Local:
    """A reply of our own, to go out in its place among the server's."""
    __slots__ = ("reply", "last")

    def __init__(self, reply: bytes, last: bool = False):
        self.reply, self.last = reply, last


class Session:
    def __init__(self, argv: list[str], env, client_in: int = 0, client_out: int = 1,
                 log_fd: int = 2):
        self.cin_fd, self.cout_fd, self.log_fd = client_in, client_out, log_fd
        self.prefix = f"qmail-smtpd: pid {os.getpid()} from {env.get('TCPREMOTEIP', 'unknown')}: "
        self.mode, self.setup_error, self.timeout = None, None, TIMEOUT
        try:
            self.mode = parse_verify(env.get("VERIFY"))
            self.timeout = float(env.get("VERIFY_TIMEOUT") or TIMEOUT)
            if not 0 < self.timeout <= 300:
                raise ValueError
        except SetupError as e:
            self.setup_error = str(e)
        except ValueError:
            self.setup_error = f"bad VERIFY_TIMEOUT {env.get('VERIFY_TIMEOUT')!r}"
        self.relayclient = "RELAYCLIENT" in env
        self.qmailhome = env.get("QMAILHOME") or "/var/qmail"
        self._rcpthosts = None
        self.server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       bufsize=0, close_fds=True)
        self.sin_fd = self.server.stdin.fileno()
        self.sout_fd = self.server.stdout.fileno()
        for fd in (self.cin_fd, self.cout_fd, self.sin_fd, self.sout_fd):
            os.set_blocking(fd, False)
        for fd in (self.sin_fd, self.sout_fd):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except (OSError, AttributeError):
                pass
        self.cin = b""                     # from the client, not yet looked at
        self.to_server = bytearray()
        self.to_client = bytearray()
        self.replies = ReplyReader()
        self.expect = collections.deque([Expect("greeting")])
        self.state = "command"             # command, body, authline, opaque
        self.body = None
        self.waiting = None                # why the client's bytes wait: a kind, or a Query
        self.pending_rcpt = None           # (line, addr) of the RCPT being verified
        self.seenmail = False
        self.failed = False                # deferred mode: a bad recipient in this transaction
        self.authenticated = False
        self.recipients = 0
        self.quit = False
        self.ending = None                 # why we are ending the session ourselves
        self.client_eof = self.server_eof = False
        self.server_timeout = False
        self.sin_closed = False
        self.overlong = False              # inside a command line passed on unread

    # -- the log -------------------------------------------------------
    def log(self, message: str | bytes) -> None:
        if isinstance(message, str):
            message = message.encode()
        line = self.prefix.encode() + message + b"\n"
        try:
            os.write(self.log_fd, line)
        except OSError:
            pass

    # -- replies, in order ---------------------------------------------
    def local(self, reply: bytes, last: bool = False) -> None:
        self.expect.append(Local(reply, last))
        self.flush_locals()

    def flush_locals(self) -> None:
        while self.expect and isinstance(self.expect[0], Local):
            item = self.expect.popleft()
            self.send_client(item.reply)
            if item.last:
                self.expect.clear()
                self.end_now()

    def send_client(self, data: bytes) -> None:
        if not self.to_client:
            data = self._write_through(self.cout_fd, data)
        self.to_client += data

    def end_now(self) -> None:
        """Stop taking input; the session ends once what we owe is written."""
        self.cin = b""
        self.close_server_input()
        self.client_eof = True

    def forward(self, data: bytes, expect: Expect | None) -> None:
        if not self.to_server and not self.sin_closed:
            data = self._write_through(self.sin_fd, data)
        self.to_server += data
        if expect is not None:
            self.expect.append(expect)

    @staticmethod
    def _write_through(fd: int, data: bytes) -> bytes:
        """Write what the descriptor takes now; return the rest."""
        n = _write(fd, data) or 0       # on an error the loop meets it again, and ends
        return data[n:] if n < len(data) else b""

    def owed_by_server(self) -> bool:
        return any(isinstance(e, Expect) for e in self.expect)

    # -- the client's side ---------------------------------------------
    def take_line(self) -> bytes | None:
        nl = self.cin.find(b"\n")
        if nl < 0:
            if len(self.cin) > LINE_MAX:          # pass a monster line on unread
                self.forward(self.cin, None)
                self.cin, self.overlong = b"", True
            return None
        line, self.cin = self.cin[:nl + 1], self.cin[nl + 1:]
        if self.overlong:                          # the end of a monster line
            self.overlong = False
            self.forward(line, Expect("other"))
            return b""
        return line

    def process_client(self) -> None:
        while self.cin and self.waiting is None and not self.ending:
            if self.state == "opaque":
                self.forward(self.cin, None)
                self.cin = b""
            elif self.state == "body":
                end = self.body.feed(self.cin)
                if end < 0:
                    self.forward(self.cin, None)
                    self.cin = b""
                else:
                    self.forward(self.cin[:end], Expect("message"))
                    self.cin = self.cin[end:]
                    self.state = "command"
            else:
                line = self.take_line()
                if line is None:
                    return
                if not line:
                    continue
                if self.state == "authline":
                    self.forward(line, Expect("auth"))
                    self.waiting = "auth"
                else:
                    self.command(line)

    def command(self, line: bytes) -> None:
        verb, arg = split_command(line)
        if verb == b"RCPT":
            self.rcpt(line, arg)
        elif verb == b"DATA":
            if self.failed:
                self.log("Unverified mailbox(es) at DATA time")
                self.local(R554)
            else:
                self.forward(line, Expect("data"))
                self.waiting = "data"
        elif verb in (b"HELO", b"EHLO"):
            self.log(b"Received " + verb + b" " + clean(arg))
            self.failed = False
            self.forward(line, Expect("helo"))
        elif verb == b"MAIL":
            self.log(b"Sender <" + clean(addrparse(arg) or b"") + b">")
            self.failed = False
            self.forward(line, Expect("mail"))
        elif verb == b"RSET":
            self.log("Session RSET")
            self.failed = False
            self.forward(line, Expect("rset"))
        elif verb == b"QUIT":
            self.log("Remote end QUIT: quitting")
            self.quit = True
            self.forward(line, Expect("quit"))
        elif verb == b"STARTTLS":
            self.forward(line, Expect("starttls"))
            self.waiting = "starttls"
        elif verb == b"AUTH":
            self.forward(line, Expect("auth"))
            self.waiting = "auth"
        else:
            self.forward(line, Expect("other"))

    def rcpt(self, line: bytes, arg: bytes) -> None:
        addr = addrparse(arg)
        check = self.checks_apply(addr)
        if check and self.owed_by_server():
            # Decide with qmail-smtpd's view of the transaction: wait for
            # the replies to what was pipelined before this RCPT.
            self.cin = line + self.cin
            self.waiting = "drain"
            return
        self.log(b"Recipient <" + clean(addr or b"") + b">")
        if not check or not self.seenmail or not self.rcpthosts().allowed(addr):
            self.forward(line, Expect("rcpt", addr or b""))
            return
        if self.setup_error:
            self.log(f"setup failure ({self.setup_error})")
            self.end_with(R451SETUP, "verification setup failure")
            return
        query = Query(addr, self.mode.server, timeout=self.timeout)
        self.pending_rcpt = (line, addr)
        self.waiting = query
        failed = query.send()
        if failed:
            self.verified(failed)

    def checks_apply(self, addr: bytes | None) -> bool:
        if addr is None or self.relayclient or self.authenticated:
            return False
        if self.setup_error:
            return self.mode is None or self.mode.enabled
        return self.mode.enabled and not (self.mode.deferred and self.failed)

    def rcpthosts(self) -> Rcpthosts:
        if self._rcpthosts is None:
            self._rcpthosts = Rcpthosts(self.qmailhome)
        return self._rcpthosts

    def verified(self, answer) -> None:
        query, self.waiting = self.waiting, None
        if isinstance(query, Query):
            query.close()
        line, addr = self.pending_rcpt
        self.pending_rcpt = None
        if answer.code == DELIVERABLE:
            self.forward(line, Expect("rcpt", addr))
        elif answer.code == UNDELIVERABLE and self.mode.deferred:
            self.failed = True
            self.forward(line, Expect("rcpt", addr))
        elif answer.code == UNDELIVERABLE:
            self.log("Unverified mailbox at RCPT time")
            self.local(R550)
        else:
            self.log(answer.log_message())
            self.end_with(R451, "verification failure")

    def end_with(self, reply: bytes, why: str) -> None:
        self.ending = why
        self.cin = b""
        self.local(reply, last=True)

    # -- the server's side ---------------------------------------------
    def process_server(self, data: bytes) -> None:
        if self.state == "opaque":
            self.send_client(data)
            return
        for reply in self.replies.feed(data):
            self.server_reply(reply)
            if self.state == "opaque":                 # the rest is TLS
                self.to_client += self.replies.buf
                self.replies.buf = b""
                return

    def server_reply(self, reply: bytes) -> None:
        code = reply_code(reply)
        if not self.expect or not isinstance(self.expect[0], Expect):
            self.send_client(reply)                    # unasked: a timeout, say
            if code == 451 and b"timeout" in reply.lower():
                self.server_timeout = True
            return
        e = self.expect.popleft()
        ok = 200 <= code < 300
        if e.kind == "mail":
            self.seenmail, self.recipients = ok, 0
        elif e.kind in ("helo", "rset"):
            self.seenmail, self.recipients = False, 0
        elif e.kind == "rcpt":
            if ok:
                self.recipients += 1
            else:
                self.log(b"Recipient <" + clean(e.arg) + b"> refused: " + clean(reply.split(b"\n")[0].rstrip(b"\r")))
        elif e.kind == "data":
            self.waiting = None
            self.seenmail = False
            if code == 354:
                self.state, self.body = "body", BodyEnd()
        elif e.kind == "message":
            if ok:
                words = reply.split()
                qp = words[words.index(b"qp") + 1].decode("ascii", "replace") \
                    if b"qp" in words[:-1] else "unknown"
                self.log(f"Message accepted: qp {clean(qp.encode()).decode()}, "
                         f"{self.recipients} recipient{'s' if self.recipients != 1 else ''}")
            else:
                self.log(b"Message refused: " + clean(reply.split(b"\n")[0].rstrip(b"\r")))
            self.recipients = 0
        elif e.kind == "starttls":
            self.waiting = None
            if code == 220:
                self.state = "opaque"
                self.log("STARTTLS: session encrypted, no longer inspected")
        elif e.kind == "auth":
            self.waiting = None
            if code == 334:
                self.state = "authline"
            else:
                self.state = "command"
                if ok:
                    self.authenticated = True
                    self.log("AUTH accepted: recipients no longer verified")
        self.send_client(reply)
        self.flush_locals()
        if self.waiting == "drain" and not self.owed_by_server():
            self.waiting = None

    # -- the loop ------------------------------------------------------
    def close_server_input(self) -> None:
        if not self.sin_closed and not self.to_server:
            self.sin_closed = True
            self.server.stdin.close()

    def run(self) -> int:
        if self.mode and self.mode.note:
            self.log(self.mode.note)
        self.log("New session")
        while True:
            self.process_client()
            if self.client_eof and not self.to_server:
                self.close_server_input()
            if self.server_eof and not self.to_client:
                break
            if self.ending and not self.to_client and not self.expect:
                break
            rlist, wlist = [], []
            if not self.client_eof and len(self.to_server) < HIGH_WATER:
                rlist.append(self.cin_fd)
            if self.to_client:
                wlist.append(self.cout_fd)
            if not self.server_eof and len(self.to_client) < HIGH_WATER:
                rlist.append(self.sout_fd)
            if self.to_server and not self.sin_closed:
                wlist.append(self.sin_fd)
            query = self.waiting if isinstance(self.waiting, Query) else None
            if query:
                rlist.append(query.fileno())
            if not rlist and not wlist:
                break
            timeout = max(query.deadline - time.monotonic(), 0) if query else None
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
            for fd in readable:
                self.readable(fd, query)
            for fd in writable:
                self.writable(fd)
            if query and self.waiting is query and query.expired():
                self.verified(timeout_answer())
        self.to_server.clear()          # the session is over: nothing more goes in
        self.close_server_input()
        return self.finish()

    def readable(self, fd: int, query) -> None:
        if query is not None and fd == query.fileno():
            answer = query.receive()
            if answer is not None:
                self.verified(answer)
            return
        data = _read(fd)
        if data is None:
            return
        if fd == self.sout_fd:
            if data:
                self.process_server(data)
            else:
                self.server_eof = True
        elif data:
            self.cin = self.cin + data if self.cin else data
        else:
            self.client_eof = True
            if self.cin:                           # a last line without its newline
                self.forward(self.cin, None)
                self.cin = b""

    def writable(self, fd: int) -> None:
        buf = self.to_client if fd == self.cout_fd else self.to_server
        n = _write(fd, buf)
        if n is not None:
            del buf[:n]
            return
        buf.clear()                                # that side is gone
        if fd == self.cout_fd:
            self.client_eof = True
        else:
            self.sin_closed = True

    def finish(self) -> int:
        try:
            status = self.server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.server.kill()
            status = self.server.wait()
        if self.quit:
            how = "QUIT"
        elif self.ending:
            how = self.ending
        elif self.server_timeout:
            how = "timeout"
        elif self.client_eof:
            how = "dropped by the client"
        else:
            how = "ended by qmail-smtpd"
        self.log(f"Session ended: {how}")
        return 0 if status == 0 else 111 if status < 0 else status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["-s"]:
        from .summary import main as summarise
        return summarise()
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 100
    try:
        session = Session(argv, os.environ)
    except OSError as e:
        print(f"qmail-logmsg: fatal: unable to run {argv[0]}: "
              f"{(e.strerror or str(e)).lower()}", file=sys.stderr)
        return 111
    return session.run()


if __name__ == "__main__":
    sys.exit(main())
