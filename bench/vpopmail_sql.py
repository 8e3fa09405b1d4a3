"""Benchmark: vpopmail lookups against a real MariaDB.

    sudo /path/to/venv/bin/python bench/vpopmail_sql.py [--seconds S] [--users N]

Starts a MariaDB of its own in a temporary folder (tests/mariadb.py; root
and mariadb-server needed), fills vpopmail's one-table layout with N
users, and measures:

- store, cache miss: deep.vpopmail.mysql.MysqlStore.user() with the
  cache off (every lookup one SELECT over the kept TCP connection),
  distinct users;
- store, cache hit: the same lookup again within its one-second life;
- daemon: the installed qmail-verify with VERIFY_DEEP=1
  VERIFY_VPOPMAIL=mysql answering UDP queries one at a time, for the
  same address over and over (cache hits after the first, refilled by
  the parking thread once a second) and for a different user each time
  (every query parked, fetched by the parking thread, decided again).

Prints lookups (or queries) per second for each.  Figures from a shared
machine swing; compare runs on one machine only.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


from qmailverify.deep.vpopmail.mysql import MysqlStore
from qmailverify.deep.vpopmail.mysqlconf import MysqlSettings
from qmailverify.testing.mariadb import MariaDB, available

ONE = ("pw_name VARCHAR(64) not null, pw_domain VARCHAR(96) not null, pw_passwd VARCHAR(128), "
       "pw_uid int, pw_gid int, pw_gecos VARCHAR(64), pw_dir VARCHAR(160), pw_shell VARCHAR(20), "
       "primary key (pw_name, pw_domain)")


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        fn(n)
        n += 1
    return n / (time.monotonic() - t0)


def daemon_rates(db, users: int, seconds: float):
    from qmailverify.testing.vpoptree import sql_site
    root = Path(tempfile.mkdtemp(prefix="qv-bench-"))
    root.chmod(0o755)
    sql_site(root)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "QMAILHOME": str(root / "qmail"), "LISTEN": f"127.0.0.1:{port}",
           "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "mysql",
           "VERIFY_VPOPMAIL_MYSQL": f"127.0.0.1|{db.port}|vpopmail|s3cret|vpopmail"}
    proc = subprocess.Popen([shutil.which("qmail-verify")], env=env, stderr=subprocess.DEVNULL)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    try:
        def ask(address: bytes) -> bytes:
            sock.sendto(address, ("127.0.0.1", port))
            return sock.recv(100)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert ask(b"u1@example.com") == b"\xf0example.com"
                break
            except (socket.timeout, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
        hit = rate(lambda n: ask(b"u1@example.com"), seconds)
        miss = rate(lambda n: ask(b"u%d@example.com" % (n % users)), seconds)
        return hit, miss
    finally:
        sock.close()
        proc.terminate()
        proc.wait()
        shutil.rmtree(root)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--users", type=int, default=5000)
    args = p.parse_args()
    why = available()
    if why:
        print(f"vpopmail_sql: cannot run: {why}", file=sys.stderr)
        return 111
    folder = tempfile.mkdtemp(prefix="qv-bench-db-")
    db = MariaDB(folder).start()
    try:
        db.sql("CREATE DATABASE vpopmail",
               "CREATE USER 'vpopmail'@'127.0.0.1' IDENTIFIED BY 's3cret'",
               "GRANT SELECT ON vpopmail.* TO 'vpopmail'@'127.0.0.1'",
               f"CREATE TABLE vpopmail.vpopmail ({ONE})")
        rows = ",".join(f"('u{i}','example.com','x',1,0,'u{i}','/d/u{i}','NOQUOTA')"
                        for i in range(args.users))
        db.sql(f"INSERT INTO vpopmail VALUES {rows}", database="vpopmail")
        settings = [MysqlSettings("127.0.0.1", db.port, None, "vpopmail", b"s3cret", "vpopmail")]
        cold = MysqlStore(lambda: settings, ttl=0.0)
        names = [b"u%d" % i for i in range(args.users)]
        miss = rate(lambda n: cold.user(names[n % len(names)], b"example.com", None), args.seconds)
        warm = MysqlStore(lambda: settings)
        hit = rate(lambda n: warm.user(b"u1", b"example.com", None), args.seconds)
        cold.close()
        warm.close()
        print(f"store, cache miss (one SELECT each): {miss:10.0f} lookups/s")
        print(f"store, cache hit:                    {hit:10.0f} lookups/s")
        if shutil.which("qmail-verify"):
            dhit, dmiss = daemon_rates(db, args.users, args.seconds)
            print(f"daemon, same address (cache hits):   {dhit:10.0f} queries/s")
            print(f"daemon, new user each (parked+fetch): {dmiss:9.0f} queries/s")
    finally:
        db.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
