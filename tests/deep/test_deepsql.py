"""vpopmail on MariaDB through the installed daemon (VERIFY_VPOPMAIL=mysql):
the answers of the real server of tests/mariadb.py, and nothing slow
stalls the rest: a server that accepts and never speaks, beside a stream
of fast queries that keep being answered, and parked queries that are
given up as temporary within the bound (daemon/parking.py)."""

import os
import signal
import socket
import threading
import time

import pytest
from helpers import need_mariadb, need_root, wait_until

from qmailverify.testing.mariadb import ONE, MariaDB

pytestmark = pytest.mark.system   # runs the installed programs, as root

FAST = b"fwd@mx.example"          # a system user's own mailbox: no store involved


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    need_root()
    need_mariadb()
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    try:
        server.sql("CREATE DATABASE vpopmail",
                   "CREATE USER 'vpopmail'@'127.0.0.1' IDENTIFIED BY 's3cret'",
                   "GRANT SELECT ON vpopmail.* TO 'vpopmail'@'127.0.0.1'",
                   f"CREATE TABLE vpopmail.vpopmail ({ONE})")
        for name, gid in ((b"bob", 0), (b"locked", 16)):
            server.sql(("INSERT INTO vpopmail (pw_name, pw_domain, pw_passwd, pw_uid, pw_gid,"
                        " pw_gecos, pw_dir, pw_shell) VALUES (%s, 'example.com', 'x', 1, %s, %s,"
                        " '/x', 'NOQUOTA')", (name, gid, name)), database="vpopmail")
        yield server
    finally:
        server.stop()




def sql_env(env, port, password="s3cret", **extra):
    return {**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "mysql",
            "VERIFY_VPOPMAIL_MYSQL": f"127.0.0.1|{port}|vpopmail|{password}|vpopmail", **extra}


def test_answers_come_from_the_database(db, vtree, start):
    t, env = vtree
    d = start(sql_env(env, db.port))
    assert d.ask(b"bob@example.com") == b"\xf0example.com"
    assert d.ask(b"BOB@example.net") == b"\xf0example.com"               # alias domain
    assert d.ask(b"nobody@example.com") == b"\xf1example.com"
    assert d.ask(b"locked@example.com") == b"\xf1example.com"
    db.sql("INSERT INTO vpopmail (pw_name, pw_domain, pw_passwd, pw_uid, pw_gid, pw_gecos, pw_dir,"
           " pw_shell) VALUES ('carol', 'example.com', 'x', 1, 0, 'c', '/x', 'NOQUOTA')",
           database="vpopmail")
    deadline = time.monotonic() + 10            # cached at most one second
    while d.ask(b"carol@example.com") != b"\xf0example.com":
        assert time.monotonic() < deadline, "a new mailbox is still refused"
        time.sleep(0.2)
    d.signal(signal.SIGALRM)
    log = d.wait_for("stats:")
    assert " parked=" in log and " parked=0 " not in log


def test_the_database_thread_has_root_ids_whatever_the_loop_did(db, vtree, start):
    # the first lookup of the domain reads its -default file as its owner,
    # then parks the query, which starts the database thread
    t, env = vtree
    d = start(sql_env(env, db.port))
    assert d.ask(b"bob@example.com") == b"\xf0example.com"

    def tasks():
        out = {}
        for tid in os.listdir(f"/proc/{d.proc.pid}/task"):
            with open(f"/proc/{d.proc.pid}/task/{tid}/status") as f:
                out[tid] = [line.split()[1:] for line in f
                            if line.startswith(("Uid:", "Gid:"))]
        return out
    root = [["0"] * 4, ["0"] * 4]
    assert wait_until(lambda: len(tasks()) == 2 and all(v == root for v in tasks().values())), \
        tasks()


def test_a_wrong_password_is_temporary_never_denied(db, vtree, start):
    t, env = vtree
    d = start(sql_env(env, db.port, password="wrong"))
    assert d.ask(b"bob@example.com", timeout=4.5) is None
    reply = d.ask(b"nobody@example.com", extended=True, timeout=4.5)
    assert reply.startswith(b"\xf2vdelivermail: vpopmail database")


