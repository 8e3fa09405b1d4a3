"""Deep mode's reads of a user's files (system/userfiles.py), on real
files: the home as qmail-local's chdir() finds it, and a -default file
that is not a regular file (it became one after the search passed it)
is never read, so a FIFO cannot hold the daemon."""

import os

import pytest

from qmailverify.errors import Trouble
from qmailverify.system.userfiles import home_mode, read_default_file


def test_a_home_that_cannot_be_entered_is_trouble(tmp_path):
    home = os.fsencode(tmp_path)
    assert home_mode(home) == os.stat(home).st_mode
    open(home + b"/file", "wb").close()
    for name in (b"/missing", b"/file"):
        with pytest.raises(Trouble, match="unable to switch to "):
            home_mode(home + name)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_default_that_is_not_a_regular_file_is_not_read(tmp_path, kind):
    home = os.fsencode(tmp_path)
    path = home + b"/.qmail-default"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mkdir(path)
    with pytest.raises(Trouble, match="is not a regular file"):
        read_default_file(home, path)
