"""qmail-logmsg's I/O around the pure session: qmail-smtpd started on two
pipes and reaped, and the byte pump between the client (descriptors 0
and 1), qmail-smtpd and, for each RCPT to check, a UDP query to
qmail-verify, with one select() loop; the pure Session (session.py)
decides everything, the pump only carries out what it asks (.to_client,
.to_server, .logs, .ask, .close_input, .hold) and tells it what happened.
A hold (harvest limits) only stops writes to the client until its time
and shortens select()'s timeout to it; everything else goes on (the
other side, other sessions: each session is its own process).

qmail-smtpd is started with posix_spawn rather than the subprocess
module, whose import alone costs every connection a few milliseconds.
"""

import os
import select
import time

from qmailverify.shim.commands import CHECK, DONE
from qmailverify.shim.session import HIGH_WATER, Session

READ = 1 << 20
PIPE_SIZE = 1 << 20          # qmail-smtpd's pipes, where Linux allows
SIGPIPE, SIGXFSZ = 13, 25     # Linux's numbers (the signal module costs an enum import)


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


class Pump:
    """Moves bytes and answers between the descriptors and the Session."""

    def __init__(self, session: Session, pid: int, sin: int, sout: int, timeout: float):
        self.s, self.pid, self.sin, self.sout, self.timeout = session, pid, sin, sout, timeout
        self.query = None
        self.client_eof = self.server_eof = False
        self.hold_until = None

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
            if s.to_client and self.hold_until is None:
                wlist.append(1)
            if s.to_server and self.sin is not None:
                wlist.append(self.sin)
            times = [t for t in (self.query and self.query.deadline, self.hold_until) if t]
            left = max(min(times) - time.monotonic(), 0) if times else None
            readable, writable, _ = select.select(rlist, wlist, [], left)
            if self.hold_until is not None and time.monotonic() >= self.hold_until:
                self.hold_until = None
                s.release()
            for fd in writable:
                self.write(fd)
            for fd in readable:
                self.read(fd)
            if self.query is not None and not readable and self.query.expired():
                from qmailverify.protocol.client import timeout_answer
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
        if s.hold is not None:
            self.hold_until = time.monotonic() + s.hold
            s.hold = None
        if self.query is not None and s.phase != CHECK:
            self.query.close()
            self.query = None
        if s.ask is not None:
            from qmailverify.protocol.client import PendingQuery
            self.query = PendingQuery(s.ask, s.policy.mode.server, timeout=self.timeout,
                                      ip=s.policy.ip)
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


def spawn(argv: list[str]) -> tuple[int, int, int]:
    """Start argv on two pipes: (pid, its stdin, its stdout)."""
    child_in, to_child = os.pipe()
    from_child, child_out = os.pipe()
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, setsigdef=(SIGPIPE, SIGXFSZ),
                              file_actions=[(os.POSIX_SPAWN_DUP2, child_in, 0),
                                            (os.POSIX_SPAWN_DUP2, child_out, 1)])
    except BaseException:
        for fd in (child_in, to_child, from_child, child_out):
            os.close(fd)
        raise
    os.close(child_in)
    os.close(child_out)
    import fcntl
    for fd in (to_child, from_child):
        os.set_blocking(fd, False)
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
    return pid, to_child, from_child


def reap(pid: int, grace: float = 5.0) -> int:
    """pid's exit code (111 if a signal ended it), killing it if it is
    still there grace seconds after its output ended."""
    deadline, pause = time.monotonic() + grace, 0.0002
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            done, status = os.waitpid(pid, 0)
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 111
