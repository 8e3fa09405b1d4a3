"""Hostile queries are normal traffic: arbitrary bytes at the running
daemon never stop it, never get a malformed reply, and never put a raw
control character into the log."""

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.system   # runs the installed programs, as root

SPECIAL = st.sampled_from([b"%", b"@", b"-", b".", b"/", b"\0", b"\n", b":", b"..",
                           b"example.com", b"example.net", b"kim", b"alias", b"default",
                           b"wild.example.org", b"\xff", b"\x80", b"news-"])
PIECES = st.one_of(SPECIAL, st.binary(max_size=40))
QUERIES = st.one_of(
    st.binary(max_size=2000),
    st.lists(PIECES, max_size=60).map(b"".join),
    st.lists(st.sampled_from([b"%", b"@", b"-", b".", b"/", b"a"]), min_size=900,
             max_size=2000).map(b"".join),
)


def test_arbitrary_bytes_never_break_the_daemon(p1_tree, start):
    d = start({"QMAILHOME": str(p1_tree["qmail"]), "VERIFY_PASSWD": str(p1_tree["passwd"])})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", d.port))

    # a sample through the real socket and log; tests/testing/test_fuzz.py
    # drives get_reply() with many more inputs in process
    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(QUERIES)
    def one(query):
        sock.send(query)
        if not query:
            return
        reply = sock.recv(4096)
        assert 1 <= len(reply) <= 33
        assert reply[0] & 0x0F in (0, 1)
        assert 1 <= reply[0] >> 4 <= 14 and reply[0] >> 4 != 3

    try:
        one()
        sock.send(b"kim@example.com")
        assert sock.recv(64) == b"\x90kim"
    finally:
        sock.close()
    assert d.proc.poll() is None
    assert d.stop() == 0
    log = d.logpath.read_bytes()
    assert log.endswith(b"exiting on SIGTERM.\n")
    for line in log.split(b"\n"):
        assert all(32 <= b <= 126 for b in line), line
