"""The decision trace (VERIFY_TRACE=1): one log line per decision, in
key=value fields a script can split at spaces:

    trace: pos=15 code=denied user=vpopmail ip=- addr=nobody@example.com reason=vdelivermail:_no_such_user

pos is the position (the status byte's high nibble; 15 deep mode), code
one of deliverable, denied, temporary; user the controlling user (- for
none); ip the SMTP client's address when the extended query carries it
(wire.query_ip; - when it does not: the peer is the shim, not the client);
addr the query's address and reason why, both cleaned, with every space
and '=' made '_', so no value holds a space.  The default log lines do not
change when the trace is on: it is one more line.
"""

from qmailverify.clean import clean, visible
from qmailverify.protocol.wire import DELIVERABLE, UNDELIVERABLE

CODES = {DELIVERABLE: b"deliverable", UNDELIVERABLE: b"denied"}

# why positions 1 to 14 decide (the spec's section 3)
REASONS = {
    1: "no local or virtual domain: not ours",
    2: "virtualdomains prefix is empty",
    4: "users/cdb entry without a home", 5: "users/cdb entry without a home",
    6: "users/cdb entry without a home", 7: "users/cdb entry without a home",
    8: "no user and no alias user",
    9: "the user's own mailbox",
    10: ".qmail-EXT exists", 11: ".qmail-EXT cannot be stat'ed",
    12: "a .qmail-default file exists", 13: "a .qmail-default file cannot be stat'ed",
    14: "no .qmail file matches",
}


def _value(data: bytes) -> bytes:
    return data.replace(b" ", b"_").replace(b"=", b"_") or b"-"


def trace_line(addr: bytes, verdict, ip: bytes | None = None) -> bytes:
    """The trace line for verdict (rules.Verdict) on the query addr."""
    v = verdict
    reason = v.reason or REASONS.get(v.position, "")
    if v.code == UNDELIVERABLE and v.position == 12:
        reason = "fastforward cdb has no such address"
    return b" ".join([
        b"trace:",
        b"pos=%d" % v.position,
        b"code=" + CODES.get(v.code, b"temporary"),
        b"user=" + _value(clean(v.user or b"")),
        b"ip=" + _value(clean(ip or b"")),
        b"addr=" + _value(clean(addr)),
        b"reason=" + _value(visible(reason.encode("utf-8", "replace"))),
    ])
