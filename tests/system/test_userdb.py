"""The user database (system/userdb.py), with real files: passwd files parsed
like getpwnam reads them, trouble when they cannot be read."""

import os

import pytest

from qmailverify.errors import Trouble
from qmailverify.system.userdb import PasswdFile


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
