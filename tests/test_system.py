"""The I/O layer's own promises, with real files: cdb files reopened when
replaced, large ones searched in place, corrupt ones reported as trouble."""

import pytest

from qmailverify.errors import Trouble
from qmailverify.cdbmake import write_cdb
from qmailverify.system import WatchedCdb


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
