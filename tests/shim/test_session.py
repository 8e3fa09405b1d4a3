"""The pure session core of qmail-logmsg, in process: half-closing
clients, qmail-smtpd's own view and failing closed, and the invariant
(the same decisions whatever way the bytes arrive) as hypothesis
properties, against the model of qmail-smtpd (qmailverify/testing/smtpd.py)
through session_harness.py's pump."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from session_harness import Harness

from qmailverify.protocol.verifyenv import parse_verify
from qmailverify.protocol.wire import TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.controlfile import ControlError
from qmailverify.shim.commands import CLOSING, DONE, Policy
from qmailverify.shim.ipme import IpmeError
from qmailverify.shim.session import Session
from qmailverify.testing.smtpd import ME, Rcpthosts

GOOD, BAD, TEMP = b"good@local.test", b"bad@local.test", b"temp@local.test"
VERDICTS = {BAD: UNDELIVERABLE, TEMP: TEMPORARY, b"bad@" + ME: UNDELIVERABLE,
            b"slow@local.test": "timeout"}
R550 = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n"
R554 = b"554 sorry, invalid mailbox name(s). (#5.1.1)\r\n"
LONG = b"x" * 1000 + b"@local.test"


def rcpt(addr: bytes) -> bytes:
    return b"RCPT TO:<" + addr + b">\r\n"


def mail(addr: bytes = b"s@remote.test") -> bytes:
    return b"MAIL FROM:<" + addr + b">\r\n"


BODY = b"Subject: t\r\n\r\nhello\r\n.\r\n"


def drive(pieces, verify=":", halfclose=True, **kw) -> Harness:
    """Each piece in a write of its own, everything settled after each,
    then (by default) a half-close."""
    h = Harness(verify, verdicts=VERDICTS, **kw)
    h.settle()
    for piece in pieces:
        h.send(piece)
        h.settle()
    if halfclose:
        h.end()
        h.settle()
    return h


def at_once(data: bytes, verify=":", halfclose=True, **kw) -> Harness:
    """The whole session in one write, then (by default) a half-close."""
    return drive([data], verify, halfclose, **kw)


def codes(h: Harness) -> list[bytes]:
    return [line[:3] for line in bytes(h.client).split(b"\r\n") if line[3:4] == b" "]


def messages(h: Harness) -> list[bytes]:
    return [line[3:].rstrip(b"\n") for line in h.logs]


# -- half-closing clients, qmail-smtpd's own view, failing closed --------------

def test_half_closed_session_immediate_mode_refuses_the_bad_recipient():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(BAD) + rcpt(GOOD) + b"DATA\r\n" + BODY + b"QUIT\r\n")
    assert codes(h) == [b"220", b"250", b"250", b"550", b"250", b"354", b"250", b"221"]
    assert rcpt(BAD) not in h.server
    assert h.smtpd.queued == [((GOOD,), BODY)]
    assert messages(h)[-1] == b"Session ended: QUIT"


def test_half_closed_session_deferred_mode_refuses_data_and_queues_nothing():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(BAD) + rcpt(GOOD) + b"DATA\r\n" + BODY + b"QUIT\r\n",
                verify="DEFER")
    assert codes(h)[:6] == [b"220", b"250", b"250", b"250", b"250", b"554"]
    assert b"DATA\r\n" not in h.server and h.smtpd.queued == []
    # the patch's words where they start, then the recipient that failed
    assert b"Unverified mailbox(es) at DATA time: <bad@local.test>" in messages(h)


def test_commands_after_the_end_of_input_are_still_checked_in_order():
    h = Harness(":", verdicts=VERDICTS)
    h.settle()
    h.send(b"HELO x\r\n" + mail() + rcpt(GOOD) + rcpt(BAD) + b"NOOP\r\n")
    h.end()                                       # before any reply came back
    assert not h.smtpd.eof and h.s.phase != CLOSING
    h.settle()
    assert codes(h) == [b"220", b"250", b"250", b"250", b"550", b"250"]
    assert h.asked == [GOOD, BAD] and h.smtpd.eof
    assert messages(h)[-1] == b"Session ended: dropped by the client"


def test_a_last_line_without_its_newline_is_never_forwarded():
    h = at_once(b"HELO x\r\n" + mail() + b"RCPT TO:<" + GOOD + b">")
    assert h.server == b"HELO x\r\n" + mail() and h.asked == []


def test_localiphost_rewrite_is_checked_as_qmail_smtpd_delivers():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(b"bad@[127.0.0.1]") + rcpt(b"bad@[10.1.2.3]"))
    assert h.asked == [b"bad@" + ME]              # the other is not local: rcpthosts refuses
    assert codes(h)[3:] == [b"550", b"553"]
    assert b"Recipient <bad@local.test>" in messages(h)


def test_ipme_failure_is_421_and_the_end():
    def broken(ip):
        raise IpmeError("no interfaces")
    h = at_once(b"HELO x\r\n" + mail() + rcpt(b"a@[127.0.0.1]") + b"NOOP\r\n",
                ipme=broken)
    assert bytes(h.client).endswith(b"421 unable to figure out my IP addresses (#4.3.0)\r\n")
    assert b"NOOP" not in h.server and b"RCPT" not in h.server


def test_data_answered_503_leaves_the_transaction_open():
    h = at_once(b"HELO x\r\n" + mail() + b"DATA\r\n" + rcpt(BAD))
    assert codes(h)[3:] == [b"503", b"550"] and h.asked == [BAD]


def test_mail_answered_555_changes_nothing():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(GOOD) + mail(LONG) + rcpt(BAD))
    assert codes(h)[3:] == [b"250", b"555", b"550"]
    h = at_once(b"HELO x\r\n" + mail() + rcpt(BAD) + mail(LONG) + b"DATA\r\n", verify="DEFER")
    assert codes(h)[3:] == [b"250", b"555", b"554"]        # the failure was not cleared
    assert b"DATA" not in h.server


def test_rcpt_before_mail_is_qmail_smtpds_503_and_not_verified():
    h = at_once(b"HELO x\r\n" + rcpt(BAD) + mail(LONG) + rcpt(BAD))
    assert codes(h)[2:] == [b"503", b"555", b"503"] and h.asked == []


def test_lines_over_a_mebibyte_are_read_and_decided():
    pad = b" " * (2 << 20)
    h = at_once(b"HELO x\r\n" + mail() + b"RCPT TO:<" + BAD + b">" + pad + b"\r\n")
    assert codes(h)[3:] == [b"550"] and h.asked == [BAD]
    h = at_once(b"HELO x\r\n" + mail() + rcpt(BAD) + b"DATA" + pad + b"\r\n", verify="DEFER")
    assert codes(h)[3:] == [b"250", b"554"] and b"DATA" not in h.server


def test_a_long_line_arriving_in_pieces_is_decided_once_whole():
    h = Harness(":", verdicts=VERDICTS)
    h.settle()
    h.send(b"HELO x\r\n" + mail() + b"RCPT TO:<" + BAD + b">")
    for _ in range(40):
        assert h.s.wants_input()
        h.send(b" " * 65536)
        h.settle()
    h.send(b"\r\n")
    h.settle()
    assert codes(h)[-1] == b"550" and b"RCPT" not in h.server


def test_no_answer_is_451_and_nothing_after_is_forwarded():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(b"slow@local.test") + rcpt(GOOD) + b"NOOP\r\n")
    assert bytes(h.client).endswith(b"451 qv temporary failure (#4.3.0)\r\n")
    assert h.server == b"HELO x\r\n" + mail()
    assert messages(h)[-2:] == [b"Timeout (no response from verification server)",
                                b"Session ended: verification failure"]


def test_qmail_smtpd_gone_while_a_check_is_pending_drops_the_command():
    h = Harness(":", verdicts=VERDICTS)
    h.settle()
    h.send(b"HELO x\r\n" + mail() + rcpt(GOOD) + b"NOOP\r\n")
    while h.question is None:
        h.move(h.moves()[0])
    h.smtpd.end()                                 # it dies (its timeout, say)
    h.s.server_end()
    h.collect()
    h.move("answer")
    assert b"RCPT" not in h.server and h.s.phase == DONE
    h.send(b"RSET\r\n")                           # the client still sends: dropped
    assert b"RSET" not in h.server


def test_unreadable_morercpthosts_during_a_rcpt_is_421_and_the_end():
    class Broken:
        def allowed(self, addr):
            raise ControlError("unable to read control/morercpthosts.cdb: input/output error")
    h = at_once(b"HELO x\r\n" + mail() + rcpt(GOOD) + b"NOOP\r\n", rcpthosts=Broken())
    assert bytes(h.client).endswith(b"250 ok\r\n421 unable to read controls (#4.3.0)\r\n")
    assert b"RCPT" not in h.server and b"NOOP" not in h.server
    assert messages(h)[-2:] == [
        b"unable to read controls (unable to read control/morercpthosts.cdb_ input/output error)",
        b"Session ended: unable to read controls"]


def test_relayclient_and_non_local_domains_are_not_verified():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(BAD) + rcpt(b"x@remote.test"), relayclient=True)
    assert codes(h)[3:] == [b"250", b"250"] and h.asked == []


def test_starttls_makes_the_rest_opaque_and_auth_lines_pass_through():
    s = Session(Policy(b"P: ", parse_verify(":"), rcpthosts=Rcpthosts()))
    s.start()
    s.server_data(b"220 x ESMTP\r\n")
    s.client_data(b"AUTH PLAIN\r\nsecret\r\nMAIL FROM:<a@b>\r\n")
    assert bytes(s.to_server) == b"AUTH PLAIN\r\n"
    s.server_data(b"334 \r\n")
    assert bytes(s.to_server) == b"AUTH PLAIN\r\nsecret\r\n"
    s.server_data(b"235 ok\r\n")
    s.server_data(b"250 ok\r\n")
    s.client_data(rcpt(BAD))
    assert s.ask is None and s.to_server.endswith(rcpt(BAD))      # authenticated: a relay client
    s.server_data(b"250 ok\r\n")
    s.client_data(b"STARTTLS\r\n\x16\x03 raw\nbytes")
    s.server_data(b"220 go\r\n\x17 tls")
    assert s.to_server.endswith(b"STARTTLS\r\n\x16\x03 raw\nbytes")
    assert s.to_client.endswith(b"220 go\r\n\x17 tls")


# -- the invariant ---------------------------------------------------------------

ADDRS = [GOOD, BAD, TEMP, b"x@remote.test", b"bad@[127.0.0.1]", b"good@[0.0.0.0]", LONG]
COMMAND = st.one_of(
    st.sampled_from([b"HELO x\r\n", b"EHLO y\r\n", b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n",
                     b"VRFY a\r\n", b"rcpt to:<bad@local.test>\r\n"]),
    st.sampled_from([mail(), mail(LONG), mail(b"")]),
    st.sampled_from(ADDRS).map(rcpt),
    st.just(b"DATA\r\n" + BODY),
    st.just(b"DATA\r\nbare\nlf\r\n.\r\n"),
)
SESSIONS = st.lists(COMMAND, max_size=14).map(lambda cs: [b"HELO x\r\n", mail()] + cs)
MODES = st.sampled_from([":", "DEFER", None, ""])


def units(session: list[bytes]) -> list[bytes]:
    """The client's writes in a turn-by-turn session (a body after its DATA)."""
    out = []
    for c in session:
        out += [b"DATA\r\n", c[6:]] if c.startswith(b"DATA\r\n") else [c]
    return out


