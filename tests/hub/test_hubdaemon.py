"""Hub mode through the installed daemon: a hub qmail-verify in front of a
far one (two processes, two demo trees, real UDP), far answers passed on for
the domains control/verifyhub maps and decided locally for the rest,
legacy and extended semantics, a silent far server that stalls nothing
else, the negative lifetime, the cache bound, SIGHUP and a bad file."""

import shutil
import signal
import socket
import threading
import time

import pytest
from helpers import env_for, run_once, wait_until, world_tempdir

from qmailverify.testing import tree
from qmailverify.tools import demo

pytestmark = pytest.mark.system   # runs the installed programs, as root

LOCAL = b"sales@shop.example"           # the hub's own virtual domain
FARONLY = b"alice-faronly@demo.example"  # a mailbox only the far tree has


@pytest.fixture
def hub_tree(demo_tree):
    """A second demo tree for the hub; demo_tree is the far one, with
    ~alice/.qmail-faronly, which the hub's own tree has not."""
    import os
    uid, gid = (os.getuid(), os.getgid()) if os.geteuid() else (7001, 7001)
    root = world_tempdir()
    paths = tree.build(demo.demo_spec(uid, gid), root)
    (demo_tree["root"] / "home" / "alice" / ".qmail-faronly").write_text("./Maildir/\n")
    yield paths
    shutil.rmtree(root)


def hub_file(paths, text: str):
    (paths["qmail"] / "control" / "verifyhub").write_text(text)


def far_and_hub(demo_tree, hub_tree, start, **extra):
    far = start(env_for(demo_tree))
    hub_file(hub_tree, f"# the far MX\ndemo.example:127.0.0.1:{far.port}\n")
    return far, start(env_for(hub_tree, **extra))


def stats(d) -> str:
    d.signal(signal.SIGALRM)
    return [line for line in d.wait_for("stats:").splitlines() if "stats:" in line][-1]


def test_a_hub_asks_for_its_domains_and_decides_the_rest_itself(demo_tree, hub_tree, start):
    far, hub = far_and_hub(demo_tree, hub_tree, start)
    for addr in (FARONLY, b"alice@demo.example", b"nobody-here@demo.example"):
        for extended in (False, True):
            assert hub.ask(addr, extended) == far.ask(addr, extended) is not None
    assert hub.ask(FARONLY) == b"\xa0alice-faronly"  # the hub's own tree would refuse it
    assert hub.ask(b"nobody-here@demo.example") == b"\xe1alias"
    assert hub.ask(LOCAL) == b"\xa0carol-sales"          # not mapped: the hub's own rules
    log = hub.wait_for("sales@shop.example permitted for carol-sales.")
    assert f"alice-faronly@demo.example permitted for alice-faronly (hub 127.0.0.1:{far.port})." in log
    assert f"nobody-here@demo.example denied (hub 127.0.0.1:{far.port})." in log
    line = stats(hub)
    assert " hub_hits=" in line and " hub_asked=3 " in line and " hub_silent=0 " in line


