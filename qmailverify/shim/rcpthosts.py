"""qmail-smtpd's control/rcpthosts and control/morercpthosts.cdb, read as
its rcpthosts.c reads them, for qmail-logmsg.

Both are read when the session starts, before qmail-smtpd is: a missing
rcpthosts allows every domain (and morercpthosts.cdb is then never
opened); a missing morercpthosts.cdb is fine; any other trouble is a
ControlError (qmail-smtpd: "421 unable to read controls").  The cdb is
kept open and read at each lookup with pread, as qmail's cdb_seek reads
it, so a cdb that cannot be read then (an I/O error, a truncated or
corrupt file) is a ControlError there too, never a silent "not listed".
"""

import errno
import os

from qmailverify.errors import errtext
from qmailverify.qmail.controlfile import ControlError, read_lines


def cdb_hash(key: bytes) -> int:
    h = 5381
    for ch in key:
        h = ((h << 5) + h & 0xFFFFFFFF) ^ ch
    return h


class PreadCdb:
    """Lookups in an open djb cdb by pread; ControlError when it cannot be read."""

    def __init__(self, fd: int, path: str):
        self.fd, self.path = fd, path

    def _read(self, pos: int, n: int) -> bytes:
        try:
            data = os.pread(self.fd, n, pos)
        except OSError as e:
            raise ControlError(f"unable to read {self.path}: {errtext(e.errno)}") from None
        if len(data) != n:                       # qmail's cdb_bread: EPROTO
            raise ControlError(f"unable to read {self.path}: truncated or corrupt cdb")
        return data

    def _pair(self, pos: int) -> tuple[int, int]:
        data = self._read(pos, 8)
        return int.from_bytes(data[:4], "little"), int.from_bytes(data[4:], "little")

    def __contains__(self, key: bytes) -> bool:
        h = cdb_hash(key)
        table, slots = self._pair(8 * (h & 255))
        if not slots:
            return False
        slot = (h >> 8) % slots
        for _ in range(slots):
            hash_, record = self._pair(table + 8 * slot)
            if not record:
                return False
            if hash_ == h:
                klen, _dlen = self._pair(record)
                if klen == len(key) and self._read(record + 8, klen) == key:
                    return True
            slot = (slot + 1) % slots
        return False

    def close(self) -> None:
        os.close(self.fd)


class Rcpthosts:
    """Which recipient domains qmail-smtpd accepts from non-relay clients."""

    def __init__(self, qmailhome: str):
        control = os.path.join(qmailhome, "control")
        lines = read_lines(os.path.join(control, "rcpthosts"))
        self.everything = lines is None            # no rcpthosts: no limit
        self.hosts = {line.lower() for line in lines or ()}
        self.more = None
        if self.everything:
            return
        path = os.path.join(control, "morercpthosts.cdb")
        try:
            self.more = PreadCdb(os.open(path, os.O_RDONLY | os.O_CLOEXEC), path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise ControlError(f"unable to read {path}: {errtext(e.errno)}") from None

    def allowed(self, addr: bytes) -> bool:
        """qmail's rcpthosts(): True if listed; ControlError if the cdb fails."""
        if self.everything:
            return True
        at = addr.rfind(b"@")
        if at < 0:
            return True
        host = addr[at + 1:].lower()
        suffixes = [host] + [host[j:] for j in range(1, len(host)) if host[j] == 0x2E]
        if any(s in self.hosts for s in suffixes):
            return True
        return self.more is not None and any(s in self.more for s in suffixes)
