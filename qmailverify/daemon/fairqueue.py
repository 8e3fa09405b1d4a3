"""The datagrams qmail-verify has read but not yet answered, per sender,
so that one sender cannot crowd out the others.

Why: under a flood the kernel drops datagrams when the socket's receive
buffer is full, and it drops them blindly, a qmail-smtpd's query as
readily as the flood's.  The loop therefore reads everything waiting
before it answers (reading costs far less than answering) and keeps it
here; answers are then taken round-robin, one sender at a time, so a
query from a quiet sender waits behind at most one query of each other
sender, however many a noisy one has sent.

Pure: no socket and no clock.  A sender is whatever the loop passes as
peer (the (ip, port) a datagram came from: each qmail-smtpd, each
qmail-logmsg session, each verify-query query has a socket of its own).
At most `bound` datagrams wait in all; a datagram that comes when the
queue is full costs a sender with the longest queue its oldest one, so
a sender with a single query waiting loses it only when no sender has
two.  Those are counted in `shed`, and their senders time
out as if the kernel had dropped them (a legacy client then says 451).
Below the bound nothing is dropped, however many datagrams one sender
has in flight.

Turns share time, not queries: a sender whose query cost the loop more
than TURN of CPU (budget.Budget.cost(), known only for queries long
enough to read the clock) lets the others take a turn for each TURN it
cost before it is served again (charge()), so an expensive sender gets
a share of the daemon's time however few queries it sends.  What it
costs is also charged to the home it searched (budget.Costly), which a
sender cannot spread over sockets.  Every operation is O(1) (queues are indexed by their
length), so a flood from many senders costs no more than one from one.
"""

from collections import deque

TURN = 0.001        # seconds of the loop's time one turn stands for


class FairQueue:
    def __init__(self, bound: int = 2048):
        self.bound = bound
        self.waiting: dict = {}          # peer -> deque of datagrams, oldest first
        self.turns: deque = deque()      # peers with something waiting, next first
        self.size = 0
        self.shed = 0                    # datagrams dropped at the bound, ever
        self.bylen: dict = {}            # n -> the peers with n waiting, for n >= 2 only
        self.longest = 0                 # the longest queue's length, if 2 or more
        self.debt: dict = {}             # peer -> turns it lets pass for what it cost

    def charge(self, peer, cost: float) -> None:
        """peer's last query cost this much time: it lets one turn of
        the others pass for each TURN of it."""
        turns = int(cost / TURN)
        if turns > 0:
            if len(self.debt) >= self.bound:
                self.debt.clear()
            self.debt[peer] = self.debt.get(peer, 0) + turns

    def __len__(self) -> int:
        return self.size

    def put(self, datagram: bytes, peer) -> None:
        waiting = self.waiting.get(peer)
        if waiting is None:              # the usual case: one query a socket
            self.waiting[peer] = deque((datagram,))
            self.turns.append(peer)
        else:
            waiting.append(datagram)
            n = len(waiting)
            if n > 2:
                self.bylen[n - 1].discard(peer)
            self.bylen.setdefault(n, set()).add(peer)
            if n > self.longest:
                self.longest = n
        self.size += 1
        if self.size > self.bound:
            self._shed(peer)

    def _shed(self, newest) -> None:
        """Drop one datagram: the oldest of a sender with the longest
        queue, or, when every sender has one, the one that just came."""
        victim = next(iter(self.bylen[self.longest])) if self.longest > 1 else newest
        queue = self.waiting[victim]
        queue.popleft()
        self.size -= 1
        self.shed += 1
        if queue:
            self._shrunk(victim, len(queue))
        else:                            # every sender had one: newest came last
            del self.waiting[victim]
            if self.turns[-1] == victim:
                self.turns.pop()
            else:
                self.turns.remove(victim)

    def _shrunk(self, peer, n: int) -> None:
        """peer's queue is down to n >= 1 from n + 1 >= 2: keep bylen and longest."""
        bucket = self.bylen[n + 1]
        bucket.discard(peer)
        if n > 1:
            self.bylen[n].add(peer)
        if not bucket and self.longest == n + 1:
            self.longest = n if n > 1 else 0

    def take(self, n: int) -> list:
        """Up to n (datagram, peer) pairs, each sender's oldest first, one
        sender after another."""
        out = []
        turns, waiting, debt = self.turns, self.waiting, self.debt
        while turns and len(out) < n:
            peer = turns.popleft()
            if debt and peer in debt:
                left = debt.pop(peer) - 1
                if left > 0:
                    debt[peer] = left
                if turns:                # another sender goes first
                    turns.append(peer)
                    continue
            queue = waiting[peer]
            out.append((queue.popleft(), peer))
            if queue:
                turns.append(peer)
                self._shrunk(peer, len(queue))
            else:
                del waiting[peer]
        self.size -= len(out)
        return out
