"""A minimal qd1 server: Qmail::Deliverable's HTTP protocol answered from
a table, the baseline of bench/httpbench.py (the cost of HTTP and sockets
alone, on the same footing as qmail-verify-http: one Python process,
h11, a selector).

    python3 qd1table.py PORT TABLEFILE

TABLEFILE holds "TARGET VALUE" lines: the answer (200 and VALUE) for each
request target; any other target gets 404.  No limits, no log.
"""

import selectors
import socket
import sys

import h11


def main(port, tablefile):
    table = {}
    for line in open(tablefile, "rb"):
        target, _, value = line.strip().rpartition(b" ")
        table[target] = value
    sel = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)

    def serve(sock, conn):
        data = sock.recv(65536)
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                event = h11.ConnectionClosed()
            if event is h11.NEED_DATA:
                return True
            if isinstance(event, (h11.ConnectionClosed,)) or event is h11.PAUSED:
                return False
            if isinstance(event, h11.Request):
                target = event.target
            elif isinstance(event, h11.EndOfMessage):
                value = table.get(target)
                status, body = (200, value) if value is not None else (404, b"")
                out = conn.send(h11.Response(status_code=status, headers=[
                    (b"Content-Type", b"text/plain"), (b"Content-Length", b"%d" % len(body))]))
                out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                sock.sendall(out)
                if conn.our_state is h11.MUST_CLOSE:
                    return False
                conn.start_next_cycle()

    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(sock, selectors.EVENT_READ, h11.Connection(h11.SERVER))
                continue
            sock = key.fileobj
            try:
                alive = serve(sock, key.data)
            except OSError:
                alive = False
            if not alive:
                sel.unregister(sock)
                sock.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
