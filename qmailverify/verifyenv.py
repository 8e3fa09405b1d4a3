"""VERIFY, as set per client in tcpserver's rules (spec section 7): the one
parser that qmail-logmsg, the client library, verify-query -s and
verify-migrate all use, so that a value means the same everywhere.

  unset             no verification
  ""                no verification, and a note in the log
  ":"               immediate: a bad RCPT gets 550
  "DEFER"           deferred (any value starting with D or d): every RCPT
                    is accepted, DATA gets 554 if any was bad
  "IP", ":PORT", "IP:PORT", "[IPV6]:PORT", with or without "DEFER,"
                    the same, asking that server

The server is what follows from the first digit, ':' or '[' of the value
(spec 7 names the digit and ':'; '[' is ours, for IPv6); missing parts
default to 127.0.0.1 and 11113.  Everything before it is ignored, even a
host name: "DEFER,mx.example:10101" asks 127.0.0.1:10101 (ignored() says
what was skipped, for verify-migrate's warning).  A server part that
cannot be parsed is a SetupError (1.32 silently used the defaults).
"""

from .addrspec import AddressError, parse_server

SERVER_START = "0123456789:["


class SetupError(ValueError):
    """A VERIFY value whose server address cannot be parsed."""


class Mode:
    """The verification a VERIFY value asks for."""
    __slots__ = ("enabled", "deferred", "server", "note")

    def __init__(self, enabled: bool, deferred: bool = False,
                 server: tuple[str, int] | None = None, note: str = ""):
        self.enabled, self.deferred, self.server, self.note = enabled, deferred, server, note

    def __repr__(self) -> str:
        return (f"Mode(enabled={self.enabled}, deferred={self.deferred}, "
                f"server={self.server}, note={self.note!r})")


def _start(value: str) -> int:
    return next((i for i, ch in enumerate(value) if ch in SERVER_START), len(value))


def parse_server_part(value: str) -> tuple[str, int]:
    """The (ip, port) a VERIFY value (or verify-query -s) asks."""
    part = value[_start(value):]
    try:
        return parse_server(part)
    except AddressError as e:
        raise SetupError(f"unable to parse VERIFY server {part!r}: {e}") from None


def parse_verify(value: str | None) -> Mode:
    """The verification a VERIFY value asks for."""
    if value is None:
        return Mode(False)
    if value == "":
        return Mode(False, note="Note recipient verification explicitly disabled.")
    return Mode(True, value[0] in "Dd", parse_server_part(value))


def ignored(value: str) -> str:
    """What the grammar skips in value besides a leading DEFER-word and
    its comma: text an admin probably meant as a server (a host name)."""
    skipped = value[:_start(value)]
    if skipped[:1] in ("D", "d"):
        i = 0
        while i < len(skipped) and skipped[i].isascii() and skipped[i].isalpha():
            i += 1
        skipped = skipped[i:]
        if skipped.startswith(","):
            skipped = skipped[1:]
    return skipped.strip()
