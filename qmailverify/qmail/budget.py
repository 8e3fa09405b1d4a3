"""The work one query may cost, counted in steps, so that no home
directory, address or forward list can hold the daemon for the others.

qmail-verify runs as root and does work that local users and remote
senders control: the names a long extension makes the .qmail search stat
(one per '-'), the symbolic links a user plants in a home (the kernel
walks each before it fails), the forwards a -default file lists (deep
mode follows each through a decision of its own), the entries a user
database is asked for.  A Budget counts each kind of step before it is
taken and raises OverBudget when one kind runs out; the decision then
stops where it is and the answer is temporary (spec 6: silence to a
legacy client, status 2 to an extended one), never "no such mailbox" and
never a free pass.

The limits, and why (LIMITS).  Each is at least twice the most any
query of a large realistic tree needs (test_largetree.py: 3,000 users,
forwards among them, VERP-like extensions of up to 14 dashes, four
vpopmail domains; the most it needs in brackets), and far below what a
hostile address or file would take unbounded:

  stats      128  .qmail names and home owners stat'ed: the extension's
                  dashes plus two a search, each forward's search too (36)
  reads       16  .qmail files read (deep mode; each file once a query) (5)
  decisions   25  rules.decide() runs: the query and each forward (9);
                  the query's own is counted in the limit, not spent
  forwards    24  forward targets followed (deep mode), each judged once
                  a query whatever the files list (FORWARDS_MAX) (8)
  rows        64  user database entries and vpopmail rows asked for (22)

and CPU: CPU_MAX seconds of the thread's own CPU time (system time
included: a planted chain of symbolic links costs the kernel, not us),
read before each stat and read after the first CLOCK_FROM of them, so
an ordinary query never reads the clock (a read costs about as much as
a stat).

Fairness by cost: what a query that read the clock cost is charged to
the first home it searched (Costly.charge); a home whose searches take
more than HOME_SHARE of a second of CPU within a second is held for
BUSY_HOLD seconds, its queries temporary at once, however the sender
spreads them over sockets and addresses.  The loop charges the same
cost to the sender's socket (fairqueue.py), which then waits its turn
for as many turns as the cost is long.

Pure: the clock is passed in; the daemon's is time.thread_time.
"""

import time

STATS, READS, DECISIONS, FORWARDS, ROWS = "stats", "reads", "decisions", "forwards", "rows"
CPU = "cpu"
RECENT, BUSY = "recent", "busy"     # held by Costly: over budget lately, or too many lookups

FORWARDS_MAX = 24
LIMITS = {STATS: 128, READS: 16, DECISIONS: FORWARDS_MAX, FORWARDS: FORWARDS_MAX, ROWS: 64}
KINDS = (STATS, READS, DECISIONS, FORWARDS, ROWS)
_IN_ORDER = tuple(LIMITS[k] for k in KINDS)
CPU_MAX = 0.03          # seconds of the thread's CPU time a query may take
CLOCK_FROM = 4          # stats and reads before the clock is first read
HOME_SHARE = 0.1        # seconds of CPU a second one home's searches may take...
BUSY_HOLD = 10.0        # ...or its queries are temporary for this long

# What a kind's running out says about where the cost came from: the
# address itself (a long extension: the next address is a new search),
# or the files of the home searched (a forward list, a planted link).
FROM_ADDRESS = frozenset((STATS, ROWS))


class OverBudget(Exception):
    """A query ran out of one kind of step (.kind); .home is the first
    home its search reached (None if it reached none)."""

    def __init__(self, kind: str, home: bytes | None = None):
        super().__init__(kind)
        self.kind = kind
        self.home = home

    def reason(self) -> str:
        """The client's words: what kind of trouble, nothing of the home."""
        if self.kind == RECENT:
            return "too costly, tried recently"
        if self.kind == BUSY:
            return "busy: too many lookups waiting"
        return f"too costly to decide ({self.kind})"


