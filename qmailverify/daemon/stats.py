"""The daemon's statistics: what SIGALRM (svc -a) writes to the log.

Counts holds the counters, one field each; stats_line() is the pure
function that writes them as one log line of key=value fields, in the
order the fields are declared, followed by the uptime and the age of the
controls in whole seconds:

    stats: queries=12 permitted=7 denied=4 temporary=1 unanswered=0 shed=0 harvest_refusals=0
           harvest_ips=0 harvest_evicted=0 uptime=3600 controls_age=120   (one line)

queries counts every non-empty datagram; permitted and denied the
answers "deliverable" and "not deliverable"; temporary the status-2
answers sent to clients that asked for the extended reply; unanswered the
queries left without a reply because of our own trouble (a legacy client
then says 451); shed the datagrams read but dropped unanswered because
too many were waiting (fairqueue.py: a flood; their senders time out as
if the kernel had dropped them, and a legacy client says 451).  The
harvest fields (harvest.py) are copied in from the
harvest counter when the line is written: harvest_refusals the refusals
counted against a client IP, harvest_ips the IPs it holds now,
harvest_evicted the IPs forgotten at its bound.  A later feature adds its
counter as a field of Counts.

Deep mode's fields (DEEP_FIELDS) are written only when deep mode is on,
so the default line stays the same: parked counts the queries that
waited for the vpopmail database (parking.py), late those of them given
up as temporary (waited too long, or too many waiting).

Hub mode's fields (HUB_FIELDS) are written only when control/verifyhub
maps a domain; parked and late are written then too (a query waiting for
a far server is parked).  They are copied in from the hub cache
(hub/cache.py) when the line is written: hub_hits the queries for a hub
domain answered from the cache at once, hub_misses those that waited for
the far server, hub_asked the queries sent to far servers, hub_silent
those of them that got no reply in time, hub_entries the far answers
held now (answers, and the last failure of a key until it is asked again).

With VERIFY_WORKERS the master writes the line, each field the sum over
the workers (workers/counts.py).
"""

from dataclasses import dataclass, fields


@dataclass
class Counts:
    queries: int = 0
    permitted: int = 0
    denied: int = 0
    temporary: int = 0
    unanswered: int = 0
    shed: int = 0
    harvest_refusals: int = 0
    harvest_ips: int = 0
    harvest_evicted: int = 0
    parked: int = 0
    late: int = 0
    hub_hits: int = 0
    hub_misses: int = 0
    hub_asked: int = 0
    hub_silent: int = 0
    hub_entries: int = 0

    def count(self, field: str | None) -> None:
        """One more query, of the kind field names (None: no query at all)."""
        if field is not None:
            self.queries += 1
            setattr(self, field, getattr(self, field) + 1)

    @property
    def answered(self) -> int:
        return self.permitted + self.denied + self.temporary


DEEP_FIELDS = ("parked", "late")
HUB_FIELDS = ("hub_hits", "hub_misses", "hub_asked", "hub_silent", "hub_entries")


def stats_line(counts: Counts, uptime: float, controls_age: float, deep: bool = False,
               hub: bool = False) -> bytes:
    """The log line (without 'qmail-verify: ' and the newline); deep:
    with DEEP_FIELDS; hub: with DEEP_FIELDS and HUB_FIELDS."""
    left_out = (() if deep or hub else DEEP_FIELDS) + (() if hub else HUB_FIELDS)
    pairs = [f"{f.name}={getattr(counts, f.name)}" for f in fields(counts)
             if f.name not in left_out]
    pairs += [f"uptime={int(uptime)}", f"controls_age={int(controls_age)}"]
    return ("stats: " + " ".join(pairs)).encode()
