"""Making untrusted bytes safe to put in a log line (qmail-logmsg's rule).

A newline becomes '/'; every other byte below 32 or above 126, and the
characters ':' '<' '>' (which log parsers split on), becomes '_'.  The
result is printable ASCII, so one event stays one line whatever a remote
client sends.

Only the untrusted part of a message is cleaned (an address, a path, a
line of a file), never the reason we wrote ourselves: "unable to read
PATH: file does not exist" keeps its colon.  visible() is the lighter
rule for text shown whole, such as a line of a rules file in an error
message, where ':' belongs: only the bytes a terminal or a log would
act on are replaced.
"""

import os

_TABLE = bytes(
    0x2F if b == 0x0A else 0x5F if (b < 32 or b > 126 or b in b":<>") else b
    for b in range(256)
)

_VISIBLE = bytes(
    0x2F if b == 0x0A else 0x5F if (b < 32 or b > 126) else b
    for b in range(256)
)


def clean(data: bytes) -> bytes:
    """data with every byte a log line must not hold replaced."""
    return data.translate(_TABLE)


def cleantext(data: bytes) -> str:
    """clean(data) as a str, for messages built as text."""
    return clean(data).decode("ascii")


def cleanpath(path: str) -> str:
    """A path fit for a message: its bytes cleaned (the reason never is)."""
    return cleantext(os.fsencode(path))


def visible(data: bytes) -> bytes:
    """data with control characters and 8-bit bytes replaced (':' '<' '>' kept)."""
    return data.translate(_VISIBLE)


def visibletext(text: str) -> str:
    """visible() for a str (non-ASCII characters count as 8-bit bytes)."""
    return visible(text.encode("utf-8", "surrogateescape")).decode("ascii")
