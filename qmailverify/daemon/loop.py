"""qmail-verify's loop, as gunicorn's arbiter is one: the UDP socket, a
signal queue (signals.py), and the log (log.py), around
answer.get_reply().

Daemon holds what changes while it runs: the controls (re-read on
SIGHUP, the old ones kept if the new ones cannot be read) and the counts.
The loop dispatches the queued signals to handle_<name>(): hup, term and
int (exit), alrm (a statistics line, stats.py), usr1 and usr2 (logged,
otherwise ignored).  A query for a domain control/verifyhub maps is
asked of its far server first (hub.answer.hub_answer; self.hub is the
far answers' cache), parked like a slow store's.
"""

import os
import selectors
import signal
import socket
import time

from qmailverify.clean import visible
from qmailverify.daemon.answer import get_reply
from qmailverify.daemon.fairqueue import FairQueue
from qmailverify.daemon.harvest import HarvestCounter
from qmailverify.daemon.log import Log
from qmailverify.daemon.parking import Parking, park_query, resume_parked
from qmailverify.daemon.settings import Settings
from qmailverify.daemon.signals import SignalQueue, dispatch
from qmailverify.daemon.stats import Counts, stats_line
from qmailverify.daemon.title import Title
from qmailverify.errors import Fatal, LostPrivileges, NeedLookup, errtext
from qmailverify.hub.answer import hub_answer
from qmailverify.hub.cache import HubCache
from qmailverify.protocol.wire import QUERY_MAX
from qmailverify.qmail.budget import Costly
from qmailverify.qmail.controlfile import ControlError
from qmailverify.system import controls as controlfiles


