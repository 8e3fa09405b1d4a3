"""The HTTP side of qmail-verify-http: one thread, one selector, h11
(sans-I/O HTTP/1.1) for every byte of HTTP, qd1.py for what to answer,
and the daemon asked over UDP without waiting for it: an extended query
with the detail fields (wire.py) on a connected socket (Asker) that is
used again for the next query once its own was answered.

Limits a hostile client cannot pass:

  - the request line and headers: at most HEAD_MAX bytes (more is 431;
    h11's max_incomplete_event_size bounds what is buffered, head_size()
    a head that came whole), a body at most HEAD_MAX (more is 413);
  - connections: at most Limits.connections at once; at the cap the
    listening socket is not read, so new ones wait in the kernel's
    backlog instead of being refused;
  - time: a connection has Limits.idle seconds to send each request
    (counted from its accept or from the last response: a client that
    sends one byte a second is cut off like a silent one) and to read
    each response;
  - one request a connection is answered at a time: while the daemon is
    asked, at most HEAD_MAX more bytes of the connection are read and
    kept, so a client that pipelines can fill only the kernel's buffers.

HTTP/1.1 connections are kept open unless the client says "Connection:
close"; HTTP/1.0 ones are closed after the response (h11 does not keep
them alive).  A client that half-closes after its requests gets every
answer, then the close.  Bad HTTP gets its 4xx and the connection closed; nothing a
client sends raises out of the loop.  At most one log line a request.
"""

import selectors
import socket
import time
from functools import partial
from typing import NamedTuple

import h11

from qmailverify.http import qd1
from qmailverify.protocol.client import (
    RECV_MAX,
    answer_of,
    socket_failure,
    timeout_answer,
)
from qmailverify.protocol.wire import make_query

HEAD_MAX = 8192
RECV = 16384
SWEEP = 0.25           # how often deadlines are looked at, seconds
SPARE = 64             # idle daemon sockets kept for the next queries


def head_size(r: h11.Request) -> int:
    """The bytes of r's request line and headers, as sent less any
    blanks around the values."""
    return (len(r.method) + len(r.target) + 12
            + sum(len(name) + len(value) + 4 for name, value in r.headers) + 2)


class Limits(NamedTuple):
    connections: int = 100      # open at once
    idle: float = 10.0          # seconds to send a request, or to read a response
    timeout: float = 5.0        # seconds the daemon has to answer


class Asker:
    """A connected UDP socket to the daemon, with at most one query out.

    A socket whose every query was answered is used again (the daemon
    sends one reply a query, so nothing late can come on it); one whose
    query timed out or failed is closed."""
    __slots__ = ("sock", "conn", "deadline")

    def __init__(self, daemon: tuple[str, int]):
        self.sock = socket.socket(socket.AF_INET6 if ":" in daemon[0] else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.conn = None
        self.deadline = 0.0
        try:
            self.sock.connect(daemon)
        except OSError:
            self.sock.close()
            raise


class Conn:
    """One client connection and the request it is being answered."""
    __slots__ = ("sock", "peer", "h11", "out", "query", "request", "asked", "body",
                 "deadline", "closing", "events")

    def __init__(self, sock, peer: bytes, deadline: float):
        self.sock = sock
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=HEAD_MAX)
        self.out = b""           # response bytes the socket has not taken yet
        self.query = None        # the Asker whose query is in flight
        self.request = None      # the h11.Request being read
        self.asked = None        # what the daemon is asked for it (qd1.Request)
        self.body = 0            # its body's bytes so far
        self.deadline = deadline
        self.closing = False     # close once out is sent
        self.events = 0          # what the selector watches the socket for


