"""One worker of VERIFY_WORKERS=N, from the fork to its exit.

The master (master.py) forks each worker with its own socket of the
SO_REUSEPORT group; everything else the worker needs is made here, after
the fork, so that nothing that holds kernel state is shared between
processes: the LiveSystem and its inotify descriptor (an event read by
one worker would be lost to the others), deep mode's store, and, in
Daemon(), the wake-up pipe, the epoll selector, the parking thread, the
hub cache and the harvest counter.  Then the worker sends the master its
word (Word: "ok", or its one fatal line) and runs the same Daemon.run()
loop a single daemon runs.

Worker is that Daemon with two differences: SIGALRM puts its counts on
the master's StatBoard instead of logging them (the master writes one
line for all), and SIGTERM/SIGINT end it without a line (the master says
it).  A worker asks the kernel for SIGTERM when the master dies
(PR_SET_PDEATHSIG), and checks the master is still there after asking,
so no worker outlives it to keep the port.  A worker leaves with
os._exit(): never through the master's code, nor its atexit handlers
(python-daemon's would remove the pid file).
"""

import ctypes
import faulthandler
import os
import signal

from qmailverify.daemon.log import Log
from qmailverify.daemon.loop import Daemon
from qmailverify.daemon.startup import checked_deep, watch_sources
from qmailverify.daemon.title import Title
from qmailverify.errors import Fatal
from qmailverify.system.libc import libc_function
from qmailverify.system.live import LiveSystem

PR_SET_PDEATHSIG = 1


class Worker(Daemon):
    def __init__(self, *args, board, slot: int, **kw):
        super().__init__(*args, **kw)
        self.board, self.slot = board, slot

    def handle_alrm(self, name: str) -> None:
        self.gather_counts()
        self.board.put(self.slot, self.counts, self.loaded, self.controls.hub is not None)

    def handle_term(self, name: str) -> int:
        self.log.flush()
        return 0

    handle_int = handle_term


class Word:
    """The worker's word to the master: ok, or why it cannot start."""

    def __init__(self, fd: int):
        self.fd = fd

    def say(self, text: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, text.encode("ascii", "replace") + b"\n")
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None


def _die_with_master(master: int) -> None:
    prctl = libc_function("prctl", [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong,
                                    ctypes.c_ulong, ctypes.c_ulong])
    if prctl is not None:           # else only the check below, and the master's TERM
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != master:      # it died before we asked
        os._exit(111)


def run_worker(slot: int, settings, controls, sock, stream, signals, board, word_fd: int,
               master: int, close: list) -> None:
    """In the forked child: become worker slot+1 of settings.workers; never returns."""
    code, log, word = 111, None, Word(word_fd)
    try:
        signals.queue.clear()           # the master's, copied by fork
        _die_with_master(master)
        for fd in close:                # the other workers' sockets and words
            try:
                os.close(fd if isinstance(fd, int) else fd.detach())
            except OSError:
                pass
        where = "{}:{}".format(*settings.listen)
        title = Title(f"{where} worker {slot + 1}/{settings.workers}")
        system = LiveSystem(settings.qmailhome, settings.passwd, settings.fastforward,
                            watch=False)
        deep = checked_deep(settings, system)
        log = Log(stream)
        title.controls_loaded()
        daemon = Worker(settings, controls, system, log, sock, title, signals, deep,
                        board=board, slot=slot)
        watch_sources(system)
        word.say("ok")
        faulthandler.enable()
        code = daemon.serve()
    except Fatal as e:
        word.say(str(e))
        code = e.code
    except BaseException:           # never back into the master's code
        word.say("qmail-verify: fatal: a worker failed to start")
    finally:
        if log is not None:
            log.flush()
        os._exit(code)
