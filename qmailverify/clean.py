"""Making untrusted bytes safe to put in a log line (qmail-logmsg's rule).

A newline becomes '/'; every other byte below 32 or above 126, and the
characters ':' '<' '>' (which log parsers split on), becomes '_'.  The
result is printable ASCII, so one event stays one line whatever a remote
client sends.
"""

_TABLE = bytes(
    0x2F if b == 0x0A else 0x5F if (b < 32 or b > 126 or b in b":<>") else b
    for b in range(256)
)


def clean(data: bytes) -> bytes:
    """data with every byte a log line must not hold replaced."""
    return data.translate(_TABLE)


def cleantext(data: bytes) -> str:
    """clean(data) as a str, for messages built as text."""
    return clean(data).decode("ascii")
