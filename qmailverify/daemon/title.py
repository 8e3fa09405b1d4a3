"""The daemon's process title, and keeping its command name.

The title (ps -o args, /proc/PID/cmdline) says where the daemon listens,
how much it did and when the controls were loaded; it is rewritten at
most once a second.  setproctitle also renames the command
(/proc/PID/comm, what pgrep -x, pidof and ps -C match) to the first 15
bytes of the title, "qmail-verify 12": after each change the command name
is set back to "qmail-verify" with prctl(PR_SET_NAME).  setproctitle is
optional: without it there is no title, and the command name is left as
it is.
"""

import ctypes
import time

try:
    import setproctitle
except ImportError:          # the title is a convenience, never a need
    setproctitle = None

from qmailverify.system.libc import libc_function

COMMAND = b"qmail-verify"
PR_SET_NAME = 15


_prctl = libc_function("prctl", [ctypes.c_int, ctypes.c_char_p, ctypes.c_ulong,
                                  ctypes.c_ulong, ctypes.c_ulong]) if setproctitle else None


def keep_command_name() -> None:
    """Set /proc/PID/comm to qmail-verify (a failure costs only pgrep -x)."""
    if _prctl is not None:
        _prctl(PR_SET_NAME, COMMAND, 0, 0, 0)


def answered_text(n: int) -> str:
    """"1 query answered", "2 queries answered": the title is read by people."""
    return f"{n} {'query' if n == 1 else 'queries'} answered"


class Title:
    """Where we listen, how much we did, when the controls were loaded."""

    def __init__(self, where: str):
        self.where = where
        self.loaded = ""
        self.shown = None
        self.when = 0.0
        if setproctitle:
            setproctitle.getproctitle()      # before anything changes the environment

    def stale(self, answered: int) -> bool:
        return bool(setproctitle) and (answered, self.loaded) != self.shown

    def update(self, answered: int, force: bool = False) -> bool:
        """Rewrite the title if it is stale and was last rewritten a second
        ago or more (or force); True if it is left stale, for the loop to
        come back within the second."""
        if not self.stale(answered):
            return False
        now = time.monotonic()
        if not force and now - self.when < 1.0:
            return True
        setproctitle.setproctitle(
            f"qmail-verify {self.where}: {answered_text(answered)},"
            f" controls loaded {self.loaded}")
        keep_command_name()
        self.shown, self.when = (answered, self.loaded), now
        return False

    def show(self, text: str) -> None:
        """A title of the caller's own words after where we listen (the
        workers' master says how many it has)."""
        if setproctitle:
            setproctitle.setproctitle(f"qmail-verify {self.where}: {text}")
            keep_command_name()

    def controls_loaded(self) -> None:
        self.loaded = time.strftime("%Y-%m-%d %H:%M:%S")
