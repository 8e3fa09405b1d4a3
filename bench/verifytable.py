"""A qmail-verify that answers from a table: each query gets the reply the
real daemon gave it, with no decision, no file, no log.  bench/httpbench.py
puts a second qmail-verify-http in front of it, so that what the UDP hop
to a daemon costs shows apart from the daemon's own work.

    python3 verifytable.py PORT TABLEFILE

TABLEFILE holds "QUERY REPLY" lines, both in hex; another query gets no
reply.
"""

import socket
import sys


def main(port, tablefile):
    table = {}
    for line in open(tablefile):
        query, reply = line.split()
        table[bytes.fromhex(query)] = bytes.fromhex(reply)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        query, peer = s.recvfrom(2048)
        reply = table.get(query)
        if reply is not None:
            s.sendto(reply, peer)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
