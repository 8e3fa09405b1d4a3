"""users/cdb and fastforward's cdb, as fresh as qmail's own lookups, for
live.py.  qmail-newu and newaliases replace their cdb by rename, so a
WatchedCdb holds the file read by its path, and reads it again as soon
as the path names another file or the file has changed.

A cdb is read whole before it is used: one whose records or hash tables
run past its end (truncated, or damaged) is "not a cdb file", a temporary
error for every lookup, never "no such user" (whole_cdb()).
"""

import errno
import os
import struct

import cdblib

from qmailverify.errors import Trouble, errtext
from qmailverify.system.userdb import signature


class WatchedCdb:
    """A cdb file by path, reopened whenever the path names a new file.

    A cdb of up to IN_MEMORY records is read into a dict once per version
    (qmail's wildcard search may probe hundreds of prefixes per query);
    a larger one is searched in place."""

    IN_MEMORY = 50_000           # about 14 MB as a dict

    def __init__(self, path: str, what: str, missing_ok: bool = True):
        self.path = path
        self.what = what
        self.missing_ok = missing_ok
        self.checked = -1
        self._sig = None
        self._reader = None
        self._trouble = None

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as e:
            self._sig = self._reader = None
            if e.errno == errno.ENOENT and self.missing_ok:
                self._trouble = None
            else:
                self._trouble = f"unable to stat {self.what}: {errtext(e.errno)}"
            return
        sig = signature(st)
        if sig == self._sig:
            return
        self._sig, self._reader, self._trouble = sig, None, None
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as e:
            self._sig = None
            self._trouble = f"unable to read {self.what}: {errtext(e.errno)}"
            return
        try:
            reader = cdblib.Reader(data=data)
            if not whole_cdb(data, reader.index):
                raise ValueError("a record or a hash table runs past its end")
            if len(reader) <= self.IN_MEMORY:
                table: dict[bytes, bytes] = {}
                for key, value in reader.iteritems():
                    table.setdefault(key, value)      # cdb: the first record wins
                reader = table
            self._reader = reader
        except Exception:
            self._trouble = f"{self.what} is not a cdb file"

    def forget(self) -> None:
        """The next refresh() reads the file again, whatever its stat says."""
        self._sig = None

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._reader.get(key)
        except Exception:
            raise Trouble(f"{self.what} is corrupt", f"{self.what} unusable") from None

    def current(self):
        """Something with get() for lookups (the dict itself when the cdb is
        held in memory: a dict cannot be corrupt), None if the file does
        not exist; raises Trouble."""
        if self._trouble:
            raise Trouble(self._trouble, f"{self.what} unusable")
        reader = self._reader
        if reader is None:
            return None
        return reader if type(reader) is dict else self


_PAIR = struct.Struct("<LL")


def whole_cdb(data: bytes, index) -> bool:
    """Can every record be read to its end, the last ending where the hash
    tables begin, and every table too?  qmail's cdb_read fails on a short
    read (a truncated or damaged file is then a temporary error); cdblib
    instead hands back a short value, or stops iterating, without a word."""
    start = min(pos for pos, _ in index)
    if any(pos + 8 * slots > len(data) for pos, slots in index) or start > len(data):
        return False
    pos = 2048
    while pos + 8 <= start:
        klen, dlen = _PAIR.unpack_from(data, pos)
        pos += 8 + klen + dlen
    return pos == start
