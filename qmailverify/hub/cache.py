"""Hub mode's cache of far answers, and the one blocking ask that fills it.

HubCache.get() is asked by the loop; a miss raises errors.NeedLookup,
the loop parks the query (daemon/parking.py) and its ONE worker thread calls
fill(key), which asks the far server (ask_far: one UDP datagram, one
wait of at most timeout seconds, 2 by default, well under a client's 5)
and stores what came.  fill() touches nothing but the network and this
cache, under its lock; the parked queries are then decided again.

What is kept, keyed by (server, address as queried):

  - a "deliverable" reply (low nibble 0) for ttl seconds (300);
  - any other reply but 2 ("not deliverable") for negative_ttl seconds
    (5), so that a mailbox just made on the far server is refused no
    longer than that;
  - a status-2 reply, or silence (no reply in time, a refused or failed
    socket), is never kept as an answer: it serves only the queries that
    were already waiting when it came (asked at or before it was
    filled); the next query asks again.

At most `entries` keys (10000) are kept; a new key evicts the oldest
filled.  The counters (the statistics line's hub_* fields): hits, the
queries answered from the cache at once; misses, those that had to wait
for the far server; asked, the datagrams sent to far servers; silent,
the asks that got no reply in time.
"""

import collections
import socket
import threading
import time
from typing import NamedTuple

from qmailverify.errors import NeedLookup
from qmailverify.protocol.wire import DELIVERABLE, REPLY_MAX, TEMPORARY, hub_query

HUB_TTL = 300.0
HUB_NEGATIVE_TTL = 5.0
HUB_ENTRIES = 10000
HUB_TIMEOUT = 2.0


class Far(NamedTuple):
    reply: bytes | None       # the far server's reply as it came (None: silence)
    until: float              # kept as an answer until then (monotonic)
    filled: float             # when it came: it serves queries asked until then


def ask_far(server: tuple[str, int], address: bytes, timeout: float) -> bytes | None:
    """The far server's reply to an extended query for address, cut to
    REPLY_MAX, or None if none came within timeout (or the socket failed)."""
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(server)           # only the far server may answer
            s.send(hub_query(address))     # marked: never passed on again
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                s.settimeout(left)
                data = s.recv(2048)
                if data:
                    return data[:REPLY_MAX]
    except OSError:                     # refused, unreachable, timed out
        return None


class HubCache:
    def __init__(self, ttl: float = HUB_TTL, negative_ttl: float = HUB_NEGATIVE_TTL,
                 entries: int = HUB_ENTRIES, timeout: float = HUB_TIMEOUT,
                 clock=time.monotonic, ask=ask_far):
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.entries = max(1, entries)
        self.timeout = timeout
        self.clock = clock
        self.ask = ask
        self._far: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.asked = self.silent = 0

    def __len__(self) -> int:
        return len(self._far)

    def get(self, server, address: bytes, asked: float, waited: bool) -> Far:
        """The Far for address at server, for a query that came at asked
        (waited: it was parked before); NeedLookup if it must be fetched."""
        key = (server, address)
        with self._lock:
            far = self._far.get(key)
        if far is not None and (asked <= far.filled or self.clock() < far.until):
            if not waited:
                self.hits += 1
            return far
        if not waited:
            self.misses += 1
        raise NeedLookup(self, key)

    @staticmethod
    def lane(key):
        """Fills that may run side by side run in lanes of their own
        (parking.py): one a far server, so that a silent one holds up
        only the queries for its own domains."""
        return key[0]

    def fill(self, key) -> None:
        """Ask the far server (blocking, at most self.timeout) and keep the
        reply (daemon/parking.py's thread calls this)."""
        server, address = key
        with self._lock:
            self.asked += 1
        reply = self.ask(server, address, self.timeout)
        now = self.clock()
        if reply is None:
            with self._lock:
                self.silent += 1
            until = now
        elif reply[0] & 0x0F == TEMPORARY:
            until = now
        elif reply[0] & 0x0F == DELIVERABLE:
            until = now + self.ttl
        else:
            until = now + self.negative_ttl
        with self._lock:
            self._far.pop(key, None)
            while len(self._far) >= self.entries:
                self._far.popitem(last=False)
            self._far[key] = Far(reply, until, now)
