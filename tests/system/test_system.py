"""The I/O layer's own promises, with real files: cdb files reopened when
replaced, large ones searched in place, corrupt ones reported as trouble;
LiveSystem's sources as fresh with inotify as with a stat per query."""

import os

import pytest

from qmailverify.errors import Trouble
from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.system import inotify
from qmailverify.system import live as system_module
from qmailverify.system.cdbsource import WatchedCdb
from qmailverify.system.live import LiveSystem


@pytest.mark.parametrize("in_memory", [True, False])
def test_cdb_file_follows_replacement_and_reports_corruption(tmp_path, in_memory):
    path = tmp_path / "cdb"
    f = WatchedCdb(str(path), "test cdb")
    if not in_memory:
        f.IN_MEMORY = 0
    f.refresh()
    assert f.current() is None                          # missing is fine
    write_cdb(str(path), [(b"a", b"1"), (b"a", b"2"), (b"b", b"3")])
    f.refresh()
    assert f.current().get(b"a") == b"1"                # the first record wins
    assert f.current().get(b"zz") is None
    write_cdb(str(path), [(b"a", b"new")])
    f.refresh()
    assert f.current().get(b"a") == b"new"
    path.write_bytes(b"\0" * 10)
    f.refresh()
    with pytest.raises(Trouble, match="not a cdb file"):
        f.current()


def test_required_cdb_missing_is_trouble(tmp_path):
    f = WatchedCdb(str(tmp_path / "nope"), "fastforward cdb", missing_ok=False)
    f.refresh()
    with pytest.raises(Trouble, match="unable to stat fastforward cdb: file does not exist"):
        f.current()


# Freshness of LiveSystem's watched sources, with inotify and without:
# every change made just before a query is seen by that query.



class NoIdentity:
    """identity.Identity without its ids: these tests stat as themselves."""

    def settle(self):
        pass

    for_root = settle


def live(tmp_path, monkeypatch, watch=True, users_folder=None):
    monkeypatch.setattr(system_module, "Identity", NoIdentity)      # no setgroups here
    qmail = tmp_path / "qmail"
    (users_folder or qmail / "users").mkdir(parents=True, exist_ok=True)
    write_cdb(str(qmail / "users" / "cdb"), [(b"", b"-"), (b"!kim\0", b"kim\0" b"1\0")])
    passwd = tmp_path / "etc" / "passwd"
    passwd.parent.mkdir()
    passwd.write_bytes(b"kim:x:2010:2010::/home/kim:/bin/sh\n")
    return LiveSystem(str(qmail), str(passwd), watch=watch), qmail, passwd


def ask(s, name):
    s.begin_query()
    cdb = s.users()
    return (cdb.get(b"!" + name + b"\0") if cdb else None), s.getpw(name)


modes = pytest.mark.parametrize("mode", ["inotify", "stat", "no-inotify"])


def make(tmp_path, monkeypatch, mode):
    if mode == "no-inotify":
        monkeypatch.setattr(inotify, "_libc", None)
    s, qmail, passwd = live(tmp_path, monkeypatch, watch=mode != "stat")
    if mode == "inotify":
        assert s.watcher.active
    elif mode == "no-inotify":
        assert not s.watcher.active
    return s, qmail, passwd


@modes
def test_users_cdb_replaced_by_rename_is_seen_by_the_next_query(tmp_path, monkeypatch, mode):
    s, qmail, _ = make(tmp_path, monkeypatch, mode)
    assert ask(s, b"kim")[0] == b"kim\0" b"1\0"
    assert ask(s, b"zoe")[0] is None
    new = qmail / "users" / "cdb.tmp"
    write_cdb(str(new), [(b"", b"-"), (b"!zoe\0", b"zoe\0")])
    os.rename(new, qmail / "users" / "cdb")
    assert ask(s, b"zoe")[0] == b"zoe\0"
    assert ask(s, b"kim")[0] is None
    (qmail / "users" / "cdb").unlink()
    assert s.begin_query() is None and s.users() is None


@modes
def test_users_folder_replaced_by_rename_is_seen_by_the_next_query(tmp_path, monkeypatch, mode):
    s, qmail, _ = make(tmp_path, monkeypatch, mode)
    assert ask(s, b"kim")[0] == b"kim\0" b"1\0"
    (qmail / "users.new").mkdir()
    write_cdb(str(qmail / "users.new" / "cdb"), [(b"", b"-"), (b"!kim\0", b"kim\0" b"2\0")])
    os.rename(qmail / "users", qmail / "users.old")
    os.rename(qmail / "users.new", qmail / "users")
    assert ask(s, b"kim")[0] == b"kim\0" b"2\0"
    # and the new folder is watched in turn: an in-place rewrite of its cdb
    with open(qmail / "users" / "cdb", "r+b") as f:
        data = f.read().replace(b"kim\0" b"2\0", b"kim\0" b"3\0")
        f.seek(0)
        f.write(data)
    assert ask(s, b"kim")[0] == b"kim\0" b"3\0"
    # the old folder is not: writing there changes nothing
    write_cdb(str(qmail / "users.old" / "cdb"), [(b"", b"-")])
    assert ask(s, b"kim")[0] == b"kim\0" b"3\0"


@modes
def test_passwd_file_rewritten_in_place_between_queries(tmp_path, monkeypatch, mode):
    s, _, passwd = make(tmp_path, monkeypatch, mode)
    assert ask(s, b"kim")[1].uid == 2010
    for n in range(5):            # same size, often the same mtime tick: still seen
        passwd.write_bytes(b"kim:x:201%d:2010::/home/kim:/bin/sh\n" % n)
        assert ask(s, b"kim")[1].uid == 2010 + n
    os.rename(passwd, passwd.parent / "old")
    (passwd.parent / "new").write_bytes(b"kym:x:2010:2010::/home/kim:/bin/sh\n")
    os.rename(passwd.parent / "new", passwd)
    assert ask(s, b"kim")[1] is None and ask(s, b"kym")[1].uid == 2010


@modes
def test_a_source_in_trouble_is_tried_again_by_each_query(tmp_path, monkeypatch, mode):
    s, qmail, _ = make(tmp_path, monkeypatch, mode)
    cdb = qmail / "users" / "cdb"
    data = cdb.read_bytes()
    cdb.unlink()
    cdb.mkdir()                   # unreadable as a file
    s.begin_query()
    with pytest.raises(Trouble):
        s.users()
    cdb.rmdir()
    cdb.write_bytes(data)
    assert ask(s, b"kim")[0] == b"kim\0" b"1\0"


def test_unrelated_changes_next_to_a_watched_file_are_ignored(tmp_path, monkeypatch):
    s, qmail, passwd = make(tmp_path, monkeypatch, "inotify")
    ask(s, b"kim")
    (qmail / "users" / "assign").write_text("+\n")
    (passwd.parent / "group").write_text("x\n")
    assert not s.watcher.changed()
    passwd.touch()
    assert s.watcher.changed()
