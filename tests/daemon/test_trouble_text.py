"""Our trouble's reason goes into a log line and an extended reply, so it
must be text that can be written as bytes whatever the admin's paths hold.
A VERIFY_PASSWD path that is not UTF-8 (found while building the fuzz
harness's fault modes) must not make the daemon die once the file cannot
be read: the answer is "temporary", the client is told the kind of
trouble only, and the log line names the path."""

import os

import pytest

from qmailverify.protocol.wire import TEMPORARY

pytestmark = pytest.mark.system   # runs the installed programs, as root


def test_unreadable_passwd_with_a_non_utf8_name_is_temporary(p1_tree, start):
    name = os.fsencode(str(p1_tree["root"])) + b"/p\xe9sswd"
    os.rename(p1_tree["passwd"], name)        # readable at start (else it is refused)
    d = start({"QMAILHOME": str(p1_tree["qmail"]), "VERIFY_PASSWD": os.fsdecode(name)})
    assert d.ask(b"kim@example.com", extended=True)[0] & 0x0F != TEMPORARY
    os.unlink(name)                           # trouble that comes later
    reply = d.ask(b"kim@example.com", extended=True)
    assert reply is not None and reply[0] & 0x0F == TEMPORARY, reply
    assert reply[1:] == b"user database unavailable"            # the kind, no path
    assert d.ask(b"kim@example.com", timeout=0.5) is None        # legacy: silence
    assert d.proc.poll() is None
    d.wait_for("kim@example.com not answered: temporary failure: unable to read ")
    assert "/p_sswd: file does not exist." in d.log()
    assert "internal error" not in d.log()
