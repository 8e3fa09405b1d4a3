"""qmail-verify: the UDP daemon that VERIFY-patched qmail-smtpd asks.

Everything is configured from the environment and qmail's control files:

  QMAILHOME              qmail's home (default /var/qmail)
  LISTEN                 IP, IP:PORT, :PORT or [IPV6]:PORT (127.0.0.1:11113)
  VERIFY_PASSWD          a passwd-format file to use instead of getpwnam()
  VERIFY_ALIASUSER       the alias user (alias)
  VERIFY_BREAK           the extension separator (-)
  VERIFY_FASTFORWARDCDB  fastforward's cdb, to check what ~alias/.qmail-default takes

Verifier.answer() turns one datagram into one reply and its log lines;
Daemon is the socket loop around it.  Signal handlers only queue the
signal; the loop dispatches handle_hup() (re-read the control files,
keeping the old ones if the new ones cannot be read) and handle_term().
"""

import faulthandler
import getopt
import os
import selectors
import signal
import socket
import sys
import time
from typing import NamedTuple

try:
    import setproctitle
except ImportError:          # the title is a convenience, never a need
    setproctitle = None

from . import controls as controlfiles
from .addrspec import AddressError, parse_server
from .clean import clean
from .errors import errtext
from .rules import decide
from .system import LiveSystem, LostPrivileges
from .wire import DELIVERABLE, QUERY_MAX, TEMPORARY, UNDELIVERABLE, make_reply, parse_query

PROG = b"qmail-verify: "
USAGE = "qmail-verify: usage: qmail-verify [-d] [-p pidfile] [-o logfile]"


class Fatal(Exception):
    """A reason to stop: str() is the message, .code the exit code."""

    def __init__(self, message: str, code: int = 111):
        super().__init__(message)
        self.code = code


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


class Verifier:
    """One datagram in, one reply (or None) out, with its log lines."""

    def __init__(self, settings: Settings, controls, system, log: Log):
        self.settings = settings
        self.controls = controls
        self.system = system
        self.log = log
        self.answered = 0

    def answer(self, datagram: bytes) -> bytes | None:
        query = parse_query(datagram)
        if query is None:
            return None
        addr = clean(query.address)
        try:
            self.system.refresh()
            v = decide(query.address, self.controls, self.system,
                       self.settings.alias, self.settings.brk)
        except LostPrivileges:
            raise
        except Exception as e:    # a bug of ours must not stop the daemon
            self.log.line(b"warning: internal error answering " + addr + b": "
                          + type(e).__name__.encode() + b"; not answered.")
            return None
        if v.stat_errno:
            self.log.line(b"Unable to stat " + clean(v.stat_path) + b": "
                          + errtext(v.stat_errno).encode() + b".")
        if v.code == DELIVERABLE:
            self.log.line(addr + b" permitted for " + (clean(v.user) if v.user else b"UNKNOWN") + b".")
        elif v.code == UNDELIVERABLE:
            self.log.line(addr + b" denied.")
        else:
            reason = clean(v.reason.encode())
            if not query.extended:
                self.log.line(addr + b" not answered: temporary failure: " + reason + b".")
                return None
            self.log.line(addr + b" temporary failure: " + reason + b".")
            self.answered += 1
            return make_reply(TEMPORARY, v.position, reason)
        self.answered += 1
        return make_reply(v.code, v.position, v.user or b"")

    def reload(self) -> None:
        """Re-read the control files; raises ControlError and keeps the old ones."""
        self.controls = controlfiles.load(self.settings.qmailhome)


class Title:
    """The process title: where we listen, how much we did, when the
    controls were loaded.  Rewritten at most once a second."""

    def __init__(self, where: str):
        self.where = where
        self.loaded = ""
        self.shown = None
        self.when = 0.0
        if setproctitle:
            setproctitle.getproctitle()

    def stale(self, answered: int) -> bool:
        return bool(setproctitle) and (answered, self.loaded) != self.shown

    def update(self, answered: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.stale(answered):
            return
        if not force and now - self.when < 1.0:
            return
        setproctitle.setproctitle(
            f"qmail-verify {self.where}: {answered} queries answered,"
            f" controls loaded {self.loaded}")
        self.shown, self.when = (answered, self.loaded), now

    def controls_loaded(self) -> None:
        self.loaded = time.strftime("%Y-%m-%d %H:%M:%S")


class Signals:
    """The handlers only queue; Daemon.run() dispatches.  Installed first
    thing, so that a signal that comes during start-up waits for the loop
    instead of killing the process half-way."""

    def __init__(self):
        self.queue: list[int] = []
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._queue)

    def _queue(self, signum, frame) -> None:
        self.queue.append(signum)


