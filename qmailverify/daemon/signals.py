"""Signals for qmail-verify's loops, as gunicorn's arbiter takes them:
the handlers only queue the signal, and the loop (daemon.loop.Daemon, or
the workers' Master) dispatches each to its handle_<name>() when it is
ready for it, so a signal never cuts into a half-answered query.

SignalQueue is installed first thing in main(), so that a signal that
comes during start-up waits for the loop instead of killing the process
half-way.
"""

import signal


class SignalQueue:
    """The queue, and the handlers that fill it."""

    QUEUED = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGALRM,
              signal.SIGUSR1, signal.SIGUSR2)

    def __init__(self):
        self.queue: list[int] = []
        for signum in self.QUEUED:
            signal.signal(signum, self._queue)

    def _queue(self, signum, frame) -> None:
        self.queue.append(signum)

    def handle(self, owner) -> int | None:
        """Dispatch the queued signals to owner (a Daemon, or the workers'
        Master), oldest first; the first exit code stops and is returned."""
        while self.queue:
            code = dispatch(owner, self.queue.pop(0))
            if code is not None:
                return code
        return None


def dispatch(owner, signum: int) -> int | None:
    """Run owner.handle_<name> for a queued signal; an exit code means stop."""
    name = signal.Signals(signum).name
    return getattr(owner, "handle_" + name[3:].lower())(name)
