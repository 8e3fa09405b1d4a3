"""Stats (and deep mode's reads) made as the user whose home is searched,
the fix for CVE-2020-3812: the daemon never tells anyone more than that
user could see.

As root, the daemon drops its own supplementary groups once, at start
(root needs none), and keeps them empty.  A stat is then made with the
effective uid and gid of the user and that empty group list, which the
kernel treats exactly like the user's gid as the only supplementary
group (the effective gid is checked first), at two credential changes
fewer per stat than setting and restoring a group list each time.

Root's uid comes back right after each call; root's gid (settle()) before
a thread starts and once the loop has waited a while for work (a tenth of
a second), so an idle daemon shows root's ids and a new thread is born
with them, while queries that come one at a time (one qmail-smtpd's
RCPTs) are not charged a credential change each.  In between, with uid 0
and the capabilities that override permissions, the gid decides nothing
(step 7's owner stat, reading users/cdb or a passwd file), so a batch of
queries is spared a credential change a stat, two when users share a
gid.  A root without those capabilities gets root's gid back before each
such step as well (for_root()).

Credentials belong to each thread in the kernel; glibc's seteuid() makes
them the process's by signalling every other thread and waiting for each
(some 40 microseconds a call here, against 2).  While the daemon has
another thread (daemon/parking.py's, for MariaDB or hub mode), the loop's
thread changes only its own, with the raw system calls: the other
thread goes on as root.  Where their numbers are not known (other than
x86-64 and arm64), os.seteuid() and os.setegid() serve in every case.
"""

import ctypes
import errno
import os
import platform
from stat import S_ISREG
from threading import active_count

from qmailverify.errors import LostPrivileges, Trouble, errtext
from qmailverify.qmail.model import GOES_ON, NO_HIT, StatHit
from qmailverify.system.libc import libc_function
from qmailverify.system.userfiles import home_mode, open_for_read, read_default_file

# (setresuid, setresgid) system call numbers
_RAW_CALLS = {"x86_64": (117, 119), "amd64": (117, 119), "aarch64": (147, 149),
              "arm64": (147, 149)}


def _raw_setters():
    """(seteuid, setegid) for the calling thread alone, or None."""
    numbers = _RAW_CALLS.get(platform.machine())
    call = libc_function("syscall", [ctypes.c_long] * 4, ctypes.c_long) if numbers else None
    if call is None:
        return None

    def setter(number):
        def set_effective(value: int) -> None:
            if not 0 <= value < 0xFFFFFFFF:    # the kernel would cut it, or read "unchanged"
                raise OverflowError(f"id {value} out of range")
            if call(number, -1, value, -1) != 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
        return set_effective
    return setter(numbers[0]), setter(numbers[1])


_RAW = _raw_setters()
_PLAIN = (os.seteuid, os.setegid)


class Identity:
    """Making stats as another user, and always coming back."""

    def __init__(self):
        self.switch = os.geteuid() == 0
        self.gid_counts = False          # may root's own work depend on its gid?
        if self.switch:
            self.egid = self.gid = os.getegid()      # root's, and the one in force
            os.setgroups([])
            self.gid_counts = not _overrides_permissions()

    def home_mode(self, uid: int, gid: int, home: bytes) -> int:
        """Deep mode: userfiles.home_mode() as uid/gid."""
        return self.as_user(uid, gid, home_mode, home)

    def deep_facts(self, uid: int, gid: int, home: bytes, path: bytes):
        """Deep mode: userfiles.read_default_file() as uid/gid."""
        return self.as_user(uid, gid, read_default_file, home, path)

    def open_as(self, path: bytes, uid: int, gid: int) -> int | None:
        """deep.vpopmail.cdbstore.FileStore's opener: path opened for
        reading as uid/gid."""
        return self.as_user(uid, gid, open_for_read, path)

    def as_user(self, uid: int, gid: int, fn, *args):
        """fn(*args) with the effective uid/gid of the user (and the empty
        group list), as LiveSystem.first_stat() stats (stat_in_order());
        back to root's uid after."""
        if not self.switch:
            return fn(*args)
        seteuid, setegid = _setters()
        try:
            try:
                if gid != self.gid:
                    setegid(gid)
                    self.gid = gid
                seteuid(uid)
            except (OSError, OverflowError) as e:
                raise Trouble(f"unable to switch to uid {uid} gid {gid}: {e}",
                              "unable to take a user's ids") from None
            return fn(*args)
        finally:
            try:
                seteuid(0)
            except OSError as e:
                raise LostPrivileges(f"unable to restore root's ids: {errtext(e.errno)}") \
                    from None

    def for_root(self) -> None:
        """Before root's own work (a stat or a read as root): root's gid
        back if it could change the outcome (see _overrides_permissions)."""
        if self.gid_counts and self.gid != self.egid:
            self.settle()

    def settled(self) -> bool:
        """Are root's ids, all of them, in force?"""
        return not self.switch or self.gid == self.egid

    def settle(self) -> None:
        """Root's gid back (the loop, once it has waited a while for work)."""
        if self.switch and self.gid != self.egid:
            try:
                _setters()[1](self.egid)
            except OSError as e:
                raise LostPrivileges(f"unable to restore root's ids: {errtext(e.errno)}") \
                    from None
            self.gid = self.egid


def _overrides_permissions() -> bool:
    """Does this process pass every permission check whatever its gid?
    Root with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in its effective
    set does, on local files.  (On NFS with root_squash the server
    squashes uid 0 and gid 0 but not another gid: a user's gid left in
    place can then only grant root more than gid 0 would, never less, so
    no home is wrongly found missing.)  False when it cannot be told."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return caps & 0b110 == 0b110        # bits 1 and 2
    except (OSError, ValueError):
        pass
    return False


def _setters():
    """The process's (one thread) or the calling thread's own (several)."""
    return _RAW if _RAW is not None and active_count() > 1 else _PLAIN


def stat_in_order(paths) -> StatHit:
    """The first of paths that stat() finds a regular file, or that it
    fails on with an errno not in GOES_ON; NO_HIT (StatHit(-1)) for none."""
    for i, path in enumerate(paths):
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            if e.errno not in GOES_ON:
                return StatHit(i, e.errno, path)
            continue
        except ValueError:               # a path os.stat refuses outright
            return StatHit(i, errno.EINVAL, path)
        if S_ISREG(mode):
            return StatHit(i, 0, path, mode)
    return NO_HIT
