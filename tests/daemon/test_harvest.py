"""The harvest counter (daemon/harvest.py) and its wire format (protocol/wire.py), in
process: counts per client IP in a sliding window, bounded memory, and
the count in replies only for queries that carried an IP."""

from hypothesis import given, settings
from hypothesis import strategies as st

from qmailverify.daemon.harvest import BUCKETS, HarvestCounter
from qmailverify.protocol.wire import (
    COUNT_MAX,
    REPLY_MAX,
    TEMPORARY,
    UNDELIVERABLE,
    make_query,
    make_reply,
    parse_query,
    query_ip,
    split_count,
    with_count,
)

IP, OTHER = b"192.0.2.7", b"2001:db8::1"


def test_refusals_count_per_ip_and_leave_the_window():
    h = HarvestCounter(window=100)
    assert [h.refused(IP, t) for t in (0, 1, 2)] == [1, 2, 3]
    assert h.count(OTHER, 2) == 0 and h.refused(OTHER, 3) == 1
    assert h.count(IP, 89.9) == 3             # slots of 10 s: still in the window
    assert h.count(IP, 100) == 0              # the first slot has gone
    assert h.refused(IP, 150) == 1


def test_at_the_bound_the_ip_refused_longest_ago_is_forgotten():
    h = HarvestCounter(window=100, max_ips=2)
    h.refused(b"10.0.0.1", 0)
    h.refused(b"10.0.0.2", 1)
    h.refused(b"10.0.0.1", 2)                 # now the newest
    h.refused(b"10.0.0.3", 3)
    assert set(h.ips) == {b"10.0.0.1", b"10.0.0.3"} and h.evicted == 1
    assert h.count(b"10.0.0.2", 3) == 0 and h.count(b"10.0.0.1", 3) == 2


def test_addresses_whose_refusals_all_expired_are_dropped():
    h = HarvestCounter(window=10)
    h.refused(b"10.0.0.1", 0)
    h.refused(b"10.0.0.2", 50)
    assert list(h.ips) == [b"10.0.0.2"] and h.evicted == 0


EVENTS = st.lists(st.tuples(st.sampled_from([b"1.1.1.1", b"2.2.2.2", b"3.3.3.3", b"::1"]),
                            st.floats(0, 30, allow_nan=False)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(EVENTS, st.integers(1, 5))
def test_counts_agree_with_a_plain_list_of_refusals_and_memory_stays_bounded(events, max_ips):
    h, seen, t = HarvestCounter(window=20, max_ips=max_ips), {}, 0.0
    for ip, dt in events:
        t += dt
        slot = int(t // 2)
        got = h.refused(ip, t)
        times = seen.setdefault(ip, [])
        times.append(slot)
        assert got == sum(1 for s in times if s > slot - BUCKETS)
        assert len(h.ips) <= max_ips
        assert all(len(entry) == BUCKETS + 1 for entry in h.ips.values())
        for other in list(seen):               # forgotten ones start again from 0
            if other not in h.ips:
                seen[other] = []
            later = t + 7.5
            assert h.count(other, later) == sum(1 for s in seen[other]
                                                if s > int(later // 2) - BUCKETS)


def test_the_ip_rides_after_the_tag_and_1_32_ignores_it():
    q = make_query(b"kim@x.example", ip=IP)
    assert q == b"kim@x.example\0QV2\0ip=192.0.2.7"
    assert parse_query(q) == (b"kim@x.example", True)       # what the rest of the daemon sees
    assert q.split(b"\0")[0] == b"kim@x.example"             # what 1.32 sees
    assert query_ip(q) == IP and query_ip(make_query(b"a@b", ip=OTHER)) == OTHER
    assert make_query(b"a@b", extended=False, ip=IP) == b"a@b\0"
    for bad in (b"a@b\0QV2", b"a@b\0QV3\0ip=1.2.3.4", b"a@b\0QV2\0ip=", b"a@b\0QV2\0ip=1.2.3.4 ",
                b"a@b\0QV2\0ip=x" * 2, b"a@b\0QV2\0ip=" + b"1" * 46, b"a@b\0QV2\0addr=1.2.3.4",
                b"a@b\0QV2\0ip=1.2.3.4\0", b"a@b\0QV2\0ip=1.2.3.4\0ip=5.6.7.8"):
        assert query_ip(bad) is None, bad


def test_a_counted_reply_stays_within_33_bytes_and_splits_back():
    user = b"u" * 40
    for count, digits in ((0, b"0"), (12, b"12"), (COUNT_MAX + 5, b"%d" % COUNT_MAX)):
        reply = with_count(make_reply(UNDELIVERABLE, 5, user), count)
        assert len(reply) <= REPLY_MAX and reply.endswith(b"\0" + digits)
        assert split_count(reply[1:]) == (user[:REPLY_MAX - 2 - len(digits)], int(digits))
    assert split_count(b"kim") == (b"kim", None)
    reply = with_count(make_reply(TEMPORARY, 0, b"users/cdb is not a cdb file"), 3)
    assert reply[0] == TEMPORARY and split_count(reply[1:]) == (b"users/cdb is not a cdb file", 3)


def test_annotate_counts_refusals_only_and_only_for_queries_with_an_ip():
    h = HarvestCounter()
    q = make_query(b"x@y", ip=IP)
    assert h.annotate(q, "denied", b"\x11", 0) == b"\x11\x001"
    assert h.annotate(q, "permitted", b"\x50kim", 1) == b"\x50kim\x001"
    assert h.annotate(q, "denied", b"\x11", 2) == b"\x11\x002"
    assert h.annotate(make_query(b"x@y"), "denied", b"\x11", 3) == b"\x11"
    assert h.annotate(b"x@y", "denied", b"\x11", 3) == b"\x11"
    assert h.annotate(q, "unanswered", None, 4) is None
    assert h.count(IP, 5) == 2


def test_the_daemons_harvest_settings():
    import pytest

    from qmailverify.daemon.settings import settings_from_env
    from qmailverify.errors import Fatal
    s = settings_from_env({})
    assert (s.harvest_window, s.harvest_ips) == (600.0, 65536)
    s = settings_from_env({"VERIFY_HARVEST_WINDOW": "0", "VERIFY_HARVEST_IPS": "10"})
    assert (s.harvest_window, s.harvest_ips) == (0.0, 10)
    for bad in ({"VERIFY_HARVEST_WINDOW": "ten"}, {"VERIFY_HARVEST_WINDOW": "-1"},
                {"VERIFY_HARVEST_IPS": "0"}):
        with pytest.raises(Fatal):
            settings_from_env(bad)
