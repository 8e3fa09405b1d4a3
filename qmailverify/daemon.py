"""qmail-verify: the UDP daemon that VERIFY-patched qmail-smtpd asks.

Everything is configured from the environment and qmail's control files:

  QMAILHOME              qmail's home (default /var/qmail)
  LISTEN                 IP, IP:PORT, :PORT or [IPV6]:PORT (127.0.0.1:11113)
  VERIFY_PASSWD          a passwd-format file to use instead of getpwnam()
  VERIFY_ALIASUSER       the alias user (alias)
  VERIFY_BREAK           the extension separator (-)
  VERIFY_FASTFORWARDCDB  fastforward's cdb, to check what ~alias/.qmail-default takes

verifier.get_reply() turns one datagram into one reply and its log lines;
Daemon is the socket loop around it, holding what changes: the controls
(reloaded on SIGHUP) and the counts.  Signal handlers only queue the
signal; the loop dispatches handle_<name>(): hup (re-read the control
files, keeping the old ones if the new ones cannot be read), term and
int (exit), alrm (a statistics line, stats.py), usr1 and usr2 (logged,
otherwise ignored).

Everything the loop needs is made, and everything that can be checked is
checked (startup.py), before the daemon says it listens; a refusal is
one line and exit 111, detached (-d) or not.
"""

import faulthandler
import os
import selectors
import signal
import socket
import sys
import time
from typing import NamedTuple

from . import __version__
from . import controls as controlfiles
from .addrspec import AddressError, parse_server
from .cli import Shown, guarded, options
from .clean import visible
from .controlfile import ControlError
from .errors import Fatal, LostPrivileges, errtext
from .startup import spare_descriptor_trouble, start_trouble
from .stats import Counts, stats_line
from .system import LiveSystem
from .title import Title
from .verifier import get_reply
from .wire import QUERY_MAX

PROG = b"qmail-verify: "
USAGE = "qmail-verify: usage: qmail-verify [-d] [-p pidfile] [-o logfile]"


class Settings(NamedTuple):
    qmailhome: str
    listen: tuple[str, int]
    passwd: str | None
    alias: bytes
    brk: bytes
    fastforward: str | None


def settings_from_env(env) -> Settings:
    try:
        listen = parse_server(env.get("LISTEN", ""))
    except AddressError as e:
        raise Fatal(f"qmail-verify: fatal: unable to parse LISTEN: {e}") from None
    brk = os.fsencode(env.get("VERIFY_BREAK", "-"))
    if len(brk) != 1:
        raise Fatal("qmail-verify: fatal: VERIFY_BREAK must be one character")
    def path(name):               # absolute, so that -d may change directory
        value = env.get(name)
        return os.path.abspath(value) if value else None

    return Settings(
        qmailhome=path("QMAILHOME") or "/var/qmail",
        listen=listen,
        passwd=path("VERIFY_PASSWD"),
        alias=os.fsencode(env.get("VERIFY_ALIASUSER") or "alias"),
        brk=brk,
        fastforward=path("VERIFY_FASTFORWARDCDB"),
    )


class Log:
    """One line an event, 'qmail-verify: ...', buffered until the daemon
    waits for work (so a burst of queries costs one write)."""

    def __init__(self, stream):
        self.stream = stream

    def line(self, msg: bytes) -> None:
        try:
            self.stream.write(PROG + msg + b"\n")
        except (OSError, ValueError):
            pass

    def flush(self) -> None:
        try:
            self.stream.flush()
        except (OSError, ValueError):
            pass


class SignalQueue:
    """The handlers only queue; Daemon.run() dispatches.  Installed first
    thing, so that a signal that comes during start-up waits for the loop
    instead of killing the process half-way."""

    QUEUED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGALRM,
              signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self):
        self.queue: list[int] = []
        for signum in self.QUEUED:
            signal.signal(signum, self._queue)

    def _queue(self, signum, frame) -> None:
        self.queue.append(signum)


