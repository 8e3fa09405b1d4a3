"""The loop's side of parking (parking.py holds the queue and the worker):
what daemonloop.Daemon does with a query that raised outcome.NeedLookup,
and with parked queries when their lookup is done or their time is up.

park() parks the query, or answers it "temporary" at once when it cannot
wait (no parking, or too many waiting); resume() decides again the
queries whose lookup is done and gives up, as "temporary" (nothing to a
legacy client, spec 6), those parked PARK_MAX seconds.  Both count into
the statistics line's parked and late.
"""

import time

from .deep import DEEP
from .model import Verdict
from .parking import Parked
from .verifier import answer_verdict
from .wire import TEMPORARY, parse_query, query_ip


def park(daemon, need, datagram: bytes, peer, since: float | None):
    """None if parked, else the temporary Outcome to send now."""
    item = Parked(datagram, peer, time.monotonic() if since is None else since)
    if daemon.parking is not None and daemon.parking.park(need, item):
        if since is None:
            daemon.counts.parked += 1
        return None
    daemon.counts.late += 1
    return give_up(daemon, datagram, "too many queries wait for the vpopmail database")


def give_up(daemon, datagram: bytes, reason: str):
    v = Verdict(TEMPORARY, DEEP, reason=reason)
    trace = daemon.settings.trace
    return answer_verdict(parse_query(datagram), v, trace, query_ip(datagram) if trace else None)


def resume(daemon) -> None:
    for p in daemon.parking.ready():
        daemon.send(daemon.answer(p.datagram, p.peer, p.since), p.peer)
    for p in daemon.parking.expired(time.monotonic()):
        daemon.counts.late += 1
        outcome = give_up(daemon, p.datagram, "the vpopmail database did not answer in time")
        for line in outcome.lines:
            daemon.log.line(line)
        daemon.counts.count(outcome.counted)
        daemon.send(outcome.reply, p.peer)