def turn_by_turn(session, verify, relay, halfclose, **kw):
    return drive(units(session), verify, halfclose, relayclient=relay, **kw)


def any_order(session, verify, relay, halfclose, cuts, seed, drop_at=None, **kw):
    data = b"".join(session)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:])]
    rng = random.Random(seed)
    h = Harness(verify, relayclient=relay, verdicts=VERDICTS, **kw)
    i = steps = 0
    ended = False
    while True:
        options = h.moves()
        if i < len(chunks):
            options.append("client")
        elif halfclose and not ended:
            options.append("end")
        if not options:
            return h
        steps += 1
        if steps == drop_at:
            h.s.client_gone()
            h.collect()
            drop_at = None
            i, ended = len(chunks), True
            continue
        move = rng.choice(options)
        if move == "client":
            h.send(chunks[i])
            i += 1
        elif move == "end":
            h.end()
            ended = True
        else:
            h.move(move, rng)


@settings(max_examples=300, deadline=None)
@given(SESSIONS, MODES, st.booleans(), st.booleans(), st.lists(st.integers(0, 10 ** 6)),
       st.integers())
def test_same_decisions_whatever_way_the_bytes_arrive(session, verify, relay, halfclose, cuts, seed):
    ref = turn_by_turn(session, verify, relay, halfclose)
    got = any_order(session, verify, relay, halfclose, cuts, seed)
    assert got.result() == ref.result()
    assert got.smtpd.queued == ref.smtpd.queued


