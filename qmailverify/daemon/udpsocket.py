"""The daemon's UDP socket: bound, with a receive buffer big enough for a
burst.  daemon/main.py binds one; workers/steering.py's bind_group()
binds one a worker (VERIFY_WORKERS) and gives each the same buffer.
"""

import socket

from qmailverify.errors import Fatal, errtext

RCVBUF = 4 << 20      # the kernel's receive buffer asked for: some 5,000 queries


def family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def bind(ip: str, port: int) -> socket.socket:
    sock = socket.socket(family(ip), socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
    except OSError as e:
        sock.close()
        raise Fatal(f"qmail-verify: fatal: unable to bind to {ip} port {port}: "
                    f"{errtext(e.errno)}") from None
    grow_receive_buffer(sock)
    return sock


def grow_receive_buffer(sock: socket.socket) -> None:
    """A bigger buffer rides out a burst, or a moment off the CPU, without
    the kernel dropping queries (fairqueue.py takes over once they are
    read).  Root may go past net.core.rmem_max (SO_RCVBUFFORCE); anyone
    else gets up to it.  Failing costs only the default."""
    for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF)
            return
        except OSError:
            pass
