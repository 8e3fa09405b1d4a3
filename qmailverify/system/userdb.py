"""The user database qmail-getpw asks, for live.py: a passwd-format
file named by VERIFY_PASSWD, or the system's own (getpwnam_r).

Both are as fresh as qmail's own lookups: the file is parsed once and
parsed again as soon as it changes; getpwnam_r()'s answers are cached,
the cache dropped when /etc/passwd changes and in any case after at most
one second, since other sources (NIS, LDAP, sssd) have no file to watch.
A database that cannot say (an unreadable file, an LDAP server down) is
Trouble, never "no such user": Python's pwd module cannot tell the two
apart, so getpwnam_r() is called through ctypes.
"""

import ctypes
import errno
import os
import pwd
import time

from qmailverify.clean import cleanpath
from qmailverify.errors import Trouble, errtext
from qmailverify.qmail.model import Passwd
from qmailverify.system.libc import libc_function

KIND = "user database unavailable"


def signature(st: os.stat_result) -> tuple:
    """What changes when a file is replaced or written."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class PasswdFile:
    """A passwd-format file (name:passwd:uid:gid:gecos:home:shell), parsed
    again whenever it changes; the first line for a name wins, as with
    getpwnam()."""

    def __init__(self, path: str):
        self.path = path
        self.checked = -1
        self._sig = None
        self._users: dict[bytes, Passwd] = {}
        self._trouble = None

    def refresh(self) -> None:
        try:
            if signature(os.stat(self.path)) == self._sig:
                return
            with open(self.path, "rb") as f:
                sig = signature(os.fstat(f.fileno()))
                data = f.read()
        except OSError as e:
            self._sig = None
            self._trouble = f"unable to read {cleanpath(self.path)}: {errtext(e.errno)}"
            return
        self._sig, self._trouble = sig, None
        self._users = parse_passwd(data)

    def forget(self) -> None:
        """The next refresh() parses the file again, whatever its stat says."""
        self._sig = None

    def getpw(self, name: bytes) -> Passwd | None:
        if self._trouble:
            raise Trouble(self._trouble, KIND)
        return self._users.get(name)


def parse_passwd(data: bytes) -> dict[bytes, Passwd]:
    users: dict[bytes, Passwd] = {}
    for line in data.split(b"\n"):
        f = line.split(b":")
        if len(f) < 6 or not f[0] or f[0] in users:
            continue
        if f[2].isdigit() and f[3].isdigit():
            users[f[0]] = Passwd(f[0], int(f[2]), int(f[3]), f[5])
    return users


class _CPasswd(ctypes.Structure):
    _fields_ = [("pw_name", ctypes.c_char_p), ("pw_passwd", ctypes.c_char_p),
                ("pw_uid", ctypes.c_uint32), ("pw_gid", ctypes.c_uint32),
                ("pw_gecos", ctypes.c_char_p), ("pw_dir", ctypes.c_char_p),
                ("pw_shell", ctypes.c_char_p)]


_getpwnam_r = libc_function("getpwnam_r", [ctypes.c_char_p, ctypes.POINTER(_CPasswd),
                                            ctypes.c_char_p, ctypes.c_size_t,
                                            ctypes.POINTER(ctypes.POINTER(_CPasswd))])
# getpwnam_r(3): these, with no entry, mean "no such user"; any other error
# is trouble of ours (an unreadable /etc/passwd, an LDAP server down).
_NOT_FOUND = {0, errno.ENOENT, errno.ESRCH, errno.EBADF, errno.EPERM}


def system_getpwnam(name: bytes) -> Passwd | None:
    """The system user database's entry for name; raises Trouble when the
    database cannot say (Python's pwd module cannot tell that apart)."""
    if _getpwnam_r is None:                      # no C library to ask: pwd it is
        try:
            p = pwd.getpwnam(os.fsdecode(name))
        except (KeyError, ValueError):
            return None
        return Passwd(name, p.pw_uid, p.pw_gid, os.fsencode(p.pw_dir))
    size = 4096
    while True:
        entry, buf = _CPasswd(), ctypes.create_string_buffer(size)
        result = ctypes.POINTER(_CPasswd)()
        rc = _getpwnam_r(name, ctypes.byref(entry), buf, size, ctypes.byref(result))
        if rc == errno.ERANGE and size < 1 << 20:
            size *= 4
            continue
        if result:
            return Passwd(name, entry.pw_uid, entry.pw_gid, entry.pw_dir or b"")
        if rc in _NOT_FOUND:
            return None
        raise Trouble(f"unable to read the user database: {errtext(rc)}", KIND)


class SystemPasswd:
    """getpwnam_r() with a cache that /etc/passwd changes and a one-second
    lifetime both clear."""

    def __init__(self, watch: str = "/etc/passwd", ttl: float = 1.0):
        self.watch = watch
        self.ttl = ttl
        self.checked = -1
        self._sig = None
        self._born = 0.0
        self._cache: dict[bytes, Passwd | None] = {}

    def refresh(self) -> None:
        now = time.monotonic()
        try:
            sig = signature(os.stat(self.watch))
        except OSError:
            sig = None
        if sig != self._sig or now - self._born >= self.ttl:
            self._cache.clear()
            self._sig, self._born = sig, now

    def forget(self) -> None:
        """The cache is dropped at the next refresh()."""
        self._sig = None
        self._born = float("-inf")

    def getpw(self, name: bytes) -> Passwd | None:
        now = time.monotonic()
        if now - self._born >= self.ttl:             # the one-second cap, per lookup
            self._cache.clear()
            self._born = now
        try:
            return self._cache[name]
        except KeyError:
            pass
        entry = system_getpwnam(name)                # trouble is not cached
        self._cache[name] = entry
        return entry
