"""HTTP load generator: keeps N requests in flight against an HTTP server
for a while and prints what it saw as one JSON line.

    python3 httpload.py HOST PORT N SECONDS TARGETFILE [close]

TARGETFILE holds one request target a line (/qd1/deliverable?...), sent
round-robin.  Each of the N clients has one request outstanding; with
"close" each request is a new connection that sends "Connection: close"
(as Haraka's plugin does), else each client keeps one connection alive.
Latency is from the connect (close) or the send (keep-alive) to the end
of the response.  A response is read as far as its Content-Length: the
servers measured send one.
"""

import json
import selectors
import socket
import sys
import time


class Client:
    __slots__ = ("sock", "buf", "started")

    def __init__(self):
        self.sock, self.buf, self.started = None, b"", 0.0


def main(host, port, n, seconds, targetfile, close):
    targets = [line.strip() for line in open(targetfile) if line.strip()]
    header = b"Host: 127.0.0.1\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
    requests = [b"GET " + t.encode() + b" HTTP/1.1\r\n" + header for t in targets]
    sel = selectors.DefaultSelector()
    clock = time.perf_counter
    latencies, errors, nextq = [], 0, 0

    def start(c):
        nonlocal nextq
        if c.sock is None:
            c.sock = socket.create_connection((host, port))
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, c)
        c.sock.send(requests[nextq % len(requests)])
        nextq += 1

    clients = [Client() for _ in range(n)]
    begin = clock()
    end = begin + seconds
    for c in clients:
        c.started = clock()
        start(c)
    while clock() < end:
        for key, _ in sel.select(0.05):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            c.buf += data
            head, sep, body = c.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if not sep or len(body) < length:
                if data:
                    continue
                errors += 1                      # closed before a whole response
            else:
                latencies.append(clock() - c.started)
            c.buf = b""
            if close or not data:
                sel.unregister(c.sock)
                c.sock.close()
                c.sock = None
            c.started = clock()
            start(c)
    elapsed = clock() - begin
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3 if latencies else None

    print(json.dumps({"n": n, "answered": len(latencies), "errors": errors,
                      "rps": len(latencies) / elapsed, "p50_ms": pct(0.50),
                      "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    host, port, n, seconds, targetfile = sys.argv[1:6]
    main(host, int(port), int(n), float(seconds), targetfile, sys.argv[6:7] == ["close"])