class Daemon:
    def __init__(self, verifier: Verifier, sock: socket.socket, title: Title,
                 signals: Signals):
        self.verifier = verifier
        self.sock = sock
        self.title = title
        self.log = verifier.log
        self.signals = signals.queue

    def handle_hup(self) -> None:
        try:
            self.verifier.reload()
        except controlfiles.ControlError as e:
            self.log.line(b"warning: Unable to read controls: " + clean(str(e).encode())
                          + b": keeping the old ones.")
            return
        self.title.controls_loaded()
        self.title.update(self.verifier.answered, force=True)
        self.log.line(b"controls reloaded.")

    def handle_term(self, signum: int) -> int:
        self.log.line(f"exiting on {signal.Signals(signum).name}.".encode())
        self.log.flush()
        return 0

    def run(self) -> int:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        sock, verifier = self.sock, self.verifier
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(rfd, selectors.EVENT_READ)
        while True:
            while self.signals:
                signum = self.signals.pop(0)
                if signum == signal.SIGHUP:
                    self.handle_hup()
                else:
                    return self.handle_term(signum)
            try:
                data, peer = sock.recvfrom(QUERY_MAX)
            except BlockingIOError:
                self.log.flush()
                self.title.update(verifier.answered)
                stale = self.title.stale(verifier.answered)
                selector.select(1.0 if stale else None)
                try:
                    os.read(rfd, 512)
                except BlockingIOError:
                    pass
                continue
            except OSError:
                continue
            try:
                reply = verifier.answer(data)
            except LostPrivileges as e:
                self.log.line(f"fatal: {e}".encode())
                self.log.flush()
                return 111
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError:
                    pass


class Options(NamedTuple):
    detach: bool = False
    pidfile: str | None = None
    logfile: str | None = None


def parseargs(argv: list[str]) -> Options:
    """Options from the command line (argv without the program name)."""
    try:
        opts, rest = getopt.getopt(argv, "dp:o:")
    except getopt.GetoptError as e:
        raise Fatal(f"{USAGE} ({e})", 100) from None
    if rest:
        raise Fatal(USAGE, 100)
    o = dict(opts)
    if ("-p" in o or "-o" in o) and "-d" not in o:
        raise Fatal(f"{USAGE} (-p and -o go with -d)", 100)
    return Options("-d" in o, o.get("-p"), o.get("-o"))


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
    signals = Signals()
    try:
        options = parseargs(sys.argv[1:] if argv is None else argv)
        settings = settings_from_env(os.environ)
        title = Title("{}:{}".format(*settings.listen))
        try:
            controls = controlfiles.load(settings.qmailhome)
        except controlfiles.ControlError as e:
            raise Fatal(f"qmail-verify: Unable to read controls: {e}: exiting.") from None
        sock = bind(*settings.listen)
        stream = open(2, "wb", buffering=1 << 16, closefd=False)
        if options.detach:
            from .background import detach
            stream = detach(sock, stream, options.pidfile, options.logfile)
        log = Log(stream)
        verifier = Verifier(settings, controls, LiveSystem(
            settings.qmailhome, settings.passwd, settings.fastforward), log)
        title.controls_loaded()
        log.line("Listening on address: {}, port {}.".format(*settings.listen).encode())
        log.flush()
        faulthandler.enable()          # a fatal signal leaves its trace in the log
        try:
            return Daemon(verifier, sock, title, signals).run()
        except MemoryError:
            log.line(b"fatal: out of memory (is softlimit too small?)")
        except Exception as e:         # a bug of ours: one line, and supervise restarts us
            log.line(f"fatal: internal error: {type(e).__name__}: {e}".encode())
        log.flush()
        return 111
    except Fatal as e:
        print(str(e), file=sys.stderr, flush=True)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
