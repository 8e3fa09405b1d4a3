"""Reading the qmail control files the daemon decides by.

They are read the way qmail-send reads them (control.c): each line loses
its trailing spaces, tabs and newline; empty lines and '#' lines are
skipped; a missing file is not an error, any other failure to read is.
Lookups are ASCII case-insensitive and exact, and in virtualdomains the
later of two equal keys wins, as with qmail's constmap.  Rcpthosts is
qmail-smtpd's control/rcpthosts (and morercpthosts.cdb), for qmail-logmsg.
"""

import errno
import os
from typing import NamedTuple

import cdblib

from .clean import cleantext
from .errors import errtext


class ControlError(Exception):
    """A control file that exists but cannot be read, or no locals at all."""


class Controls(NamedTuple):
    envnoathost: bytes
    locals: frozenset             # lowercased domains
    percenthack: frozenset        # lowercased domains
    virtualdomains: dict          # lowercased key -> prefix

    @classmethod
    def build(cls, envnoathost: bytes, locals=(), percenthack=(),
              virtualdomains=()) -> "Controls":
        """Controls from the lines of each file (virtualdomains as 'key:prefix')."""
        vdoms = {}
        for line in virtualdomains:
            key, colon, prefix = line.partition(b":")
            if colon:
                vdoms[key.lower()] = prefix
        return cls(envnoathost,
                   frozenset(d.lower() for d in locals),
                   frozenset(d.lower() for d in percenthack),
                   vdoms)


def _strip(line: bytes) -> bytes:
    return line.rstrip(b" \t\n")


def read_lines(path: str) -> list[bytes] | None:
    """The meaningful lines of a control file; None if it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        if e.errno == errno.ENOENT:
            return None
        raise ControlError(f"unable to read {_shown(path)}: {errtext(e.errno)}") from None
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
        raise ControlError(f"unable to read {_shown(path)}: {errtext(e.errno)}") from None


def _shown(path: str) -> str:
    return cleantext(os.fsencode(path))


def load(qmailhome: str) -> Controls:
    """Read QMAILHOME/control/*, with qmail-send's fallbacks to control/me.

    Deliberate change: a control/me whose first line is empty, with no
    control/locals, is refused: it would make every address non-local,
    so that every address passed."""
    def ctl(name):
        return os.path.join(qmailhome, "control", name)

    me = read_first_line(ctl("me"))
    envnoathost = read_first_line(ctl("envnoathost"))
    if envnoathost is None:
        envnoathost = me if me is not None else b"envnoathost"
    locals_ = read_lines(ctl("locals"))
    if locals_ is None:
        if me is None:
            raise ControlError(f"neither {_shown(ctl('locals'))} nor {_shown(ctl('me'))} exists")
        if not me:
            raise ControlError(f"the first line of {_shown(ctl('me'))} is empty and there is"
                               f" no {_shown(ctl('locals'))}")
        locals_ = [me]
    return Controls.build(envnoathost, locals_,
                          read_lines(ctl("percenthack")) or (),
                          read_lines(ctl("virtualdomains")) or ())


class Rcpthosts:
    """Which recipient domains qmail-smtpd accepts from non-relay clients."""

    def __init__(self, qmailhome: str):
        lines = read_lines(os.path.join(qmailhome, "control", "rcpthosts"))
        self.everything = lines is None            # no rcpthosts: no limit
        self.hosts = {line.lower() for line in lines or ()}
        self.more = None
        try:
            with open(os.path.join(qmailhome, "control", "morercpthosts.cdb"), "rb") as f:
                self.more = cdblib.Reader(data=f.read())
        except (OSError, ValueError):
            pass

    def allowed(self, addr: bytes) -> bool:
        if self.everything:
            return True
        at = addr.rfind(b"@")
        if at < 0:
            return True
        host = addr[at + 1:].lower()
        suffixes = [host] + [host[j:] for j in range(len(host)) if host[j] == 0x2E]
        if any(s in self.hosts for s in suffixes):
            return True
        return bool(self.more) and any(self.more.get(s) is not None for s in suffixes)
