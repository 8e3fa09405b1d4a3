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

Harvest counts (ours): an extended query may also carry the SMTP
client's IP, as a second NUL-separated field after the tag:

    address NUL "QV2" NUL "ip=" IP          e.g. b"kim@x.example\0QV2\0ip=192.0.2.7"

IP is the text tcpserver puts in TCPREMOTEIP (dotted IPv4, or IPv6 hex and
colons; at most IP_MAX bytes of those characters; anything else and the
query counts as one without an IP).  The IP field is the datagram's last (of
the first QUERY_MAX bytes): anything after it, even a NUL, and the query
counts as one without an IP.  That is what lets the kernel send every query
for one IP to the same worker (daemon/workers/steering.py).  The reply to
such a query (and only to such a query) is the usual status byte and user,
then a NUL and the number of recipients the daemon refused for that IP in
its window, in decimal ASCII, at most COUNT_MAX (a bigger count is sent as
COUNT_MAX):

    status user[:n] NUL digits              still at most REPLY_MAX bytes

the user (or, for status 2, the reason) cut to what leaves room for the
count.  A user never holds a NUL (users/cdb ends it with one), so the
reply's first NUL starts the count.  A 1.32 daemon ignores the IP with
everything else after the first NUL and replies without a count; a legacy
client never sends an IP, so never sees a count.

Hub mark (ours, hub mode): a hub passes a query on to its far server as

    address NUL "QV2" NUL "hub"

