"""The shim's fuzz target (qmailverify/testing/fuzz/session.py): its
checks catch the faults they are there for, and what it found stays
fixed, in process and through the installed qmail-logmsg.  (The short
run itself is in test_fuzz.py, with the other targets.)"""

import copy
import socket
import threading

import pytest

from qmailverify.shim import commands as smtpcommands
from qmailverify.shim import session as smtpsession
from qmailverify.testing.fuzz import runner as fuzz
from qmailverify.testing.fuzz import session as fs

IMMEDIATE, DEFERRED = b"\0\0", b"\1\0"
BAD_THEN_DATA = fs.HELO_MAIL + fs.rcpt(fs.BAD) + fs.rcpt(fs.GOOD) + fs.BODY + b"QUIT\r\n"


def broken(data: bytes, runs: int = 300) -> str:
    """The first property a planted fault breaks, over data and mutants of it."""
    rng = fs.random.Random(3)
    for n in range(runs):
        case = data if n == 0 else fuzz.mutate(data, rng, fs.SMTP_TOKENS, 4096)
        try:
            fs.check_session(case)
        except AssertionError as e:
            return str(e)
    return ""


def test_every_seed_passes_and_the_policies_differ():
    for seed in fs.session_seeds():
        fs.check_session(seed)
    immediate = fs.Run(IMMEDIATE + BAD_THEN_DATA).go()
    deferred = fs.Run(DEFERRED + BAD_THEN_DATA).go()
    assert b"550 " in immediate.client and b"554 " in deferred.client
    assert immediate.smtpd.queued and not deferred.smtpd.queued


def deliverable(answer):
    """The same answer, saying "deliverable"."""
    forged = copy.copy(answer)
    forged.code = fs.DELIVERABLE
    return forged


def test_a_bad_recipient_let_through_is_caught(monkeypatch):
    real = smtpsession.Session.answer

    def trusting(self, answer):                   # "not deliverable" taken for "deliverable"
        real(self, deliverable(answer) if answer.code == fs.UNDELIVERABLE else answer)
    monkeypatch.setattr(smtpsession.Session, "answer", trusting)
    assert "reached qmail-smtpd after qmail-verify's" in broken(IMMEDIATE + BAD_THEN_DATA)


def test_data_in_a_failed_transaction_is_caught(monkeypatch):
    monkeypatch.setitem(smtpcommands.COMMANDS, b"DATA",
                        lambda self, line, arg: self.forward(line, "data", None))
    assert "DATA reached qmail-smtpd in a failed transaction" in broken(DEFERRED + BAD_THEN_DATA)


def test_a_temporary_answer_taken_as_deliverable_is_caught(monkeypatch):
    real = smtpsession.Session.answer
    monkeypatch.setattr(smtpsession.Session, "answer",
                        lambda self, answer: real(self, deliverable(answer)))
    session = fs.HELO_MAIL + fs.rcpt(b"temp@local.test") + b"QUIT\r\n"
    assert "reached qmail-smtpd after qmail-verify's" in broken(IMMEDIATE + session)


def test_forwarding_after_the_end_is_caught(monkeypatch):
    real = smtpsession.Session.stop_input

    def leaky(self, why):                         # closes qmail-smtpd's input, reads on
        phase = self.phase
        real(self, why)
        if phase in (fs.CHECK, "ready", "reply"):
            self.phase = phase
    monkeypatch.setattr(smtpsession.Session, "stop_input", leaky)
    session = fs.HELO_MAIL + fs.rcpt(b"slow@local.test") + b"NOOP\r\nRSET\r\n"
    assert "forwarded after the session ended" in broken(IMMEDIATE + session)


def test_a_raw_control_byte_in_the_log_is_caught(monkeypatch):
    monkeypatch.setattr(smtpcommands, "clean", lambda data: data)
    assert "raw control byte" in broken(IMMEDIATE + b"HELO \x1b[2J\r\nQUIT\r\n")


def test_a_fabricated_acceptance_is_caught(monkeypatch):
    real = smtpsession.Session.server_end

    def lying(self):                               # qmail-smtpd died: "accepted" anyway
        self.to_client += fs.ACCEPTED
        real(self)
    monkeypatch.setattr(smtpsession.Session, "server_end", lying)
    assert "(1, [])" in broken(IMMEDIATE + fs.HELO_MAIL + b"QUIT\r\n")


# -- found by fuzzing: the daemon's reason was logged raw ------------------------------

def test_a_temporary_reason_with_control_bytes_is_logged_clean():
    r = fs.Run(IMMEDIATE + fs.HELO_MAIL + fs.rcpt(b"temp@local.test") + b"QUIT\r\n").go()
    line = next(x for x in r.logs if b"temporary failure (" in x)
    assert line == fs.PREFIX + b"temporary failure (unable to read _users/_[2Jcdb_/fake: ____<x>)\n"
    assert r.client.endswith(b"451 qv temporary failure (#4.3.0)\r\n")


@pytest.fixture
def hostile_verifier():
    """A UDP server answering every query 'temporary' with a reason full
    of control bytes (a spoofer on loopback, or something else on the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                _, peer = sock.recvfrom(2048)
            except socket.timeout:
                continue
            sock.sendto(b"\x62\x1b[2J\r\nqmail-smtpd: forged\x07", peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1]
    stop.set()
    t.join(5)
    sock.close()


def test_the_installed_shim_logs_a_hostile_reason_clean(shim, hostile_verifier):
    from helpers import last_session_pid, lines_of, raw_session
    s = shim(VERIFY=f":{hostile_verifier}")
    got = raw_session(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@demo.example>\r\n",
                      read_until=b"451 ")
    # a temporary answer: 451 for that recipient, the session goes on
    assert got.endswith(b"451 qv temporary failure, try again later (#4.3.0)\r\n")
    log = s.wait_for("Session ended", count=2)
    assert ("Temporary failure at RCPT time (_[2J_/qmail-smtpd_ forged_)"
            in lines_of(log, last_session_pid(log)))
    assert "\x1b" not in log and "\x07" not in log and "\r" not in log
