"""The daemon's queue of read-but-unanswered datagrams (daemon/fairqueue.py):
one noisy sender cannot crowd out a quiet one, and nothing is dropped
below the bound."""

from collections import Counter, deque

from hypothesis import given, settings
from hypothesis import strategies as st

from qmailverify.daemon.fairqueue import FairQueue

FLOOD, PROBE = ("192.0.2.9", 4000), ("127.0.0.1", 5000)


def test_a_quiet_sender_is_answered_in_the_first_batch_whatever_a_flood_queued():
    q = FairQueue(bound=100)
    for i in range(500):
        q.put(b"flood%d" % i, FLOOD)
    q.put(b"kim@example.com", PROBE)
    first = q.take(2)
    assert (b"kim@example.com", PROBE) in first
    assert q.shed == 401 and len(q) == 98


def test_the_flood_loses_its_oldest_and_the_quiet_sender_nothing():
    q = FairQueue(bound=3)
    for i in range(5):
        q.put(b"f%d" % i, FLOOD)
    q.put(b"probe", PROBE)
    assert q.take(10) == [(b"f3", FLOOD), (b"probe", PROBE), (b"f4", FLOOD)]
    assert q.shed == 3


def test_below_the_bound_a_burst_from_one_sender_is_kept_whole_and_in_order():
    q = FairQueue(bound=64)
    for i in range(64):
        q.put(b"%d" % i, PROBE)
    assert [d for d, _ in q.take(100)] == [b"%d" % i for i in range(64)]
    assert q.shed == 0 and len(q) == 0


def test_when_every_sender_has_one_the_newcomer_is_the_one_dropped():
    q = FairQueue(bound=2)
    q.put(b"a", ("10.0.0.1", 1))
    q.put(b"b", ("10.0.0.2", 1))
    q.put(b"c", ("10.0.0.3", 1))
    assert q.take(5) == [(b"a", ("10.0.0.1", 1)), (b"b", ("10.0.0.2", 1))]
    assert q.shed == 1


ops = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 5), st.integers(1, 30)),   # peer, how many
    st.tuples(st.just("take"), st.integers(1, 20), st.just(0))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(0, 40))
def test_the_queue_is_fair_bounded_and_loses_nothing_it_does_not_count(ops, bound):
    q = FairQueue(bound=bound)
    model: dict = {}                     # peer -> deque of what should be waiting
    serial = 0
    put = taken = 0
    for op, a, b in ops:
        if op == "put":
            for _ in range(b):
                data = b"%d" % serial
                serial += 1
                lens_before = {p: len(d) for p, d in model.items() if d}
                shed_before = q.shed
                q.put(data, a)
                put += 1
                model.setdefault(a, deque()).append(data)
                if q.shed != shed_before:
                    # the victim: one with the longest queue (before this datagram
                    # came), losing its oldest; or, every sender having one, the newcomer
                    lens = dict(lens_before)
                    lens[a] = lens.get(a, 0) + 1
                    longest = max(lens.values())
                    if longest > 1:
                        victims = [p for p, n in lens.items() if n == longest]
                        hit = [p for p in victims if model[p][0] not in q.waiting.get(p, ())]
                        assert len(hit) == 1, "exactly one longest queue lost its oldest"
                        model[hit[0]].popleft()
                    else:
                        assert model[a].pop() == data
                assert len(q) == sum(len(d) for d in model.values()) <= bound
        else:
            waiting_peers = [p for p, d in model.items() if d]
            got = q.take(a)
            taken += len(got)
            peers = [p for _, p in got]
            first_round = peers[:len(waiting_peers)]
            assert len(set(first_round)) == len(first_round), "one each before a second"
            for data, peer in got:
                assert model[peer].popleft() == data, "each sender's oldest first"
    assert put == taken + q.shed + len(q)
    left = Counter()
    for peer, d in model.items():
        left[peer] = len(d)
    assert sum(left.values()) == len(q)


def test_turns_share_time_not_queries():
    """A sender whose query cost 5 turns of time lets the others take 5
    turns before it is served again, however its queries are spread."""
    from qmailverify.daemon.fairqueue import TURN
    q = FairQueue()
    for i in range(10):
        q.put(b"costly%d" % i, "mallory")
        q.put(b"cheap%d" % i, "alice")
    first = q.take(2)
    assert first == [(b"costly0", "mallory"), (b"cheap0", "alice")]
    q.charge("mallory", 5 * TURN)
    q.charge("alice", TURN / 10)                      # below a turn: no debt
    order = [peer for _, peer in q.take(7)]
    assert order == ["alice"] * 5 + ["mallory", "alice"]


def test_a_sender_alone_is_served_whatever_it_owes():
    from qmailverify.daemon.fairqueue import TURN
    q = FairQueue()
    q.put(b"a", "mallory")
    q.charge("mallory", 100 * TURN)
    assert q.take(1) == [(b"a", "mallory")]