and a server never passes on a query that carries the mark: two servers
that map a domain to each other (an admin's slip while moving a domain)
answer "temporary" once, instead of sending the query back and forth for
good.  1.32 ignores the mark with the rest after the NUL; the field is
not an IP, so a marked query counts as one without an IP.

Detail (ours, for qmail-verify-http): an extended query may instead end
with the field DETAIL_TAG, asking how the address would be delivered:

    address NUL "QV2" NUL "detail"          e.g. b"bob@example.com\0QV2\0detail"

The reply to it (and only to it) is the reply any extended query gets,
status byte and user (or reason) cut to REPLY_MAX as ever, then:

    NUL "variant=" WORD      when deep mode knows how vpopmail delivers
                             it: one of VARIANTS (absent otherwise)
    NUL "local=" NAME        the local name qmail-local would get (the
                             local part, or the virtualdomains prefix,
                             '-' and the local part); absent when qmail
                             does not deliver the address here

NAME, last, takes the rest of the datagram, so the reply may pass
REPLY_MAX by the length of NAME.  A 1.32 daemon replies without the
fields; a legacy client never asks, so never sees them.
"""

from operator import itemgetter

QUERY_MAX = 900
REPLY_MAX = 33
EXTENDED_TAG = b"QV2"

# The longest address a query can carry whole with the extended-reply tag
# (address, NUL, tag); anything longer would be cut by the daemon.
ADDRESS_MAX = QUERY_MAX - 1 - len(EXTENDED_TAG)

IP_TAG = b"ip="
HUB_MARK = b"hub"
IP_MAX = 45
IP_CHARS = frozenset(b"0123456789abcdefABCDEF.:")
COUNT_MAX = 9999

DETAIL_TAG = b"detail"
VARIANT_TAG = b"variant="
LOCAL_TAG = b"local="
# how vdelivermail delivers a deliverable address (deep mode): a user's
# own mailbox, a valias row, the domain's catch-all, or (qmail-ext
# builds) the mailbox of the part before the first '-'
MAILBOX, VALIAS, CATCH_ALL, QMAIL_EXT = b"mailbox", b"valias", b"catch-all", b"qmail-ext"
VARIANTS = (MAILBOX, VALIAS, CATCH_ALL, QMAIL_EXT)

DELIVERABLE = 0
UNDELIVERABLE = 1
TEMPORARY = 2

# Decision points (the high nibble) of the two "deliverable" answers that
# checked nothing: a domain neither locals nor virtualdomains has, and a
# virtualdomains exception (an empty prefix).  Relaying is qmail-smtpd's
# business; a client may say so, never act on it.
NOT_OURS = 1
VIRTUAL_EXCEPTION = 2


# The two results below are tuples with names, written out rather than
# made by collections.namedtuple: qmail-logmsg starts per connection, and
# importing collections (with keyword and reprlib) and building the
# classes would cost each session more than these lines do.  The fields
# are itemgetters, as fast to read as a namedtuple's: the daemon reads
# them for every query.
class ParsedQuery(tuple):
    """(address, extended): a query datagram as the daemon reads it."""
    __slots__ = ()
    address = property(itemgetter(0))              # bytes
    extended = property(itemgetter(1))             # bool: the extended reply asked for

    def __new__(cls, address: bytes, extended: bool):
        return tuple.__new__(cls, (address, extended))


_tuple_new = tuple.__new__


def parse_query(datagram: bytes) -> ParsedQuery | None:
    """Split a datagram into the address and the extended-reply request.

    None for an empty datagram, which gets no reply."""
    if not datagram:
        return None
    data = datagram[:QUERY_MAX]
    address, nul, rest = data.partition(b"\0")
    # tuple.__new__ straight: ParsedQuery's own __new__ is a Python call more
    return _tuple_new(ParsedQuery, (address, bool(nul) and rest.startswith(EXTENDED_TAG)))


def query_ip(datagram: bytes) -> bytes | None:
    """The client IP an extended query carries (None: none, or not one)."""
    fields = datagram[:QUERY_MAX].split(b"\0", 2)        # the IP field is the last
    if len(fields) < 3 or fields[1] != EXTENDED_TAG or not fields[2].startswith(IP_TAG):
        return None
    ip = fields[2][len(IP_TAG):]
    return ip if 0 < len(ip) <= IP_MAX and IP_CHARS.issuperset(ip) else None


def from_hub(datagram: bytes) -> bool:
    """Did a hub pass this query on (hub_query())?"""
    fields = datagram[:QUERY_MAX].split(b"\0", 2)
    return len(fields) == 3 and fields[1] == EXTENDED_TAG and fields[2] == HUB_MARK


def hub_query(address: bytes) -> bytes:
    """The extended query a hub sends its far server for address."""
    return address + b"\0" + EXTENDED_TAG + b"\0" + HUB_MARK


def make_query(address: bytes, extended: bool = True, ip: bytes | None = None,
               detail: bool = False) -> bytes:
    """The datagram a client sends for address (an ip, or detail, only
    with extended; detail wins over an ip)."""
    if not extended:
        return address + b"\0"
    if detail:
        return address + b"\0" + EXTENDED_TAG + b"\0" + DETAIL_TAG
    return address + b"\0" + EXTENDED_TAG + (b"\0" + IP_TAG + ip if ip else b"")


def wants_detail(datagram: bytes) -> bool:
    """Does an extended query ask for the detail fields?"""
    return datagram[:QUERY_MAX].split(b"\0", 1)[1:] == [EXTENDED_TAG + b"\0" + DETAIL_TAG]


def with_detail(reply: bytes, variant: bytes, local: bytes | None) -> bytes:
    """A reply to a detail query: the fields after the reply (REPLY_MAX)."""
    return (reply + (b"\0" + VARIANT_TAG + variant if variant else b"")
            + (b"\0" + LOCAL_TAG + local if local is not None else b""))


def split_detail(user: bytes) -> tuple[bytes, bytes, bytes | None]:
    """A detail reply's user (or reason), variant (b"" if none) and local
    name (None if none)."""
    user, nul, rest = user.partition(b"\0")
    variant, local = b"", None
    while nul:
        if rest.startswith(LOCAL_TAG):
            return user, variant, rest[len(LOCAL_TAG):]
        field, nul, rest = rest.partition(b"\0")
        if field.startswith(VARIANT_TAG):
            variant = field[len(VARIANT_TAG):]
    return user, variant, local


def with_count(reply: bytes, count: int) -> bytes:
    """A reply to a query that carried an IP: the count after a NUL."""
    digits = b"%d" % min(max(count, 0), COUNT_MAX)
    return reply[:REPLY_MAX - 1 - len(digits)] + b"\0" + digits


def split_count(user: bytes) -> tuple[bytes, int | None]:
    """A counted reply's user (or reason) and count; None if it has none."""
    user, nul, digits = user.partition(b"\0")
    return user, (int(digits) if nul and digits.isdigit() else None)


_STATUS = [bytes((b,)) for b in range(256)]      # each status byte, made once


def make_reply(code: int, position: int, user: bytes = b"") -> bytes:
    """Status byte (position << 4 | code), then user, cut to REPLY_MAX."""
    return (_STATUS[(position & 0x0F) << 4 | (code & 0x0F)] + user)[:REPLY_MAX]


class Reply(tuple):
    """(code, position, user): a reply datagram as a client reads it."""
    __slots__ = ()
    code = property(itemgetter(0))                 # DELIVERABLE, UNDELIVERABLE or TEMPORARY
    position = property(itemgetter(1))             # the rule that decided, 1 to 15 (0: unknown)
    user = property(itemgetter(2))                 # controlling user; for TEMPORARY the reason

    def __new__(cls, code: int, position: int, user: bytes):
        return tuple.__new__(cls, (code, position, user))


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
