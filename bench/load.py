"""Load generator: keeps N queries in flight against a UDP server for a
while and prints what it saw as one JSON line.

    python3 load.py HOST PORT N SECONDS QUERYFILE

QUERYFILE holds one hex-encoded datagram a line, sent round-robin.  Each
of the N sockets has one query outstanding; a reply (or a 1 s timeout,
counted as lost) sends the next.  Latency is from send to reply.
"""

import json
import selectors
import socket
import sys
import time


def main(host, port, n, seconds, queryfile):
    queries = [bytes.fromhex(line) for line in open(queryfile) if line.strip()]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = []
    sent_at = {}
    nextq = 0
    for _ in range(n):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.connect((host, int(port)))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    latencies = []
    lost = 0
    clock = time.perf_counter
    start = clock()
    end = start + seconds
    for s in socks:
        s.send(queries[nextq % len(queries)])
        nextq += 1
        sent_at[s] = clock()
    while True:
        now = clock()
        if now >= end:
            break
        events = sel.select(0.05)
        now = clock()
        for key, _ in events:
            s = key.fileobj
            try:
                s.recv(2048)
            except BlockingIOError:
                continue
            latencies.append(now - sent_at[s])
            s.send(queries[nextq % len(queries)])
            nextq += 1
            sent_at[s] = clock()
        for s in socks:
            if now - sent_at[s] > 1.0:
                lost += 1
                s.send(queries[nextq % len(queries)])
                nextq += 1
                sent_at[s] = clock()
    elapsed = clock() - start
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3 if latencies else None

    print(json.dumps({"n": n, "answered": len(latencies), "lost": lost,
                      "qps": len(latencies) / elapsed, "p50_ms": pct(0.50),
                      "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    host, port, n, seconds, queryfile = sys.argv[1:6]
    main(host, port, int(n), float(seconds), queryfile)
