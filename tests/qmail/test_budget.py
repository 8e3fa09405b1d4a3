"""Every query's work is bounded, counted in steps: the .qmail search of a
long extension, the forwards of a -default file, the entries a user
database is asked for.  Running out is "temporary" (silence to a legacy
client, status 2 to an extended one), logged once, and a repeat costs no
search.  In process, against stand-in Systems that count each step."""

import errno

import pytest
from helpers import FakeSystem
from hypothesis import given
from hypothesis import strategies as st

from qmailverify.daemon.answer import get_reply
from qmailverify.deep.hook import Deep
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, make_query, make_reply
from qmailverify.qmail.budget import (
    CPU,
    FORWARDS_MAX,
    LIMITS,
    STATS,
    Budget,
    Costly,
    OverBudget,
)
from qmailverify.qmail.model import Controls, DeepFacts, Passwd
from qmailverify.qmail.rules import decide

C = Controls.build(b"mx.example", locals=[b"mx.example"])
MAL = Passwd(b"mallory", 1066, 1066, b"/home/mallory")
JOE = Passwd(b"joe", 1001, 1001, b"/home/joe")
DASHES = b"mallory-" + b"-" * 240 + b"@mx.example"      # 243 names to stat


class Clock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_long_extension_stops_at_the_stat_limit():
    s = FakeSystem(passwd=[MAL, JOE])
    with pytest.raises(OverBudget) as e:
        decide(DASHES, C, s, budget=Budget())
    assert e.value.kind == STATS and e.value.home == b"/home/mallory"
    # the owner stat of the home, then the .qmail names up to the limit
    assert len(s.stats_as) == LIMITS[STATS] - 1


class PassedOver(FakeSystem):
    """Every .qmail name fails as qmail-local's qmeexists() passes over:
    too long, or (with a '/' in it) through a file."""

    def first_stat(self, uid, gid, paths):
        def failing():
            for p in paths:
                self.files[p] = errno.ENOTDIR if b"/" in p[len(MAL.home) + 1:] \
                    else errno.ENAMETOOLONG
                yield p
        return super().first_stat(uid, gid, failing())


@pytest.mark.parametrize("ext", [b"-" * 800, b"a/-" * 260, b"x" * 300 + b"-" * 500])
def test_a_search_that_passes_over_every_name_stays_within_the_stat_limit(ext):
    """The search goes on past names qmail-local passes over, so a long
    extension may stat every one of them: the budget stops it, and the
    answer is then temporary, never "deliverable" nor "no such mailbox"."""
    s = PassedOver(passwd=[MAL])
    address = b"mallory-" + ext + b"@mx.example"
    with pytest.raises(OverBudget) as e:
        decide(address, C, s, budget=Budget())
    assert e.value.kind == STATS
    assert len(s.stats_as) == LIMITS[STATS] - 1          # the home's owner stat, then the names
    reply = get_reply(make_query(address), C, PassedOver(passwd=[MAL]))
    assert reply.reply == make_reply(TEMPORARY, 0, b"too costly to decide (stats)")


def test_an_ordinary_query_is_not_touched_and_its_cost_is_known():
    s = FakeSystem(passwd=[JOE], files={b"/home/joe/.qmail-list-default": 0})
    b = Budget()
    v = decide(b"joe-list-owner-x@mx.example", C, s, budget=b)
    assert v == decide(b"joe-list-owner-x@mx.example", C, s)
    assert b.used() == {"stats": 4, "reads": 0, "decisions": 1, "forwards": 0, "rows": 4}


def test_cpu_time_is_read_between_steps_from_the_fourth_on():
    clock = Clock()

    class Slow(FakeSystem):                    # each stat costs 10 ms of our CPU
        def first_stat(self, uid, gid, paths):
            for p in paths:
                self.stats_as.append(p)
                clock.now += 0.010
            return super().first_stat(uid, gid, ())

    s = Slow(passwd=[MAL])
    with pytest.raises(OverBudget) as e:
        decide(b"mallory-a-b-c-d-e-f-g-h-i@mx.example", C, s,
               budget=Budget(clock=clock, cpu_max=0.030))
    assert e.value.kind == CPU
    assert len(s.stats_as) in (6, 7)     # 4 stats unclocked, then 30 ms: not the 11 names


def test_running_out_is_temporary_logged_once_and_a_repeat_costs_no_search():
    s = FakeSystem(passwd=[MAL, JOE])
    costly = Costly(clock=Clock())
    legacy = get_reply(DASHES, C, s, costly=costly)
    assert legacy.reply is None and legacy.counted == "unanswered"
    assert legacy.lines == [b"mallory-" + b"-" * 240 + b"@mx.example not answered: temporary"
                            b" failure: too costly to decide (stats) searching /home/mallory."]
    searched = len(s.stats_as)
    again = get_reply(make_query(DASHES.upper()), C, s, costly=costly)
    assert again.reply == make_reply(TEMPORARY, 0, b"too costly, tried recently")
    assert len(s.stats_as) == searched                           # not one stat more
    # the address made the cost, not the home: mallory's others still answer
    assert get_reply(b"mallory@mx.example", C, s, costly=costly).reply == make_reply(
        DELIVERABLE, 9, b"mallory")


