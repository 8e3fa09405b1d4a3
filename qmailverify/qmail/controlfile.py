"""How qmail reads one control file (control.c), on its own so that the
shim can read rcpthosts and localiphost without the daemon's modules.

Each line loses its trailing spaces, tabs and newline; empty lines and '#'
lines are skipped; a missing file is not an error, any other failure to
read is (qmail-smtpd answers "421 unable to read controls" for it).
"""

import errno

from qmailverify.clean import cleanpath
from qmailverify.errors import errtext


class ControlError(Exception):
    """A control file that exists but cannot be read, or no locals at all."""


def _strip(line: bytes) -> bytes:
    return line.rstrip(b" \t\n")


def _unreadable(path: str, e: OSError) -> ControlError:
    return ControlError(f"unable to read {cleanpath(path)}: {errtext(e.errno)}")


def read_lines(path: str) -> list[bytes] | None:
    """The meaningful lines of a control file; None if it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise _unreadable(path, e) from None
    lines = (_strip(line) for line in data.split(b"\n"))
    return [line for line in lines if line and not line.startswith(b"#")]


def read_first_line(path: str) -> bytes | None:
    """The first line of a control file, stripped; None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return _strip(f.readline())
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise _unreadable(path, e) from None