@settings(max_examples=200, deadline=None)
@given(SESSIONS, MODES, st.booleans(), st.lists(st.integers(0, 10 ** 6)), st.integers(),
       st.integers(1, 60))
def test_a_dropped_connection_forwards_only_what_was_decided(session, verify, relay, cuts, seed,
                                                            drop_at):
    ref = turn_by_turn(session, verify, relay, True)
    got = any_order(session, verify, relay, False, cuts, seed, drop_at)
    assert ref.server.startswith(got.server)              # a prefix: each part checked alike
    assert all(q in ref.asked for q in got.asked)
    assert got.smtpd.eof or got.smtpd.exited or got.s.phase != DONE


def test_input_held_back_while_a_reply_is_owed_never_merges_later_lines(monkeypatch):
    """Found by red-teaming: with DATA's 354 still owed and a full buffer
    holding no newline, the relay's wants_input() remembered how far it had
    scanned; the body then left the buffer, and the stale offset merged the
    next commands into one line forwarded unchecked.  Every command after
    the body must still be decided on its own."""
    import qmailverify.shim.session as core
    monkeypatch.setattr(core, "HIGH_WATER", 64)
    big = b"X" * 300 + b"\r\n.\r\n"
    for verify, refusal in ((":", b"550"), ("DEFER", b"554")):
        h = Harness(verify, verdicts=VERDICTS)
        h.settle()
        h.send(b"HELO x\r\n" + mail() + rcpt(GOOD) + b"DATA\r\n")
        while (h.s.owed or ("",))[0] != "data":     # DATA is with qmail-smtpd,
            h.move(h.moves()[0])
        h.send(b"X" * 300)                          # its 354 not yet read: the
        h.settle()                                  # body's start waits unseen
        h.send(b"\r\n.\r\n" + mail() + rcpt(BAD) + b"DATA\r\n" + big + b"QUIT\r\n")
        h.settle()
        h.end()
        h.settle()
        assert BAD in h.asked, verify
        assert refusal in codes(h), (verify, codes(h))
        assert all(BAD not in rcpts for rcpts, _ in h.smtpd.queued), verify


