"""The daemon's process title as a person reads it (ps, qmail-verify-status)."""

from qmailverify.daemon.title import answered_text


def test_the_count_of_queries_reads_as_english():
    assert answered_text(0) == "0 queries answered"
    assert answered_text(1) == "1 query answered"
    assert answered_text(2) == "2 queries answered"
    assert answered_text(18231) == "18231 queries answered"
