"""vpopmail on MariaDB: deep.vpopmail.mysql.MysqlStore against a real server of our
own (tests/mariadb.py), in both of vpopmail's table layouts, with the
valias table, its settings file, a one-second cache, and a server that is
down, silent or stopped mid-run (temporary, never "no such user")."""

import socket
import time

import pytest
from helpers import need_mariadb

from qmailverify.deep.vpopmail.delivery import Build, vdeliver
from qmailverify.deep.vpopmail.mysql import MysqlStore, store_from_env
from qmailverify.deep.vpopmail.mysqlconf import (
    MysqlSettings,
    parse_settings,
    settings_loader,
)
from qmailverify.errors import NeedLookup, Trouble
from qmailverify.protocol import wire
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.testing.mariadb import ONE, PER_DOMAIN, VALIAS, MariaDB
from qmailverify.testing.vpoptree import Tree

pytestmark = pytest.mark.system   # asks a MariaDB server of its own

PASSWORD = b"s3cret"
BOUNCE = (b"", b"bounce-no-mailbox")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    need_mariadb()
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    d = "/home/vpopmail/domains/example.com"
    try:
        server.sql(
            "CREATE DATABASE vpopmail",
            "CREATE USER 'vpopmail'@'127.0.0.1' IDENTIFIED BY 's3cret'",
            "CREATE USER 'vpopmail'@'localhost' IDENTIFIED BY 's3cret'",
            "GRANT SELECT ON vpopmail.* TO 'vpopmail'@'127.0.0.1'",
            "GRANT SELECT ON vpopmail.* TO 'vpopmail'@'localhost'",
            f"CREATE TABLE vpopmail.vpopmail ({ONE})",
            f"CREATE TABLE vpopmail.example_com ({PER_DOMAIN})",
            f"CREATE TABLE vpopmail.valias ({VALIAS})")
        for name, gid in ((b"bob", 0), (b"locked", 16), (b"nopop", 2)):
            server.sql(("INSERT INTO vpopmail (pw_name, pw_domain, pw_passwd, pw_uid, pw_gid, pw_gecos,"
                        " pw_dir, pw_shell) VALUES (%s, 'example.com', 'x', 1, %s, %s, %s, 'NOQUOTA')",
                        (name, gid, name, f"{d}/{name.decode()}")),
                       ("INSERT INTO example_com (pw_name, pw_passwd, pw_uid, pw_gid, pw_gecos, pw_dir,"
                        " pw_shell) VALUES (%s, 'x', 1, %s, %s, %s, 'NOQUOTA')",
                        (name, gid, name, f"{d}/{name.decode()}")), database="vpopmail")
        server.sql("INSERT INTO valias (alias, domain, valias_line) VALUES "
                   "('info', 'example.com', '&bob@example.com'), "
                   "('sales-default', 'example.com', '|/usr/bin/sales')", database="vpopmail")
        yield server
    finally:
        server.stop()


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    t.add_domain(b"example.com", [])
    t.add_alias_domain(b"example.net", b"example.com")
    return t


def tcp(db, user="vpopmail", password=PASSWORD):
    return lambda: [MysqlSettings("127.0.0.1", db.port, None, user, password, "vpopmail")]


def ask(store, tree, ext, host=b"example.com", build=Build()):
    return vdeliver(BOUNCE, ext, host, store, tree.users_cdb(), build)


def test_one_table_layout(db, tree):
    store = MysqlStore(tcp(db))
    assert ask(store, tree, b"bob").code == DELIVERABLE
    assert ask(store, tree, b"BOB", b"example.net").code == DELIVERABLE        # alias domain
    assert ask(store, tree, b"nopop").code == DELIVERABLE
    assert ask(store, tree, b"locked") == (UNDELIVERABLE, "vdelivermail: account is locked", b"")
    assert ask(store, tree, b"nobody").code == UNDELIVERABLE
    assert ask(store, tree, b"bob-x").code == UNDELIVERABLE
    assert ask(store, tree, b"bob-x", build=Build(qmail_ext=True)).code == DELIVERABLE
    assert ask(store, tree, b"bob", b"other.example").code == UNDELIVERABLE
    store.close()


def test_table_per_domain_layout(db, tree):
    store = MysqlStore(tcp(db), one_table=False)
    assert ask(store, tree, b"bob").code == DELIVERABLE
    assert ask(store, tree, b"locked").code == UNDELIVERABLE
    assert ask(store, tree, b"nobody").code == UNDELIVERABLE
    # a domain without a table has no users: not trouble
    assert ask(store, tree, b"bob", b"no-table.example").code == UNDELIVERABLE
    store.close()


