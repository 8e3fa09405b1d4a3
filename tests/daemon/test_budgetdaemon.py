"""The work budget through the installed daemon: an address whose .qmail
search is longer than the budget, and a -default file that forwards to
600 of its own addresses (deep mode), are answered "temporary" (silence
to a legacy client, status 2 to an extended one), logged once, and asked
again cost no search; every other address is answered as before."""

import os

import pytest
from helpers import env_for

DASHES = b"kim-" + b"-" * 240 + b"@example.com"       # 243 .qmail names to stat


@pytest.mark.system
def test_a_search_longer_than_the_budget_is_temporary_and_a_repeat_costs_nothing(p1_tree, start):
    d = start(env_for(p1_tree))
    assert d.ask(DASHES, extended=True) == b"\x02too costly to decide (stats)"
    assert d.ask(DASHES, extended=True) == b"\x02too costly, tried recently"
    assert d.ask(b"kim@example.com") == b"\x90kim"            # kim's other addresses
    log = d.wait_for("kim@example.com permitted for kim.")
    home = os.fsdecode(p1_tree["root"]) + "/home/kim"
    assert log.count(f" temporary failure: too costly to decide (stats) searching {home}.") == 1
    assert log.count(" temporary failure: too costly, tried recently.") == 1
    assert d.ask(DASHES, timeout=2.0) is None                          # legacy: silence
    d.wait_for("not answered: temporary failure: too costly, tried recently.")


@pytest.mark.system
def test_a_default_file_forwarding_to_600_of_its_own_addresses_is_temporary(p1_tree, start):
    home = p1_tree["root"] / "home" / "kim"
    default = home / ".qmail-default"
    default.write_bytes(b"".join(b"kim-f%d\n" % i for i in range(600)))    # 7 KB
    os.chown(default, 2010, 2010)
    d = start(env_for(p1_tree, VERIFY_DEEP="1"))
    first = d.ask(b"kim-f0@example.com", extended=True)
    assert first in (b"\x02too costly to decide (forwards)",       # 24 followed, each once
                     b"\x02too costly to decide (cpu)")            # or 30 ms, on a slow day
    # the file made the cost: every address that searches kim's home waits a while
    assert d.ask(b"kim-other@example.com", extended=True) == \
        b"\x02too costly, tried recently"
    assert d.ask(b"pat@example.com", extended=True) == b"\x90pat"
    d.wait_for("pat@example.com permitted for pat.")
