"""The qmail-verify datagram formats, byte-compatible with qmail-verify 1.32.

A query is the address, optionally ended by a NUL; only the first
QUERY_MAX bytes of a datagram count.  A reply is one status byte (low
nibble: 0 deliverable, 1 not deliverable, 2 temporarily unknown; high
nibble: the rule that decided) followed by the controlling user, the whole
reply cut to REPLY_MAX bytes.

Extension (ours): a client that can handle status 2 says so by putting
EXTENDED_TAG right after the NUL that ends the address.  Daemons that do
not know the tag (1.32) ignore everything after the NUL, so the request is
safe to send anywhere; a query without the tag never gets status 2.
"""

from collections import namedtuple      # not typing: qmail-logmsg starts per connection

QUERY_MAX = 900
REPLY_MAX = 33
EXTENDED_TAG = b"QV2"

# The longest address a query can carry whole with the extended-reply tag
# (address, NUL, tag); anything longer would be cut by the daemon.
ADDRESS_MAX = QUERY_MAX - 1 - len(EXTENDED_TAG)

DELIVERABLE = 0
UNDELIVERABLE = 1
TEMPORARY = 2


ParsedQuery = namedtuple("ParsedQuery", "address extended")        # bytes, bool


def parse_query(datagram: bytes) -> ParsedQuery | None:
    """Split a datagram into the address and the extended-reply request.

    None for an empty datagram, which gets no reply."""
    if not datagram:
        return None
    data = datagram[:QUERY_MAX]
    address, nul, rest = data.partition(b"\0")
    return ParsedQuery(address, bool(nul) and rest.startswith(EXTENDED_TAG))


def make_query(address: bytes, extended: bool = True) -> bytes:
    """The datagram a client sends for address."""
    return address + b"\0" + (EXTENDED_TAG if extended else b"")


def make_reply(code: int, position: int, user: bytes = b"") -> bytes:
    """Status byte (position << 4 | code), then user, cut to REPLY_MAX."""
    return (bytes(((position & 0x0F) << 4 | (code & 0x0F),)) + user)[:REPLY_MAX]


# code: DELIVERABLE, UNDELIVERABLE or TEMPORARY; position: the rule that
# decided, 1 to 14 (0 if unknown); user: controlling user, for TEMPORARY the reason
Reply = namedtuple("Reply", "code position user")


def parse_reply(datagram: bytes) -> Reply | None:
    """Read a reply datagram; None if it is empty.

    Any low nibble other than 0 or 2 counts as not deliverable, as legacy
    clients treat it."""
    if not datagram:
        return None
    status = datagram[0]
    code = status & 0x0F
    if code not in (DELIVERABLE, TEMPORARY):
        code = UNDELIVERABLE
    return Reply(code, status >> 4, datagram[1:])