# -- temporary answers, soft rollout, harvest limits ---------------------------

from qmailverify.protocol.client import Answer  # noqa: E402
from qmailverify.protocol.verifyenv import ENFORCE, LOG, SOFT, Harvest, rollout_of  # noqa: E402

R451RCPT = b"451 qv temporary failure, try again later (#4.3.0)\r\n"
SESSION = b"HELO x\r\n" + mail() + rcpt(BAD) + rcpt(TEMP) + rcpt(GOOD) + b"DATA\r\n" + BODY \
    + b"QUIT\r\n"


def test_a_temporary_answer_is_451_for_that_recipient_and_the_session_goes_on():
    h = at_once(SESSION)
    assert codes(h) == [b"220", b"250", b"250", b"550", b"451", b"250", b"354", b"250", b"221"]
    assert R451RCPT in h.client and rcpt(TEMP) not in h.server
    assert h.smtpd.queued == [((GOOD,), BODY)]
    assert b"Temporary failure at RCPT time (scripted)" in messages(h)
    assert messages(h)[-1] == b"Session ended: QUIT"


def test_a_temporary_answer_in_deferred_mode_is_451_at_rcpt_and_data_goes_on():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(TEMP) + rcpt(GOOD) + b"DATA\r\n" + BODY, "DEFER")
    assert codes(h) == [b"220", b"250", b"250", b"451", b"250", b"354", b"250"]
    assert h.smtpd.queued == [((GOOD,), BODY)]


