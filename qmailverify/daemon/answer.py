"""One datagram in, one reply and its log lines out: the daemon's
get_reply(), as dnslib's server has one.

get_reply() is a pure function of the datagram, the controls and the
System (qmail/model.py) it asks; it opens no socket and reads no file
itself, so a test drives it in process with a stand-in System.  The loop
around it (daemon/loop.py) sends the reply, writes the lines and counts
the outcome.

Fail closed: our own trouble (a Trouble from the System, or a bug of ours)
is never "not deliverable".  A client that asked for the extended reply
gets "temporary" with the reason; a legacy one gets no reply at all (it
then says 451).  LostPrivileges is the one exception that escapes: the
daemon must stop rather than answer with the wrong ids.

A query that asks for the detail (wire.py: qmail-verify-http's) gets the
variant deep mode found and the local name after the reply, the name
from the same steps decide() takes (rules.local_name).
"""


from qmailverify.clean import clean, cleantext
from qmailverify.errors import LostPrivileges, NeedLookup
from qmailverify.protocol.reply import Outcome, answer_verdict
from qmailverify.protocol.wire import (
    TEMPORARY,
    parse_query,
    query_ip,
    wants_detail,
    with_detail,
)
from qmailverify.qmail.budget import LIMITS, RECENT, Budget, Costly, OverBudget
from qmailverify.qmail.model import Verdict
from qmailverify.qmail.rules import decide, local_name

NOT_A_QUERY = Outcome(None, [], None)       # an empty datagram


def get_reply(datagram: bytes, controls, system, alias: bytes = b"alias",
              brk: bytes = b"-", deep=None, trace: bool = False,
              costly: Costly | None = None, limits: dict = LIMITS) -> Outcome:
    """The reply to datagram and what to log; system.begin_query() is
    called once, before the decision asks it anything.  deep: deep.hook.Deep
    (VERIFY_DEEP=1) or None; trace: add the decision trace line
    (protocol/trace.py).  errors.NeedLookup escapes: the loop parks the
    query (daemon/parking.py).

    The decision runs on a budget of limits (qmail/budget.py): one that
    runs out is a temporary answer, logged once, and costly (the loop's
    budget.Costly) remembers what made it, so that asking again costs a
    lookup and no search."""
    query = parse_query(datagram)
    if query is None:
        return NOT_A_QUERY
    address, extended = query
    if costly is not None:
        costly.last_cost = 0.0
    try:
        named = local_name(address, controls)        # steps 1 to 5: nothing read
        if costly is not None and costly.addresses and costly.address(address):
            raise OverBudget(RECENT)
        system.begin_query()
        # an address qmail does not deliver here is answered before any step
        budget = Budget(costly, limits) if named[2] is not None else None
        try:
            v = decide(address, controls, system, alias, brk, deep, budget, named)
        except NeedLookup as need:
            need.home = budget.home          # what it searched, should it be refused
            raise
        finally:
            if budget is not None and budget.started is not None and costly is not None:
                costly.charge(budget.home, budget.cost())      # else it cost little
    except (LostPrivileges, NeedLookup):
        raise
    except OverBudget as e:
        if costly is not None:
            costly.over(address, e)
        where = f" searching {cleantext(e.home)}" if e.home is not None else ""
        v = Verdict(TEMPORARY, 0, reason=e.reason(), detail=e.reason() + where)
    except Exception as e:    # a bug of ours must not stop the daemon
        return Outcome(None, [b"warning: internal error answering " + clean(address)
                              + b": " + type(e).__name__.encode() + b"; not answered."],
                       "unanswered")
    out = answer_verdict(query, v, trace, query_ip(datagram) if trace else None)
    if extended and out.reply is not None and wants_detail(datagram):
        out = Outcome(with_detail(out.reply, v.variant, named[2]), out.lines, out.counted)
    return out