def test_the_database_stopped_mid_run_is_temporary_then_answers_again(db, vtree, start):
    t, env = vtree
    d = start(sql_env(env, db.port))
    assert d.ask(b"bob@example.com") == b"\xf0example.com"
    assert d.ask(b"nobody@example.com") == b"\xf1example.com"
    db.stop()
    try:
        # addresses never asked before: nothing cached can answer for them
        assert d.ask_unanswered(b"never1@example.com") is None, "a legacy client: silence"
        reply = d.ask(b"never2@example.com", extended=True, timeout=4.5)
        assert reply is not None and reply[:1] == b"\xf2", reply
        time.sleep(1.2)                      # past the one-second cache
        assert d.ask(b"bob@example.com", extended=True, timeout=4.5)[:1] == b"\xf2"
        assert d.ask(FAST) == b"\x90fwd", "what needs no database is still answered"
    finally:
        db.start()
    deadline = time.monotonic() + 15         # failures too are cached up to a second
    for address, answer in ((b"never3@example.com", b"\xf1example.com"),
                            (b"bob@example.com", b"\xf0example.com")):
        while d.ask(address, extended=True, timeout=4.5) != answer:     # 2 at once until then
            assert time.monotonic() < deadline, "the restarted database is not used again"
            time.sleep(0.2)
    assert "never1@example.com not answered" in d.wait_for("never1@example.com not answered")


class Silent:
    """A server that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


class Asker(threading.Thread):
    """One query in the background, with the time its answer took."""

    def __init__(self, daemon, address, extended):
        super().__init__(daemon=True)
        self.args = (daemon, address, extended)
        self.reply, self.took = None, None
        self.start()

    def run(self):
        d, address, extended = self.args
        t0 = time.monotonic()
        self.reply = d.ask(address, extended=extended, timeout=8.0)
        self.took = time.monotonic() - t0


def test_a_silent_database_stalls_nothing_else(vtree, start):
    t, env = vtree
    silent = Silent()
    try:
        d = start(sql_env(env, silent.port, VERIFY_VPOPMAIL_TIMEOUT="2"))
        slow = [Asker(d, b"bob@example.com", True), Asker(d, b"bob@example.com", False)]
        time.sleep(0.3)                              # bob's lookup is the worker's first
        slow.append(Asker(d, b"alice@example.com", True))
        fast = 0
        t0 = time.monotonic()
        while any(a.is_alive() for a in slow) and time.monotonic() - t0 < 10:
            q0 = time.monotonic()
            assert d.ask(FAST, timeout=2.5) == b"\x90fwd"
            assert time.monotonic() - q0 < 2.5
            fast += 1
        for a in slow:
            a.join(10)
        assert fast >= 5, "fast queries were held up"
        bob_ext, bob_legacy, alice = slow
        # the store's own timeout (2 s): temporary, within the client's 5 s
        assert bob_ext.reply.startswith(b"\xf2vdelivermail: vpopmail database")
        assert bob_ext.took < 4.5
        assert bob_legacy.reply is None                 # spec 6: silence to a legacy client
        # alice's lookup waits behind bob's in the one worker: given up at 3 s
        assert alice.reply == (b"\xf2the vpopmail database did not answer in time")[:33]
        assert alice.took < 4.5
        d.wait_for("alice@example.com temporary failure: the vpopmail database did not answer in time.")
        d.signal(signal.SIGALRM)
        log = d.wait_for("stats:")
        assert " parked=3 late=1 " in log
    finally:
        silent.close()


def test_too_many_parked_queries_are_answered_at_once(vtree, start):
    t, env = vtree
    silent = Silent()
    try:
        d = start(sql_env(env, silent.port, VERIFY_VPOPMAIL_TIMEOUT="2",
                          VERIFY_VPOPMAIL_WAITING="1"))
        first = Asker(d, b"bob@example.com", True)
        time.sleep(0.5)                                 # the first is parked by now
        second = Asker(d, b"alice@example.com", True)
        third = Asker(d, b"carol@example.com", True)
        for a in (first, second, third):
            a.join(10)
        at_once = {a.reply for a in (second, third) if a.took < 1.0}
        refused = (b"\xf2too many queries wait for the vpopmail database")[:33]
        assert refused in at_once             # then the domain is held a second (parking.py)
        assert at_once <= {refused, b"\x02busy: too many lookups waiting"}
    finally:
        silent.close()
