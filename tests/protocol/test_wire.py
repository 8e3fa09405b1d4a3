"""The datagram formats (protocol/wire.py), in process: where a query's address
ends, which queries ask for the extended reply, and how replies read."""

from qmailverify.protocol.wire import (
    DELIVERABLE,
    DETAIL_TAG,
    EXTENDED_TAG,
    QUERY_MAX,
    TEMPORARY,
    UNDELIVERABLE,
    VARIANTS,
    make_query,
    make_reply,
    parse_query,
    parse_reply,
    query_ip,
    split_detail,
    wants_detail,
    with_detail,
)


def test_the_tag_for_extended_replies_follows_the_nul():
    assert make_query(b"a@b") == b"a@b\0" + EXTENDED_TAG
    assert parse_query(b"a@b\0" + EXTENDED_TAG).extended
    assert not parse_query(b"a@b\0").extended and not parse_query(b"a@b").extended


def test_without_the_nul_before_it_the_tag_is_part_of_the_address():
    assert parse_query(b"a@b" + EXTENDED_TAG) == (b"a@b" + EXTENDED_TAG, False)


def test_only_the_exact_tag_right_after_the_first_nul_asks_for_extended_replies():
    assert parse_query(b"a@b\0" + EXTENDED_TAG + b"\0more") == (b"a@b", True)
    for rest in (b"x" + EXTENDED_TAG, EXTENDED_TAG.lower(), EXTENDED_TAG[:-1],
                 b"\0" + EXTENDED_TAG, b"c\0" + EXTENDED_TAG):
        assert parse_query(b"a@b\0" + rest) == (b"a@b", False), rest


def test_a_tag_past_the_bytes_the_daemon_reads_does_not_count():
    address = b"x" * (QUERY_MAX - 1)
    assert parse_query(address + b"\0" + EXTENDED_TAG) == (address, False)
    assert parse_query(address[:-3] + b"\0" + EXTENDED_TAG) == (address[:-3], True)


def test_an_empty_datagram_is_no_query():
    assert parse_query(b"") is None


def test_replies_read_as_legacy_clients_read_them():
    assert make_reply(DELIVERABLE, 9, b"kim") == b"\x90kim"
    assert len(make_reply(UNDELIVERABLE, 14, b"u" * 60)) == 33
    assert parse_reply(b"\x90kim") == (DELIVERABLE, 9, b"kim")
    assert parse_reply(b"\xe2why") == (TEMPORARY, 14, b"why")
    assert parse_reply(b"\x17") == (UNDELIVERABLE, 1, b"")      # any other low nibble
    assert parse_reply(b"") is None


def test_a_detail_query_is_extended_and_asks_for_the_fields_after_the_reply():
    q = make_query(b"bob@example.com", detail=True)
    assert q == b"bob@example.com\0" + EXTENDED_TAG + b"\0" + DETAIL_TAG
    assert parse_query(q) == (b"bob@example.com", True) and wants_detail(q)
    assert query_ip(q) is None                  # never counted as an SMTP client's IP
    for other in (make_query(b"a@b"), make_query(b"a@b", ip=b"192.0.2.7"), b"a@b\0detail",
                  q + b"\0", q + b"x", b"a@b\0" + EXTENDED_TAG + b"\0" + DETAIL_TAG.upper()):
        assert not wants_detail(other), other


def test_the_detail_fields_follow_the_reply_and_read_back_whatever_the_name_holds():
    reply = make_reply(DELIVERABLE, 15, b"example.com")
    for variant in (b"",) + VARIANTS:
        for local in (None, b"", b"example.com-bob", b"a\0local=b", b"x" * 1200):
            sent = with_detail(reply, variant, local)
            assert sent.startswith(reply) and (sent == reply) == (not variant and local is None)
            assert split_detail(parse_reply(sent).user) == (b"example.com", variant, local)
    assert split_detail(b"kim") == (b"kim", b"", None)       # a 1.32 daemon's reply
