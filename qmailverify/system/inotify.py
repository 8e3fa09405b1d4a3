"""Knowing that a watched file may have changed without a stat per query:
Linux inotify, through ctypes, for live.py.

A PathWatch watches a few files by path (users/cdb, the passwd file,
fastforward's cdb, /etc/passwd): each file itself (a write through any
of its names), and every folder on its path, from its own folder up to
'/', for the name of the next step of the path (so a file or a folder
replaced by rename, created or deleted is seen, and a symbolic link on
the way is followed as well as watched).  changed() asks the kernel, with
one read() that does not block, whether anything relevant happened since
the last call; the kernel queues an event before the system call that
caused it returns, so a change made before a query arrived is known when
the query is answered.

On a relevant event, a queue overflow, or any error, changed() says True
and the watches are made again from the paths (a new inotify instance,
so the folders now at those paths are the ones watched).  If that fails,
or inotify cannot be set up at all, the PathWatch is not `active`: its
changed() then always says True, and live.py goes back to a stat per
query, which is always right.
"""

import ctypes
import os
import struct

from qmailverify.system.libc import libc_function

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_Q_OVERFLOW = 0x4000
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000

FILE_MASK = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF
FOLDER_MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
               | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF)
EVENT = struct.Struct("iIII")        # wd, mask, cookie, len; then the name
BUFSIZE = 65536


def _load():
    init = libc_function("inotify_init1", [ctypes.c_int])
    add = libc_function("inotify_add_watch", [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32])
    read = libc_function("read", [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t],
                         ctypes.c_ssize_t)
    return (init, add, read) if init and add and read else None


_libc = _load()


def steps(path: str):
    """(folder, name) for each step of absolute path: ('/a/b', 'c') for
    the last, up to ('/', 'a')."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        yield "/" + "/".join(parts[:i]), parts[i]


class PathWatch:
    """Tells whether any of a few files, by path, may have changed."""

    def __init__(self, paths):
        self.paths = [os.path.abspath(p) for p in paths]
        self.fd = -1
        self.active = False
        self._names: dict[int, frozenset | None] = {}      # wd -> names that matter
        self._buf = ctypes.create_string_buffer(BUFSIZE)
        self._setup()

    def _setup(self) -> None:
        self.close()
        if _libc is None:
            return
        init, add, _ = _libc
        fd = init(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return
        self.fd = fd
        names: dict[int, set | None] = {}
        chains = set()
        for path in self.paths:
            chains.add(path)
            chains.add(os.path.realpath(path))
        for path in chains:
            wd = add(fd, os.fsencode(path), FILE_MASK)
            if wd >= 0:
                names[wd] = None                         # the file: any event
            elif ctypes.get_errno() not in (2, 20):      # ENOENT, ENOTDIR: folders tell
                return self.close()
            for folder, name in steps(path):
                wd = add(fd, os.fsencode(folder), FOLDER_MASK)
                if wd < 0:
                    if ctypes.get_errno() in (2, 20):       # not there (yet): its parent tells
                        continue
                    return self.close()
                if wd in names and names[wd] is None:
                    continue
                names.setdefault(wd, set()).add(os.fsencode(name))
        self._names = {wd: (None if n is None else frozenset(n)) for wd, n in names.items()}
        self.active = True

    def close(self) -> None:
        self.active = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def changed(self) -> bool:
        """True if a watched file may have changed since the last call (or
        if we cannot tell)."""
        if not self.active:
            return True
        n = _libc[2](self.fd, self._buf, BUFSIZE)
        if n < 0:
            if ctypes.get_errno() == 11:                 # EAGAIN: nothing happened
                return False
            self._setup()
            return True
        if self._relevant(self._buf.raw[:n]):
            self._setup()                                # the folders may be new ones
            return True
        return False

    def _relevant(self, data: bytes) -> bool:
        i, n = 0, len(data)
        while i + EVENT.size <= n:
            wd, mask, _, length = EVENT.unpack_from(data, i)
            name = data[i + EVENT.size:i + EVENT.size + length].rstrip(b"\0")
            i += EVENT.size + length
            if mask & IN_Q_OVERFLOW or wd < 0:
                return True
            names = self._names.get(wd, ())
            if names is None or not name or name in names:
                return True
        return False