def test_a_home_whose_files_made_the_cost_is_held_for_every_address():
    clock = Clock()
    costly = Costly(hold=60, clock=clock)
    costly.over(b"mallory-x@mx.example", OverBudget(CPU, b"/home/mallory"))
    s = FakeSystem(passwd=[MAL, JOE], files={b"/home/joe/.qmail-y": 0})
    out = get_reply(make_query(b"mallory-other@mx.example"), C, s, costly=costly)
    assert out.reply == make_reply(TEMPORARY, 0, b"too costly, tried recently")
    assert [p for _, _, p in s.stats_as] == []
    assert get_reply(b"joe-y@mx.example", C, s, costly=costly).reply[0] == 10 << 4
    clock.now = 61                                          # held a minute, not for good
    assert get_reply(b"mallory-other@mx.example", C, s, costly=costly).reply is not None


def test_a_remote_sender_cannot_get_a_shared_home_held():
    """Long addresses at a virtual domain's home hold those addresses only."""
    costly = Costly(clock=Clock())
    costly.over(DASHES, OverBudget(STATS, b"/home/vpopmail/domains/x.example"))
    assert not costly.home(b"/home/vpopmail/domains/x.example")
    assert costly.address(DASHES.lower())


class Forwards(FakeSystem):
    """mallory's ~/.qmail-default forwards to n of her own -default
    addresses: without a ceiling, about n**4 decisions."""

    def __init__(self, n):
        super().__init__(passwd=[MAL], files={b"/home/mallory/.qmail-default": 0})
        self.content = b"".join(b"mallory-f%d\n" % i for i in range(n))   # 600: 7 KB
        self.reads = 0

    def deep_facts(self, uid, gid, home, path):
        self.reads += 1
        return DeepFacts(0o40755, 0o100644, self.content)

    def home_mode(self, uid, gid, home):
        return 0o40755


def test_deep_mode_judges_each_target_once():
    s = Forwards(10)
    b = Budget()
    v = decide(b"mallory-f0@mx.example", C, s, deep=Deep(), budget=b)
    assert v.code == TEMPORARY                  # every chain loops or runs past MAX_DEPTH
    assert s.reads == 1                                      # one file, read once
    assert b.used()["forwards"] == 10 and b.used()["decisions"] == 11    # each target once


@pytest.mark.parametrize("n", [25, 600])
def test_deep_mode_follows_at_most_forwards_max_targets(n):
    s = Forwards(n)
    b = Budget()
    with pytest.raises(OverBudget) as e:
        decide(b"mallory-f0@mx.example", C, s, deep=Deep(), budget=b)
    assert e.value.kind == "forwards" and e.value.home == b"/home/mallory"
    assert s.reads == 1
    assert b.used()["decisions"] == FORWARDS_MAX + 1


def test_deep_mode_without_a_budget_gets_one_of_its_own():
    s = Forwards(600)
    with pytest.raises(OverBudget):
        decide(b"mallory-f0@mx.example", C, s, deep=Deep())
    assert s.reads == 1


def test_a_home_whose_searches_take_more_than_its_share_is_held_a_while():
    from qmailverify.qmail.budget import BUSY_HOLD, HOME_SHARE
    clock = Clock()
    costly = Costly(clock=clock)
    for _ in range(4):                                    # 4 x 20 ms within one second
        costly.charge(b"/home/mallory", 0.02)
        costly.charge(b"/home/joe", 0.001)
    assert not costly.home(b"/home/mallory")              # 80 ms: within its share
    costly.charge(b"/home/mallory", HOME_SHARE)
    assert costly.home(b"/home/mallory") and not costly.home(b"/home/joe")
    clock.now = BUSY_HOLD + 0.5
    assert not costly.home(b"/home/mallory")


def test_a_long_query_knows_what_it_cost_and_a_short_one_reads_no_clock():
    clock = Clock()

    class Slow(FakeSystem):                    # each stat costs 1 ms of our CPU
        def first_stat(self, uid, gid, paths):
            for _ in paths:
                clock.now += 0.001
            return super().first_stat(uid, gid, ())

    s = Slow(passwd=[MAL])
    addr = b"mallory-" + b"-x" * 20 + b"@mx.example"
    b = Budget(clock=clock)
    decide(addr, C, s, budget=b)
    assert 0.015 < b.cost() < 0.025                       # read from the eighth step
    def never():
        raise AssertionError("the clock was read")
    short = Budget(clock=never)
    decide(b"mallory@mx.example", C, s, budget=short)
    assert short.cost() == 0.0


@given(st.binary(max_size=60).map(lambda b: b.replace(b"\0", b"")), st.sampled_from([b"-", b""]))
def test_the_budgeted_search_names_the_same_files_and_counts_each(ext, dash):
    from qmailverify.qmail.rules import dotqmail_paths
    b = Budget(limits={**LIMITS, STATS: 10 ** 6})
    assert list(dotqmail_paths(b"/h", dash, ext, b)) == list(dotqmail_paths(b"/h", dash, ext))
    assert b.used()[STATS] == len(list(dotqmail_paths(b"/h", dash, ext)))
