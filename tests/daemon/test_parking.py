"""parking.Parking in process: one fetch for every query parked on a key,
the wake-up pipe, the bound on waiting queries and on waiting time."""

import select
import threading
import time

from qmailverify.daemon.parking import Parked, Parking
from qmailverify.errors import NeedLookup


class SlowStore:
    def __init__(self):
        self.fills = []
        self.go = threading.Event()

    def fill(self, key):
        self.fills.append(key)
        self.go.wait(10)


def wait_ready(parking, timeout=10.0):
    deadline = time.monotonic() + timeout
    out = []
    while not out and time.monotonic() < deadline:
        select.select([parking.fd], [], [], 0.5)
        parking.drain()
        out = parking.ready()
    return out


def test_one_fetch_wakes_every_query_parked_on_its_key():
    store, parking = SlowStore(), Parking()
    now = time.monotonic()
    assert parking.park(NeedLookup(store, "k"), Parked(b"a", 1, now))
    assert parking.park(NeedLookup(store, "k"), Parked(b"b", 2, now))
    assert parking.ready() == [] and len(parking) == 2
    store.go.set()
    assert [p.datagram for p in wait_ready(parking)] == [b"a", b"b"]
    assert store.fills == ["k"] and len(parking) == 0


def test_waiting_is_bounded_in_number_and_in_time():
    store, parking = SlowStore(), Parking(park_max=3.0, max_parked=2)
    t0 = 100.0
    assert parking.park(NeedLookup(store, "k1"), Parked(b"a", 1, t0))
    assert parking.park(NeedLookup(store, "k2"), Parked(b"b", 1, t0 + 1))
    assert not parking.park(NeedLookup(store, "k3"), Parked(b"c", 1, t0 + 1))
    assert parking.timeout(t0 + 2, None) < 1.01
    assert parking.expired(t0 + 2.9) == []
    assert [p.datagram for p in parking.expired(t0 + 3)] == [b"a"]
    assert [p.datagram for p in parking.expired(t0 + 4)] == [b"b"]
    assert len(parking) == 0 and parking.timeout(t0 + 4, None) is None
    store.go.set()


class Lanes(SlowStore):
    """A store whose keys ("a", n) and ("b", n) are fetched in two lanes,
    as HubCache's are by far server."""

    def __init__(self):
        super().__init__()
        self.started = threading.Event()

    @staticmethod
    def lane(key):
        return key[0]

    def fill(self, key):
        self.fills.append(key)
        if key[0] == "a":                  # lane a: silent until told
            self.started.set()
            self.go.wait(10)


def test_a_stalled_lane_holds_up_only_its_own_queries():
    store, parking = Lanes(), Parking()
    now = time.monotonic()
    assert parking.park(NeedLookup(store, ("a", 1)), Parked(b"slow", 1, now))
    assert store.started.wait(10)          # lane a's fill is under way, and stalls
    assert parking.park(NeedLookup(store, ("b", 1)), Parked(b"fast", 2, now))
    assert [p.datagram for p in wait_ready(parking)] == [b"fast"]     # while a still stalls
    store.go.set()
    assert [p.datagram for p in wait_ready(parking)] == [b"slow"]


def test_a_lane_may_hold_a_share_of_the_parked_queries():
    store, parking = Lanes(), Parking(max_parked=8)
    now = time.monotonic()
    assert all(parking.park(NeedLookup(store, ("a", i)), Parked(b"a", i, now)) for i in range(2))
    assert not parking.park(NeedLookup(store, ("a", 9)), Parked(b"a", 9, now))
    assert parking.park(NeedLookup(store, ("b", 1)), Parked(b"b", 1, now))
    store.go.set()


class Domains(SlowStore):
    """A store whose fetches are charged to the key's domain, as
    MysqlStore's are."""

    @staticmethod
    def account(key):
        return key[1]


def test_an_account_starts_at_most_fills_fetches_a_second():
    from qmailverify.daemon.parking import FILLS
    store, parking = Domains(), Parking(max_parked=10000)
    t0 = 500.0
    flood = [parking.park(NeedLookup(store, (i, b"sql.example")), Parked(b"x", i, t0))
             for i in range(int(FILLS) + 50)]
    assert flood.count(True) == FILLS                   # the rest: temporary at once
    assert parking.park(NeedLookup(store, (0, b"other.example")), Parked(b"y", 1, t0))
    assert parking.park(NeedLookup(store, ("n", b"sql.example")), Parked(b"z", 1, t0 + 0.01))
    store.go.set()
