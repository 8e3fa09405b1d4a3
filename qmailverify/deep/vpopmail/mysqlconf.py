"""vpopmail's MySQL settings, read as vpopmail reads them.

MysqlSettings: VERIFY_VPOPMAIL_MYSQL, if set, is one settings line; otherwise
the file VERIFY_VPOPMAIL_MYSQL_FILE (default ~vpopmail/etc/vpopmail.mysql)
is read as load_connection_info() reads it: the first line not starting
with '#' or empty is "server|port|user|password|database" (read access),
an optional second such line the same for updates; fields are split at
'|' as strtok() splits (empty fields vanish); a port field starting with
'/' is a Unix socket; server "localhost" without a socket means the
default socket, as in libmysqlclient.  We connect with the first line and
fall back to the second (vpopmail's --enable-mysql-replication order).
The file is read again for every new connection.
"""

import os
from typing import NamedTuple

from qmailverify.clean import visibletext
from qmailverify.deep.vpopmail.delivery import atoi
from qmailverify.errors import Trouble, errtext

DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"     # libmysqlclient's, on Debian


class MysqlSettings(NamedTuple):
    host: str
    port: int
    socket: str | None
    user: str
    password: bytes
    database: str


def _fgets_lines(data: bytes, size: int = 256):
    """The chunks fgets(buf, 256) returns, one after another."""
    i = 0
    while i < len(data):
        j = data.find(b"\n", i, i + size - 1)
        end = j + 1 if j >= 0 else min(i + size - 1, len(data))
        yield data[i:end]
        i = end


def parse_line(line: bytes) -> MysqlSettings:
    fields = [f for f in line.replace(b"\n", b"|").split(b"|") if f]
    if len(fields) < 5:
        raise Trouble("vpopmail.mysql: a settings line needs server|port|user|password|database")
    host, where, user, password, db = fields[:5]
    socket, port = (where.decode("latin-1"), 0) if where.startswith(b"/") else (None, atoi(where))
    host = host.decode("latin-1")
    if host == "localhost" and socket is None:
        socket = os.environ.get("MYSQL_UNIX_PORT") or DEFAULT_SOCKET
    return MysqlSettings(host, port or 3306, socket, user.decode("latin-1"), password,
                    db.decode("latin-1"))


def parse_settings(data: bytes) -> list[MysqlSettings]:
    """The read settings and the update settings (the same if only one line)."""
    lines = [c for c in _fgets_lines(data) if c[:1] not in (b"#", b"\n")]
    if not lines:
        raise Trouble("vpopmail.mysql: no settings")
    first = parse_line(lines[0])
    return [first, parse_line(lines[1])] if len(lines) > 1 else [first]


def vpopmail_home(env) -> str:
    """~vpopmail: VERIFY_VPOPMAIL_HOME, else the passwd entry, else vpopmail's
    default /home/vpopmail."""
    home = env.get("VERIFY_VPOPMAIL_HOME")
    if home:
        return home
    import pwd
    try:
        return pwd.getpwnam("vpopmail").pw_dir
    except KeyError:
        return "/home/vpopmail"


def settings_loader(env):
    """What MysqlStore calls for its settings, from the environment:
    VERIFY_VPOPMAIL_MYSQL (one settings line, checked now) or the file
    VERIFY_VPOPMAIL_MYSQL_FILE, default ~vpopmail/etc/vpopmail.mysql (read
    at every connect).  Raises Trouble for a bad VERIFY_VPOPMAIL_MYSQL."""
    line = env.get("VERIFY_VPOPMAIL_MYSQL")
    if line:
        fixed = [parse_line(os.fsencode(line))]
        return lambda: fixed
    path = env.get("VERIFY_VPOPMAIL_MYSQL_FILE") or os.path.join(vpopmail_home(env), "etc", "vpopmail.mysql")

    def load():
        try:
            with open(path, "rb") as f:
                data = f.read(65536)
        except OSError as e:
            raise Trouble(f"unable to read {visibletext(path)}: {errtext(e.errno)}") from None
        return parse_settings(data)
    return load
