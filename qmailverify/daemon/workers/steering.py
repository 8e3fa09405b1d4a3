"""Which worker a datagram goes to, when VERIFY_WORKERS=N runs N workers
on one UDP port (master.py): the kernel picks one socket of the
SO_REUSEPORT group, and the classic BPF program built here
(steering_program) tells it which.

Harvest counts (daemon/harvest.py) are kept per worker, so every query
that carries a client IP must reach the same worker for the same IP.  The
program is attached to the group with SO_ATTACH_REUSEPORT_CBPF; for UDP
the kernel runs it on the payload and takes its result as the index of the
socket, in bind order.  It looks for the IP field the way
protocol.wire.query_ip() reads it: the last field, "\\0ip=" then 1 to
IP_MAX bytes with no NUL up to the end of the datagram.  It tries each
length L from 1 to IP_MAX and takes the first (the shortest) for which the
4 bytes at n-L-4 are "\\0ip=".  n is the datagram's length cut to
QUERY_MAX: the daemon reads only that much, so a longer datagram's IP (if
query_ip finds one at all) ends at byte QUERY_MAX, and that is where the
program looks.  Every IP query_ip() accepts is found, with exactly its
bytes.

The worker is a hash of two words that lie within "\\0ip=" + IP whatever
its length: the 4 bytes at n-L-3 ("ip=" and the IP's first byte) and the
last 4 bytes, XORed, mixed by a multiplication, modulo N.  The same IP
always gives the same words, so the same worker.  A datagram with no IP
field gets NOMATCH, an index beyond the group, and the kernel then picks
by its usual hash of addresses and ports: queries without an IP spread
over the workers.  Only the bytes before n are ever loaded (a load past
the end would end the program with 0: worker 0).

route() is the same computation in Python, for tests and to document it.
"""

import ctypes
import socket
import struct

from qmailverify.daemon.udpsocket import family, grow_receive_buffer
from qmailverify.errors import Fatal, errtext
from qmailverify.protocol.wire import IP_MAX, QUERY_MAX

SO_ATTACH_REUSEPORT_CBPF = 51
NOMATCH = 0xFFFFFFFF
FIELD = 0x0069703D                # b"\0ip=" as a big-endian word (BPF loads are)
MIX = 0x9E3779B1

# classic BPF opcodes (linux/filter.h)
LD_LEN, LD_IMM, LD_MEM, LD_IND_W = 0x80, 0x00, 0x60, 0x40
LDX_MEM, ST = 0x61, 0x02
SUB_K, MUL_K, RSH_K, MOD_K, XOR_X = 0x14, 0x24, 0x74, 0x94, 0xAC
JA, JEQ_K, JGT_K, JGE_K = 0x05, 0x15, 0x25, 0x35
RET_K, RET_A, TAX, TXA = 0x06, 0x16, 0x07, 0x87


def _op(code: int, k: int = 0, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def steering_program(workers: int) -> bytes:
    """The program's instructions (struct sock_filter, 8 bytes each)."""
    ops = [_op(LD_LEN),                     # A = datagram length
           _op(JGT_K, QUERY_MAX, 0, 1),
           _op(LD_IMM, QUERY_MAX),          # cut as the daemon cuts it
           _op(ST, 0)]                      # M[0] = n
    found = len(ops) + 8 * IP_MAX + 1       # where the hash starts
    for length in range(1, IP_MAX + 1):
        at = len(ops)
        ops += [_op(LD_MEM, 0),
                _op(JGE_K, length + 4, 1, 0),
                _op(RET_K, NOMATCH),        # too short for this IP length, or any longer
                _op(SUB_K, length + 4),
                _op(TAX),                   # X = n - L - 4
                _op(LD_IND_W, 0),
                _op(JEQ_K, FIELD, 0, 1),
                _op(JA, found - (at + 8))]  # relative to the next instruction
    ops.append(_op(RET_K, NOMATCH))         # no IP field: the kernel's own hash
    assert len(ops) == found
    ops += [_op(LD_IND_W, 1),               # "ip=" and the IP's first byte
            _op(ST, 1),
            _op(LD_MEM, 0),
            _op(SUB_K, 4),
            _op(TAX),
            _op(LD_IND_W, 0),               # the last 4 bytes (the IP's end)
            _op(LDX_MEM, 1),
            _op(XOR_X),
            _op(MUL_K, MIX),
            _op(RSH_K, 16),
            _op(MOD_K, workers),
            _op(RET_A)]
    return b"".join(ops)


def route(datagram: bytes, workers: int) -> int | None:
    """The worker steering_program() sends datagram to; None: the kernel's hash."""
    data = datagram[:QUERY_MAX]
    n = len(data)
    for length in range(1, min(IP_MAX, n - 4) + 1):
        x = n - length - 4
        if data[x:x + 4] == b"\0ip=":
            first = int.from_bytes(data[x + 1:x + 5], "big")
            last = int.from_bytes(data[n - 4:], "big")
            return ((((first ^ last) * MIX) & 0xFFFFFFFF) >> 16) % workers
    return None


def attach(sock: socket.socket, code: bytes) -> None:
    """Attach the program to sock's SO_REUSEPORT group (OSError if the
    kernel refuses it)."""
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def bind_group(ip: str, port: int, workers: int) -> list[socket.socket]:
    """workers UDP sockets on ip:port, one SO_REUSEPORT group in bind order,
    steered by steering_program().  The address is first bound once without
    SO_REUSEPORT, so that a group someone else already has (an old
    daemon's workers) is a refusal, never a port shared with it."""
    socks: list[socket.socket] = []
    what = "bind to"
    try:
        with socket.socket(family(ip), socket.SOCK_DGRAM) as probe:
            probe.bind((ip, port))
            port = probe.getsockname()[1]
        for _ in range(workers):
            sock = socket.socket(family(ip), socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((ip, port))
            grow_receive_buffer(sock)
        what = "steer queries on"
        attach(socks[0], steering_program(workers))
    except OSError as e:
        for sock in socks:
            sock.close()
        raise Fatal(f"qmail-verify: fatal: unable to {what} {ip} port {port}: "
                    f"{errtext(e.errno)}") from None
    return socks
