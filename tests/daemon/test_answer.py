"""The daemon's datagram-to-reply function, in process: daemon.answer.get_reply()
against a stand-in System (no root, no socket, no file), for each kind
of answer, its log lines and the count it adds to."""

import errno

import pytest
from helpers import FakeSystem

from qmailverify.daemon.answer import get_reply
from qmailverify.daemon.stats import Counts
from qmailverify.errors import LostPrivileges, Trouble
from qmailverify.protocol.wire import (
    DETAIL_TAG,
    TEMPORARY,
    make_query,
    make_reply,
    with_detail,
)
from qmailverify.qmail.model import Controls, Passwd

C = Controls.build(b"example.com", [b"example.com"])
KIM = Passwd(b"kim", 2010, 2010, b"/h/kim")
ALIAS = Passwd(b"alias", 7790, 7790, b"/h/alias")


def system(**kw):
    return FakeSystem(None, [KIM, ALIAS], **kw)


class Failing(FakeSystem):
    """getpw raises what it is given."""

    def __init__(self, exc):
        super().__init__(None, [KIM, ALIAS])
        self.exc = exc

    def getpw(self, name):
        raise self.exc


def test_a_deliverable_address_is_permitted_for_its_user():
    s = system()
    out = get_reply(b"kim@example.com", C, s)
    assert out == (b"\x90kim", [b"kim@example.com permitted for kim."], "permitted")
    assert s.queries == 1


def test_a_missing_mailbox_is_denied_with_the_alias_user():
    out = get_reply(b"ghost@example.com\0", C, system())
    assert out == (b"\xe1alias", [b"ghost@example.com denied."], "denied")


def test_a_foreign_domain_is_permitted_for_nobody_in_particular():
    out = get_reply(b"x@example.org", C, system())
    assert out == (b"\x10", [b"x@example.org permitted for UNKNOWN."], "permitted")


def test_an_empty_datagram_is_no_query_and_asks_the_system_nothing():
    s = system()
    assert get_reply(b"", C, s) == (None, [], None)
    assert s.queries == 0


def test_a_failed_stat_is_logged_before_the_answer():
    s = system(files={b"/h/kim/.qmail-work": errno.EACCES})
    reply, lines, counted = get_reply(b"kim-work@example.com", C, s)
    assert reply == b"\xb0kim-work" and counted == "permitted"
    assert lines == [b"Unable to stat /h/kim/.qmail-work: access denied.",
                     b"kim-work@example.com permitted for kim-work."]


def test_a_temporary_stat_failure_silences_a_legacy_client():
    s = system(files={b"/h/kim/.qmail-work": errno.EIO})
    assert get_reply(b"kim-work@example.com", C, s) == (
        None, [b"kim-work@example.com not answered: temporary failure: "
               b"unable to stat /h/kim/.qmail-work: input/output error."], "unanswered")
    extended = get_reply(make_query(b"kim-work@example.com"), C, s)
    assert extended.reply == make_reply(TEMPORARY, 11, b"unable to stat a .qmail file")


def test_our_trouble_silences_a_legacy_client_and_is_temporary_to_one_that_asked():
    trouble = Trouble("unable to read /etc/\x1bpasswd: access denied", "user database unavailable")
    legacy = get_reply(b"kim@example.com", C, Failing(trouble))
    assert legacy == (None, [b"kim@example.com not answered: temporary failure: "
                             b"unable to read /etc/_passwd: access denied."], "unanswered")
    extended = get_reply(make_query(b"kim@example.com"), C, Failing(trouble))
    assert extended.reply == make_reply(TEMPORARY, 7, b"user database unavailable")
    assert extended.lines == [b"kim@example.com temporary failure: unable to read /etc/_passwd:"
                              b" access denied."]
    assert extended.counted == "temporary"


def test_a_bug_of_ours_is_logged_and_not_answered():
    out = get_reply(make_query(b"kim@example.com"), C, Failing(KeyError("x")))
    assert out == (None, [b"warning: internal error answering kim@example.com: KeyError;"
                          b" not answered."], "unanswered")


def test_lost_privileges_escape_to_stop_the_daemon():
    with pytest.raises(LostPrivileges):
        get_reply(b"kim@example.com", C, Failing(LostPrivileges("unable to restore")))


def test_the_address_in_a_log_line_is_cleaned():
    _, lines, _ = get_reply(b"ev\nil<x>:\xff@example.org", C, system())
    assert lines == [b"ev/il_x___@example.org permitted for UNKNOWN."]


def test_each_outcome_adds_to_its_count_and_to_the_queries():
    counts, s = Counts(), system()
    for datagram in (b"kim@example.com", b"ghost@example.com", b"", b"x@example.org"):
        counts.count(get_reply(datagram, C, s).counted)
    assert (counts.queries, counts.permitted, counts.denied) == (3, 2, 1)
    assert s.queries == 3


def test_the_decision_core_imports_nothing_that_reads_files():
    import subprocess
    import sys
    code = ("import sys, qmailverify.daemon.answer; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('qmailverify'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert {"qmailverify.daemon.answer", "qmailverify.qmail.rules", "qmailverify.qmail.model"} <= loaded
    readers = {"qmailverify.system.controls", "qmailverify.qmail.controlfile", "qmailverify.system.live",
               "qmailverify.system.cdbsource", "qmailverify.shim.rcpthosts", "qmailverify.daemon.startup",
               "qmailverify.daemon.main"}
    assert not loaded & readers, loaded & readers


def test_a_detail_query_gets_the_local_name_after_the_reply_it_would_get_anyway():
    vdoms = Controls.build(b"example.com", [b"example.com"],
                           virtualdomains=[b"virt.example:kim", b"out.example:"])
    for addr, name in ((b"kim-x@example.com", b"kim-x"), (b"x@virt.example", b"kim-x"),
                       (b"ghost@example.com", b"ghost"), (b"x@example.org", None),
                       (b"x@out.example", None)):
        plain = get_reply(make_query(addr), vdoms, system())
        out = get_reply(make_query(addr, detail=True), vdoms, system())
        assert out.lines == plain.lines and out.counted == plain.counted
        assert out.reply == with_detail(plain.reply, b"", name), addr
    legacy = get_reply(b"kim@example.com\0" + DETAIL_TAG, C, system())
    assert legacy.reply == b"\x90kim"                  # not extended: no fields