class Daemon:
    """The loop.  Everything it needs (the signal wake-up pipe, the
    selector) is made here, so that a process short of descriptors is
    refused before it says it listens."""

    def __init__(self, settings: Settings, controls, system, log: Log,
                 sock: socket.socket, title: Title, signals: "SignalQueue", deep=None):
        self.settings = settings
        self.deep = deep                 # deep.hook.Deep with VERIFY_DEEP=1
        self.parking = None              # parking.Parking for a slow store
        self.controls = controls
        self.system = system
        self.log = log
        self.counts = Counts()
        self.sock = sock
        self.queue = FairQueue()         # read, not yet answered (fairqueue.py)
        self.costly = Costly()           # homes and addresses over budget lately (budget.py)
        self.title = title
        self.signals = signals
        self.started = self.loaded = time.monotonic()
        self.harvest = HarvestCounter(settings.harvest_window, settings.harvest_ips) \
            if settings.harvest_window else None
        self.hub = HubCache(settings.hub_ttl, settings.hub_negative_ttl, settings.hub_entries,
                            settings.hub_timeout)        # used while control/verifyhub maps any
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
        if deep is not None and getattr(deep.store, "blocking", True) is False:
            self.parking = Parking(max_parked=deep.max_waiting)
            self.selector.register(self.parking.fd, selectors.EVENT_READ)

    dispatch = dispatch

    def handle_hup(self, name: str) -> None:
        """Re-read the control files; keep the old ones if that fails.
        Read with root's ids, all of them: between two waits the loop's
        gid may still be the last user's (identity.py)."""
        self.system.settle()
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
        self.gather_counts()
        self.log.line(stats_line(self.counts, now - self.started, now - self.loaded,
                                 self.deep is not None, self.controls.hub is not None))

    def gather_counts(self) -> None:
        """Copy the queue's, the harvest counter's and the hub cache's
        figures into self.counts."""
        self.counts.shed = self.queue.shed
        if self.harvest is not None:
            h, c = self.harvest, self.counts
            c.harvest_refusals, c.harvest_ips, c.harvest_evicted = h.refusals, len(h.ips), h.evicted
        h, c = self.hub, self.counts
        c.hub_hits, c.hub_misses, c.hub_asked, c.hub_silent = h.hits, h.misses, h.asked, h.silent
        c.hub_entries = len(h)

    def handle_usr1(self, name: str) -> None:
        self.log.line(f"received {name}: ignored.".encode())

    handle_usr2 = handle_usr1

    def answer(self, datagram: bytes, peer=None, since: float | None = None) -> bytes | None:
        """The reply to one datagram (None: none, or parked), its lines
        logged and counted.  since: when a parked query first came."""
        s = self.settings
        try:
            outcome = hub_answer(datagram, self.controls.hub, self.hub, since, s.trace)
            if outcome is None:             # not a hub domain: decided here
                outcome = get_reply(datagram, self.controls, self.system, s.alias, s.brk,
                                    self.deep, s.trace, self.costly)
                if self.costly.last_cost:
                    self.queue.charge(peer, self.costly.last_cost)
        except NeedLookup as need:
            outcome = park_query(self, need, datagram, peer, since)
            if outcome is None:
                return None
        for line in outcome.lines:
            self.log.line(line)
        self.counts.count(outcome.counted)
        # only extended queries count; 0, the NUL as an int, is a far
        # cheaper test than the one-byte b"\0" (no TypeError raised inside)
        if self.harvest is not None and 0 in datagram:
            return self.harvest.annotate(datagram, outcome.counted, outcome.reply, time.monotonic())
        return outcome.reply

    def send(self, reply: bytes | None, peer) -> None:
        if reply is not None:
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    DRAIN_MAX = 1024     # datagrams read from the socket before the next answers
    BATCH = 16           # datagrams answered between two reads

    def serve(self) -> int:
        """run(); a crash of ours is one line and 111 (supervise starts us again)."""
        try:
            return self.run()
        except MemoryError:
            self.log.line(b"fatal: out of memory (is softlimit too small?)")
        except Exception as e:
            self.log.line(f"fatal: internal error: {type(e).__name__}: {e}".encode())
        self.log.flush()
        return 111

    def run(self) -> int:
        while True:
            code = self.signals.handle(self)
            if code is not None:
                return code
            try:
                if self.parking is not None:
                    resume_parked(self)
                if not self.queue and self.lone:
                    self.idle()
                self.read()
                if self.queue:
                    self.answer_batch()
            except LostPrivileges as e:
                self.log.line(f"fatal: {e}".encode())
                self.log.flush()
                return 111

    lone = True          # did the last read() bring one datagram at most?

    def read(self) -> None:
        """Everything waiting on the socket (DRAIN_MAX at most) into the
        queue: reading is cheap next to answering, so under a flood the
        kernel's buffer does not fill and drop queries blindly.

        When the queue runs empty, the loop reads again at once if the
        last read() brought several datagrams (their senders are busy:
        more have likely come while it answered), and otherwise waits in
        select() first, which returns at once if a datagram came
        meanwhile: a lone query (one qmail-smtpd's RCPT) then costs no
        read that finds nothing, and a busy loop no wait that finds
        something."""
        recvfrom, put = self.sock.recvfrom, self.queue.put
        n = 0
        for n in range(self.DRAIN_MAX):
            try:
                data, peer = recvfrom(QUERY_MAX)
            except BlockingIOError:
                break
            except OSError:
                continue
            put(data, peer)
        self.lone = n <= 1

    def answer_batch(self) -> None:
        """Answer up to BATCH queued datagrams, one sender after another,
        then send the replies.  All were read before the batch starts, so
        one freshness check (system.begin_batch()) serves them all: any
        change made before the last of them came is already known."""
        batch = self.queue.take(self.BATCH)
        system = self.system
        system.begin_batch()
        replies = []
        try:
            for data, peer in batch:
                replies.append((self.answer(data, peer), peer))
        finally:                 # what was answered is sent, whatever stops the batch
            system.end_batch()
            for reply, peer in replies:
                self.send(reply, peer)

    QUIET = 0.1          # seconds without work before root's gid comes back

    def idle(self) -> None:
        """Nothing to answer: write the log if it is due (log.py), show the
        title, and wait for a datagram, a signal, a parked query's lookup
        or deadline, or the log's time to be written.  Root's gid comes
        back (identity.py) once QUIET seconds pass with no work, not before
        every wait: a query that comes right after the last costs no
        credential change for it."""
        now = time.monotonic()
        timeout = self.log.flush_due(now)
        if self.title.update(self.counts.answered):
            timeout = 1.0 if timeout is None else min(timeout, 1.0)
        if self.parking is not None:
            timeout = self.parking.timeout(now, timeout)
        if self.system.settled():
            events = self.selector.select(timeout)
        else:
            events = self.selector.select(self.QUIET if timeout is None
                                          else min(timeout, self.QUIET))
            if not events:
                self.system.settle()
        if self.parking is not None:
            self.parking.drain()
        if any(key.fd == self.wakeup for key, _ in events):
            try:
                os.read(self.wakeup, 512)
            except BlockingIOError:
                pass
