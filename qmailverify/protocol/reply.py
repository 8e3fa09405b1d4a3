"""A verdict as the daemon says it: the reply datagram, the log lines and
the statistics field it counts in (Outcome), made in one place for the
local rules (daemon/answer.py), a parked query given up (daemon/parking.py)
and a hub domain's far answer (hub/answer.py).

Our own words only: a temporary reason is sent to a client that asked
for the extended reply and logged for a legacy one, which gets nothing
(spec 6).
"""

from typing import NamedTuple

from qmailverify.clean import clean, visible
from qmailverify.errors import errtext
from qmailverify.protocol.trace import trace_line
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE, make_reply


class Outcome(NamedTuple):
    reply: bytes | None       # the datagram to send back; None: stay silent
    lines: list[bytes]        # log lines, without 'qmail-verify: ' and the newline
    counted: str | None       # the stats.Counts field it adds to; None: not a query


_tuple_new = tuple.__new__


def answer_verdict(query, v, trace: bool = False, ip: bytes | None = None) -> Outcome:
    """The reply and log lines for verdict v on query (wire.ParsedQuery);
    with trace, the trace line (trace.py) follows them, naming ip, the
    SMTP client's address when the extended query carries it."""
    address, extended = query
    addr = clean(address)
    lines = [b"Unable to stat " + clean(v.stat_path) + b": "
             + errtext(v.stat_errno).encode() + b"."] if v.stat_errno else []
    code, user = v.code, v.user
    if code == DELIVERABLE:
        lines.append(addr + b" permitted for " + (clean(user) if user else b"UNKNOWN") + b".")
        reply, counted = make_reply(code, v.position, user or b""), "permitted"
    elif code == UNDELIVERABLE:
        lines.append(addr + b" denied.")
        reply, counted = make_reply(code, v.position, user or b""), "denied"
    else:
        # our own words: the client's (reason) name no path; the log's
        # (detail), with any path in them already cleaned, may
        reason = visible(v.reason.encode("utf-8", "replace"))
        logged = visible(v.detail.encode("utf-8", "replace")) if v.detail else reason
        if not extended:
            lines.append(addr + b" not answered: temporary failure: " + logged + b".")
            reply, counted = None, "unanswered"
        else:
            lines.append(addr + b" temporary failure: " + logged + b".")
            reply, counted = make_reply(TEMPORARY, v.position, reason), "temporary"
    if trace:
        lines.append(trace_line(address, v, ip))
    # Outcome(reply, lines, counted), made by tuple.__new__ straight: the
    # NamedTuple's own __new__ costs a Python call more, every query
    return _tuple_new(Outcome, (reply, lines, counted))

