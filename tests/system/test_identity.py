"""Stats made as the user (system/identity.py), in this process: while another
thread runs (daemon/parking.py's, with MariaDB or hub mode) only the loop's
thread takes the user's ids, and an id the kernel would misread is
refused, never half-applied."""

import os
import threading

import pytest
from helpers import need_root

from qmailverify.errors import Trouble
from qmailverify.system import identity
from qmailverify.system.identity import Identity

pytestmark = pytest.mark.system   # runs the installed programs, as root


def ids(tid: int) -> dict:
    with open(f"/proc/self/task/{tid}/status") as f:
        return {line.split(":")[0]: line.split()[1:] for line in f
                if line.startswith(("Uid:", "Gid:"))}


@pytest.fixture
def other_thread():
    """A second thread that waits; its kernel thread id."""
    started, done = threading.Event(), threading.Event()
    tid = []

    def run():
        tid.append(threading.get_native_id())
        started.set()
        done.wait(30)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    started.wait(5)
    yield tid[0]
    done.set()
    t.join(5)


@pytest.fixture
def who():
    """The process's Identity, root's gid given back after the test."""
    need_root()
    assert os.getegid() == 0
    one = Identity()
    yield one
    one.settle()


def test_with_another_thread_only_the_callers_ids_change(who, other_thread):
    if identity._RAW is None:
        pytest.skip("no raw setresuid numbers for this machine: os.seteuid serves")
    me = threading.get_native_id()
    seen = who.as_user(2010, 2011, lambda: (ids(me), ids(other_thread)))
    mine, theirs = seen
    assert mine["Uid"][1] == "2010" and mine["Gid"][1] == "2011"
    assert theirs["Uid"][1] == "0" and theirs["Gid"][1] == "0", "the other thread stays root"
    assert ids(me)["Uid"] == ["0"] * 4, "root's uid back at once"


def test_root_gid_comes_back_when_settled(who, other_thread):
    me = threading.get_native_id()
    who.as_user(2010, 2011, lambda: None)
    assert ids(me)["Gid"][1] == "2011"          # kept for the next stat of the batch
    who.settle()
    assert ids(me)["Gid"] == ["0"] * 4 and ids(me)["Uid"] == ["0"] * 4


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("bad", [2**32 + 5, 0xFFFFFFFF, -1])
def test_an_id_out_of_range_is_trouble_and_nothing_runs(who, bad, threads, request):
    if threads:
        request.getfixturevalue("other_thread")
    ran = []
    with pytest.raises(Trouble):
        who.as_user(bad, 2011, lambda: ran.append(1))
    with pytest.raises(Trouble):
        who.as_user(2010, bad, lambda: ran.append(1))
    assert ran == []
    assert ids(threading.get_native_id())["Uid"] == ["0"] * 4
    who.settle()
    assert os.getegid() == 0


@pytest.mark.parametrize("gid_counts", [False, True])
def test_root_gid_before_roots_own_work_only_where_it_counts(who, gid_counts):
    # with the capabilities that override permissions the gid decides nothing
    # for root's own stats and reads, and is left until the loop waits
    me = threading.get_native_id()
    who.gid_counts = gid_counts
    who.as_user(2010, 2011, lambda: None)
    who.for_root()
    assert ids(me)["Gid"][1] == ("0" if gid_counts else "2011")
    assert ids(me)["Uid"] == ["0"] * 4
