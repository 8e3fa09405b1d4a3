"""The things qmail's delivery decision is made of, as plain data: the
Controls it reads, the facts a System gives (Passwd, StatHit), the System
interface itself, and the Verdict.

Nothing here reads a file: system/controls.py fills a Controls from
QMAILHOME, system.live.LiveSystem is the System on the running machine,
and tests and the fuzz harness build both in memory.
"""

import errno
from typing import Iterable, NamedTuple, Protocol


class Controls(NamedTuple):
    envnoathost: bytes
    locals: frozenset             # lowercased domains
    percenthack: frozenset        # lowercased domains
    virtualdomains: dict          # lowercased key -> prefix
    hub: object = None            # hub.map.HubMap of control/verifyhub; None: hub mode off

    @classmethod
    def build(cls, envnoathost: bytes, locals=(), percenthack=(),
              virtualdomains=(), hub=None) -> "Controls":
        """Controls from the lines of each file (virtualdomains as 'key:prefix');
        hub: a hub.map.HubMap, already parsed."""
        vdoms = {}
        for line in virtualdomains:
            key, colon, prefix = line.partition(b":")
            if colon:
                vdoms[key.lower()] = prefix
        return cls(envnoathost,
                   frozenset(d.lower() for d in locals),
                   frozenset(d.lower() for d in percenthack),
                   vdoms, hub)


class Passwd(NamedTuple):
    name: bytes
    uid: int
    gid: int
    home: bytes


# stat failures qmail-local's qmeexists() passes over as it passes over a
# missing name, going on with the search; ENOTDIR too, unless the home
# itself is not a directory, which only rules.dotqmail_search() can tell
GOES_ON = frozenset((errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP))


class StatHit(NamedTuple):
    index: int        # which of the paths, -1 for none
    errno: int = 0    # 0 if it is a regular file, else why stat failed (never in GOES_ON)
    path: bytes = b""
    mode: int = 0     # the regular file's st_mode


NO_HIT = StatHit(-1)     # none of the paths: made once, as many searches end so


class System(Protocol):
    """The facts decide() needs; every method may raise Trouble."""

    def begin_query(self) -> None:
        """A new query starts: what the System remembers from the last one
        (a source checked for change, say) must be checked again before
        it is used.  daemon.answer.get_reply() calls it once a query."""

    def users(self):
        """users/cdb as an object with .get(key) -> bytes | None, or None
        if there is no users/cdb."""

    def getpw(self, name: bytes) -> Passwd | None:
        """The passwd entry named name (already lowercased), or None."""

    def owner(self, path: bytes) -> int | None:
        """st_uid of path, or None if it cannot be stat'ed (not temporary)."""

    def first_stat(self, uid: int, gid: int, paths: Iterable[bytes]) -> StatHit:
        """Stat paths in order as uid/gid; stop at the first that is a
        regular file or fails with an errno not in GOES_ON.  A name that
        is not a regular file (a directory, a FIFO) is passed over, as
        qmeexists() passes it over."""

    def fastforward(self):
        """The fastforward cdb (object with .get), or None if none is set."""

    def home_mode(self, uid: int, gid: int, home: bytes) -> int:
        """Deep mode: st_mode of home as qmail-local, running as uid/gid,
        finds it after its chdir(); Trouble if it could not chdir there."""

    def deep_facts(self, uid: int, gid: int, home: bytes, path: bytes):
        """Deep mode: the DeepFacts of the -default file path in home,
        read as uid/gid (never run); Trouble if it cannot be read."""

    def open_as(self, path: bytes, uid: int, gid: int) -> int | None:
        """A descriptor of path opened for reading as uid/gid, None if it
        does not exist; OSError otherwise (the opener of
        deep.vpopmail.cdbstore.FileStore)."""


class Found(NamedTuple):
    """Where the dot-qmail search ended at a -default file: what deep mode
    needs to judge it (deep/hook.py)."""
    addr: bytes                 # the address after rewrite()
    host: bytes                 # its domain: qmail-local's HOST
    user: bytes                 # the controlling user
    uid: int
    gid: int
    home: bytes
    path: bytes                 # the -default file
    ext: bytes                  # qmail-local's EXT


class Verdict(NamedTuple):
    code: int                   # DELIVERABLE, UNDELIVERABLE or TEMPORARY
    position: int               # the rule that decided, 1 to 15
    user: bytes | None = None   # the controlling user, if any
    stat_path: bytes = b""      # a stat that failed, to be logged...
    stat_errno: int = 0         # ...with its errno
    reason: str = ""            # for TEMPORARY: what went wrong; deep mode: why
    variant: bytes = b""        # deep mode, deliverable: how vdelivermail delivers (wire.VARIANTS)
    detail: str = ""            # the log's version of reason, with paths and errno words


MAX_READ = 8192        # bytes of a -default file read; more is "temporary"


class DeepFacts(NamedTuple):
    home_mode: int     # st_mode of the home directory
    file_mode: int     # st_mode of the -default file
    content: bytes     # its first MAX_READ + 1 bytes
