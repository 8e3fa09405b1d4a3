"""What the fuzz harness checks, one function a target: the properties
live here, apart from the runner, so that the test suite can run them on
planted faults.

Each check_<target>(data, world) runs one input and raises AssertionError
when a property breaks (any other exception escaping is a failure too):

  decide    data[0] picks a system (world.FAULTS), data[1:] is the
            address given to rules.decide()
  datagram  data[0] picks a system, data[1:] is one datagram given to the
            daemon's get_reply(), its lines logged into memory as
            the daemon's Log writes them
  tcprules  data is a rules file given to tcprules.parse(), records() and
            lookup()
  session   the shim's session core (session.py says what is checked)
"""

import io

from qmailverify.daemon.answer import get_reply
from qmailverify.daemon.log import Log
from qmailverify.protocol.wire import (
    DELIVERABLE,
    REPLY_MAX,
    TEMPORARY,
    UNDELIVERABLE,
    make_reply,
    parse_query,
    parse_reply,
)
from qmailverify.qmail import tcprules
from qmailverify.qmail.rules import decide
from qmailverify.testing.fuzz.session import check_session, session_seeds
from qmailverify.testing.fuzz.world import (  # noqa: F401
    FAULTS,
    FakeSystem,
    World,
    load_world,
    system_for,
)
from qmailverify.testing.fuzz.world import seeds as world_seeds


def check_stats(system: FakeSystem, nul: bool = False) -> None:
    """Every stat is H/.qmail-T made as the owner of H, a home of the
    fixture, where T (from the query) holds no '.', no upper case and no
    NUL (unless nul: decide() was given one; a datagram's address ends at
    its first NUL): no '..' can take a stat out of H, and the stat reaches
    nothing but H's .qmail-* entries (and, when one is a folder, what is
    in it)."""
    homes = system.world.ids
    for uid, gid, path in system.stats:
        home = next((h for h in homes if path.startswith(h + b"/.qmail-")), None)
        assert home is not None, f"stat outside every home: {path!r}"
        assert homes[home] == (uid, gid), f"stat of {path!r} as {uid}/{gid}"
        tail = path[len(home) + len(b"/.qmail-"):]
        assert b"." not in tail and (nul or b"\0" not in tail) and tail == tail.lower(), \
            f"stat of {path!r}: the extension was not made safe"


def check_verdict(v, system: FakeSystem) -> None:
    assert v.code in (DELIVERABLE, UNDELIVERABLE, TEMPORARY), v
    assert 1 <= v.position <= 14 and v.position != 3, v
    # fail closed: our trouble is always "temporary", and nothing else is
    assert (v.code == TEMPORARY) == system.raised, (v, system.fault)
    if v.code == TEMPORARY:
        assert v.position in (6, 7, 11, 12) and v.reason, v
    if v.code == UNDELIVERABLE:
        assert v.position in (8, 14) or (v.position == 12 and system.ff is not None), v
    if v.stat_errno:
        assert v.code == DELIVERABLE and v.position in (11, 13), v
        assert v.stat_path in [path for _, _, path in system.stats], v
    assert len(make_reply(v.code, v.position, v.user or b"")) <= REPLY_MAX


def check_decide(data: bytes, world: World) -> None:
    system, addr = system_for(world, data)
    system.begin_query()
    v = decide(addr, world.controls, system, world.alias)
    check_verdict(v, system)
    check_stats(system, b"\0" in addr)


def answer(world: World, system: FakeSystem, datagram: bytes) -> tuple[bytes | None, bytes]:
    """The daemon's reply to datagram, and its log as the daemon writes it."""
    outcome = get_reply(datagram, world.controls, system, world.alias)
    stream = io.BytesIO()
    log = Log(stream)
    for line in outcome.lines:
        log.line(line)
    return outcome.reply, stream.getvalue()


def check_datagram(data: bytes, world: World) -> None:
    system, datagram = system_for(world, data)
    reply, log = answer(world, system, datagram)
    query = parse_query(datagram)
    if query is None:
        assert reply is None and log == b"", (reply, log)
        return
    assert log.endswith(b"\n"), log
    lines = log[:-1].split(b"\n")
    for line in lines:
        assert line.startswith(b"qmail-verify: "), line
        assert all(32 <= b <= 126 for b in line), f"raw control byte in log line {line!r}"
        assert b"internal error" not in line, line
    assert len(lines) == 1 or (len(lines) == 2 and b": Unable to stat " in lines[0]), lines
    # our trouble: a fault of the system, or a query over its work budget
    # (qmail/budget.py: a long extension's search, say), temporary by design
    ours = system.raised or b" temporary failure: too costly" in lines[-1]
    if reply is None:                  # only our trouble, to a legacy client
        assert ours and not query.extended, (datagram, lines)
        return
    assert 1 <= len(reply) <= REPLY_MAX, reply
    r = parse_reply(reply)
    assert (r.code == TEMPORARY) == ours, (reply, system.fault)
    assert r.code != TEMPORARY or query.extended, reply
    assert 1 <= r.position <= 14 or (r.position == 0 and ours), reply
    check_stats(system)


def check_tcprules(data: bytes, world: World = None) -> None:
    """parse() raises nothing but RulesError, with a printable message; it
    reads lines as tcprules does (ended by '\\n' only, every byte kept); a
    file it accepts gives records() whose every key leads lookup() back to
    the first rule that made it, with that rule's deny and instructions
    (for instructions without NUL: tcprules' record is NUL-separated)."""
    try:
        parsed = tcprules.parse(data)
        recs = tcprules.records(parsed)
    except tcprules.RulesError as e:
        assert all(32 <= ord(ch) <= 126 for ch in str(e)), f"unprintable message {str(e)!r}"
        return
    lines = [item.line if isinstance(item, tcprules.Rule) else item for item in parsed]
    assert b"".join(lines) == data
    assert all(b"\n" not in line[:-1] for line in lines), f"a line split at other than LF: {lines!r}"
    table, first = {}, {}
    for key, value in recs:
        table.setdefault(key, value)
    for item in parsed:
        if isinstance(item, tcprules.Rule):
            for key in tcprules.keys(item.address, item.lineno):
                first.setdefault(key, item)
    assert set(first) == set(table)
    for key, rule in first.items():
        tries = [tcprules.lookup(table.get, key)]
        at = key.find(b"@", 1)
        if at > 0:                      # the same key, as remote info @ address
            tries.append(tcprules.lookup(table.get, key[at + 1:], None, key[:at]))
        for env in tries:
            assert env.key == key, (key, env)
            if any(b"\0" in i.name + i.value for i in rule.instructions):
                continue
            assert env.deny == rule.deny, (key, env)
            assert env.env == {i.name: i.value for i in rule.instructions}, (key, env)


def check_p1(world: World) -> list:
    """The model's replies that differ from P1's recorded ones (none, if
    the stand-in system is faithful)."""
    wrong = []
    for query, want in world.cases:
        got, _ = answer(world, FakeSystem(world), query)
        if got != want:
            wrong.append((query, want, got))
    return wrong


def seeds(target: str, world: World) -> list[bytes]:
    return session_seeds() if target == "session" else world_seeds(target, world)


CHECKS = {"decide": check_decide, "datagram": check_datagram, "tcprules": check_tcprules,
          "session": check_session}