class Budget:
    """One query's allowance; shared by every decision the query makes
    (deep mode's forwards included).  One call before each step: stat(),
    read(), decision(), forward(), row(); each raises OverBudget when its
    kind runs out.  The clock is read by stat() and read() alone, the
    steps whose cost a user can plant (links, long files), after the
    first CLOCK_FROM of them."""

    # what a query starts with, unless told otherwise
    limits = LIMITS
    clock = staticmethod(time.thread_time)
    cpu_max = CPU_MAX
    judged = None               # deep mode: forward target -> its judgement
    facts = None                # deep mode: (uid, gid, path) -> what was read

    def __init__(self, costly=None, limits: dict | None = None, clock=None,
                 cpu_max: float | None = None):
        self.costly = costly        # Costly: homes and addresses recently over
        # what every query reads is the instance's own from the start: read
        # through an instance from its class, an attribute costs several
        # times as much
        if limits is None or limits is LIMITS:
            self.stats, self.reads, self.decisions, self.forwards, self.rows = _IN_ORDER
        else:
            self.limits = limits
            self.stats, self.reads, self.decisions, self.forwards, self.rows = \
                (limits[k] for k in KINDS)
        self.timed = CLOCK_FROM     # stats and reads before the clock is read
        self.started = None         # the clock, when first read
        self.home = None            # the first home searched
        if clock is not None:
            self.clock = clock
        if cpu_max is not None:
            self.cpu_max = cpu_max

    def stat(self) -> None:
        self.stats -= 1
        if self.stats < 0:
            raise OverBudget(STATS, self.home)
        self.timed -= 1
        if self.timed < 0:
            self._tick()

    def read(self) -> None:
        self.reads -= 1
        if self.reads < 0:
            raise OverBudget(READS, self.home)
        self.timed -= 1
        if self.timed < 0:
            self._tick()

    def decision(self) -> None:
        self.decisions -= 1
        if self.decisions < 0:
            raise OverBudget(DECISIONS, self.home)

    def forward(self) -> None:
        self.forwards -= 1
        if self.forwards < 0:
            raise OverBudget(FORWARDS, self.home)

    def row(self) -> None:
        self.rows -= 1
        if self.rows < 0:
            raise OverBudget(ROWS, self.home)

    def lookups(self, rows: int, stats: int) -> None:
        """rows entries asked for and stats owner stats made (a bounded
        loop, charged when it ends)."""
        self.rows -= rows
        if self.rows < 0:
            raise OverBudget(ROWS, self.home)
        self.stats -= stats
        if self.stats < 0:
            raise OverBudget(STATS, self.home)

    def _tick(self) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        elif now - self.started > self.cpu_max:
            raise OverBudget(CPU, self.home)

    def search(self, home: bytes) -> None:
        """A .qmail search in home is about to start."""
        if self.home is None:
            self.home = home
        costly = self.costly
        if costly is not None and costly.homes:
            held = costly.home(home)
            if held:
                raise OverBudget(held, self.home)

    def cost(self) -> float:
        """The CPU time spent since the clock was first read (0.0 if it
        never was: an ordinary query, cheap by its steps)."""
        return 0.0 if self.started is None else max(0.0, self.clock() - self.started)

    def used(self) -> dict:
        """How many steps of each kind were taken."""
        used = {k: self.limits[k] - max(getattr(self, k), 0) for k in self.limits}
        used[DECISIONS] += 1                  # the query's own
        return used


class Costly:
    """Homes and addresses whose decision ran over its budget in the last
    `hold` seconds: a query for them is answered temporary at once, so
    that repeating a costly query costs almost nothing.  A home is held
    when its own files made the cost (time, reads, forwards, decisions),
    so any address searching it is; an address when the address made it
    (a long extension), so a remote sender cannot get a shared home (a
    virtual domain's) held by sending long addresses to it.  At most
    `entries` of each are held, the oldest dropped first."""

    def __init__(self, hold: float = 60.0, entries: int = 4096, clock=time.monotonic,
                 share: float = HOME_SHARE, busy_hold: float = BUSY_HOLD):
        self.hold = hold
        self.entries = entries
        self.clock = clock
        self.share = share
        self.busy_hold = busy_hold
        self.homes: dict = {}
        self.addresses: dict = {}
        self.spent: dict = {}          # home -> [second it counts in, CPU spent in it]
        self.last_cost = 0.0           # the last query's, for the loop's fair queue

    def __len__(self) -> int:
        return len(self.homes) + len(self.addresses)

    def _held(self, table: dict, key) -> str:
        held = table.get(key)
        if held is None:
            return ""
        if self.clock() < held[0]:
            return held[1]
        del table[key]
        return ""

    def home(self, home: bytes) -> str:
        """Why home is held (RECENT or BUSY), "" if it is not."""
        return self.homes and self._held(self.homes, home)

    def address(self, address: bytes) -> str:
        return self.addresses and self._held(self.addresses, address.lower())

    def over(self, address: bytes, e: OverBudget) -> None:
        """Remember what made e."""
        if e.kind in (RECENT, BUSY):
            return
        if e.kind in FROM_ADDRESS or e.home is None:
            self._add(self.addresses, address.lower())
        else:
            self._add(self.homes, e.home)

    def busy(self, home: bytes, hold: float) -> None:
        """Hold home for hold seconds: what it needs is short (parking.py)."""
        self._add(self.homes, home, hold, BUSY)

    def charge(self, home: bytes | None, cost: float) -> None:
        """A query that searched home (first) cost this much CPU."""
        self.last_cost = cost
        if home is None or not cost:
            return
        second = int(self.clock())
        spent = self.spent.get(home)
        if spent is None or spent[0] != second:
            if len(self.spent) >= self.entries:
                self.spent.clear()
            spent = self.spent[home] = [second, 0.0]
        spent[1] += cost
        if spent[1] > self.share:
            self._add(self.homes, home, self.busy_hold)

    def _add(self, table: dict, key, hold: float | None = None, why: str = RECENT) -> None:
        table.pop(key, None)
        while len(table) >= self.entries:
            del table[next(iter(table))]
        table[key] = (self.clock() + (self.hold if hold is None else hold), why)
