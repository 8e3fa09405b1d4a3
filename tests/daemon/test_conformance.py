"""Every reply of the reference fixture P1, byte for byte, from the
installed daemon over a real UDP socket: once with the fixture's passwd
named by VERIFY_PASSWD, once through the system user database itself
(the fixture's passwd bind-mounted over /etc/passwd in a private mount
namespace)."""

import pytest
from helpers import load_p1, private_passwd

pytestmark = pytest.mark.system   # runs the installed programs, as root


def check_all(daemon):
    cases = load_p1()["cases"]          # read when a test needs it, not at import
    wrong = []
    for case in cases:
        q, want = bytes.fromhex(case["q"]), bytes.fromhex(case["r"])
        got = daemon.query(q)
        if got != want:
            wrong.append(f"{q!r}: want {want!r}, got {got!r}")
    assert not wrong, f"{len(wrong)} of {len(cases)} replies differ:\n" + "\n".join(wrong[:20])


def test_p1_with_named_passwd_file(p1_tree, start):
    d = start({"QMAILHOME": str(p1_tree["qmail"]), "VERIFY_PASSWD": str(p1_tree["passwd"])})
    check_all(d)


def test_p1_through_the_system_user_database(p1_tree, start):
    wrapper = private_passwd(p1_tree["passwd"])
    d = start({"QMAILHOME": str(p1_tree["qmail"])}, wrapper=wrapper)
    check_all(d)
