"""The facts rules.decide() asks for, read from the running system.

Freshness is the point of this module.  qmail reads users/cdb and the
user database anew for every delivery, so an answer must never lag a
change an admin makes:

- users/cdb and the fastforward cdb (cdbsource.py): held, and read again
  as soon as they are replaced or changed;
- the user database (userdb.py): a passwd-format file named by
  VERIFY_PASSWD, parsed again as soon as it changes, or getpwnam_r()
  with a cache dropped when /etc/passwd changes and after one second;
- home directories and dot-qmail files are stat'ed for every query.

begin_query() (qmail.model.System's per-query hook) starts a query, or
begin_batch() a batch of queries already received (the loop's, under
load: one check serves them all).  The files behind the first three are
watched with inotify (inotify.py): the query (or batch) asks the kernel,
with one read(), whether any of them changed, and only
then is each checked again (stat, and read again) when first used; the
kernel queues an event before the change's own system call returns, so
no answer is older than the files it depends on.  Without inotify, each
source is stat'ed when a query first uses it.  The getpwnam_r()
cache's one-second cap is checked by the clock on every lookup.

Dot-qmail files are stat'ed with the effective uid, gid and groups of
the user whose home is searched (identity.py, the fix for CVE-2020-3812),
so the daemon never tells anyone more than that user could see; only the
loop's thread ever changes its ids.
"""

import os

from qmailverify.clean import cleantext
from qmailverify.errors import Trouble, errtext, is_temporary
from qmailverify.qmail.model import Passwd, StatHit
from qmailverify.system.cdbsource import WatchedCdb
from qmailverify.system.identity import Identity, stat_in_order
from qmailverify.system.inotify import PathWatch
from qmailverify.system.userdb import PasswdFile, SystemPasswd


class LiveSystem:
    """qmail.model.System on the real machine."""

    def __init__(self, qmailhome: str, passwd_file: str | None = None,
                 fastforward: str | None = None, watch: bool = True):
        self.userscdb = WatchedCdb(os.path.join(qmailhome, "users", "cdb"), "users/cdb")
        self.passwd = PasswdFile(passwd_file) if passwd_file else SystemPasswd()
        self.asks_libc = not passwd_file
        self.ffcdb = WatchedCdb(fastforward, "fastforward cdb", missing_ok=False) \
            if fastforward else None
        self.identity = Identity()
        self._sources = [s for s in (self.userscdb, self.passwd, self.ffcdb) if s is not None]
        self.watcher = None
        if watch:
            self.start_watching()
        self._query = 0
        self.batch = False         # between begin_batch() and end_batch()

    def start_watching(self) -> None:
        """Watch the sources with inotify (see begin_query()); without a
        call, or if inotify cannot be had, each is stat'ed per query."""
        paths = [self.userscdb.path, getattr(self.passwd, "path", None) or self.passwd.watch,
                 self.ffcdb.path if self.ffcdb else None]
        self.watcher = PathWatch([p for p in paths if p])

    def begin_query(self) -> None:
        """A new query: if any source may have changed (or we cannot tell),
        each is checked again, and read again, when it is first used."""
        if self.batch:
            return
        w = self.watcher
        if w is None or not w.active:
            self._query += 1
            return
        # changed() may watch the paths anew, root's own file access: the
        # loop's gid may still be the last user's (identity.py)
        self.identity.for_root()
        if w.changed():
            self._query += 1
            for source in self._sources:
                source.forget()

    def begin_batch(self) -> None:
        """Several queries, every one of them already received: one check
        (begin_query()) now serves them all, because the kernel queued any
        change made before the last of them came before this call."""
        self.batch = False
        self.begin_query()
        self.batch = True

    def end_batch(self) -> None:
        self.batch = False

    def settle(self) -> None:
        """Once the loop waits for work: root's ids, all of them (Identity)."""
        self.identity.settle()

    def settled(self) -> bool:
        return self.identity.settled()

    def _fresh(self, source):
        if source.checked != self._query:
            self.identity.for_root()          # read as root
            source.refresh()
            # a source in trouble (unreadable, say) is tried again by every query
            source.checked = -1 if getattr(source, "_trouble", None) else self._query
        return source

    def users(self):
        source = self.userscdb
        if source.checked != self._query:
            self._fresh(source)
        return source.current()

    def getpw(self, name: bytes) -> Passwd | None:
        source = self.passwd
        if source.checked != self._query:
            self._fresh(source)
        if self.asks_libc:            # a miss opens /etc/passwd (or asks NSS): as root
            self.identity.for_root()
        return source.getpw(name)

    def owner(self, path: bytes) -> int | None:
        self.identity.for_root()              # step 7's plain stat, as root
        try:
            return os.stat(path).st_uid
        except OSError as e:
            if is_temporary(e.errno):
                raise Trouble(f"unable to stat {cleantext(path)}: {errtext(e.errno)}",
                              "unable to stat a home directory") from None
            return None
        except ValueError:
            return None

    def first_stat(self, uid: int, gid: int, paths) -> StatHit:
        """identity.stat_in_order(paths) as uid/gid."""
        return self.identity.as_user(uid, gid, stat_in_order, paths)

    def fastforward(self):
        return self._fresh(self.ffcdb).current() if self.ffcdb else None

    def home_mode(self, uid: int, gid: int, home: bytes) -> int:
        return self.identity.home_mode(uid, gid, home)

    def deep_facts(self, uid: int, gid: int, home: bytes, path: bytes):
        return self.identity.deep_facts(uid, gid, home, path)

    def open_as(self, path: bytes, uid: int, gid: int) -> int | None:
        return self.identity.open_as(path, uid, gid)
