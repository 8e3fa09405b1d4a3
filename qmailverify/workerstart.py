"""qmail-verify with VERIFY_WORKERS=N, from the settings to the master's loop.

The start of a single daemon (daemon.py), done for N workers: the
SO_REUSEPORT group bound and steered (steering.py; a bind failure is a
refusal), deep mode's settings checked (each worker makes its own store),
-d's detaching with every socket kept, the descriptors counted, then the
workers forked and each one's word awaited (workers.Master.start).  Only
then "Listening", and -d's starting process is told; a refusal at any
step is one line and exit 111, detached or not.
"""

from .daemonlog import Log
from .errors import Fatal
from .startup import check_descriptors, checked_deep, listening
from .steering import bind_group
from .system import LiveSystem
from .workers import Master


def run_master(settings, options_, controls, title, signals) -> int:
    """qmail-verify with settings.workers workers: start, then the master's loop."""
    socks = bind_group(*settings.listen, settings.workers)
    system = LiveSystem(settings.qmailhome, settings.passwd, settings.fastforward, watch=False)
    checked_deep(settings, system)          # checked here; each worker makes its own
    stream = open(2, "wb", buffering=1 << 16, closefd=False)
    ready = None
    try:
        if options_.detach:
            from .background import detach
            stream, ready = detach(socks, stream, options_.pidfile, options_.logfile)
        log = Log(stream)
        title.controls_loaded()
        check_descriptors()
        master = Master(settings, controls, socks, stream, log, title, signals,
                        [ready.fd] if ready else [])
        master.start()
    except Fatal as e:
        if ready:
            ready.fail(str(e))
        raise
    listening(log, settings.listen, ready)
    return master.run()
