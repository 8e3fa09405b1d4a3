"""One datagram in, one reply and its log lines out: the daemon's
get_reply(), as dnslib's server has one.

get_reply() is a pure function of the datagram, the controls and the
System (rules.py) it asks; it opens no socket and reads no file itself,
so a test drives it in process with a stand-in System.  The loop around
it (daemon.py) sends the reply, writes the lines and counts the outcome.

Fail closed: our own trouble (a Trouble from the System, or a bug of ours)
is never "not deliverable".  A client that asked for the extended reply
gets "temporary" with the reason; a legacy one gets no reply at all (it
then says 451).  LostPrivileges is the one exception that escapes: the
daemon must stop rather than answer with the wrong ids.
"""

from typing import NamedTuple

from .clean import clean, visible
from .errors import LostPrivileges, errtext
from .outcome import NeedLookup
from .rules import decide
from .trace import trace_line
from .wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE, make_reply, parse_query, query_ip


class Outcome(NamedTuple):
    reply: bytes | None       # the datagram to send back; None: stay silent
    lines: list[bytes]        # log lines, without 'qmail-verify: ' and the newline
    counted: str | None       # the stats.Counts field it adds to; None: not a query


NOT_A_QUERY = Outcome(None, [], None)       # an empty datagram


def get_reply(datagram: bytes, controls, system, alias: bytes = b"alias",
              brk: bytes = b"-", deep=None, trace: bool = False) -> Outcome:
    """The reply to datagram and what to log; system.begin_query() is
    called once, before the decision asks it anything.  deep: deep.Deep
    (VERIFY_DEEP=1) or None; trace: add the decision trace line (trace.py).
    outcome.NeedLookup escapes: the loop parks the query (parking.py)."""
    query = parse_query(datagram)
    if query is None:
        return NOT_A_QUERY
    try:
        system.begin_query()
        v = decide(query.address, controls, system, alias, brk, deep)
    except (LostPrivileges, NeedLookup):
        raise
    except Exception as e:    # a bug of ours must not stop the daemon
        return Outcome(None, [b"warning: internal error answering " + clean(query.address)
                              + b": " + type(e).__name__.encode() + b"; not answered."],
                       "unanswered")
    return answer_verdict(query, v, trace, query_ip(datagram) if trace else None)


def answer_verdict(query, v, trace: bool = False, ip: bytes | None = None) -> Outcome:
    """The reply and log lines for verdict v on query (wire.ParsedQuery);
    with trace, the trace line (trace.py) follows them, naming ip, the
    SMTP client's address when the extended query carries it."""
    out = _answer(query, v)
    if trace:
        out.lines.append(trace_line(query.address, v, ip))
    return out


def _answer(query, v) -> Outcome:
    addr = clean(query.address)
    lines = [b"Unable to stat " + clean(v.stat_path) + b": "
             + errtext(v.stat_errno).encode() + b"."] if v.stat_errno else []
    code, user = v.code, v.user
    if code == DELIVERABLE:
        lines.append(addr + b" permitted for " + (clean(user) if user else b"UNKNOWN") + b".")
        return Outcome(make_reply(code, v.position, user or b""), lines, "permitted")
    if code == UNDELIVERABLE:
        lines.append(addr + b" denied.")
        return Outcome(make_reply(code, v.position, user or b""), lines, "denied")
    # our own words, with any path in them already cleaned
    reason = visible(v.reason.encode("utf-8", "replace"))
    if not query.extended:
        lines.append(addr + b" not answered: temporary failure: " + reason + b".")
        return Outcome(None, lines, "unanswered")
    lines.append(addr + b" temporary failure: " + reason + b".")
    return Outcome(make_reply(TEMPORARY, v.position, reason), lines, "temporary")
