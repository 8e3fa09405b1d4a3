"""Hub mode's pure parts in process: control/verifyhub's lines and lookup
order (hub/map.py), the far answers' cache and its lifetimes and bound
(hub/cache.py), and what a client gets for a far reply (hub/answer.py)."""

import pytest

from qmailverify.daemon.stats import Counts, stats_line
from qmailverify.errors import NeedLookup
from qmailverify.hub.answer import far_outcome, hub_answer
from qmailverify.hub.cache import HubCache
from qmailverify.hub.map import HubError, parse_hub_lines
from qmailverify.protocol.wire import make_query, parse_query

FAR = ("192.0.2.9", 11113)


def test_exact_domain_first_then_dot_suffixes_longest_first():
    m = parse_hub_lines([b"example.net:192.0.2.9", b".example.net:192.0.2.10:10101",
                         b".net:[2001:db8::1]:11114", b"Other.ORG:192.0.2.11"])
    assert m.server_for(b"kim@example.net") == FAR
    assert m.server_for(b"kim@a.b.example.net") == ("192.0.2.10", 10101)
    assert m.server_for(b"kim@x.net") == ("2001:db8::1", 11114)
    assert m.server_for(b"Kim@OTHER.org") == ("192.0.2.11", 11113)
    assert m.server_for(b"kim@example.com") is None
    assert m.server_for(b"kim") is None                  # a bare name is ours
    assert m.server_for(b"kim@x@example.net") == FAR     # the last '@' splits


def test_a_dot_key_does_not_match_the_domain_itself_and_later_lines_win():
    m = parse_hub_lines([b".example.net:192.0.2.10", b"example.org:192.0.2.1",
                         b"example.org:192.0.2.9"])
    assert m.server_for(b"kim@example.net") is None
    assert m.server_for(b"kim@example.org") == FAR


def test_no_lines_is_hub_mode_off():
    assert parse_hub_lines([]) is None


@pytest.mark.parametrize("line", [b"example.net", b"example.net:", b":192.0.2.9",
                                  b".:192.0.2.9", b"kim@example.net:192.0.2.9",
                                  b"example.net:192.0.2.300", b"example.net:192.0.2.9:0",
                                  b"example.net:2001:db8::1", b"exa mple.net:192.0.2.9"])
def test_a_bad_line_is_refused_with_its_number(line):
    with pytest.raises(HubError, match="line 2"):
        parse_hub_lines([b"good.example:192.0.2.9", line])


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def cache_with(replies, **kw):
    asked = []

    def ask(server, address, timeout):
        asked.append(address)
        return replies[address]
    clock = Clock()
    return HubCache(clock=clock, ask=ask, **kw), clock, asked


def fetch(cache, address, asked_at):
    with pytest.raises(NeedLookup) as e:
        cache.get(FAR, address, asked_at, False)
    cache.fill(e.value.key)
    return cache.get(FAR, address, asked_at, True)


def test_positive_and_negative_lifetimes_differ():
    cache, clock, asked = cache_with({b"yes@x": b"\x90kim", b"no@x": b"\xe1alias"},
                                     ttl=300, negative_ttl=5)
    assert fetch(cache, b"yes@x", clock.now).reply == b"\x90kim"
    assert fetch(cache, b"no@x", clock.now).reply == b"\xe1alias"
    clock.now += 4.9
    assert cache.get(FAR, b"no@x", clock.now, False).reply == b"\xe1alias"
    clock.now += 0.2
    with pytest.raises(NeedLookup):
        cache.get(FAR, b"no@x", clock.now, False)
    clock.now += 294
    assert cache.get(FAR, b"yes@x", clock.now, False).reply == b"\x90kim"
    clock.now += 1
    with pytest.raises(NeedLookup):
        cache.get(FAR, b"yes@x", clock.now, False)
    assert (cache.hits, cache.misses, cache.asked, cache.silent) == (2, 4, 2, 0)


def test_silence_and_temporary_serve_only_the_queries_that_waited():
    cache, clock, asked = cache_with({b"gone@x": None, b"busy@x": b"\x02db down"})
    t0 = clock.now
    clock.now += 2
    assert fetch(cache, b"gone@x", t0).reply is None
    assert fetch(cache, b"busy@x", t0).reply == b"\x02db down"
    with pytest.raises(NeedLookup):                   # a new query asks again
        cache.get(FAR, b"gone@x", clock.now + 0.001, False)
    with pytest.raises(NeedLookup):
        cache.get(FAR, b"busy@x", clock.now + 0.001, False)
    assert cache.silent == 1 and cache.asked == 2


def test_the_cache_is_bounded_and_forgets_the_oldest():
    replies = {b"u%d@x" % i: b"\x90u" for i in range(5)}
    cache, clock, asked = cache_with(replies, entries=3)
    for i in range(5):
        fetch(cache, b"u%d@x" % i, clock.now)
    assert len(cache) == 3
    assert cache.get(FAR, b"u4@x", clock.now, False).reply == b"\x90u"
    with pytest.raises(NeedLookup):
        cache.get(FAR, b"u0@x", clock.now, False)


def test_a_legacy_client_never_sees_2_and_the_far_bytes_are_passed_on():
    legacy, extended = parse_query(b"kim@x"), parse_query(make_query(b"kim@x"))
    for q in (legacy, extended):
        assert far_outcome(q, FAR, b"\x90kim").reply == b"\x90kim"
        assert far_outcome(q, FAR, b"\xe1alias").reply == b"\xe1alias"
    assert far_outcome(legacy, FAR, b"\x02db down") == (
        None, [b"kim@x not answered: temporary failure: hub 192.0.2.9:11113: db down."],
        "unanswered")
    assert far_outcome(legacy, FAR, None).reply is None
    assert far_outcome(extended, FAR, b"\x02db down").reply == b"\x02db down"
    out = far_outcome(extended, FAR, None, trace=True)
    assert out.reply == b"\x02hub server did not answer" and out.counted == "temporary"
    assert out.lines[1].startswith(b"trace: pos=0 code=temporary")
    assert far_outcome(legacy, FAR, b"\x90kim").lines == [
        b"kim@x permitted for kim (hub 192.0.2.9:11113)."]


def test_hub_answer_leaves_other_domains_and_hub_mode_off_alone():
    cache, clock, asked = cache_with({})
    m = parse_hub_lines([b"example.net:192.0.2.9"])
    assert hub_answer(b"kim@example.com", m, cache) is None
    assert hub_answer(b"kim@example.net", None, cache) is None
    assert hub_answer(b"", m, cache) is None
    with pytest.raises(NeedLookup):
        hub_answer(b"kim@example.net\0QV2", m, cache)
    assert asked == []


def test_hub_fields_are_written_only_in_hub_mode():
    c = Counts(hub_hits=3, hub_misses=1, hub_asked=1, hub_entries=1)
    assert b"hub_" not in stats_line(c, 1, 1) and b"parked" not in stats_line(c, 1, 1)
    assert stats_line(c, 1, 1, hub=True).endswith(
        b"parked=0 late=0 hub_hits=3 hub_misses=1 hub_asked=1 hub_silent=0 hub_entries=1"
        b" uptime=1 controls_age=1")
