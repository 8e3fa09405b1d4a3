"""qmail-verify -d: running detached, for systems without supervise.

Under supervise the daemon stays in the foreground (that is the default);
this is the other way, done with python-daemon.  Its defaults are set
deliberately: the listening socket and the log stream are preserved,
stdout and stderr go to the log instead of /dev/null, and no signal
handlers are installed here (the daemon installs its own, so SIGHUP
reloads instead of killing).  The log is a file (-o) or, without one,
syslog's mail facility.

Whatever can fail must fail while the admin still watches: the process
that ran 'qmail-verify -d' waits until the detached daemon says it listens
(exit 0) or why it cannot (its one fatal line, exit 111).  A pipe carries
that word: Ready.ok() once the daemon listens, Ready.fail(line) instead.
"""

import os
import select
import sys
import syslog

import daemon
import daemon.pidfile

from qmailverify.errors import Fatal, errtext

WAIT = 60.0           # seconds the starting process waits for the daemon's word


class SyslogStream:
    """A binary stream whose lines go to syslog (mail facility)."""

    def __init__(self, ident: str = "qmail-verify"):
        syslog.openlog(ident, syslog.LOG_PID, syslog.LOG_MAIL)
        self.pending = b""

    def write(self, data: bytes) -> int:
        lines = (self.pending + data).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            text = line.decode("ascii", "replace")
            if text.startswith("qmail-verify: "):
                text = text[len("qmail-verify: "):]
            syslog.syslog(syslog.LOG_INFO, text)
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self):
        raise OSError("syslog has no descriptor")


class Ready:
    """The detached daemon's word to the process that started it."""

    def __init__(self, fd: int | None = None):
        self.fd = fd

    def ok(self) -> None:
        self._say(b"ok\n")

    def fail(self, line: str) -> None:
        self._say(line.encode("ascii", "replace") + b"\n")

    def _say(self, data: bytes) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, data)
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_pidfile(pidfile: str) -> daemon.pidfile.TimeoutPIDLockFile:
    """The lock for pidfile, once its folder is known to take a new file."""
    probe = f"{pidfile}.{os.getpid()}.probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(probe)
    except OSError as e:
        raise Fatal(f"qmail-verify: fatal: unable to write {pidfile}: {errtext(e.errno)}") \
            from None
    if os.path.lexists(pidfile) and not os.path.isfile(pidfile):
        raise Fatal(f"qmail-verify: fatal: unable to write {pidfile}: not a regular file")
    lock = daemon.pidfile.TimeoutPIDLockFile(pidfile, acquire_timeout=0)
    try:
        if lock.is_locked():
            pid = lock.read_pid()
            if pid and _alive(pid):
                raise Fatal(f"qmail-verify: fatal: {pidfile} names a running daemon (pid {pid})")
            lock.break_lock()                  # left behind by one that died
    except OSError as e:
        raise Fatal(f"qmail-verify: fatal: unable to replace {pidfile}: {errtext(e.errno)}") \
            from None
    return lock


def _wait_for_word(rfd: int, child: int) -> None:
    """In the starting process: exit 0 once the daemon listens, else say why."""
    data = b""
    while True:
        ready, _, _ = select.select([rfd], [], [], WAIT)
        if not ready:
            message = f"qmail-verify: fatal: no word from the daemon within {WAIT:.0f} seconds"
            break
        chunk = os.read(rfd, 4096)
        if not chunk:
            line = data.decode("ascii", "replace").strip()
            message = "" if line == "ok" else \
                line or "qmail-verify: fatal: the daemon died while starting"
            break
        data += chunk
    os.waitpid(child, 0)
    if message:
        raise Fatal(message)
    raise SystemExit(0)


def detach(socks, stream, pidfile: str | None, logfile: str | None):
    """Become a background daemon, keeping the listening sockets socks: returns (the stream to log to, Ready)
    in the daemon; the process that called it exits (0 once the daemon
    listens, 111 with the daemon's fatal line)."""
    if logfile:
        try:
            out = open(logfile, "ab", buffering=1 << 16)
        except OSError as e:
            raise Fatal(f"qmail-verify: fatal: unable to open {logfile}: {errtext(e.errno)}") \
                from None
    else:
        out = None
    pidfile = os.path.abspath(pidfile) if pidfile else None
    lock = _check_pidfile(pidfile) if pidfile else None
    stream.flush()
    sys.stdout.flush()
    rfd, wfd = os.pipe()
    child = os.fork()
    if child:
        os.close(wfd)
        _wait_for_word(rfd, child)
    os.close(rfd)
    os.setsid()                      # a session of its own, no terminal...
    if os.fork():
        os._exit(0)                  # ...and never to get one back
    ready = Ready(wfd)
    context = daemon.DaemonContext(
        detach_process=False,        # done above, so that the word can come back
        working_directory="/",
        umask=0o022,
        pidfile=lock,
        files_preserve=[*socks, wfd] + ([out] if out else []),
        stdin=None,
        stdout=out,
        stderr=out,
        signal_map={},
    )
    try:
        context.open()
    except Exception as e:           # python-daemon and lockfile raise their own kinds
        line = f"qmail-verify: fatal: unable to become a daemon: {e}"
        ready.fail(line)
        raise Fatal(line) from None
    return (out if out else SyslogStream()), ready
