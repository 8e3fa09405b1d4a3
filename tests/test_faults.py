"""Faults (issue 12, item 3): the installed qmail-verify and qmail-logmsg
as real processes, with real files broken under them while they run.
Each test is one row of the README's "When things go wrong": a defined
outcome, and never a false "not deliverable" (status 1) for trouble of
our own: a legacy client gets silence (qmail-smtpd then says 451), an
extended one status 2, the shim 451.

Not here: descriptor exhaustion at start (test_startup.py), fastforward's
cdb missing while running (test_daemon.py's fastforward test), no answer
from the daemon at all (test_logmsg.py), and the database of issue 11
stopped mid-run (issue 11 is not integrated yet)."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import cdblib
import pytest

from conftest import wait_until
from qmailverify.cdbmake import write_cdb
from test_daemon import env_for

TEMP = 0x02                 # the status nibble of "temporarily unknown"


def temporary(d, address: bytes, why: str) -> None:
    """The daemon's own trouble: silence to a legacy client, status 2 with
    the reason to an extended one, and a log line saying so."""
    assert d.ask(address, timeout=1.0) is None
    reply = d.ask(address, extended=True)
    assert reply is not None and reply[0] & 0x0F == TEMP, reply
    assert why.encode() in reply[1:], reply
    d.wait_for(f"{address.decode()} not answered: temporary failure: {why}")


# -- users/cdb that cannot be read to the end of a record -----------------------

def users_cdb(tree, filler: int = 0) -> Path:
    """users/cdb rewritten with filler extra records (past 50,000 the
    daemon searches it in place instead of reading it into memory)."""
    cdb = tree["qmail"] / "users" / "cdb"
    records = list(cdblib.Reader(data=cdb.read_bytes()).iteritems())
    write_cdb(str(cdb), records + [(b"!filler%d-" % i, b"x") for i in range(filler)])
    return cdb


def damaged(data: bytes, how: str) -> bytes:
    if how == "truncated":
        return data[:2048 + (len(data) - 2048) * 2 // 3]
    out = bytearray(data)                  # the first record's data runs past the end
    out[2052:2056] = struct.pack("<L", len(data))
    return bytes(out)


@pytest.mark.parametrize("filler", [0, 60_000], ids=["in-memory", "in-place"])
@pytest.mark.parametrize("how", ["truncated", "record-past-end"])
def test_a_users_cdb_that_cannot_be_read_to_the_end_is_temporary(p1_tree, start, how, filler):
    cdb = users_cdb(p1_tree, filler)
    d = start(env_for(p1_tree))
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"      # in users/cdb only
    good = cdb.read_bytes()
    tmp = cdb.with_name("cdb.tmp")
    tmp.write_bytes(damaged(good, how))
    tmp.rename(cdb)                                         # as qmail-newu replaces it
    temporary(d, b"quinn@example.com", "users/cdb is not a cdb file")
    temporary(d, b"kim@example.com", "users/cdb is not a cdb file")   # every local address asks
    assert d.ask(b"x@example.org") == b"\x10"              # not local: still answered
    tmp.write_bytes(good)
    tmp.rename(cdb)
    assert d.ask(b"quinn@example.com") == b"\xa0quinn"
