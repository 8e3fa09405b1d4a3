"""A short run of the fuzz harness (qmailverify/testing/fuzz/):
a few thousand inputs a target, drawn by its structure-aware mutator from
the seeds without atheris, so that every run of the suite checks the
same properties as the long runs; and proof that the stand-in system is
P1 and that the checks catch the faults they are there for."""

import io

import pytest

from qmailverify.testing.fuzz import runner as fuzz
from qmailverify.testing.fuzz import targets as ft

RUNS = {"decide": 4000, "datagram": 3000, "tcprules": 4000, "session": 3000}


@pytest.fixture(scope="module")
def world():
    return ft.load_world()


def test_the_stand_in_system_gives_every_p1_reply(world):
    assert len(world.cases) == 366
    assert ft.check_p1(world) == []


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_short_fuzz_run_breaks_no_property(target):
    out = io.StringIO()
    rc = fuzz.run_simple(target, RUNS[target] + len(ft.seeds(target, ft.load_world())),
                         seed=12, out=out)
    assert rc == 0, out.getvalue()
    assert "no property broken" in out.getvalue()


def test_the_mutator_makes_the_hostile_shapes():
    rng = fuzz.random.Random(5)
    made = [fuzz.mutate(b"kim@example.com", rng, fuzz.ADDRESS_TOKENS, 1024) for _ in range(3000)]
    for shape in (b"%", b"\0", b"..", b"\xff"):
        assert any(shape in m for m in made), shape
    assert max(map(len, made)) > 900


def test_a_stat_climbing_out_of_the_home_is_caught(world, monkeypatch):
    def unsafe(home, dash, ext, budget=None):    # forgets qmail-local's '.' to ':'
        yield home + b"/.qmail" + dash + ext
    monkeypatch.setattr("qmailverify.qmail.rules.dotqmail_paths", unsafe)
    with pytest.raises(AssertionError, match="not made safe"):
        ft.check_decide(b"\0kim-../../etc/passwd@example.com", world)


def test_a_raw_control_byte_in_the_log_is_caught(world, monkeypatch):
    monkeypatch.setattr("qmailverify.protocol.reply.clean", lambda data: data)
    ft.check_datagram(b"\0kim@example.com", world)
    with pytest.raises(AssertionError, match="raw control byte"):
        ft.check_datagram(b"\0kim\x1b[2J@example.com", world)


def test_trouble_reported_as_not_deliverable_is_caught(world, monkeypatch):
    from qmailverify.qmail import rules
    real = rules.passwd_lookup

    def swallowing(system, name, brk, budget=None):   # our trouble taken for "no such user"
        try:
            return real(system, name, brk, budget)
        except rules.Trouble:
            return None
    monkeypatch.setattr(rules, "passwd_lookup", swallowing)
    ft.check_decide(b"\0kim@example.com", world)
    with pytest.raises(AssertionError):
        ft.check_decide(bytes([ft.FAULTS.index("owner")]) + b"kim@example.com", world)
