"""The facts rules.decide() asks for, read from the running system.

Freshness is the point of this module.  qmail reads users/cdb and the
user database anew for every delivery, so an answer must never lag a
change an admin makes:

- users/cdb and the fastforward cdb are kept open, and reopened as soon as
  the file at their path is another one (qmail-newu and newaliases
  replace them by rename) or has changed;
- a passwd-format file named by VERIFY_PASSWD is parsed once and parsed
  again as soon as it changes;
- the system user database (getpwnam) is cached, the cache dropped when
  /etc/passwd changes and in any case after at most one second, since
  other sources (NIS, LDAP, sssd) have no file to watch;
- home directories and dot-qmail files are stat'ed for every query.

refresh() starts a query: each source is checked when the query first
uses it, so no answer is older than the files it depends on.

Dot-qmail files are stat'ed with the effective uid, gid and groups of the
user whose home is searched (the fix for CVE-2020-3812), so the daemon
never tells anyone more than that user could see.  Effective ids are
process-wide: the daemon is single-threaded for that reason.
"""

import ctypes
import ctypes.util
import errno
import os
import pwd
import struct
import time

import cdblib

from .clean import cleantext
from .errors import Trouble, errtext, is_temporary
from .rules import Passwd, StatHit


class LostPrivileges(Exception):
    """The effective ids could not be set back to the daemon's own."""


def _signature(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CdbFile:
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
        sig = _signature(st)
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

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._reader.get(key)
        except Exception:
            raise Trouble(f"{self.what} is corrupt") from None

    def current(self):
        """self for lookups, None if the file does not exist; raises Trouble."""
        if self._trouble:
            raise Trouble(self._trouble)
        return self if self._reader is not None else None


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
            if _signature(os.stat(self.path)) == self._sig:
                return
            with open(self.path, "rb") as f:
                sig = _signature(os.fstat(f.fileno()))
                data = f.read()
        except OSError as e:
            self._sig = None
            self._trouble = f"unable to read {cleantext(os.fsencode(self.path))}: {errtext(e.errno)}"
            return
        self._sig, self._trouble = sig, None
        self._users = parse_passwd(data)

    def getpw(self, name: bytes) -> Passwd | None:
        if self._trouble:
            raise Trouble(self._trouble)
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


def _load_getpwnam_r():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        f = libc.getpwnam_r
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_char_p, ctypes.POINTER(_CPasswd), ctypes.c_char_p, ctypes.c_size_t,
                  ctypes.POINTER(ctypes.POINTER(_CPasswd))]
    f.restype = ctypes.c_int
    return f


_getpwnam_r = _load_getpwnam_r()
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
        raise Trouble(f"unable to read the user database: {errtext(rc)}")


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
            sig = _signature(os.stat(self.watch))
        except OSError:
            sig = None
        if sig != self._sig or now - self._born >= self.ttl:
            self._cache.clear()
            self._sig, self._born = sig, now

    def getpw(self, name: bytes) -> Passwd | None:
        try:
            return self._cache[name]
        except KeyError:
            pass
        entry = system_getpwnam(name)                # trouble is not cached
        self._cache[name] = entry
        return entry


class Identity:
    """Making stats as another user, and always coming back.

    As root, the daemon drops its own supplementary groups once, at start
    (root needs none), and keeps them empty.  A stat is then made with the
    effective uid and gid of the user and that empty group list, which the
    kernel treats exactly like the user's gid as the only supplementary
    group (the effective gid is checked first), at two credential changes
    fewer per query than setting and restoring a group list each time."""

    def __init__(self):
        self.switch = os.geteuid() == 0
        if self.switch:
            self.egid = os.getegid()
            os.setgroups([])

    def first_stat(self, uid: int, gid: int, paths) -> StatHit:
        if not self.switch:
            return _first_stat(paths)
        try:
            try:
                os.setegid(gid)
                os.seteuid(uid)
            except (OSError, OverflowError) as e:
                raise Trouble(f"unable to switch to uid {uid} gid {gid}: {e}") from None
            return _first_stat(paths)
        finally:
            self._restore()

    def _restore(self) -> None:
        try:
            os.seteuid(0)
            os.setegid(self.egid)
        except OSError as e:
            raise LostPrivileges(f"unable to restore root's ids: {errtext(e.errno)}") from None


def _first_stat(paths) -> StatHit:
    for i, path in enumerate(paths):
        try:
            os.stat(path)
            return StatHit(i, 0, path)
        except OSError as e:
            if e.errno != errno.ENOENT:
                return StatHit(i, e.errno, path)
        except ValueError:               # a path os.stat refuses outright
            return StatHit(i, errno.EINVAL, path)
    return StatHit(-1)


class LiveSystem:
    """rules.System on the real machine."""

    def __init__(self, qmailhome: str, passwd_file: str | None = None,
                 fastforward: str | None = None):
        self.userscdb = CdbFile(os.path.join(qmailhome, "users", "cdb"), "users/cdb")
        self.passwd = PasswdFile(passwd_file) if passwd_file else SystemPasswd()
        self.ffcdb = CdbFile(fastforward, "fastforward cdb", missing_ok=False) \
            if fastforward else None
        self.identity = Identity()
        self._query = 0

    def refresh(self) -> None:
        """A new query: each source is checked again when it is first used."""
        self._query += 1

    def _fresh(self, source):
        if source.checked != self._query:
            source.refresh()
            source.checked = self._query
        return source

    def users(self):
        return self._fresh(self.userscdb).current()

    def getpw(self, name: bytes) -> Passwd | None:
        return self._fresh(self.passwd).getpw(name)

    def owner(self, path: bytes) -> int | None:
        try:
            return os.stat(path).st_uid
        except OSError as e:
            if is_temporary(e.errno):
                raise Trouble(f"unable to stat {cleantext(path)}: {errtext(e.errno)}") from None
            return None
        except ValueError:
            return None

    def first_stat(self, uid: int, gid: int, paths) -> StatHit:
        return self.identity.first_stat(uid, gid, paths)

    def fastforward(self):
        return self._fresh(self.ffcdb).current() if self.ffcdb else None
