"""The daemon's counters and the statistics line SIGALRM writes (daemon/stats.py)."""

from qmailverify.daemon.stats import Counts, stats_line


def test_the_stats_line_is_key_value_in_field_order():
    counts = Counts(queries=7, permitted=3, denied=2, temporary=1, unanswered=1)
    assert stats_line(counts, 3600.9, 12.2) == (
        b"stats: queries=7 permitted=3 denied=2 temporary=1 unanswered=1 shed=0"
        b" harvest_refusals=0 harvest_ips=0 harvest_evicted=0 uptime=3600 controls_age=12")
    assert counts.answered == 6


def test_each_query_counts_once_and_under_its_outcome():
    counts = Counts()
    for outcome in ("permitted", "denied", None, "temporary", "unanswered", "permitted"):
        counts.count(outcome)
    assert counts == Counts(queries=5, permitted=2, denied=1, temporary=1, unanswered=1)
    assert counts.answered == 4


def test_deep_mode_fields_are_written_only_in_deep_mode():
    counts = Counts(queries=3, temporary=1, unanswered=1, parked=2, late=1)
    assert b" parked=" not in stats_line(counts, 1, 1)
    assert stats_line(counts, 5, 2, deep=True) == (
        b"stats: queries=3 permitted=0 denied=0 temporary=1 unanswered=1 shed=0"
        b" harvest_refusals=0 harvest_ips=0 harvest_evicted=0 parked=2 late=1"
        b" uptime=5 controls_age=2")
