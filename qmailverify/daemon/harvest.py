"""Harvest counts: how many recipients qmail-verify refused for
each SMTP client IP, across sessions, in a sliding window; pure (the
clock is a parameter), so that tests drive it without waiting.

Only extended queries that carry the client's IP (protocol/wire.py) are
counted, and only their "not deliverable" answers; every answer to such a
query carries the IP's count, so qmail-logmsg can slow down or drop a
client that collects refusals (its VERIFY_HARVEST_* settings).

The window (VERIFY_HARVEST_WINDOW seconds, 600 by default) is kept as
BUCKETS slots of window/BUCKETS seconds each: a refusal counts for at
least (BUCKETS-1)/BUCKETS of the window and at most the whole of it,
and an IP costs one short list of BUCKETS+1 ints however fast it is
refused (about 300 bytes with its key: some 20 MB at the default bound).
At most VERIFY_HARVEST_IPS addresses (65536 by default) are kept, in the
order of their latest refusal: a new address over the bound evicts the
one refused longest ago, which then starts again from 0 (counted in the
statistics line as harvest_evicted).  Addresses whose refusals have all
left the window are dropped as new refusals come (harvest_ips counts the
ones kept).
"""

from collections import OrderedDict

from qmailverify.protocol.wire import query_ip, with_count

BUCKETS = 10
WINDOW = 600.0
MAX_IPS = 65536


class HarvestCounter:
    def __init__(self, window: float = WINDOW, max_ips: int = MAX_IPS):
        self.width = window / BUCKETS
        self.max_ips = max_ips
        # ip -> [newest slot, count of slot newest-BUCKETS+1, ..., count of newest];
        # the ip refused longest ago first
        self.ips: OrderedDict = OrderedDict()
        self.refusals = 0                         # refusals counted, ever
        self.evicted = 0                          # addresses forgotten at the bound

    def count(self, ip: bytes, now: float) -> int:
        """Refusals for ip in the window ending now."""
        entry = self.ips.get(ip)
        if entry is None:
            return 0
        gone = int(now // self.width) - entry[0]       # slots that have left since
        return sum(entry[1 + max(gone, 0):]) if gone < BUCKETS else 0

    def refused(self, ip: bytes, now: float) -> int:
        """Count one refusal for ip; its count, this one included."""
        self.refusals += 1
        slot = int(now // self.width)
        entry = self.ips.pop(ip, None)
        if entry is None or slot - entry[0] >= BUCKETS:
            entry = [slot] + [0] * BUCKETS
        elif slot > entry[0]:
            gone = slot - entry[0]
            entry = [slot] + entry[1 + gone:] + [0] * gone
        entry[-1] += 1
        self.ips[ip] = entry                      # the newest last
        self._expire(slot)
        if len(self.ips) > self.max_ips:
            self.ips.popitem(last=False)
            self.evicted += 1
        return sum(entry[1:])

    def _expire(self, slot: int) -> None:
        """Drop the oldest addresses whose refusals have all left the window."""
        while self.ips:
            ip, entry = next(iter(self.ips.items()))
            if slot - entry[0] < BUCKETS:
                return
            del self.ips[ip]

    def annotate(self, datagram: bytes, counted: str | None, reply: bytes | None,
                 now: float) -> bytes | None:
        """The reply to send: with the count when the query carried an IP
        (and counting this refusal when the answer was "not deliverable");
        untouched otherwise."""
        ip = query_ip(datagram)
        if ip is None or reply is None:
            return reply
        n = self.refused(ip, now) if counted == "denied" else self.count(ip, now)
        return with_count(reply, n)
