"""vpopmail's MySQL/MariaDB backend as a user store, through PyMySQL.

This is how sites with many MX hosts share one user store: each MX runs
its own daemon against the shared database.  The layouts are vpopmail's
own (vmysql.h):

- one table (--enable-many-domains, vpopmail's default): table `vpopmail`,
  "WHERE pw_name = USER AND pw_domain = DOMAIN";
- a table per domain: the domain with '.' and '-' made '_'
  (vauth_munch_domain), "WHERE pw_name = USER"; a domain without a table
  has no users (vdelivermail finds none there either);
- valias (--enable-valias): "SELECT valias_line FROM valias WHERE alias =
  ALIAS AND domain = DOMAIN"; a missing valias table holds no aliases.

MysqlSettings (mysqlconf.py): VERIFY_VPOPMAIL_MYSQL, one settings line, or
the file ~vpopmail/etc/vpopmail.mysql as vpopmail reads it.

Every wait is bounded: connect, read and write timeouts of
VERIFY_VPOPMAIL_TIMEOUT seconds (default 1, at most 2), and one
reconnect only when a kept connection failed at once (a server that
dropped an idle connection), so one lookup never takes 4 s.  Every
failure is Trouble ("temporary"), never "no such user".  Answers,
failures included, are kept at most one second (TTL), so a new mailbox
is seen within a second and a dead server is asked at most once a second
per key.  Connections run in autocommit mode, so every SELECT sees the
newest committed rows.

In non-blocking use (blocking=False) a lookup not in the cache raises
errors.NeedLookup; the daemon's parking thread (daemon/parking.py) calls
fill(key), which is safe to
run beside the daemon's own reads of the cache.
"""

import threading
import time

from qmailverify.clean import visibletext
from qmailverify.deep.vpopmail.delivery import Assign, VUser, atoi
from qmailverify.deep.vpopmail.mysqlconf import settings_loader
from qmailverify.errors import NeedLookup, Trouble

TTL = 1.0
MAX_ENTRIES = 10000
DB_KIND = "vpopmail database unavailable"
ER_NO_SUCH_TABLE = 1146


def munch(domain: bytes) -> bytes:
    """vauth_munch_domain(): the per-domain table's name."""
    return domain[:511].replace(b".", b"_").replace(b"-", b"_") or b"users"


def _ident(name: bytes) -> str:
    return "`" + name.decode("latin-1").replace("`", "``") + "`"


class MysqlStore:
    """vpopmail.Store over MySQL/MariaDB."""

    def __init__(self, settings, one_table: bool = True, timeout: float = 1.0,
                 blocking: bool = True, ttl: float = TTL, clock=time.monotonic):
        self._settings = settings          # () -> list[MysqlSettings]; may raise Trouble
        self.one_table = one_table
        self.timeout = max(0.05, min(timeout, 2.0))
        self.blocking = blocking
        self.ttl = ttl
        self.clock = clock
        self._cache: dict = {}
        self._cache_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._conn = None
        self.queries = 0                   # statements sent, for the benchmark

    # -- vpopmail.Store
    def user(self, name: bytes, domain: bytes, assign: Assign | None) -> VUser | None:
        return self._get(("user", name, domain))

    def valias(self, alias: bytes, domain: bytes) -> list[bytes]:
        return self._get(("valias", alias, domain))

    @staticmethod
    def account(key):
        """What a fetch is charged to (parking.py): its domain."""
        return key[2]

    # -- the cache
    def _get(self, key):
        now = self.clock()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is None or now - hit[0] >= self.ttl:
            if not self.blocking:
                raise NeedLookup(self, key)
            hit = self.fill(key)
        if isinstance(hit[1], Trouble):
            raise hit[1]
        return hit[1]

    def fill(self, key):
        """Fetch key from the database into the cache (blocking)."""
        try:
            value = self._fetch(key)
        except Trouble as t:
            value = t
        entry = (self.clock(), value)
        with self._cache_lock:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    # -- the database
    def _fetch(self, key):
        import pymysql  # optional extra 'mysql'
        kind, name, domain = key
        if kind == "valias":
            sql, params = "SELECT valias_line FROM valias WHERE alias = %s AND domain = %s", (name, domain)
        elif self.one_table:
            sql = ("SELECT pw_name, pw_passwd, pw_uid, pw_gid, pw_gecos, pw_dir, pw_shell"
                   " FROM `vpopmail` WHERE pw_name = %s AND pw_domain = %s")
            params = (name, domain)
        else:
            sql = ("SELECT pw_name, pw_passwd, pw_uid, pw_gid, pw_gecos, pw_dir, pw_shell"
                   f" FROM {_ident(munch(domain))} WHERE pw_name = %s")
            params = (name,)
        with self._db_lock:
            start = self.clock()
            for attempt in (1, 2):
                kept = self._conn is not None
                try:
                    conn = self._connect(pymysql)
                    with conn.cursor() as cur:
                        self.queries += 1
                        cur.execute(sql, params)
                        rows = cur.fetchall()
                    break
                except pymysql.err.ProgrammingError as e:
                    if e.args and e.args[0] == ER_NO_SUCH_TABLE:
                        rows = ()
                        break
                    self.close()
                    raise Trouble(f"vpopmail database: {_why(e)}", DB_KIND) from None
                except (pymysql.err.MySQLError, OSError) as e:
                    self.close()
                    quick = self.clock() - start < self.timeout / 2
                    if attempt == 1 and kept and quick:
                        continue
                    raise Trouble(f"vpopmail database: {_why(e)}", DB_KIND) from None
        if kind == "valias":
            return [r[0] for r in rows]
        if not rows:
            return None
        r = rows[0]
        return VUser(name, _int(r[2]), _int(r[3]), r[5] or b"", r[6] or b"")

    def _connect(self, pymysql):
        if self._conn is not None:
            return self._conn
        tried = []
        for s in self._settings():
            host, port, socket, user, password, db = s
            try:
                self._conn = pymysql.connect(
                    host=host, port=port, unix_socket=socket, user=user, password=password,
                    database=db, connect_timeout=self.timeout, read_timeout=self.timeout,
                    write_timeout=self.timeout, charset="utf8mb4", use_unicode=False,
                    autocommit=True)
                return self._conn
            except (pymysql.err.MySQLError, OSError) as e:
                tried.append(e)
        raise tried[-1]

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


def _int(v) -> int:
    if v is None:
        return 0
    return v if isinstance(v, int) else atoi(bytes(v))


def _why(e) -> str:
    if len(e.args) >= 2 and isinstance(e.args[0], int):
        text = f"error {e.args[0]}: {e.args[1]}"
    else:
        text = str(e) or type(e).__name__
    return visibletext(text.splitlines()[0][:160])


def store_from_env(env, blocking: bool = True) -> MysqlStore:
    """VERIFY_VPOPMAIL_LAYOUT: 'one' (one table `vpopmail`, the default) or
    'per-domain'; VERIFY_VPOPMAIL_TIMEOUT: seconds per wait (default 1)."""
    layout = env.get("VERIFY_VPOPMAIL_LAYOUT", "one")
    if layout not in ("one", "per-domain"):
        raise Trouble("VERIFY_VPOPMAIL_LAYOUT must be 'one' or 'per-domain'")
    try:
        timeout = float(env.get("VERIFY_VPOPMAIL_TIMEOUT", "1"))
    except ValueError:
        raise Trouble("VERIFY_VPOPMAIL_TIMEOUT must be a number of seconds") from None
    return MysqlStore(settings_loader(env), one_table=(layout == "one"),
                      timeout=timeout, blocking=blocking)
