"""The loop's side of parking (parking.py holds the queue and the worker):
what daemonloop.Daemon does with a query that raised outcome.NeedLookup,
and with parked queries when their lookup is done or their time is up.

park() parks the query, or answers it "temporary" at once when it cannot
wait (no parking, or too many waiting); resume() decides again the
queries whose lookup is done and gives up, as "temporary" (nothing to a
legacy client, spec 6), those parked PARK_MAX seconds.  Both count into
the statistics line's parked and late.

Hub mode (hubrelay.py) parks its queries here too: ensure_parking()
makes the Parking the first time a query needs it (hub mode may be
switched on by SIGHUP), and a hub query given up says so, at position 0.
"""

import selectors
import time

from .deep import DEEP
from .hubcache import HubCache
from .hubrelay import HUB_POSITION, LATE
from .model import Verdict
from .parking import Parked, Parking
from .verifier import answer_verdict
from .wire import TEMPORARY, parse_query, query_ip


def park(daemon, need, datagram: bytes, peer, since: float | None):
    """None if parked, else the temporary Outcome to send now."""
    item = Parked(datagram, peer, time.monotonic() if since is None else since, need.store)
    daemon.system.settle()     # a thread parking starts is born with root's ids
    if isinstance(need.store, HubCache):
        ensure_parking(daemon)
    if daemon.parking is not None and daemon.parking.park(need, item):
        if since is None:
            daemon.counts.parked += 1
        return None
    daemon.counts.late += 1
    if isinstance(need.store, HubCache):
        return give_up(daemon, datagram, "too many queries wait for hub servers", HUB_POSITION)
    return give_up(daemon, datagram, "too many queries wait for the vpopmail database")


def ensure_parking(daemon) -> None:
    """Make the loop's Parking, and watch its pipe, if it has none yet."""
    if daemon.parking is None:
        daemon.parking = Parking()
        daemon.selector.register(daemon.parking.fd, selectors.EVENT_READ)


def give_up(daemon, datagram: bytes, reason: str, position: int = DEEP):
    v = Verdict(TEMPORARY, position, reason=reason)
    trace = daemon.settings.trace
    return answer_verdict(parse_query(datagram), v, trace, query_ip(datagram) if trace else None)


def resume(daemon) -> None:
    for p in daemon.parking.ready():
        daemon.send(daemon.answer(p.datagram, p.peer, p.since), p.peer)
    for p in daemon.parking.expired(time.monotonic()):
        daemon.counts.late += 1
        if isinstance(p.store, HubCache):
            outcome = give_up(daemon, p.datagram, LATE, HUB_POSITION)
        else:
            outcome = give_up(daemon, p.datagram, "the vpopmail database did not answer in time")
        for line in outcome.lines:
            daemon.log.line(line)
        daemon.counts.count(outcome.counted)
        daemon.send(outcome.reply, p.peer)
