"""Queries that wait for a slow store, so that nothing slow stalls the rest.

All the deciding is done in the loop's thread, the only one that ever
takes a user's ids (system/identity.py): no stat, no open-as-user and no
users/cdb read happens in another thread.  A store that must ask the
network (deep/vpopmail/mysql.py in non-blocking use) raises
errors.NeedLookup instead of waiting; the loop parks the query here and
goes on answering others.  A worker thread (one a lane, below) calls
store.fill(key) (network only, bounded by the store's own timeouts), the same key once for
every query parked on it, and wakes the loop through a pipe of our own
(fd, which the loop watches).  The loop then takes ready() and decides
those queries again from the start (the files may have changed; the cache
now answers; a second key parks again, keeping the first arrival time).

Bounds: a query parked PARK_MAX seconds (3, well under the client's 5) is
given up: expired() returns it and the loop answers "temporary" (nothing
to a legacy client, spec 6).  At most MAX_PARKED queries wait; park()
refuses more (False) and the loop answers those "temporary" at once.  The
worker only ever touches the store's cache and its connection.  It keeps
root's ids while the loop's thread stats as a user (system/identity.py),
except where the per-thread system calls are not known and the ids are the
process's: the store's settings are read once, as root, at start, for that
case.

Lanes: the fills of one store run one after another in a thread of
their own, but a store may split its keys into lanes (HubCache.lane: a
far server each) that run side by side, so that a silent far server
holds up only its own domains' queries, never a queue behind it.  A lane
of a store that has several may hold at most LANE_SHARE of the parked
queries; the rest stay free for the others.

Accounts: a store may also say which account a key's fetch is charged
to (deep/vpopmail/mysql.py's MysqlStore.account: the SQL domain).  An account starts at most
FILLS fetches a second; a miss beyond that is "temporary" at once.  A
sender that floods a domain with addresses never seen makes the fetch
thread (PyMySQL is pure Python: it competes with the loop for the
interpreter) work for that domain at a bounded rate, and the loop stays
free for everyone else; the cost falls on that domain's misses.  The
home the refused query searched (the domain's folder) is then held for
REFUSED_HOLD seconds (qmail/budget.py's Costly): the flood's next queries there are
"temporary" before the search, at the cost of a lookup, and the loop
keeps up with reading the socket.

The loop's side: what the Daemon (loop.py) does with a query that raised
errors.NeedLookup, and with parked queries when their lookup is done or
their time is up.

park_query() parks the query, or answers it "temporary" at once when it cannot
wait (no parking, or too many waiting); resume_parked() decides again the
queries whose lookup is done and gives up, as "temporary" (nothing to a
legacy client, spec 6), those parked PARK_MAX seconds.  Both count into
the statistics line's parked and late.

Hub mode (hub/answer.py) parks its queries here too: ensure_parking()
makes the Parking the first time a query needs it (hub mode may be
switched on by SIGHUP), and a hub query given up says so, at position 0.
"""

import collections
import os
import queue
import selectors
import threading
import time
from typing import NamedTuple

from qmailverify.deep.hook import DEEP
from qmailverify.hub.answer import HUB_POSITION, LATE
from qmailverify.hub.cache import HubCache
from qmailverify.protocol.reply import answer_verdict
from qmailverify.protocol.wire import TEMPORARY, parse_query, query_ip
from qmailverify.qmail.model import Verdict

PARK_MAX = 3.0
MAX_PARKED = 1000
LANE_SHARE = 0.25         # of MAX_PARKED that one lane (a far server, a store) may hold
FILLS = 200.0             # fetches a second one account (an SQL domain) may start
REFUSED_HOLD = 1.0        # seconds a home whose fetch was refused is held (budget.Costly)


class Parked(NamedTuple):
    datagram: bytes
    peer: object
    since: float              # time.monotonic() when the query came
    store: object = None      # what it waits for (park_query words a give-up by it)


class Parking:
    def __init__(self, park_max: float = PARK_MAX, max_parked: int = MAX_PARKED):
        self.park_max = park_max
        self.max_parked = max_parked
        self.fd, self._wfd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._wfd, False)
        self._waiting: dict = {}          # (id(store), key) -> [Parked]; present while fetching
        self._count = 0
        self._lanes: dict = {}            # lane -> its queue of fills (a thread each)
        self._in_lane: collections.Counter = collections.Counter()   # lane -> parked
        self._lane_of: dict = {}          # slot -> lane
        self._done: collections.deque = collections.deque()
        self._tokens: dict = {}           # account -> [tokens, when last counted]

    def __len__(self) -> int:
        return self._count

    def park(self, need, item: Parked) -> bool:
        """Park item until need.store has need.key; False if too many wait,
        in all or in its lane (LANE_SHARE of them)."""
        if self._count >= self.max_parked:
            return False
        slot = (id(need.store), need.key)
        lane_fn = getattr(need.store, "lane", None)
        lane = (id(need.store), lane_fn(need.key) if lane_fn else None)
        if lane_fn and self._in_lane[lane] >= max(1, int(self.max_parked * LANE_SHARE)):
            return False
        waiting = self._waiting.get(slot)
        if waiting is None:
            account_fn = getattr(need.store, "account", None)
            if account_fn is not None and not self._token(account_fn(need.key), item.since):
                return False
            waiting = self._waiting[slot] = []
            self._lane_of[slot] = lane
            todo = self._lanes.get(lane)
            if todo is None:
                todo = self._lanes[lane] = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(todo,), name="store-fill",
                                 daemon=True).start()
            todo.put((need.store, need.key, slot))
        waiting.append(item)
        self._count += 1
        self._in_lane[lane] += 1
        return True

    def _token(self, account, now: float) -> bool:
        """May account start another fetch now?  FILLS a second, as many
        at once after a quiet second."""
        bucket = self._tokens.get(account)
        if bucket is None:
            if len(self._tokens) >= self.max_parked:
                self._tokens.clear()
            bucket = self._tokens[account] = [FILLS, now]
        tokens = min(FILLS, bucket[0] + (now - bucket[1]) * FILLS)
        bucket[1] = now
        if tokens < 1:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1
        return True

    def _left(self, slot, items: list) -> None:
        """items of slot are no longer parked."""
        if items:
            lane = self._lane_of[slot]
            self._in_lane[lane] -= len(items)
            if not self._in_lane[lane]:
                del self._in_lane[lane]

    def ready(self) -> list[Parked]:
        """The queries whose key has been fetched, to be decided again
        (cheap when there are none: the loop asks every turn)."""
        out = []
        while self._done:
            slot = self._done.popleft()
            items = self._waiting.pop(slot, [])
            self._left(slot, items)
            self._lane_of.pop(slot, None)
            out += items
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
                    self._left(slot, late)
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

    def _work(self, todo) -> None:
        while True:
            store, key, slot = todo.get()
            try:
                store.fill(key)         # a store's trouble is cached as Trouble
            except Exception:
                pass
            self._done.append(slot)
            try:
                os.write(self._wfd, b"x")
            except OSError:             # full: the loop is awake anyway
                pass


def park_query(daemon, need, datagram: bytes, peer, since: float | None):
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
    home = getattr(need, "home", None)
    if home is not None:       # the next misses there stop before the search: cheap
        daemon.costly.busy(home, REFUSED_HOLD)
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


def resume_parked(daemon) -> None:
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
