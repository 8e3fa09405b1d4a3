"""The client side of qmail-verify: what qmail-smtpd's VERIFY logic and
verify-query are built on.  VERIFY values are read by verifyenv.py.

A query goes over a connected UDP socket, so only the server's own
address and port can answer it; it asks for the extended reply, so the
daemon's own trouble comes back as TEMPORARY at once instead of after the
timeout.
"""

import _socket as socket  # the C module: importing socket costs qmail-logmsg ~5 ms a connection
import errno
import time

from qmailverify.errors import errtext
from qmailverify.protocol.wire import (
    TEMPORARY,
    make_query,
    parse_reply,
    split_count,
    split_detail,
)

TIMEOUT = 5.0
RECV_MAX = 65536      # a detail reply's local name may be as long as a query


# code: DELIVERABLE, UNDELIVERABLE or TEMPORARY; user: controlling user, when
# deliverable or not; reason: why, when TEMPORARY; position: the daemon's rule
# (never to act on); timeout: TEMPORARY because no answer came in time;
# remote: the daemon itself answered (a TEMPORARY from it concerns this
# address only; one made here, a socket error or a timeout, ends the
# session); refusals: the daemon's count of refused recipients for the
# client IP the query carried (wire.py), None when it gave none; variant and
# local: a detail query's fields (wire.py), b"" and None when absent
class Answer:
    """What a client learns of one address (a plain class, not a
    namedtuple: see protocol/wire.py's ParsedQuery)."""
    __slots__ = ("code", "user", "reason", "position", "timeout", "remote", "refusals",
                 "variant", "local")

    def __init__(self, code: int, user: bytes = b"", reason: str = "", position: int = 0,
                 timeout: bool = False, remote: bool = False, refusals: int | None = None,
                 variant: bytes = b"", local: bytes | None = None):
        self.code, self.user, self.reason, self.position = code, user, reason, position
        self.timeout, self.remote, self.refusals = timeout, remote, refusals
        self.variant, self.local = variant, local

    def __repr__(self) -> str:
        return "Answer(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def log_message(self) -> str:
        """The qmail-smtpd log message for a TEMPORARY answer (spec 7)."""
        if self.timeout:
            return "Timeout (no response from verification server)"
        return f"temporary failure ({self.reason})"


def timeout_answer() -> Answer:
    return Answer(TEMPORARY, reason="no response from verification server", timeout=True)


class PendingQuery:
    """One address asked over its own connected UDP socket; for select loops.

    send() once; when the socket is readable, receive() gives the Answer,
    or None if nothing usable came (keep waiting until the deadline)."""

    def __init__(self, address: bytes, server: tuple[str, int], extended: bool = True,
                 timeout: float = TIMEOUT, ip: bytes | None = None, detail: bool = False):
        self.address = address
        self.ip = ip
        self.detail = detail
        self.server = server
        self.extended = extended
        self.deadline = None
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self) -> Answer | None:
        """Send the query; an Answer only if that already failed."""
        self.deadline = time.monotonic() + self.timeout
        try:
            self.sock.connect(self.server)
            self.sock.send(make_query(self.address, self.extended, self.ip, self.detail))
        except OSError as e:
            return socket_failure(e)
        return None

    def receive(self) -> Answer | None:
        try:
            data = self.sock.recv(RECV_MAX if self.detail else 2048)
        except BlockingIOError:
            return None
        except OSError as e:
            return socket_failure(e)
        return answer_of(data, self.ip, self.detail)

    def expired(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) >= self.deadline

    def close(self) -> None:
        self.sock.close()


def answer_of(data: bytes, ip: bytes | None = None, detail: bool = False) -> Answer | None:
    """The Answer a reply datagram gives to a query that carried ip, or
    asked for the detail; None if the datagram is empty."""
    reply = parse_reply(data)
    if reply is None:
        return None
    if detail:
        user, variant, local = split_detail(reply.user)
        if reply.code == TEMPORARY:
            return Answer(TEMPORARY, reason=user.decode("ascii", "replace"),
                          position=reply.position, remote=True)
        return Answer(reply.code, user, position=reply.position, remote=True,
                      variant=variant, local=local)
    user, refusals = split_count(reply.user) if ip else (reply.user, None)
    if reply.code == TEMPORARY:
        reason = user.decode("ascii", "replace")
        return Answer(TEMPORARY, reason=reason, position=reply.position, remote=True,
                      refusals=refusals)
    return Answer(reply.code, user, position=reply.position, remote=True, refusals=refusals)


def socket_failure(e: OSError) -> Answer:
    """TEMPORARY for a socket error of ours (it ends a qmail-smtpd session)."""
    text = errtext(e.errno) if e.errno else str(e)
    if e.errno == errno.ECONNREFUSED:
        text = "connection refused"
    return Answer(TEMPORARY, reason=text)


def ask(address: bytes, server: tuple[str, int], timeout: float = TIMEOUT,
        extended: bool = True) -> Answer:
    """Ask the daemon about one address and wait for the answer."""
    q = PendingQuery(address, server, extended, timeout)
    try:
        failed = q.send()
        if failed:
            return failed
        import selectors
        with selectors.DefaultSelector() as sel:
            sel.register(q, selectors.EVENT_READ)
            while True:
                left = q.deadline - time.monotonic()
                if left <= 0:
                    return timeout_answer()
                if sel.select(left):
                    answer = q.receive()
                    if answer is not None:
                        return answer
    finally:
        q.close()

