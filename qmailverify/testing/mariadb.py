"""A real MariaDB server of the tests' own, in a temporary folder.

MariaDB(folder).start() runs mariadb-install-db and mariadbd (Debian's
mariadb-server) as root with --user=root, listening on a free TCP port of
127.0.0.1 and on a socket in the folder, with a temporary folder of its
own there too (two runs side by side once broke each other's install
through /tmp); stop() ends that one process (by
its pid) and waits for it.  The root account has an empty password
(--auth-root-authentication-method=normal); tests make their own users.

available() says why none can be started here (tests/helpers.py's
need_mariadb() then skips, except in CI, where they must run); the tests
and bench/vpopmail_sql.py use it.
"""

import os
import shutil
import socket
import subprocess
import time

INSTALL_DB = "mariadb-install-db"
SERVER = ("mariadbd", "/usr/sbin/mariadbd")


def _server():
    for name in SERVER:
        path = shutil.which(name)
        if path:
            return path
    return None


def available() -> str:
    """"" when a server can be started here, else why not."""
    if os.geteuid() != 0:
        return "needs root: mariadbd is started with --user=root"
    if not shutil.which(INSTALL_DB) or not _server():
        return "mariadb-server is not installed (apt-get install mariadb-server)"
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "PyMySQL is not installed (the test extra has it)"
    return ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDB:
    def __init__(self, folder):
        self.folder = str(folder)
        self.data = os.path.join(self.folder, "data")
        self.socket = os.path.join(self.folder, "mysqld.sock")
        self.log = os.path.join(self.folder, "mariadbd.log")
        self.tmp = os.path.join(self.folder, "tmp")     # its own: runs side by side collide in /tmp
        self.port = 0
        self.proc = None

    def install(self):
        os.makedirs(self.tmp, exist_ok=True)
        out = subprocess.run(
            [INSTALL_DB, "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve", f"--tmpdir={self.tmp}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if out.returncode:
            raise RuntimeError("mariadb-install-db failed:\n" + out.stdout.decode(errors="replace"))

    def start(self, deadline: float = 60.0):
        if not os.path.isdir(self.data):
            self.install()
        self.port = self.port or free_port()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [_server(), "--no-defaults", "--user=root", f"--datadir={self.data}",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--tmpdir={self.tmp}",
             "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M",
             f"--pid-file={os.path.join(self.folder, 'mariadbd.pid')}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: see {self.log}:\n" + self.tail())
            try:
                self.connect().close()
                return self
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("mariadbd did not accept connections in time:\n" + self.tail())

    def tail(self) -> str:
        try:
            with open(self.log, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def connect(self, **kw):
        import pymysql
        return pymysql.connect(unix_socket=self.socket, user="root", password="",
                               autocommit=True, connect_timeout=2, **kw)

    def sql(self, *statements, database=None):
        conn = self.connect(database=database)
        try:
            with conn.cursor() as cur:
                for s in statements:
                    if isinstance(s, tuple):
                        cur.execute(*s)
                    else:
                        cur.execute(s)
        finally:
            conn.close()

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# vpopmail's tables, as vmysql.h lays them out (one table; a table per domain; valias)
ONE = ("pw_name VARCHAR(64) not null, pw_domain VARCHAR(96) not null, pw_passwd VARCHAR(128), "
       "pw_uid int, pw_gid int, pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20), "
       "primary key (pw_name, pw_domain)")
PER_DOMAIN = ("pw_name VARCHAR(64) not null, pw_passwd VARCHAR(128), pw_uid int, pw_gid int, "
              "pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20), primary key (pw_name)")
VALIAS = ("id int(11) PRIMARY KEY AUTO_INCREMENT, alias VARCHAR(32) NOT NULL, "
          "domain VARCHAR(96) NOT NULL, valias_line text NOT NULL, INDEX (alias, domain)")
