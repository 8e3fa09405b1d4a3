"""Hub mode in the daemon: a query whose domain control/verifyhub maps
(map.py) is not decided here but asked of the far server, through the
cache and the parking of slow lookups (cache.py, daemon/parking.py).

hub_answer() is what daemon.loop.Daemon.answer() asks first: None when
hub mode is off or the domain is not a hub domain (then the local rules
decide, as always); otherwise the Outcome, or errors.NeedLookup when the
far answer must be fetched.  The domain is the one of the address as
queried, before any local rule (percenthack, locals, virtualdomains):
the far server owns that domain and applies its own rules.

The far server is always asked for the extended reply, with the hub
mark (wire.py); a query that carries the mark is never passed on again:
for a hub domain of ours it is "temporary" at once (LOOP), so two
servers that map a domain to each other cost one round trip, not a
query bouncing between them for good.  What the client gets keeps its
own semantics:

  - deliverable or not deliverable: the far reply's bytes as they came
    (its status byte, position and controlling user), cached or not;
  - the far server said 2, or was silent: a legacy client gets nothing
    (it then says 451, spec 6); one that asked for the extended reply
    gets the far 2 reply as it came, or, for silence, status 2 at
    position 0 with the reason "hub server did not answer".

Log lines name the far server: 'ADDR permitted for USER (hub IP:PORT).',
'ADDR denied (hub IP:PORT).', 'ADDR temporary failure: hub IP:PORT:
REASON.' and 'ADDR not answered: temporary failure: hub IP:PORT:
REASON.'; with VERIFY_TRACE=1 a trace line follows, reason "hub IP:PORT".
"""

import time

from qmailverify.clean import clean, visible
from qmailverify.hub.map import describe
from qmailverify.protocol.reply import Outcome
from qmailverify.protocol.trace import trace_line
from qmailverify.protocol.wire import (
    DELIVERABLE,
    TEMPORARY,
    UNDELIVERABLE,
    from_hub,
    make_reply,
    parse_query,
    query_ip,
)
from qmailverify.qmail.model import Verdict

HUB_POSITION = 0                # the position of the hub's own "temporary"
SILENT = "hub server did not answer"
LATE = "hub server too slow"
LOOP = "hub loop"


def hub_answer(datagram: bytes, hubmap, cache, since: float | None = None,
               trace: bool = False) -> Outcome | None:
    """The Outcome for a hub domain's query, None for any other query."""
    if hubmap is None:
        return None
    query = parse_query(datagram)
    if query is None:
        return None
    server = hubmap.server_for(query.address)
    if server is None:
        return None
    if from_hub(datagram):               # a hub passed it on: never again (wire.py)
        return hub_loop(query, server, trace)
    far = cache.get(server, query.address, time.monotonic() if since is None else since,
                    since is not None)
    return far_outcome(query, server, far.reply, trace, query_ip(datagram) if trace else None)


def hub_loop(query, server, trace: bool = False) -> Outcome:
    """A query a hub passed on, for a hub domain of ours: temporary, once."""
    why = f"{LOOP}: a query from a hub for a domain mapped to {describe(server)}"
    v = Verdict(TEMPORARY, HUB_POSITION, reason=LOOP, detail=why)
    out = Outcome(make_reply(TEMPORARY, HUB_POSITION, LOOP.encode()),
                  [clean(query.address) + b" temporary failure: " + why.encode() + b"."],
                  "temporary")
    if trace:
        out.lines.append(trace_line(query.address, v))
    return out


def far_outcome(query, server, reply: bytes | None, trace: bool = False,
                ip: bytes | None = None) -> Outcome:
    """What the client gets for the far server's reply (None: silence)."""
    addr, hub = clean(query.address), describe(server).encode()
    if reply is not None and reply[0] & 0x0F != TEMPORARY:
        code = DELIVERABLE if reply[0] & 0x0F == DELIVERABLE else UNDELIVERABLE
        user = reply[1:]
        if code == DELIVERABLE:
            line = addr + b" permitted for " + (clean(user) if user else b"UNKNOWN")
        else:
            line = addr + b" denied"
        out = Outcome(reply, [line + b" (hub " + hub + b")."],
                      "permitted" if code == DELIVERABLE else "denied")
        v = Verdict(code, reply[0] >> 4, user, reason="hub " + hub.decode())
    else:
        reason = visible(reply[1:]) if reply is not None else SILENT.encode()
        why = b"temporary failure: hub " + hub + b": " + reason + b"."
        if query.extended:
            sent = reply if reply is not None else make_reply(TEMPORARY, HUB_POSITION, reason)
            out = Outcome(sent, [addr + b" " + why], "temporary")
        else:
            out = Outcome(None, [addr + b" not answered: " + why], "unanswered")
        v = Verdict(TEMPORARY, reply[0] >> 4 if reply else HUB_POSITION,
                    reason=f"hub {hub.decode()}: {reason.decode()}")
    if trace:
        out.lines.append(trace_line(query.address, v, ip))
    return out