class Daemon:
    """The loop.  Everything it needs (the signal wake-up pipe, the
    selector) is made here, so that a process short of descriptors is
    refused before it says it listens."""

    def __init__(self, settings: Settings, controls, system, log: Log,
                 sock: socket.socket, title: Title, signals: "SignalQueue"):
        self.settings = settings
        self.controls = controls
        self.system = system
        self.log = log
        self.counts = Counts()
        self.sock = sock
        self.title = title
        self.signals = signals.queue
        self.started = self.loaded = time.monotonic()
        try:
            self.wakeup, wfd = os.pipe()
        except OSError as e:
            raise Fatal(f"qmail-verify: fatal: unable to create a pipe: {errtext(e.errno)}") \
                from None
        os.set_blocking(self.wakeup, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        sock.setblocking(False)
        try:
            self.selector = selectors.DefaultSelector()
        except OSError as e:
            raise Fatal(f"qmail-verify: fatal: unable to create a selector: {errtext(e.errno)}") \
                from None
        self.selector.register(sock, selectors.EVENT_READ)
        self.selector.register(self.wakeup, selectors.EVENT_READ)

    def dispatch(self, signum: int) -> int | None:
        """Run handle_<name> for a queued signal; an exit code means stop."""
        name = signal.Signals(signum).name
        return getattr(self, "handle_" + name[3:].lower())(name)

    def handle_hup(self, name: str) -> None:
        """Re-read the control files; keep the old ones if that fails."""
        try:
            self.controls = controlfiles.load(self.settings.qmailhome)
        except ControlError as e:
            self.log.line(b"warning: Unable to read controls: " + visible(str(e).encode())
                          + b": keeping the old ones.")
            return
        self.loaded = time.monotonic()
        self.title.controls_loaded()
        self.title.update(self.counts.answered, force=True)
        self.log.line(b"controls reloaded.")

    def handle_term(self, name: str) -> int:
        self.log.line(f"exiting on {name}.".encode())
        self.log.flush()
        return 0

    handle_int = handle_term

    def handle_alrm(self, name: str) -> None:
        now = time.monotonic()
        self.log.line(stats_line(self.counts, now - self.started, now - self.loaded))

    def handle_usr1(self, name: str) -> None:
        self.log.line(f"received {name}: ignored.".encode())

    handle_usr2 = handle_usr1

    def answer(self, datagram: bytes) -> bytes | None:
        """The reply to one datagram (None: none), its lines logged and counted."""
        s = self.settings
        outcome = get_reply(datagram, self.controls, self.system, s.alias, s.brk)
        for line in outcome.lines:
            self.log.line(line)
        self.counts.count(outcome.counted)
        return outcome.reply

    def run(self) -> int:
        sock, selector = self.sock, self.selector
        while True:
            while self.signals:
                code = self.dispatch(self.signals.pop(0))
                if code is not None:
                    return code
            try:
                data, peer = sock.recvfrom(QUERY_MAX)
            except BlockingIOError:
                self.log.flush()
                answered = self.counts.answered
                self.title.update(answered)
                selector.select(1.0 if self.title.stale(answered) else None)
                try:
                    os.read(self.wakeup, 512)
                except BlockingIOError:
                    pass
                continue
            except OSError:
                continue
            try:
                reply = self.answer(data)
            except LostPrivileges as e:
                self.log.line(f"fatal: {e}".encode())
                self.log.flush()
                return 111
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass


class DaemonOptions(NamedTuple):
    detach: bool = False
    pidfile: str | None = None
    logfile: str | None = None


def parseargs(argv: list[str]) -> DaemonOptions:
    """qmail-verify's options from the command line (argv without the program name)."""
    opts, rest = options(argv, "dp:o:", USAGE)           # raises Fatal, Shown
    if rest:
        raise Fatal(USAGE, 100)
    o = dict(opts)
    if ("-p" in o or "-o" in o) and "-d" not in o:
        raise Fatal(f"{USAGE} (-p and -o go with -d)", 100)
    return DaemonOptions("-d" in o, o.get("-p"), o.get("-o"))


def bind(ip: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
    except OSError as e:
        sock.close()
        raise Fatal(f"qmail-verify: fatal: unable to bind to {ip} port {port}: "
                    f"{errtext(e.errno)}") from None
    return sock


def main(argv: list[str] | None = None) -> int:
    signals = SignalQueue()
    ready = None
    try:
        options_ = parseargs(sys.argv[1:] if argv is None else argv)
        settings = settings_from_env(os.environ)
        title = Title("{}:{}".format(*settings.listen))
        trouble = start_trouble(settings.qmailhome, settings.passwd, settings.fastforward)
        if trouble:
            raise Fatal(f"qmail-verify: fatal: {trouble}")
        try:
            controls = controlfiles.load(settings.qmailhome)
        except ControlError as e:
            raise Fatal(f"qmail-verify: Unable to read controls: {e}: exiting.") from None
        sock = bind(*settings.listen)
        system = LiveSystem(settings.qmailhome, settings.passwd, settings.fastforward)
        stream = open(2, "wb", buffering=1 << 16, closefd=False)
        if options_.detach:
            from .background import detach
            stream, ready = detach(sock, stream, options_.pidfile, options_.logfile)
        log = Log(stream)
        title.controls_loaded()
        daemon = Daemon(settings, controls, system, log, sock, title, signals)
        trouble = spare_descriptor_trouble()
        if trouble:
            raise Fatal(f"qmail-verify: fatal: {trouble}")
        log.line("Listening on address: {}, port {}.".format(*settings.listen).encode())
        log.line(f"version {__version__}.".encode())
        log.flush()
        if ready:
            ready.ok()
        faulthandler.enable()          # a fatal signal leaves its trace in the log
        try:
            return daemon.run()
        except MemoryError:
            log.line(b"fatal: out of memory (is softlimit too small?)")
        except Exception as e:         # a bug of ours: one line, and supervise restarts us
            log.line(f"fatal: internal error: {type(e).__name__}: {e}".encode())
        log.flush()
        return 111
    except Shown as e:
        return guarded("qmail-verify", lambda: print(e) or 0)
    except Fatal as e:
        if ready:
            ready.fail(str(e))
        print(str(e), file=sys.stderr, flush=True)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
