"""The workers' counts, where the master can read them (VERIFY_WORKERS).

SIGALRM (svc -a) must give one statistics line for the whole daemon, but
every worker counts its own queries.  StatBoard is a shared anonymous
mmap, made before the workers are forked, with one slot per worker: on
SIGALRM a worker writes its Counts (harvest and hub fields gathered as
the single daemon gathers them), the monotonic time its controls were
loaded and whether control/verifyhub maps a domain, then bumps the
slot's sequence number.  The master forwards SIGALRM, waits (at most
COUNTS_WAIT seconds) until every sequence has moved, and sums (total()).

Every field is a sum.  harvest_ips is the number of client IPs held
across the workers, exact because each IP is counted by one worker only
(steering.py); hub_entries the far answers held across the workers'
caches (one answer may be held by several).  The controls' age is that
of the oldest controls a worker holds.
"""

import mmap
import struct
from dataclasses import fields

from qmailverify.daemon.stats import Counts

COUNT_NAMES = tuple(f.name for f in fields(Counts))
SLOT = struct.Struct(f"=QdQ{len(COUNT_NAMES)}Q")      # seq, loaded, hub, counts
COUNTS_WAIT = 1.0       # seconds the master waits for the workers' counts


class StatBoard:
    def __init__(self, workers: int):
        self.workers = workers
        self.map = mmap.mmap(-1, SLOT.size * workers)       # MAP_SHARED: seen across fork

    def seq(self, slot: int) -> int:
        return struct.unpack_from("=Q", self.map, slot * SLOT.size)[0]

    def put(self, slot: int, counts: Counts, loaded: float, hub: bool) -> None:
        """In a worker: its figures, then the next sequence number."""
        at = slot * SLOT.size
        values = [getattr(counts, name) for name in COUNT_NAMES]
        body = SLOT.pack(0, loaded, int(hub), *values)[8:]
        self.map[at + 8:at + SLOT.size] = body
        struct.pack_into("=Q", self.map, at, self.seq(slot) + 1)

    def total(self, slots) -> tuple[Counts, float | None, bool]:
        """The sum of the slots' counts, the oldest loading time of their
        controls (None if none has reported yet), and whether any maps hubs."""
        total, oldest, hub = Counts(), None, False
        for slot in slots:
            seq, loaded, hub_on, *values = SLOT.unpack_from(self.map, slot * SLOT.size)
            if not seq:
                continue
            for name, value in zip(COUNT_NAMES, values):
                setattr(total, name, getattr(total, name) + value)
            oldest = loaded if oldest is None else min(oldest, loaded)
            hub = hub or bool(hub_on)
        return total, oldest, hub