def test_a_socket_error_still_ends_the_session():
    h = Harness(":", verdicts=VERDICTS)
    h.settle()
    h.send(b"HELO x\r\n" + mail() + rcpt(GOOD) + b"NOOP\r\n")
    while h.question is None:
        h.move(h.moves()[0])
    h.s.answer(Answer(TEMPORARY, reason="connection refused"))      # made here, not the daemon's
    h.collect()
    h.settle()
    assert bytes(h.client).endswith(b"451 qv temporary failure (#4.3.0)\r\n")
    assert b"NOOP" not in h.server
    assert messages(h)[-2:] == [b"temporary failure (connection refused)",
                                b"Session ended: verification failure"]


def test_soft_rollout_answers_450_at_rcpt_and_451_at_data():
    h = at_once(SESSION, rollout=SOFT)
    assert codes(h)[3] == b"450" and rcpt(BAD) not in h.server
    assert b"Unverified mailbox at RCPT time (soft: 450): <bad@local.test>" in messages(h)
    h = at_once(SESSION, "DEFER", rollout=SOFT)
    assert codes(h)[3:7] == [b"250", b"250", b"250", b"451"]   # failed: the rest not asked
    assert b"DATA\r\n" not in h.server and h.smtpd.queued == []
    assert b"Unverified mailbox(es) at DATA time (soft: 451): <bad@local.test>" in messages(h)


def test_log_only_rollout_logs_and_accepts_in_both_modes():
    for verify, when in ((":", b"RCPT"), ("DEFER", b"DATA")):
        h = at_once(SESSION, verify, rollout=LOG)
        assert b"550" not in h.client and b"554" not in h.client and b"451" not in h.client
        assert h.smtpd.queued == [((BAD, TEMP, GOOD), BODY)]
        assert b"Would refuse <" + BAD + b"> at " + when + b" time (log-only)" in messages(h)
        assert (b"Would defer <" + TEMP + b"> at RCPT time (log-only): temporary failure "
                b"(scripted)") in messages(h)


def test_an_unknown_rollout_value_enforces_with_a_warning():
    mode, warning = rollout_of("sfot")
    assert mode == ENFORCE and warning == "warning: unknown VERIFY_ROLLOUT 'sfot': enforcing"
    assert rollout_of(None) == (ENFORCE, "") and rollout_of("log") == (LOG, "")
    h = Harness(":", verdicts=VERDICTS, rollout=mode, notes=(warning,))
    assert messages(h)[0] == warning.encode()


def harvester(n_bad: int) -> bytes:
    return b"HELO x\r\n" + mail() + b"".join(rcpt(b"bad%d@local.test" % i) for i in range(n_bad))


HARVEST_VERDICTS = {**VERDICTS, **{b"bad%d@local.test" % i: UNDELIVERABLE for i in range(20)}}


