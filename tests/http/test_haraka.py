"""The real client: Haraka 3.3.4 with haraka-plugin-qmail-deliverable
1.4.0 (from npm, tests/http/package-lock.json, installed by sh bin/dev
test) in front of qmail-verify-http and a real qmail-verify in deep mode
over a vpopmail tree, driven over SMTP: what a sender sees at RCPT.

Haraka runs on 127.0.0.1 with that plugin and a discarding queue alone
(rcpt_to.in_host_list beside it would accept every address of
host_list: the last test shows it); per-domain sections of config/qmail-deliverable.ini send
some domains to a qmail-verify-http whose daemon is down or silent."""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import free_port, free_tcp_port, wait_until

pytestmark = pytest.mark.system

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
NODE_MIN = 20


def why_no_haraka() -> str | None:
    """Why the Haraka tests cannot run here (None: they can)."""
    node = shutil.which("node")
    if node is None:
        return f"no node on PATH: Haraka needs Node.js {NODE_MIN} or newer"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < NODE_MIN:
        return f"node {version or '(no version)'} is older than {NODE_MIN}: Haraka needs it"
    if not (MODULES / "Haraka" / "bin" / "haraka").exists():
        return "Haraka is not installed in tests/http/node_modules (sh bin/dev test runs npm ci)"
    return None


class Haraka:
    """Haraka started with config dir of our own, listening on port."""

    def __init__(self, http_port: int, domains: dict, plugins=("qmail-deliverable",),
                 host_list=()):
        self.root = Path(tempfile.mkdtemp(prefix="qv-haraka-"))
        self.port = free_tcp_port()
        config = self.root / "config"
        config.mkdir()
        (config / "smtp.ini").write_text(f"listen=127.0.0.1:{self.port}\nnodes=0\n")
        # Haraka reads its greeting and limits from connection.ini: its own, as shipped
        shutil.copy(MODULES / "Haraka" / "config" / "connection.ini", config)
        (config / "plugins").write_text("".join(p + "\n" for p in plugins) + "queue/discard\n")
        (config / "host_list").write_text("".join(d + "\n" for d in host_list))
        (config / "log.ini").write_text("[main]\nlevel=info\n")
        ini = f"host=127.0.0.1\nport={http_port}\n" + "".join(
            f"\n[{domain}]\nhost=127.0.0.1\nport={port}\n" for domain, port in domains.items())
        (config / "qmail-deliverable.ini").write_text(ini)
        self.logpath = self.root / "haraka.log"
        self.log_file = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [shutil.which("node"), str(MODULES / "Haraka" / "bin" / "haraka"), "-c", str(self.root)],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
            env={"PATH": os.environ["PATH"], "YES_REALLY_DO_DISCARD": "1"})
        try:
            wait_until(lambda: self.proc.poll() is None and "Listening on" in self.log()
                       or self.proc.poll() is not None, timeout=60)
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            self.stop()
            raise AssertionError(f"Haraka exited: {self.log()}")

    def log(self) -> str:
        return self.logpath.read_text(errors="replace")

    def session(self) -> smtplib.SMTP:
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
        s.ehlo("client.example")
        code, text = s.mail("sender@client.example")
        assert code == 250, text
        return s

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        shutil.rmtree(self.root, ignore_errors=True)


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
