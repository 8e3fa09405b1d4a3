"""vpopmail's cdb backend: a domain's vpasswd and vpasswd.cdb files.

vpopmail (vcdb.c) keeps each domain's users in DIR/vpasswd, one line per
user, written by vauth_adduser_line():

    NAME:CRYPTED:1:0:GECOS:DIR/NAME:NOQUOTA        (1 pop, 2 apop; 0 flags)

with ":CLEARPASS" after the quota in --enable-clear-passwd builds, and
compiles it (make_vpasswd_cdb) into DIR/vpasswd.cdb: key NAME, value the
rest of the line after the first ':' without its newline.  vauth_getpw()
reads only vpasswd.cdb (the first record with the key); when it cannot
open it, it rebuilds it from vpasswd and reads that, so a missing cdb
means the text file is the answer (first line with the name).

FileStore opens both with an injected opener, so the daemon can open them
with the domain's uid and gid (vdelivermail runs as the domain's user; the
opener is system.live.LiveSystem.open_as); a version of each file is read
once and kept while its inode, size and times stay the same.  A store that
cannot be read is Trouble (temporary), never "no such user": vdelivermail
would bounce here, we do not.
"""

import errno
import os
from typing import Callable

import cdblib

from qmailverify.clean import cleantext
from qmailverify.deep.vpopmail.delivery import Assign, VUser, atoi
from qmailverify.errors import Trouble, errtext

KIND = "vpopmail user file unusable"

MAX_SIZE = 256 << 20          # a vpasswd.cdb larger than this is trouble


def default_opener(path: bytes, uid: int, gid: int) -> int | None:
    """Open path for reading as this process; None if it does not exist."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def parse_entry(name: bytes, value: bytes) -> VUser:
    """vauth_getpw()'s split of NAME:value into the fields we use."""
    f = value.split(b":")
    f += [b""] * (6 - len(f))
    return VUser(name, atoi(f[1]), atoi(f[2]), f[4], f[5])


def text_lookup(data: bytes, name: bytes) -> bytes | None:
    """The value of the first vpasswd line for name (as make_vpasswd_cdb
    would store it), or None."""
    for line in data.split(b"\n"):
        key, colon, value = line.partition(b":")
        if colon and key == name:
            return value
    return None


class FileStore:
    """The cdb backend's user store (vpopmail.Store); no valias table."""

    def __init__(self, opener: Callable[[bytes, int, int], int | None] = default_opener):
        self.opener = opener
        self._kept: dict[bytes, tuple] = {}      # path -> (signature, reader)

    def valias(self, alias: bytes, domain: bytes) -> list[bytes]:
        return []

    def user(self, name: bytes, domain: bytes, assign: Assign | None) -> VUser | None:
        if assign is None:
            return None
        found = self._read(assign, b"vpasswd.cdb", cdblib.Reader)
        if found is not None:
            try:
                value = found.get(name)
            except Exception:      # a cdb broken past its header
                raise Trouble(f"unable to read {cleantext(assign.dir)}/vpasswd.cdb: not a cdb",
                              KIND) from None
        else:
            found = self._read(assign, b"vpasswd", bytes)
            if found is None:
                raise Trouble(f"no vpasswd.cdb or vpasswd in {cleantext(assign.dir)}", KIND)
            value = text_lookup(found, name)
        return None if value is None else parse_entry(name, value)

    def _read(self, assign: Assign, name: bytes, make):
        path = assign.dir + b"/" + name
        try:
            fd = self.opener(path, assign.uid, assign.gid)
            if fd is None:
                self._kept.pop(path, None)
                return None
            try:
                st = os.fstat(fd)
                sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                kept = self._kept.get(path)
                if kept is not None and kept[0] == sig:
                    return kept[1]
                if st.st_size > MAX_SIZE:
                    raise Trouble(f"{cleantext(path)} is too large", KIND)
                data = _read_all(fd, st.st_size)
            finally:
                os.close(fd)
        except OSError as e:
            raise Trouble(f"unable to read {cleantext(path)}: {errtext(e.errno)}", KIND) from None
        try:
            value = make(data)
        except Exception:          # cdblib's complaint about a broken file
            raise Trouble(f"unable to read {cleantext(path)}: not a cdb", KIND) from None
        self._kept[path] = (sig, value)
        return value


def _read_all(fd: int, size: int) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, max(size - total, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_SIZE:
            raise Trouble("file too large", KIND)
