"""The installed qmail-verify's dot-qmail search against names qmail-local's
qmeexists() passes over: a name too long, a symlink loop, an extension
that runs through a file, a name that is not a regular file.  qmail-local
goes on with the search for each, so the answer is where its search ends,
never "deliverable" for a mailbox qmail would bounce.  What qmail-local
defers (a name it may not see, a home that is not a directory) stays
"deliverable" and logged, as 1.32 answers it."""

import os
import socket

import pytest
from helpers import env_for

pytestmark = pytest.mark.system   # runs the installed programs, as root


@pytest.fixture
def kim(p1_tree):
    """kim's home in the P1 tree, for the test to add names to."""
    return p1_tree["root"] / "home" / "kim"


def test_a_name_too_long_is_passed_over(p1_tree, start, kim):
    d = start(env_for(p1_tree))
    long = b"a" * 300
    assert d.ask(b"nosuchuser" + long + b"@example.com") == b"\xe1alias"
    assert d.ask(b"kim-" + long + b"@example.com")[:1] == b"\xe1"
    assert d.ask(b"kim-lists-" + long + b"@example.com")[:1] == b"\xc0"   # lists-default
    assert "Unable to stat" not in d.log()


def test_a_symlink_loop_is_passed_over(p1_tree, start, kim):
    os.symlink(".qmail-loop", kim / ".qmail-loop")
    os.symlink(".qmail-lists-loop", kim / ".qmail-lists-loop")
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-loop@example.com") == b"\xe1kim-loop"
    assert d.ask(b"kim-lists-loop@example.com") == b"\xc0kim-lists-loop"
    assert "Unable to stat" not in d.log()


def test_an_extension_through_a_file_is_passed_over(p1_tree, start, kim):
    (kim / ".qmail-lists-a").touch()
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-work/x@example.com") == b"\xe1kim-work/x"
    assert d.ask(b"kim-lists-a/b@example.com") == b"\xc0kim-lists-a/b"
    assert "Unable to stat" not in d.log()


@pytest.mark.parametrize("kind", ["folder", "fifo", "socket"])
def test_a_name_that_is_not_a_regular_file_is_passed_over(p1_tree, start, kim, kind):
    for name in (".qmail-it", ".qmail-lists-it"):
        path = kim / name
        if kind == "folder":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(path))
            s.close()
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-it@example.com") == b"\xe1kim-it"
    assert d.ask(b"kim-lists-it@example.com") == b"\xc0kim-lists-it"


def test_what_qmail_local_defers_stays_deliverable_and_logged(p1_tree, start, kim):
    (kim / ".qmail-sub").mkdir(mode=0o700)          # root's: kim may not look in
    filed = p1_tree["root"] / "home" / "filed"      # a home that is a file
    filed.touch()
    os.chown(filed, 2030, 2030)
    with open(p1_tree["passwd"], "a") as f:
        f.write(f"filed:x:2030:2030::{filed}:/bin/sh\n")
    d = start(env_for(p1_tree))
    assert d.ask(b"kim-sub/x@example.com") == b"\xb0kim-sub/x"
    d.wait_for(f"Unable to stat {kim}/.qmail-sub/x: access denied.")
    assert d.ask(b"filed-x@example.com") == b"\xb0filed-x"
    d.wait_for(f"Unable to stat {filed}/.qmail-x: not a directory.")
    assert d.ask(b"filed-a/b@example.com") == b"\xb0filed-a/b"
    d.wait_for(f"Unable to stat {filed}/.qmail-a/b: not a directory.")