class Server:
    def __init__(self, listener: socket.socket, daemon: tuple[str, int],
                 limits: Limits = Limits(), log=None):
        self.listener = listener
        self.daemon = daemon
        self.limits = limits
        self.log = log if log is not None else []       # lines, without the program's name
        self.sel = selectors.DefaultSelector()
        self.conns: set[Conn] = set()
        self.spare: list[Asker] = []
        self.listening = False
        listener.setblocking(False)
        self.listen(True)
        self.next_sweep = time.monotonic() + SWEEP

    # -- the loop -------------------------------------------------------------

    def step(self, wait: float | None = None) -> None:
        """Wait for events (at most wait seconds, or until the next sweep)
        and handle them."""
        now = time.monotonic()
        timeout = max(0.0, self.next_sweep - now)
        if wait is not None:
            timeout = min(timeout, wait)
        for key, mask in self.sel.select(timeout):
            key.data(mask)
        now = time.monotonic()
        if now >= self.next_sweep:
            self.sweep(now)
            self.next_sweep = now + SWEEP

    def sweep(self, now: float) -> None:
        for c in list(self.conns):
            if c.query is not None:
                if now >= c.query.deadline:
                    self.answered(c, timeout_answer(), keep=False)
            elif now >= c.deadline:
                self.close(c)
        if not self.listening and len(self.conns) < self.limits.connections:
            self.listen(True)

    def close_all(self) -> None:
        for c in list(self.conns):
            self.close(c)
        for a in self.spare:
            self.drop(a)
        self.spare = []
        self.listen(False)
        self.sel.close()

    # -- accepting ------------------------------------------------------------

    def listen(self, on: bool) -> None:
        if on and not self.listening:
            self.sel.register(self.listener, selectors.EVENT_READ, self.accept)
        elif not on and self.listening:
            self.sel.unregister(self.listener)
        self.listening = on

    def accept(self, mask) -> None:
        """Take every connection waiting in the backlog, up to the cap.
        Taking one each time the selector reports the listener would save
        the accept() that finds nothing, but leave each of the others
        waiting behind a whole turn of the loop: at 16 clients that each
        open a connection a request, it lowered the rate by a fifth and
        added more than a millisecond to the p99 (bench/httpbench.py)."""
        while len(self.conns) < self.limits.connections:
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:       # the client already gone
                continue
            except OSError:
                # out of descriptors or memory: the backlog waits for the
                # next sweep instead of waking the loop again at once
                self.listen(False)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            c = Conn(sock, addr[0].encode("ascii", "replace"),
                     time.monotonic() + self.limits.idle)
            self.conns.add(c)
            self.watch(c, selectors.EVENT_READ)
        self.listen(False)           # at the cap: leave the rest in the backlog

    def close(self, c: Conn) -> None:
        if c not in self.conns:
            return
        self.conns.discard(c)
        if c.query is not None:
            self.drop(c.query)
            c.query = None
        self.watch(c, 0)
        c.sock.close()
        if not self.listening and len(self.conns) < self.limits.connections:
            self.listen(True)

    # -- one connection -------------------------------------------------------

    def ready(self, c: Conn, mask) -> None:
        """c's socket is readable or writable (the selector's callback)."""
        if mask & selectors.EVENT_WRITE:
            self.flush(c)
            return
        try:
            data = c.sock.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(c)
            return
        c.h11.receive_data(data)
        if c.query is None:
            self.process(c)
        elif not data:
            # the client is done sending (a half-close, or gone) while the
            # daemon is asked: h11 holds the end, so this request and any
            # it pipelined before it are still answered, then the
            # connection closes (process() meets ConnectionClosed)
            self.watch(c, 0)
        elif len(c.h11.trailing_data[0]) > HEAD_MAX:
            self.watch(c, 0)         # enough kept for later: read again after the answer

    def process(self, c: Conn) -> None:
        """Read events until a request is complete (then ask) or h11
        needs more bytes."""
        while c in self.conns and c.query is None and not c.closing:
            try:
                event = c.h11.next_event()
            except h11.RemoteProtocolError as e:
                self.fail(c, e.error_status_hint, str(e).encode("ascii", "replace"))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                self.close(c)
                return
            if isinstance(event, h11.Request):
                if head_size(event) > HEAD_MAX:      # h11 counts only a head still incomplete
                    self.fail(c, 431, b"head too large")
                    return
                c.request, c.body = event, 0
            elif isinstance(event, h11.Data):
                c.body += len(event.data)
                if c.body > HEAD_MAX:
                    self.fail(c, 413, b"body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self.dispatch(c)

    def dispatch(self, c: Conn) -> None:
        parsed = qd1.parse(c.request.method, c.request.target)
        if isinstance(parsed, qd1.Response):
            self.respond(c, parsed)
            return
        try:
            a = self.spare.pop() if self.spare else self.asker()
        except OSError as e:                   # no socket to be had
            self.respond(c, qd1.answer(parsed, socket_failure(e)))
            return
        try:
            a.sock.send(make_query(parsed.address, detail=True))
        except OSError as e:
            self.drop(a)
            self.respond(c, qd1.answer(parsed, socket_failure(e)))
            return
        a.conn, a.deadline = c, time.monotonic() + self.limits.timeout
        c.query, c.asked = a, parsed

    def asker(self) -> Asker:
        a = Asker(self.daemon)
        self.sel.register(a.sock, selectors.EVENT_READ, lambda mask, a=a: self.daemon_ready(a))
        return a

    def drop(self, a: Asker) -> None:
        self.sel.unregister(a.sock)
        a.sock.close()

    def daemon_ready(self, a: Asker) -> None:
        try:
            data = a.sock.recv(RECV_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if a.conn is not None:
                self.answered(a.conn, socket_failure(e), keep=False)
            return
        answer = answer_of(data, detail=True)
        if answer is not None and a.conn is not None:
            self.answered(a.conn, answer)

    def answered(self, c: Conn, answer, keep: bool = True) -> None:
        """Respond to c with the daemon's answer; its Asker is kept for
        the next query (keep), or closed."""
        a, c.query = c.query, None
        a.conn = None
        if keep and len(self.spare) < SPARE:
            self.spare.append(a)
        else:
            self.drop(a)
        self.respond(c, qd1.answer(c.asked, answer))

    def respond(self, c: Conn, r: qd1.Response) -> None:
        headers = [(b"Content-Type", b"text/plain")]
        if r.status != 204:
            headers.append((b"Content-Length", b"%d" % len(r.body)))
        if r.status >= 400:
            headers.append((b"Connection", b"close"))
        self.log.append(c.peer + b" " + r.log)
        try:
            data = c.h11.send(h11.Response(status_code=r.status, headers=headers,
                                           reason=qd1.REASONS.get(r.status, b"")))
            head = c.request is not None and c.request.method == b"HEAD"
            if r.body and r.status != 204 and not head:
                data += c.h11.send(h11.Data(data=r.body))
            data += c.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:          # e.g. a HEAD-less state h11 refuses
            self.close(c)
            return
        c.deadline = time.monotonic() + self.limits.idle
        if c.h11.our_state is h11.MUST_CLOSE or r.status >= 400:
            c.closing = True
        c.out += data
        self.flush(c)
        if c in self.conns and not c.closing and not c.out and c.events != selectors.EVENT_WRITE:
            self.next_request(c)

    def next_request(self, c: Conn) -> None:
        c.request = c.asked = None
        try:
            c.h11.start_next_cycle()
        except h11.LocalProtocolError:
            self.close(c)
            return
        self.watch(c, selectors.EVENT_READ)
        self.process(c)                    # a pipelined request may be waiting

    def fail(self, c: Conn, status: int, why: bytes) -> None:
        """Bad HTTP: its 4xx if h11 still lets us answer, then close."""
        if c.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.respond(c, qd1.refusal(status, qd1.REASONS.get(status, b"bad request").lower(),
                                        why))
        else:
            self.close(c)

    def flush(self, c: Conn) -> None:
        try:
            sent = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close(c)
            return
        c.out = c.out[sent:]
        if c.out:
            self.watch(c, selectors.EVENT_WRITE)      # until the socket takes the rest
        elif c.closing:
            self.close(c)
        elif c.events == selectors.EVENT_WRITE:
            self.next_request(c)

    def watch(self, c: Conn, events: int) -> None:
        """Have the selector watch c's socket for events (0: not at all).

        The callback the selector keeps refers to c, and c never to it:
        a closed connection is freed at once, not left in a reference
        cycle for the garbage collector, whose passes would otherwise
        stall the loop every few hundred connections."""
        if events == c.events:
            return
        if not c.events:
            self.sel.register(c.sock, events, partial(self.ready, c))
        elif not events:
            self.sel.unregister(c.sock)
        else:
            self.sel.modify(c.sock, events, self.sel.get_key(c.sock).data)
        c.events = events
