"""The detail fields (wire.py: how an address is delivered, for
qmail-verify-http) from the installed daemon over a real UDP socket: they
only ever follow the reply a 1.32 client would get, byte for byte, and
they carry vpopmail's variant from deep mode."""

import pytest
from helpers import load_p1

from qmailverify.protocol.wire import CATCH_ALL, MAILBOX, make_query, split_detail

pytestmark = pytest.mark.system   # runs the installed programs, as root


def test_every_p1_reply_to_a_detail_query_starts_with_the_reference_reply(p1_tree, start):
    d = start({"QMAILHOME": str(p1_tree["qmail"]), "VERIFY_PASSWD": str(p1_tree["passwd"])})
    wrong = []
    cases = load_p1()["cases"]
    for case in cases:
        q, want = bytes.fromhex(case["q"]), bytes.fromhex(case["r"])
        address = q.partition(b"\0")[0]
        got = d.query(make_query(address, detail=True))
        if got is None or got[:len(want)] != want or got[len(want):len(want) + 1] not in (b"", b"\0"):
            wrong.append(f"{q!r}: want {want!r} first, got {got!r}")
    assert not wrong, f"{len(wrong)} of {len(cases)} differ:\n" + "\n".join(wrong[:20])


def detail(d, address: bytes):
    reply = d.query(make_query(address, detail=True))
    return (reply[0],) + split_detail(reply[1:])


def test_deep_mode_sends_the_vpopmail_variant_and_the_local_name(vtree, start):
    t, env = vtree
    d = start({**env, "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "files"})
    assert detail(d, b"bob@example.com") == (0xF0, b"example.com", MAILBOX, b"example.com-bob")
    assert detail(d, b"bob@example.net") == (0xF0, b"example.com", MAILBOX, b"example.net-bob")
    assert detail(d, b"nobody@example.com") == (0xF1, b"example.com", b"", b"example.com-nobody")
    assert detail(d, b"fwd@mx.example") == (0x90, b"fwd", b"", b"fwd")
    assert detail(d, b"x@elsewhere.example") == (0x10, b"", b"", None)
    t.write(t.domain_dir(b"example.com") + b"/.qmail-default",
            b"| " + t.vpop + b"/bin/vdelivermail '' catchall@example.com\n", 0o600)
    assert detail(d, b"nobody@example.com") == (0xF0, b"example.com", CATCH_ALL,
                                                b"example.com-nobody")
