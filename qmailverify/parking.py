"""Queries that wait for a slow store, so that nothing slow stalls the rest.

All the deciding is done in the loop's thread, the only one that ever
takes a user's ids (identity.py): no stat, no open-as-user and no
users/cdb read happens in another thread.
A store that must ask the network (vpmysql in non-blocking use) raises
outcome.NeedLookup instead of waiting; the loop parks the query here and
goes on answering others.  ONE worker thread calls store.fill(key)
(network only, bounded by the store's own timeouts), the same key once
for every query parked on it, and wakes the loop through a pipe of our
own (fd, which the loop watches).  The loop then takes ready() and
decides those queries again from the start (the files may have changed;
the cache now answers; a second key parks again, keeping the first
arrival time).

Bounds: a query parked PARK_MAX seconds (3, well under the client's 5)
is given up: expired() returns it and the loop answers "temporary"
(nothing to a legacy client, spec 6).  At most MAX_PARKED queries wait;
park() refuses more (False) and the loop answers those "temporary" at
once.  The worker only ever touches the store's cache and its
connection.  It keeps root's ids while the loop's thread stats as a user
(identity.py), except where the per-thread system calls are not known
and the ids are the process's: the store's settings are read once, as
root, at start, for that case.
"""

import collections
import os
import queue
import threading
from typing import NamedTuple

PARK_MAX = 3.0
MAX_PARKED = 1000


class Parked(NamedTuple):
    datagram: bytes
    peer: object
    since: float              # time.monotonic() when the query came
    store: object = None      # what it waits for (daemonpark words a give-up by it)


class Parking:
    def __init__(self, park_max: float = PARK_MAX, max_parked: int = MAX_PARKED):
        self.park_max = park_max
        self.max_parked = max_parked
        self.fd, self._wfd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._wfd, False)
        self._waiting: dict = {}          # (id(store), key) -> [Parked]; present while fetching
        self._count = 0
        self._todo: queue.SimpleQueue = queue.SimpleQueue()
        self._done: collections.deque = collections.deque()
        self._thread = None

    def __len__(self) -> int:
        return self._count

    def park(self, need, item: Parked) -> bool:
        """Park item until need.store has need.key; False if too many wait."""
        if self._count >= self.max_parked:
            return False
        slot = (id(need.store), need.key)
        waiting = self._waiting.get(slot)
        if waiting is None:
            waiting = self._waiting[slot] = []
            self._todo.put((need.store, need.key, slot))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="store-fill", daemon=True)
                self._thread.start()
        waiting.append(item)
        self._count += 1
        return True

    def ready(self) -> list[Parked]:
        """The queries whose key has been fetched, to be decided again
        (cheap when there are none: the loop asks every turn)."""
        out = []
        while self._done:
            out += self._waiting.pop(self._done.popleft(), [])
        self._count -= len(out)
        return out

    def drain(self) -> None:
        """Empty the wake-up pipe (after select() returned)."""
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def expired(self, now: float) -> list[Parked]:
        """The queries parked park_max seconds or more, given up."""
        out = []
        if self._count:
            for slot, waiting in self._waiting.items():
                late = [p for p in waiting if now - p.since >= self.park_max]
                if late:
                    out += late
                    self._waiting[slot] = [p for p in waiting if now - p.since < self.park_max]
        self._count -= len(out)
        return out

    def timeout(self, now: float, timeout: float | None) -> float | None:
        """The select() timeout that wakes the loop for the next expiry."""
        if not self._count:
            return timeout
        first = min(p.since for w in self._waiting.values() for p in w)
        left = max(0.0, first + self.park_max - now) + 0.001
        return left if timeout is None else min(timeout, left)

    def _work(self) -> None:
        while True:
            store, key, slot = self._todo.get()
            try:
                store.fill(key)         # a store's trouble is cached as Trouble
            except Exception:
                pass
            self._done.append(slot)
            try:
                os.write(self._wfd, b"x")
            except OSError:             # full: the loop is awake anyway
                pass
