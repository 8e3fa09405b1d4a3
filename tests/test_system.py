"""The I/O layer's own promises, with real files: cdb files reopened when
replaced, large ones searched in place, corrupt ones reported as trouble,
passwd files parsed like getpwnam reads them."""

import os

import pytest

from qmailverify.errors import Trouble
from qmailverify.cdbmake import write_cdb
from qmailverify.system import WatchedCdb, PasswdFile


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


def test_passwd_file_first_entry_wins_and_bad_lines_are_skipped(tmp_path):
    p = tmp_path / "passwd"
    p.write_bytes(b"kim:x:1:2::/h/kim:/bin/sh\nkim:x:9:9::/other:/bin/sh\n"
                  b"bad:x:notanumber:1::/h:/bin/sh\nshort:x:1\n\n\xffu:x:5:5::/h/\xff:/bin/sh\n")
    f = PasswdFile(str(p))
    f.refresh()
    assert f.getpw(b"kim") == (b"kim", 1, 2, b"/h/kim")
    assert f.getpw(b"bad") is None and f.getpw(b"short") is None
    assert f.getpw(b"\xffu").home == b"/h/\xff"
    os.unlink(p)
    f.refresh()
    with pytest.raises(Trouble):
        f.getpw(b"kim")
