"""Server addresses as admins write them: LISTEN for the daemon, and the
server part of VERIFY for clients.

Forms: 'IP', 'IP:PORT', ':PORT', '[IPV6]', '[IPV6]:PORT', or empty; a
missing part takes its default (127.0.0.1, 11113).  Parsing is strict: a
typo is an error, not a silent fallback to the defaults.
"""

DEFAULT_IP = "127.0.0.1"
DEFAULT_PORT = 11113


class AddressError(ValueError):
    """A server address that cannot be parsed; str() says why."""


def parse_port(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise AddressError(f"bad port: {text!r}")
    port = int(text)
    if not 0 < port < 65536:
        raise AddressError(f"port out of range: {text}")
    return port


def parse_ip(text: str) -> str:
    import ipaddress  # only when there is an address: qmail-logmsg starts per connection
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise AddressError(f"bad IP address: {text!r}") from None


def parse_server(text: str, default_ip: str = DEFAULT_IP,
                 default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """(ip, port) from 'IP', 'IP:PORT', ':PORT', '[V6]:PORT', '[V6]' or ''."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"missing ']' in {text!r}")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise AddressError(f"junk after ']' in {text!r}")
        ip = parse_ip(host)
        if ":" not in ip:
            raise AddressError(f"not an IPv6 address in brackets: {host!r}")
        return ip, parse_port(rest[1:]) if rest[1:] else default_port
    host, colon, port = text.partition(":")
    if colon and ":" in port:
        raise AddressError(f"an IPv6 address needs brackets: {text!r}")
    ip = parse_ip(host) if host else default_ip
    return ip, parse_port(port) if port else default_port


def format_server(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