def test_a_silent_far_server_is_temporary_and_stalls_nothing_else(demo_tree, hub_tree, start):
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)    # takes queries, never answers
    mute.bind(("127.0.0.1", 0))
    far, hub = far_and_hub(demo_tree, hub_tree, start, VERIFY_HUB_TIMEOUT="0.5")
    try:
        hub_file(hub_tree, f"demo.example:127.0.0.1:{far.port}\n"
                           f"mute.example:127.0.0.1:{mute.getsockname()[1]}\n")
        hub.signal(signal.SIGHUP)
        hub.wait_for("controls reloaded.")
        slow = {}

        def ask(key, addr, extended):
            t0 = time.monotonic()
            reply = hub.ask(addr, True, timeout=8.0) if extended else hub.ask_unanswered(addr)
            slow[key] = (reply, time.monotonic() - t0)
        threads = [threading.Thread(target=ask, args=(i, b"u%d@mute.example" % i, i % 2 == 1))
                   for i in range(4)]
        for t in threads:
            t.start()
        fast, t0 = [], time.monotonic()
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 15:
            q0 = time.monotonic()
            assert hub.ask(LOCAL, timeout=5.0) == b"\xa0carol-sales"
            fast.append(time.monotonic() - q0)
        for t in threads:
            t.join(15)
        assert len(fast) >= 5 and sorted(fast)[len(fast) // 2] < 1.0, "local queries were held up"
        assert slow[0][0] is None and slow[2][0] is None          # legacy: silence
        for key in (1, 3):                                        # extended: temporary
            assert slow[key][0] in (b"\x02hub server did not answer",
                                    b"\x02hub server too slow")
            assert slow[key][1] < 4.5                             # under the client's 5 s
        far.stop()                                                # a stopped far daemon
        assert hub.ask_unanswered(b"alice@demo.example") is None
        assert hub.ask(b"alice@demo.example", True, timeout=4.0) == b"\x02hub server did not answer"
        assert " hub_silent=" in stats(hub) and " hub_silent=0 " not in stats(hub)
        log = hub.wait_for("alice@demo.example not answered: temporary failure: hub 127.0.0.1:")
        assert "denied (hub" not in log
    finally:
        mute.close()


def test_a_new_far_mailbox_is_accepted_after_the_negative_ttl(demo_tree, hub_tree, start):
    far, hub = far_and_hub(demo_tree, hub_tree, start, VERIFY_HUB_NEGATIVE_TTL="4")
    new = b"alice-brandnew@demo.example"
    assert hub.ask(new)[0] & 0x0F == 1
    (demo_tree["root"] / "home" / "alice" / ".qmail-brandnew").write_text("./Maildir/\n")
    t0 = time.monotonic()
    assert far.ask(new) == b"\xa0alice-brandnew"
    refused_still = hub.ask(new)[0] & 0x0F == 1                # kept for the negative TTL
    assert refused_still or time.monotonic() - t0 >= 4
    wait_until(lambda: hub.ask(new) == b"\xa0alice-brandnew", timeout=20)
    assert time.monotonic() - t0 < 20


def test_the_far_answers_kept_are_bounded(demo_tree, hub_tree, start):
    far, hub = far_and_hub(demo_tree, hub_tree, start, VERIFY_HUB_ENTRIES="2")
    for addr in (b"alice@demo.example", FARONLY, b"nobody-here@demo.example"):
        hub.ask(addr)
    hub.ask(b"nobody-here@demo.example")            # kept: from the cache
    hub.ask(b"alice@demo.example")                  # the oldest, forgotten: asked again
    line = stats(hub)
    assert " hub_hits=1 hub_misses=4 hub_asked=4 hub_silent=0 hub_entries=2 " in line


def test_sighup_switches_hub_mode_on_and_a_bad_file_keeps_the_old_map(demo_tree, hub_tree,
                                                                         start):
    far = start(env_for(demo_tree))
    hub = start(env_for(hub_tree))
    local = hub.ask(FARONLY)
    assert local[0] & 0x0F == 1                     # hub mode off: decided here
    assert "hub_" not in stats(hub)
    hub_file(hub_tree, f"demo.example:127.0.0.1:{far.port}\n")
    hub.signal(signal.SIGHUP)
    hub.wait_for("controls reloaded.")
    assert hub.ask(FARONLY) == b"\xa0alice-faronly"
    hub_file(hub_tree, "demo.example:127.0.0.1:99999\n")
    hub.signal(signal.SIGHUP)
    log = hub.wait_for("keeping the old ones.")
    assert "verifyhub: line 1" in log
    assert hub.ask(b"alice@demo.example") == b"\x90alice" and hub.ask(FARONLY) == b"\xa0alice-faronly"
    assert f"(hub 127.0.0.1:{far.port})" in hub.wait_for("alice@demo.example permitted for alice (hub")
    hub_file(hub_tree, "")
    hub.signal(signal.SIGHUP)
    wait_until(lambda: hub.log().count("controls reloaded.") == 2)
    assert hub.ask(FARONLY) == local                # off again


@pytest.mark.parametrize("text", ["demo.example\n", ":127.0.0.1\n", "demo.example:not-an-ip\n"])
def test_a_bad_hub_file_is_refused_at_start(demo_tree, text):
    hub_file(demo_tree, text)
    r = run_once(env_for(demo_tree))
    assert r.returncode == 111
    assert "verifyhub: line 1" in r.stderr and "Listening" not in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_a_held_far_server_costs_only_its_own_domains(demo_tree, hub_tree, start):
    """While one far server holds a query, another's domains are answered;
    the held one's answer, when it comes, still reaches its client."""
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", 0))
    held.settimeout(10)
    far, hub = far_and_hub(demo_tree, hub_tree, start)
    try:
        hub_file(hub_tree, f"demo.example:127.0.0.1:{far.port}\n"
                           f"held.example:127.0.0.1:{held.getsockname()[1]}\n")
        hub.signal(signal.SIGHUP)
        hub.wait_for("controls reloaded.")
        got = {}
        client = threading.Thread(target=lambda: got.update(
            slow=hub.ask(b"kim@held.example", True, timeout=8.0)))
        client.start()
        query, asker = held.recvfrom(100)                      # the hub asked, and waits
        assert query == b"kim@held.example\0QV2\0hub"         # the hub mark
        assert hub.ask(FARONLY, timeout=5.0) == b"\xa0alice-faronly"    # meanwhile
        held.sendto(b"\x90kim", asker)                         # now the held answer
        client.join(10)
        assert got["slow"] == b"\x90kim"
    finally:
        held.close()


def test_two_servers_that_map_a_domain_to_each_other_answer_temporary_once(
        demo_tree, hub_tree, start):
    a = start(env_for(demo_tree))
    hub_file(hub_tree, f"loop.example:127.0.0.1:{a.port}\n")
    b = start(env_for(hub_tree))
    hub_file(demo_tree, f"loop.example:127.0.0.1:{b.port}\n")
    a.signal(signal.SIGHUP)
    a.wait_for("controls reloaded.")
    assert a.ask(b"kim@loop.example", True) == b"\x02hub loop"
    assert a.ask(b"kim@loop.example", timeout=2.0) is None            # legacy: silence
    log = b.wait_for(f"kim@loop.example temporary failure: hub loop: a query from a hub for a"
                     f" domain mapped to 127.0.0.1:{a.port}.")
    assert log.count("kim@loop.example") == 2                   # once a query, never again
    assert a.wait_for("kim@loop.example not answered").count("kim@loop.example") == 2
