"""qmail-verify -d: running detached, for systems without supervise.

Under supervise the daemon stays in the foreground (that is the default);
this is the other way, done with python-daemon.  Its defaults are set
deliberately: the listening socket and the log stream are preserved,
stdout and stderr go to the log instead of /dev/null, and no signal
handlers are installed here (the daemon installs its own, so SIGHUP
reloads instead of killing).  The log is a file (-o) or, without one,
syslog's mail facility.
"""

import os
import syslog

import daemon
import daemon.pidfile

from .daemon import Fatal


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def detach(sock, stream, pidfile: str | None, logfile: str | None):
    """Become a background daemon; returns the stream to log to."""
    if logfile:
        try:
            out = open(logfile, "ab", buffering=1 << 16)
        except OSError as e:
            raise Fatal(f"qmail-verify: fatal: unable to open {logfile}: {e.strerror.lower()}")
    else:
        out = None
    lock = None
    if pidfile:
        lock = daemon.pidfile.TimeoutPIDLockFile(os.path.abspath(pidfile), acquire_timeout=0)
        if lock.is_locked():
            pid = lock.read_pid()
            if pid and _alive(pid):
                raise Fatal(f"qmail-verify: fatal: {pidfile} names a running daemon (pid {pid})")
            lock.break_lock()                  # left behind by one that died
    stream.flush()
    context = daemon.DaemonContext(
        detach_process=True,
        working_directory="/",
        umask=0o022,
        pidfile=lock,
        files_preserve=[sock] + ([out] if out else []),
        stdin=None,
        stdout=out,
        stderr=out,
        signal_map={},
    )
    context.open()
    return out if out else SyslogStream()
