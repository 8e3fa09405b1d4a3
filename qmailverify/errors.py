"""What a failure means to us, and how it reads in a log line.

qmail splits failures into temporary ones (try again later) and the rest;
error_temp() in qmail's error.c lists which errno values are temporary.
Our own temporary trouble must never be reported to a client as "no such
mailbox": see Trouble.  Every program words an errno with errtext() and
stops with Fatal; this is the one place either is defined.
"""

import errno
import os

_TEMPORARY = {
    getattr(errno, name) for name in (
        "EINTR", "ENOMEM", "ETXTBSY", "EIO", "ETIMEDOUT", "EWOULDBLOCK",
        "EAGAIN", "EDEADLK", "EBUSY", "ENFILE", "EMFILE", "EFBIG", "ENOSPC",
        "ENETDOWN", "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET",
        "ENOBUFS", "ETOOMANYREFS", "ECONNREFUSED", "EHOSTDOWN",
        "EHOSTUNREACH", "EPROCLIM", "EUSERS", "EDQUOT", "ESTALE", "ENOLCK",
    ) if hasattr(errno, name)
}

# qmail's own wording (error_str.c) where it differs from strerror's.
_QMAIL_TEXT = {
    errno.ENOENT: "file does not exist",
    errno.EACCES: "access denied",
    errno.ENOTDIR: "not a directory",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EIO: "input/output error",
}


def is_temporary(code: int) -> bool:
    return code in _TEMPORARY


def errtext(code: int | None) -> str:
    """A short lowercase reason for errno code, as qmail words it."""
    if code is None:
        return "unknown error"
    return _QMAIL_TEXT.get(code) or os.strerror(code).lower()


class Trouble(Exception):
    """Our own temporary trouble while deciding (an unreadable users/cdb, a
    home directory that cannot be stat'ed for a temporary reason, ...).

    str() is the detail for the admin's log line (paths cleaned, errno
    words); .kind says what kind of trouble it is in words fit for a
    client (an extended reply): no path, no errno text, since whoever
    asks learns nothing of the homes and files behind an answer."""

    def __init__(self, detail: str, kind: str = "local trouble"):
        super().__init__(detail)
        self.kind = kind


class LostPrivileges(Exception):
    """The effective ids could not be set back to the daemon's own: the
    one trouble met in answering that stops the daemon (exit 111),
    because going on would answer with a user's ids."""


class Fatal(Exception):
    """A reason for a program to stop: str() is the whole message line
    (empty: nothing to say), .code the exit code (100 or 111)."""

    def __init__(self, message: str, code: int = 111):
        super().__init__(message)
        self.code = code


class NeedLookup(Exception):
    """The answer needs store.fill(key) first (a slow store in non-blocking
    use); .store and .key say what to fetch."""

    def __init__(self, store, key):
        super().__init__(key)
        self.store = store
        self.key = key
        self.home = None        # the home the query searched, if known
