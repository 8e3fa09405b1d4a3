"""The real client: Haraka 3.3.4 with haraka-plugin-qmail-deliverable
1.4.0 (from npm, tests/http/package-lock.json, installed by sh bin/dev
test) in front of qmail-verify-http and a real qmail-verify in deep mode
over a vpopmail tree, driven over SMTP: what a sender sees at RCPT.

Haraka runs on 127.0.0.1 with that plugin and a discarding queue alone
(rcpt_to.in_host_list beside it would accept every address of
host_list: the last test shows it); per-domain sections of config/qmail-deliverable.ini send
some domains to a qmail-verify-http whose daemon is down or silent."""

import os
import smtplib

import pytest
from haraka import Haraka, why_no_haraka
from helpers import free_port, free_tcp_port

pytestmark = pytest.mark.system

@pytest.fixture
def haraka():
    """haraka(http_port, {domain: http_port}) -> a started Haraka."""
    why = why_no_haraka()
    if why:
        pytest.skip(why)
    started = []

    def _haraka(http_port: int, domains: dict = {}, **kw) -> Haraka:
        h = Haraka(http_port, domains, **kw)
        started.append(h)
        return h

    yield _haraka
    for h in started:
        h.stop()


def rcpt(session: smtplib.SMTP, address: str) -> int:
    return session.rcpt(address)[0]


def test_haraka_accepts_mailboxes_and_refuses_missing_addresses(haraka, deep_daemon, front):
    d, t = deep_daemon
    h = haraka(front(d.port).port)
    s = h.session()
    assert rcpt(s, "bob@example.com") == 250            # a vpopmail mailbox (0xf2)
    assert rcpt(s, "Alice@example.net") == 250          # through the alias domain
    assert rcpt(s, "fwd@mx.example") == 250             # a system user (0xf1)
    assert rcpt(s, "fwd-x@mx.example") == 250           # its .qmail-default forwards to bob
    assert rcpt(s, "nobody@example.com") == 550         # '' delete: nobody gets the mail
    assert rcpt(s, "locked@example.com") == 550         # vmoduser -b
    assert rcpt(s, "anyone@plesk.example") == 550       # bouncesaying
    assert rcpt(s, "fwd-gone-x@mx.example") == 550      # forwards to nobody@example.com
    assert rcpt(s, "x@elsewhere.example") == 550        # not ours, not relaying (0xff)
    code, text = s.data(b"Subject: t\r\n\r\nhello\r\n")
    assert code == 250, text                            # the discarding queue took it
    s.quit()


def test_haraka_defers_never_refuses_when_the_answer_is_temporary(
        haraka, deep_daemon, front, silent_port):
    d, t = deep_daemon
    domains = {"down.example": front(free_port()).port,
               "silent.example": front(silent_port, VERIFY_TIMEOUT="1").port,
               "nohttp.example": free_tcp_port()}
    h = haraka(front(d.port).port, domains)
    s = h.session()
    assert rcpt(s, "bob@down.example") == 450           # the daemon is down
    assert rcpt(s, "bob@silent.example") == 450         # the daemon never answers
    assert rcpt(s, "bob@nohttp.example") == 450         # qmail-verify-http is down
    # the daemon's own trouble: vpopmail's user database cannot be read
    for name in (b"/vpasswd.cdb", b"/vpasswd"):
        os.chmod(t.domain_dir(b"example.com") + name, 0)
    assert rcpt(s, "carol@example.com") == 450
    assert rcpt(s, "fwd@mx.example") == 250             # the rest still answered
    s.quit()
    assert "error validating email address" in h.log()


def test_the_pitfall_rcpt_to_in_host_list_beside_the_plugin_accepts_missing_mailboxes(
        haraka, deep_daemon, front):
    """INSTALL's warning: the plugin leaves a missing mailbox to the next
    plugin, and in_host_list accepts every address of host_list."""
    d, t = deep_daemon
    h = haraka(front(d.port).port, plugins=("qmail-deliverable", "rcpt_to.in_host_list"),
               host_list=("example.com",))
    s = h.session()
    assert rcpt(s, "nobody@example.com") == 250
    assert rcpt(s, "nobody@mx.example") == 550        # not in host_list: refused as before
    s.quit()
