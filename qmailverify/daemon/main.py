"""qmail-verify: the UDP daemon that VERIFY-patched qmail-smtpd asks.

    qmail-verify [-d] [-p pidfile] [-o logfile]

Everything is configured from the environment (daemon/settings.py:
QMAILHOME, LISTEN, VERIFY_PASSWD, VERIFY_ALIASUSER, VERIFY_BREAK,
VERIFY_FASTFORWARDCDB, VERIFY_DEEP, VERIFY_VPOPMAIL, VERIFY_TRACE,
VERIFY_WORKERS) and qmail's control files (system/controls.py);
deep.hook.make_deep() builds deep mode.  With VERIFY_WORKERS=2 or more,
daemon/workers/master.py takes over once the settings and controls are
read: a master and its workers.  main() wires the parts together:
daemon.answer.get_reply() turns one datagram into one reply and its log
lines; daemon.loop.Daemon is the socket loop around it, dispatching
queued signals by name; daemon/background.py detaches for -d.

Everything the loop needs is made, and everything that can be checked is
checked (daemon/startup.py), before the daemon says it listens; a refusal is
one line and exit 111, detached (-d) or not.
"""

import os
import sys
from typing import NamedTuple

from qmailverify.errors import Fatal, errtext

try:            # under a tiny descriptor limit, reading a module can fail
    from qmailverify.cli import Shown, guarded, options
    from qmailverify.daemon.loop import Daemon, Log
    from qmailverify.daemon.settings import settings_from_env
    from qmailverify.daemon.signals import SignalQueue
    from qmailverify.daemon.startup import (
        checked_deep,
        listening,
        start_trouble,
        watch_sources,
    )
    from qmailverify.daemon.title import Title
    from qmailverify.daemon.udpsocket import bind
    from qmailverify.qmail.controlfile import ControlError
    from qmailverify.system import controls as controlfiles
    from qmailverify.system.live import LiveSystem
except OSError as e:
    LOAD_ERROR = e          # main() says so in one line
else:
    LOAD_ERROR = None

USAGE = "qmail-verify: usage: qmail-verify [-d] [-p pidfile] [-o logfile]"


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


def main(argv: list[str] | None = None) -> int:
    if LOAD_ERROR is not None:
        print(f"qmail-verify: fatal: unable to load the program: {errtext(LOAD_ERROR.errno)}",
              file=sys.stderr, flush=True)
        return 111
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
        if settings.workers > 1:
            from qmailverify.daemon.workers.master import run_master
            return run_master(settings, options_, controls, title, signals)
        sock = bind(*settings.listen)
        system = LiveSystem(settings.qmailhome, settings.passwd, settings.fastforward,
                            watch=False)           # started once the descriptors are counted
        deep = checked_deep(settings, system)
        stream = open(2, "wb", buffering=1 << 16, closefd=False)
        if options_.detach:
            from qmailverify.daemon.background import detach
            stream, ready = detach([sock], stream, options_.pidfile, options_.logfile)
        log = Log(stream)
        title.controls_loaded()
        daemon = Daemon(settings, controls, system, log, sock, title, signals, deep)
        watch_sources(system)
        listening(log, settings.listen, ready)
        return daemon.serve()
    except Shown as e:
        text = str(e)
        return guarded("qmail-verify", lambda: print(text) or 0)
    except Fatal as e:
        if ready:
            ready.fail(str(e))
        print(str(e), file=sys.stderr, flush=True)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
