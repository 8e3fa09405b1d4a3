"""qmail-verify-http's Server in process, on real sockets, in front of a
UDP socket that plays the daemon: requests that come all at once and
are followed by a half-close, and what a connection leaves behind once
it is closed (a connection caught in a reference cycle waits for the
garbage collector, whose passes then stall every request in flight)."""

import gc
import socket
import time

import pytest

from qmailverify.http.server import Limits, Server
from qmailverify.protocol.wire import DELIVERABLE, MAILBOX, make_reply, with_detail

REQUEST = b"GET /qd1/deliverable?joe@example.org HTTP/1.1\r\nHost: 127.0.0.1\r\n"
REPLY = with_detail(make_reply(DELIVERABLE, 4, b"joe"), MAILBOX, b"joe")


@pytest.fixture
def server():
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    s = Server(listener, daemon.getsockname(), Limits())
    yield s, daemon
    s.close_all()
    listener.close()
    daemon.close()


def until(server, done) -> None:
    """Run the server's loop until done() (5 s at most)."""
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, "the server never got there"
        server.step(0.05)


def exchange(server, daemon, client: socket.socket, request: bytes) -> bytes:
    """Send one request, play the daemon, and read the response."""
    client.sendall(request)
    until(server, lambda: any(c.query for c in server.conns))
    _, peer = daemon.recvfrom(2048)
    daemon.sendto(REPLY, peer)
    until(server, lambda: not any(c.query for c in server.conns))
    client.settimeout(5)
    response = b""
    while not response.endswith(b"\r\n\r\n242"):
        data = client.recv(65536)
        if not data:
            break
        response += data
    return response


@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "keep-alive"])
def test_a_closed_connection_leaves_no_garbage_cycle(server, close):
    s, daemon = server
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            with socket.create_connection(s.listener.getsockname()) as client:
                for _ in range(1 if close else 3):
                    header = b"Connection: close\r\n" if close else b""
                    response = exchange(s, daemon, client, REQUEST + header + b"\r\n")
                    assert response.startswith(b"HTTP/1.1 200 ")
            until(s, lambda: not s.conns)      # the server sees the close
        assert gc.collect() == 0
    finally:
        gc.enable()


def answer_queries(server, daemon, n: int) -> None:
    """Play the daemon for n queries, one after another (the server logs
    a line as it answers each)."""
    for _ in range(n):
        until(server, lambda: any(c.query for c in server.conns))
        logged = len(server.log)
        _, peer = daemon.recvfrom(2048)
        daemon.sendto(REPLY, peer)
        until(server, lambda: len(server.log) > logged)


@pytest.mark.parametrize("n", [1, 3])
def test_requests_sent_at_once_then_a_half_close_each_get_their_answer(server, n):
    s, daemon = server
    with socket.create_connection(s.listener.getsockname()) as client:
        client.sendall((REQUEST + b"\r\n") * n)
        client.shutdown(socket.SHUT_WR)
        answer_queries(s, daemon, n)
        until(s, lambda: not s.conns)          # then the server closes
        client.settimeout(5)
        response = b""
        while data := client.recv(65536):
            response += data
    assert response.count(b"HTTP/1.1 200 ") == n and response.endswith(b"\r\n\r\n242")
