"""This host's own IPv4 addresses, as qmail's ipme.c finds them, for the
localiphost rewrite of user@[IP] in qmail-smtpd's addrparse.

0.0.0.0 always, then the address of every interface SIOCGIFCONF lists
whose flags (SIOCGIFFLAGS) say it is up (so 127.0.0.1 through lo).
Computed once, and only when a bracketed address shows up; a failure is
IpmeError (qmail-smtpd: "421 unable to figure out my IP addresses").
"""

from qmailverify.errors import errtext

SIOCGIFCONF = 0x8912
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
AF_INET = 2


class IpmeError(Exception):
    """This host's own IP addresses could not be found (qmail-smtpd: 421)."""


def own_addresses() -> set[bytes]:
    import array  # only a bracketed address needs them
    import fcntl
    import socket
    import struct
    IFREQ = 40 if struct.calcsize("P") == 8 else 32    # sizeof(struct ifreq) on Linux
    found = {bytes(4)}
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            size = 256 * IFREQ
            while True:
                buf = array.array("B", bytes(size))
                ifc = struct.pack("iP", size, buf.buffer_info()[0])
                used = struct.unpack("iP", fcntl.ioctl(s.fileno(), SIOCGIFCONF, ifc))[0]
                if used + IFREQ < size:
                    break
                if size > 1 << 20:
                    raise IpmeError("too many interfaces")
                size *= 2
            data = buf.tobytes()[:used]
            for pos in range(0, used - IFREQ + 1, IFREQ):
                req = data[pos:pos + IFREQ]
                if int.from_bytes(req[16:18], "little") != AF_INET:
                    continue
                flags = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req[:16] + bytes(IFREQ - 16))
                if int.from_bytes(flags[16:18], "little") & IFF_UP:
                    found.add(req[20:24])
    except OSError as e:
        raise IpmeError(errtext(e.errno)) from None
    return found


class Ipme:
    """ipme(ip) -> bool for four address bytes, found on first use."""

    def __init__(self, find=own_addresses):
        self.find, self.addresses = find, None

    def __call__(self, ip: bytes) -> bool:
        if self.addresses is None:
            self.addresses = self.find()
        return ip in self.addresses
