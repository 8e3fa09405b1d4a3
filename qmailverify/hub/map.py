"""Hub mode's map (control/verifyhub): which domains another qmail-verify
server answers for, and where it listens.

One mapping a line, read the qmail way (qmail/controlfile.py):

    domain:SERVER        e.g.  example.net:192.0.2.9:11113
    .domain:SERVER              .example.net:192.0.2.9   (every subdomain)
                                example.org:[2001:db8::9]:11113

SERVER is written as LISTEN is (protocol.addrspec.parse_server: IP, IP:PORT,
[IPV6] or [IPV6]:PORT; port 11113 by default), but may not be empty.
Keys are domains only (no '@'), ASCII case-insensitive, and the later of
two equal keys wins, as in virtualdomains.  A domain is looked up as
virtualdomains looks one up, without its user@domain and empty keys:
the domain itself, then each suffix that starts at a '.', longest first
(for x.y.z: x.y.z, .y.z, .z).  There is no empty key: a hub for every
domain would forward this host's own mail too, so ':SERVER' is an error.

The map is pure data; system.controls.load() reads it with the other control
files (at start and on SIGHUP) and raises ControlError for a line that
cannot be used.
"""

from qmailverify.clean import visible
from qmailverify.protocol.addrspec import AddressError, format_server, parse_server


class HubError(ValueError):
    """A control/verifyhub line that cannot be used; str() says why."""


class HubMap:
    """Lowercased domain key -> (ip, port)."""

    def __init__(self, servers: dict):
        self.servers = servers

    def __len__(self) -> int:
        return len(self.servers)

    def server_for(self, address: bytes) -> tuple[str, int] | None:
        """The far server for the address as queried (its domain after the
        last '@'), or None: not a hub domain (a bare name never is)."""
        at = address.rfind(b"@")
        if at < 0:
            return None
        domain = address[at + 1:].lower()
        if not domain:
            return None
        hit = self.servers.get(domain)
        if hit is not None:
            return hit
        dot = domain.find(b".")
        while dot >= 0:
            hit = self.servers.get(domain[dot:])
            if hit is not None:
                return hit
            dot = domain.find(b".", dot + 1)
        return None


def parse_hub_lines(lines) -> HubMap | None:
    """The HubMap of control/verifyhub's meaningful lines (None: no
    lines, hub mode off).  Raises HubError naming the first bad line."""
    servers = {}
    for number, line in enumerate(lines, 1):
        key, colon, server = line.partition(b":")
        key = key.strip().lower()
        where = f"line {number} ({visible(line[:80]).decode('ascii')})"
        if not colon or not server.strip():
            raise HubError(f"{where}: no server after the domain")
        if not key or key == b".":
            raise HubError(f"{where}: no domain (there is no default hub)")
        if any(c in key for c in b"@ \t") or key.startswith(b".."):
            raise HubError(f"{where}: not a domain")
        try:
            servers[key] = parse_server(server.decode("ascii"))
        except (AddressError, UnicodeDecodeError) as e:
            raise HubError(f"{where}: {e}") from None
    return HubMap(servers) if servers else None


def describe(server: tuple[str, int]) -> str:
    """SERVER as the log names it."""
    return format_server(*server)