def test_valias_table(db, tree):
    store = MysqlStore(tcp(db))
    on = Build(valias=True)
    assert ask(store, tree, b"info", build=on) == (DELIVERABLE, "vdelivermail: valias", wire.VALIAS)
    assert ask(store, tree, b"sales-north", build=on).code == DELIVERABLE
    assert ask(store, tree, b"info").code == UNDELIVERABLE        # a build without valias
    assert ask(store, tree, b"nobody", build=on).code == UNDELIVERABLE


def test_settings_file_as_vpopmail_reads_it(db, tree, tmp_path):
    home = tmp_path / "vpop"
    (home / "etc").mkdir(parents=True)
    (home / "etc" / "vpopmail.mysql").write_bytes(
        b"# This is the MySQL configuration file for vpopmail.\n\n"
        b"localhost|" + db.socket.encode() + b"|vpopmail|s3cret|vpopmail\n"
        b"127.0.0.1|1|root|wrong|vpopmail\n")
    store = store_from_env({"VERIFY_VPOPMAIL_HOME": str(home)})
    assert ask(store, tree, b"bob").code == DELIVERABLE
    store.close()
    env = {"VERIFY_VPOPMAIL_MYSQL": f"127.0.0.1|{db.port}|vpopmail|s3cret|vpopmail",
           "VERIFY_VPOPMAIL_LAYOUT": "per-domain"}
    store = store_from_env(env)
    assert ask(store, tree, b"locked").code == UNDELIVERABLE and not store.one_table
    store.close()


def test_settings_parsing_follows_load_connection_info():
    read, update = parse_settings(b"#c\n\nh1|3307|u|p|db\nh2|/run/s.sock|u2|p2|db2\n")
    assert read == MysqlSettings("h1", 3307, None, "u", b"p", "db")
    assert update == MysqlSettings("h2", 3306, "/run/s.sock", "u2", b"p2", "db2")
    only, = parse_settings(b"h1|0|u|p|db")
    assert only.port == 3306
    with pytest.raises(Trouble):
        parse_settings(b"h1|0|u||db\n")            # strtok: the empty password vanishes
    with pytest.raises(Trouble):
        parse_settings(b"# only a comment\n")
    with pytest.raises(Trouble):
        settings_loader({"VERIFY_VPOPMAIL_MYSQL_FILE": "/nonexistent/vpopmail.mysql"})()


def test_wrong_password_and_closed_port_are_temporary(db, tree):
    assert ask(MysqlStore(tcp(db, password=b"wrong")), tree, b"bob").code == TEMPORARY
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = MysqlStore(lambda: [MysqlSettings("127.0.0.1", port, None, "u", b"p", "vpopmail")])
    out = ask(store, tree, b"nobody")
    assert out.code == TEMPORARY and out.reason.startswith("vdelivermail: vpopmail database")


def test_a_silent_server_is_temporary_within_the_timeout(tree):
    with socket.socket() as listener:              # accepts, never speaks
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        store = MysqlStore(lambda: [MysqlSettings("127.0.0.1", port, None, "u", b"p", "x")], timeout=0.5)
        start = time.monotonic()
        out = ask(store, tree, b"bob")
        assert out.code == TEMPORARY
        assert time.monotonic() - start < 2.5


def test_answers_are_kept_at_most_one_second(db, tree):
    now = [1000.0]
    store = MysqlStore(tcp(db), clock=lambda: now[0])
    assert ask(store, tree, b"fresh").code == UNDELIVERABLE
    db.sql(("INSERT INTO vpopmail (pw_name, pw_domain, pw_uid, pw_gid, pw_dir) VALUES "
            "('fresh', 'example.com', 1, 0, '/x')", ()), database="vpopmail")
    try:
        queries = store.queries
        now[0] += 0.9
        assert ask(store, tree, b"fresh").code == UNDELIVERABLE and store.queries == queries
        now[0] += 0.1
        assert ask(store, tree, b"fresh").code == DELIVERABLE and store.queries == queries + 1
    finally:
        db.sql("DELETE FROM vpopmail WHERE pw_name = 'fresh'", database="vpopmail")
        store.close()


def test_non_blocking_use_asks_for_a_fill(db, tree):
    store = MysqlStore(tcp(db), blocking=False)
    with pytest.raises(NeedLookup) as e:
        ask(store, tree, b"bob")
    assert e.value.store is store and e.value.key == ("user", b"bob", b"example.com")
    store.fill(e.value.key)
    assert ask(store, tree, b"bob").code == DELIVERABLE
    store.close()


def test_server_stopped_mid_run_is_temporary_then_recovers(db, tree):
    now = [0.0]
    store = MysqlStore(tcp(db), clock=lambda: now[0])
    assert ask(store, tree, b"bob").code == DELIVERABLE
    db.stop()
    try:
        now[0] += 1.0
        assert ask(store, tree, b"bob").code == TEMPORARY
        assert ask(store, tree, b"nobody").code == TEMPORARY
    finally:
        db.start()
    now[0] += 1.0
    assert ask(store, tree, b"bob").code == DELIVERABLE
    store.close()