def test_harvest_limits_delay_every_rcpt_then_421():
    h = Harness(":", verdicts=HARVEST_VERDICTS, harvest=Harvest(2, 5, 0.5, 1.0))
    h.settle()
    h.send(harvester(3) + rcpt(GOOD) + harvest_rest())
    h.settle()
    assert h.holds == [0.5, 0.5, 1.0]              # the 3rd refusal, the good one, the 4th
    assert codes(h)[-3:] == [b"250", b"550", b"421"]
    assert messages(h)[-2:] == [b"Harvest limit: 5 refused recipients from this IP",
                                b"Session ended: harvest limit"]
    assert b"Delaying RCPT reply 0.5s (3 refused recipients from this IP)" in messages(h)
    assert b"bad4@" not in h.server and b"NOOP" not in h.server


def harvest_rest() -> bytes:
    return rcpt(b"bad3@local.test") + rcpt(b"bad4@local.test") + b"NOOP\r\n"


def test_a_client_without_refusals_is_never_held_and_counts_carry_across_sessions():
    h = at_once(b"HELO x\r\n" + mail() + rcpt(GOOD) * 5, harvest=Harvest(0, 3))
    assert h.holds == [] and codes(h).count(b"250") == 7
    h = at_once(b"HELO x\r\n" + mail() + rcpt(GOOD), harvest=Harvest(0, 3), refusals=2)
    assert h.holds == [2.0]                         # the count the daemon kept
    h = at_once(b"HELO x\r\n" + mail() + rcpt(GOOD), harvest=Harvest(0, 3), refusals=3)
    assert codes(h)[-1] == b"421"


def test_without_harvest_limits_no_ip_is_sent():
    assert Harness(":").s.policy.ip is None
    assert Harness(":", harvest=Harvest(None, 3)).s.policy.ip == b"192.0.2.9"


NEW_MODES = st.sampled_from([(ENFORCE, None), (SOFT, None), (LOG, None),
                             (ENFORCE, Harvest(0, 3, 0.1)), (SOFT, Harvest(1, None, 0.1)),
                             (LOG, Harvest(1, 4, 0.1))])


@settings(max_examples=300, deadline=None)
@given(SESSIONS, st.sampled_from([":", "DEFER"]), NEW_MODES, st.booleans(), st.booleans(),
       st.lists(st.integers(0, 10 ** 6)), st.integers())
def test_same_decisions_whatever_way_the_bytes_arrive_in_the_new_modes(
        session, verify, new, relay, halfclose, cuts, seed):
    kw = dict(rollout=new[0], harvest=new[1])
    ref = turn_by_turn(session, verify, relay, halfclose, **kw)
    got = any_order(session, verify, relay, halfclose, cuts, seed, **kw)
    assert got.result() == ref.result()
    assert got.smtpd.queued == ref.smtpd.queued
    assert got.holds == ref.holds                   # the same holds asked, whenever released


@settings(max_examples=150, deadline=None)
@given(SESSIONS, st.sampled_from([":", "DEFER"]), NEW_MODES, st.lists(st.integers(0, 10 ** 6)),
       st.integers(), st.integers(1, 60))
def test_a_dropped_connection_in_the_new_modes_forwards_only_what_was_decided(
        session, verify, new, cuts, seed, drop_at):
    kw = dict(rollout=new[0], harvest=new[1])
    ref = turn_by_turn(session, verify, False, True, **kw)
    got = any_order(session, verify, False, False, cuts, seed, drop_at, **kw)
    assert ref.server.startswith(got.server)


def test_a_command_line_holding_a_newline_fails_closed():
    """The backstop behind one line, one command: were the scan ever to
    skip a newline, the merged line is refused, never forwarded."""
    h = Harness(":", verdicts=VERDICTS)
    h.settle()
    h.send(b"HELO x\r\n")
    h.settle()
    h.s.scanned = 30                    # a stale offset past the next newline
    h.send(mail() + rcpt(BAD) + b"QUIT\r\n")
    h.settle()
    assert codes(h)[-1] == b"451"
    assert rcpt(BAD) not in h.server and BAD not in h.asked
    assert h.s.phase in (CLOSING, DONE)
