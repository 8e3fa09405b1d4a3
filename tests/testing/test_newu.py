"""users/assign compiled to users/cdb records as qmail-newu does
(qmailverify/testing/newu.py, which builds every fixture's users/cdb)."""

import pytest

from qmailverify.testing.newu import AssignError, compile_assign


def test_users_assign_compiles_like_qmail_newu():
    records = compile_assign(b"=Kim:kim:1:2:/h/kim:-:x:\n+News-:news:3:4:/h/n:-::\n+a:u:5:6:/h/a:::\n.\n")
    assert records == [
        (b"!kim\0", b"kim\x001\x002\x00/h/kim\x00-\x00x"),
        (b"!news-", b"news\x003\x004\x00/h/n\x00-\x00"),
        (b"!a", b"u\x005\x006\x00/h/a\x00\x00"),
        (b"", b"-a"),
    ]
    with pytest.raises(AssignError):
        compile_assign(b"=kim:kim:1:2:/h\n.\n")
    with pytest.raises(AssignError):
        compile_assign(b"=kim:kim:1:2:/h/kim:::\n")
