"""Qmail::Deliverable's HTTP protocol ("qd1"), answered from the
qmail-verify daemon: pure, so tests drive it without a socket.

qmail-deliverabled (Qmail::Deliverable's daemon) serves two requests:

    GET /qd1/deliverable?ADDRESS    200, the return value in decimal
    GET /qd1/qmail_local?ADDRESS    200, the local name qmail-local gets;
                                    204 when the address is not local

ADDRESS is URI-escaped (%XX; a '+' is a '+').  Another method or path is
403; a query that is empty, or holds a byte outside 0x20-0x7e once
unescaped, is 400.

parse() reads a request into the address to ask about (or the refusal);
answer() turns the daemon's answer (client.Answer, asked with the detail
fields, wire.py) into the response, mapped so that the real clients do
the right thing with it:

  - deliverable: 0xf1, or the vpopmail variant deep mode found (0xf2 a
    user's mailbox, 0xf3 a valias, 0xf4 the catch-all, 0xf6 qmail-ext);
  - not deliverable: 0;
  - not delivered here (positions 1 and 2: no virtualdomains key, or an
    empty prefix): 0xff;
  - temporary (status 2, no answer in time, a socket error): 503, never
    a number and never 204.  Haraka's plugin turns an HTTP error into
    450 "error validating email address"; it turns every number it does
    not take as "OK" (0x11, 0x21, 0x22, 0xfe among them), a 204 and an
    empty body into 550, so a temporary answer must not be one.
"""

from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from qmailverify.clean import clean, visible
from qmailverify.protocol.wire import (
    CATCH_ALL,
    MAILBOX,
    QMAIL_EXT,
    TEMPORARY,
    UNDELIVERABLE,
    VALIAS,
)

DELIVERABLE_PATH = b"/qd1/deliverable"
LOCAL_PATH = b"/qd1/qmail_local"
COMMANDS = {DELIVERABLE_PATH: b"deliverable", LOCAL_PATH: b"qmail_local"}

NOT_DELIVERABLE = 0x00
DELIVERABLE = 0xF1           # "deliverable, almost certainly"
NOT_LOCAL = 0xFF             # "domain is not local"
NOT_HERE = (1, 2)            # the daemon's positions for an address qmail delivers elsewhere
PRINTABLE = bytes(range(0x20, 0x7F))   # what a query may hold, once unescaped
VARIANT_VALUES = {MAILBOX: 0xF2, VALIAS: 0xF3, CATCH_ALL: 0xF4, QMAIL_EXT: 0xF6}

REASONS = {200: b"OK", 204: b"No Content", 400: b"Bad Request", 403: b"Forbidden",
           408: b"Request Timeout", 413: b"Content Too Large",
           431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


class Request(NamedTuple):
    command: bytes           # b"deliverable" or b"qmail_local"
    address: bytes           # unescaped; printable ASCII


class Response(NamedTuple):
    status: int
    body: bytes
    log: bytes               # the log line's words after the peer, cleaned


def refusal(status: int, why: bytes, what: bytes = b"") -> Response:
    """A 4xx (or 5xx) of our own: the reason as the body."""
    return Response(status, why + b"\n", b"%d %s" % (status, why)
                    + (b": " + clean(what) if what else b""))


def parse(method: bytes, target: bytes) -> Request | Response:
    """The request line's method and target: the Request to ask the daemon
    about, or the Response that refuses it."""
    path, _, query = target.partition(b"?")
    if path[:7].lower() == b"http://":          # the absolute form a proxy gets
        slash = path.find(b"/", 7)
        path = path[slash:] if slash >= 0 else b"/"
    command = COMMANDS.get(path)
    if method != b"GET" or command is None:
        return refusal(403, b"forbidden", method + b" " + path)
    address = unquote_to_bytes(query.partition(b"#")[0])
    if not address or address.translate(None, PRINTABLE):
        return refusal(400, b"bad query", query)
    return Request(command, address)


def answer(request: Request, a) -> Response:
    """The response to request for the daemon's Answer a."""
    what = request.command + b" " + clean(request.address)
    if a.code == TEMPORARY:
        why = visible(a.reason.encode("utf-8", "replace"))
        return Response(503, b"temporary failure: " + why + b"\n",
                        what + b" 503 temporary failure: " + why)
    if request.command == b"qmail_local":
        if a.local is None:
            return Response(204, b"", what + b" 204")
        return Response(200, a.local, what + b" 200 " + clean(a.local))
    if a.code == UNDELIVERABLE:
        value = NOT_DELIVERABLE
    elif a.position in NOT_HERE:
        value = NOT_LOCAL
    else:
        value = VARIANT_VALUES.get(a.variant, DELIVERABLE)
    return Response(200, b"%d" % value, what + b" 200 0x%02x" % value)
