"""qmail-verify-http's core in process (qd1.py): which requests it takes,
and the number each of the daemon's answers becomes, the table of
qmail-verify-http(8)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmailverify.http.qd1 import Request, Response, answer, parse
from qmailverify.protocol.client import Answer, timeout_answer
from qmailverify.protocol.wire import (
    CATCH_ALL,
    DELIVERABLE,
    MAILBOX,
    QMAIL_EXT,
    TEMPORARY,
    UNDELIVERABLE,
    VALIAS,
)

ASK = Request(b"deliverable", b"bob@example.com")
LOCAL = Request(b"qmail_local", b"bob@example.com")


def test_the_two_requests_are_taken_with_their_address_unescaped():
    assert parse(b"GET", b"/qd1/deliverable?bob%40example.com") == ASK
    assert parse(b"GET", b"/qd1/qmail_local?bob@example.com") == LOCAL
    # '+' is a '+' (URI::Escape's uri_unescape), a fragment is not the address's
    assert parse(b"GET", b"/qd1/deliverable?a+b%20c@x#frag") == (b"deliverable", b"a+b c@x")
    assert parse(b"GET", b"http://127.0.0.1:8998/qd1/deliverable?a@x") == (b"deliverable", b"a@x")


@pytest.mark.parametrize("method,target", [
    (b"POST", b"/qd1/deliverable?a@x"), (b"HEAD", b"/qd1/deliverable?a@x"),
    (b"GET", b"/qd1/other?a@x"), (b"GET", b"/qd1/deliverable/more?a@x"), (b"GET", b"/"),
    (b"GET", b"/QD1/deliverable?a@x")])
def test_another_method_or_path_is_403(method, target):
    r = parse(method, target)
    assert isinstance(r, Response) and r.status == 403


@pytest.mark.parametrize("query", [b"", b"%00", b"a%0a@x", b"a%7f@x", b"a%e9@x", b"a\tb"])
def test_an_empty_query_or_one_outside_printable_ascii_is_400(query):
    r = parse(b"GET", b"/qd1/deliverable?" + query)
    assert isinstance(r, Response) and r.status == 400
    assert b"\n" not in r.log and b"\t" not in r.log


def ok(value: int):
    return 200, b"%d" % value


@pytest.mark.parametrize("daemon,http", [
    (Answer(DELIVERABLE, b"bob", position=9), ok(0xF1)),
    (Answer(DELIVERABLE, b"x", position=15, variant=MAILBOX), ok(0xF2)),
    (Answer(DELIVERABLE, b"x", position=15, variant=VALIAS), ok(0xF3)),
    (Answer(DELIVERABLE, b"x", position=15, variant=CATCH_ALL), ok(0xF4)),
    (Answer(DELIVERABLE, b"x", position=15, variant=QMAIL_EXT), ok(0xF6)),
    (Answer(DELIVERABLE, b"x", position=15, variant=b"future"), ok(0xF1)),
    (Answer(DELIVERABLE, b"", position=1), ok(0xFF)),          # no virtualdomains key
    (Answer(DELIVERABLE, b"", position=2), ok(0xFF)),          # an empty prefix
    (Answer(UNDELIVERABLE, b"alias", position=14), ok(0)),
    (Answer(UNDELIVERABLE, b"example.com", position=15), ok(0)),
])
def test_each_answer_becomes_the_number_the_clients_act_on(daemon, http):
    r = answer(ASK, daemon)
    assert (r.status, r.body) == http


@pytest.mark.parametrize("daemon", [
    Answer(TEMPORARY, reason="unable to read users/cdb", position=6, remote=True),
    timeout_answer(), Answer(TEMPORARY, reason="connection refused")])
def test_a_temporary_answer_is_503_never_a_number_nor_204(daemon):
    for request in (ASK, LOCAL):
        r = answer(request, daemon)
        assert r.status == 503 and r.body.startswith(b"temporary failure: ")
        assert not r.body.strip().isdigit()


def test_qmail_local_is_the_name_qmail_local_gets_or_204_when_not_here():
    r = answer(LOCAL, Answer(DELIVERABLE, b"example.com", 15, local=b"example.com-bob"))
    assert (r.status, r.body) == (200, b"example.com-bob")
    assert answer(LOCAL, Answer(UNDELIVERABLE, b"alias", 14, local=b"ghost")).body == b"ghost"
    r = answer(LOCAL, Answer(DELIVERABLE, b"", position=1))
    assert (r.status, r.body) == (204, b"")


def test_the_log_words_are_cleaned():
    r = answer(Request(b"deliverable", b"a:b<c>@x"), Answer(DELIVERABLE, b"u", position=9))
    assert r.log == b"deliverable a_b_c_@x 200 0xf1"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"GET", b"POST", b"get"]),
       st.one_of(st.binary(max_size=60),
                 st.binary(max_size=40).map(lambda b: b"/qd1/deliverable?" + b)))
def test_any_target_is_a_request_for_a_printable_address_or_a_4xx(method, target):
    r = parse(method, target)
    if isinstance(r, Request):
        assert method == b"GET" and r.address and all(0x20 <= b < 0x7F for b in r.address)
    else:
        assert r.status in (400, 403) and all(0x20 <= b < 0x7F for b in r.log)
