"""INSTALL's steps that can run on a test machine, taken from INSTALL's
own text: the man links step 1 makes against those step 7 removes, the
service directory qmail-logmsg-conf makes (step 4 B), the rules of step 5
and the session of step 6 through Debian's tcpserver and tcpclient, with
the daemon answering and with the daemon stopped."""

import configparser
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import (
    FAKE_SMTPD,
    executable,
    free_tcp_port,
    need_system,
    wait,
    world_tempdir,
)

REPO = Path(__file__).resolve().parents[2]
INSTALL = (REPO / "INSTALL").read_text()


def step(n: int) -> str:
    """The text of INSTALL's step n."""
    return re.search(rf"^{n}\. .*?(?=^{n + 1}\. |\Z)", INSTALL, re.M | re.S).group(0)


def commands(text: str) -> list[str]:
    """The indented lines of a step, a line ending in a backslash joined
    with the next."""
    lines, pending = [], ""
    for line in text.splitlines():
        if not (line.startswith("    ") and line.strip()):
            continue
        pending += line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
        else:
            lines.append(pending)
            pending = ""
    return lines


def man_pages() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return sorted(f"{folder.rsplit('/', 1)[1]}/{Path(line.strip()).name}"
                  for folder, value in cfg["options.data_files"].items()
                  if folder.startswith("share/man/")
                  for line in value.split("\n") if line.strip())


def test_roll_back_removes_every_man_link_step_1_makes():
    links = re.findall(r"ln -s /opt/qmailverify/share/man/(man\d)/\*\.(\d) "
                       r"/usr/local/share/man/(man\d)/", step(1))
    assert links == [("man1", "1", "man1"), ("man8", "8", "man8")]
    # what step 1's globs link: every page the package installs
    linked = man_pages()
    assert all(re.fullmatch(r"man1/[^/]+\.1|man8/[^/]+\.8", page) for page in linked)
    assert f"their {len(linked)} man pages" in step(1)
    removed = sorted(re.findall(r"/usr/local/share/man/(man\d/[^\s]+)", step(7).split(
        "rm -f ", 1)[1]))
    assert removed == linked
    assert ("rmdir --ignore-fail-on-non-empty /usr/local/share/man/man1 "
            "/usr/local/share/man/man8" in commands(step(7)))
    assert "mkdir -p /usr/local/share/man/man1 /usr/local/share/man/man8" in commands(step(1))
    # and what this installation holds is just that
    data = Path(sysconfig.get_path("data")) / "share" / "man"
    if not (data / "man8" / "qmail-verify.8").exists():
        pytest.skip(f"{data} is not installed (an editable install does not install man pages)")
    globbed = sorted(str(p.relative_to(data)) for p in
                     [*data.glob("man1/*.1"), *data.glob("man8/*.8")])
    assert globbed == linked


def test_roll_back_undoes_what_steps_1_to_4_made():
    back = step(7)
    assert "mv run.before-qmail-logmsg run" in back           # 4 A: run and softlimit as before
    assert "cp -p run run.before-qmail-logmsg" in step(4)
    for made in ("/etc/qmail-smtpd", "/etc/qmail-verify"):     # 4 B and 2
        assert f"update-service --remove {made}" in back
        name = made.rsplit("/", 1)[1]
        assert (f"rm -r {made} /var/lib/supervise/{name} /var/lib/supervise/{name}.log"
                in back)
    assert "rm -r /opt/qmailverify /etc/profile.d/qmailverify.sh" in back
    assert "rm /etc/tcp.smtp /etc/tcp.smtp.cdb" in back
    # INSTALL adds services with update-service, as daemontools-run's README.Debian asks
    assert "update-service --add /etc/qmail-verify" in step(3)
    assert "update-service --add /etc/qmail-smtpd" in step(4)
    assert "pip install -U pip" in step(1) and "pip install -U pip" not in step(4)


@pytest.fixture
def work():
    root = world_tempdir("qv-install-")
    yield root
    shutil.rmtree(root)


def logmsg_conf(*args, env=None):
    return subprocess.run([executable("qmail-logmsg-conf"), *args], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"], **(env or {})})


def rules_of_step_5(verify_port: int) -> str:
    """Step 5's rules, with the daemon's port where they say VERIFY=":"."""
    rules = [c for c in commands(step(5)) if re.match(r"[\d.]*:allow", c)]
    assert rules[:2] == ['127.0.0.1:allow,RELAYCLIENT=""', '127.0.0.2:allow,VERIFY=":"']
    return "\n".join(r.replace('VERIFY=":"', f'VERIFY=":{verify_port}"') for r in rules) + "\n"


def session_of_step_6(port: int, domain: str) -> str:
    """Step 6's first command, for this domain and port."""
    session = next(c for c in commands(step(6)) if c.startswith("printf 'HELO"))
    assert "| tcpclient -i 127.0.0.2 127.0.0.1 25 sh -c" in session
    return session.replace("YOUR.DOMAIN", domain).replace(" 25 sh -c", f" {port} sh -c")


@pytest.mark.system
def test_steps_4_to_6_through_tcpserver(work, demo_tree, verifyd):
    need_system("tcpserver", "tcprules", "tcpclient", "envuidgid", "envdir", "softlimit",
         "setuidgid", "multilog")
    qmail = demo_tree["qmail"]
    (qmail / "bin").mkdir()
    smtpd = qmail / "bin" / "qmail-smtpd"          # the stand-in, where the run script looks
    smtpd.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {FAKE_SMTPD}\n")
    smtpd.chmod(0o755)
    rules, cdb = work / "tcp.smtp", work / "tcp.smtp.cdb"

    # 4 B: the service directory; its hint says the rules cdb is missing
    service = work / "qmail-smtpd"
    r = logmsg_conf("root", "nobody", str(service), str(cdb), env={"QMAILHOME": str(qmail)})
    assert r.returncode == 0, r.stderr
    assert (f"  rules:     {cdb} does not exist yet: tcpserver drops every connection until"
            f" it does\n             (tcprules {cdb} {rules}.tmp < {rules}: INSTALL, 4 B)\n"
            in r.stdout)
    assert (service / "log" / "main").stat().st_uid == 65534
    assert (service / "run").stat().st_uid == 0 and not (service / "log" / "status").exists()
    assert (service / "env" / "QMAILHOME").read_text() == f"{qmail}\n"

    # 5: the rules, built as INSTALL builds them
    rules.write_text(rules_of_step_5(verifyd.port))
    build = next(c for c in commands(step(5)) if c.startswith("tcprules "))
    assert build == "tcprules /etc/tcp.smtp.cdb /etc/tcp.smtp.tmp < /etc/tcp.smtp"
    subprocess.run(build.replace("/etc/", f"{work}/"), shell=True, check=True)

    # the service under way, as supervise runs it (here on a port of its own)
    port = free_tcp_port()
    (service / "env" / "IP").write_text("127.0.0.1\n")
    (service / "env" / "PORT").write_text(f"{port}\n")
    record = work / "record"
    record.touch()
    (service / "env" / "FAKE_SMTPD_RECORD").write_text(f"{record}\n")
    output = work / "output"
    with open(output, "wb") as out:
        proc = subprocess.Popen(["./run"], cwd=service, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={"PATH": os.environ["PATH"]})
    try:
        log = lambda: output.read_text(errors="replace")        # noqa: E731
        wait(lambda: "tcpserver: status: 0/40" in log(), "tcpserver to listen")

        # 6: from 127.0.0.2, the bad recipient is refused and the session goes on
        six = session_of_step_6(port, "demo.example")
        r = subprocess.run(six, shell=True, capture_output=True, timeout=30)
        replies = r.stdout.decode(errors="replace")
        assert "\r\n550 sorry, no mailbox here by that name. (#5.1.1)\r\n221 " in replies, replies
        wait(lambda: "Unverified mailbox at RCPT time: <nosuchuser@demo.example>\n" in log(),
             "the refusal in qmail-smtpd's log")
        verifyd.wait_for("nosuchuser@demo.example denied.")

        # from 127.0.0.1, a relay client: never checked (why step 6 uses 127.0.0.2)
        r = subprocess.run(six.replace("-i 127.0.0.2 ", ""), shell=True, capture_output=True,
                           timeout=30)
        assert b"550 " not in r.stdout and b"\r\n250 ok\r\n221 " in r.stdout, r.stdout

        # the daemon stopped: 451, and the session ends there (no 221)
        verifyd.stop()
        r = subprocess.run(six, shell=True, capture_output=True, timeout=30)
        replies = r.stdout.decode(errors="replace")
        assert replies.endswith("\r\n451 qv temporary failure (#4.3.0)\r\n"), replies
        wait(lambda: "Session ended: verification failure\n" in log(), "the session's end")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)

    # the log service: multilog, as the log account, can write log/main
    subprocess.run(["./run"], cwd=service / "log", input=output.read_bytes(), check=True,
                   timeout=60, env={"PATH": os.environ["PATH"]})
    current = service / "log" / "main" / "current"
    assert current.stat().st_uid == 65534
    assert b"Unverified mailbox at RCPT time: <nosuchuser@demo.example>" in current.read_bytes()


@pytest.mark.system
def test_logmsg_conf_refuses_what_it_could_not_write_unquoted(work):
    """Its arguments as qmail-verify-conf's (servicedir.common_args); the
    rules path and the account go into run as they are."""
    need_system()
    assert logmsg_conf().returncode == 100
    r = logmsg_conf("nobody", "nobody", str(work / "x"), "/etc/tcp smtp.cdb")
    assert r.returncode == 100 and r.stderr.startswith("qmail-logmsg-conf: fatal: rules must be")
    r = logmsg_conf("nobody;rm", "nobody", str(work / "x"))
    assert (r.returncode, r.stderr) == (111, "qmail-logmsg-conf: fatal: unknown account nobody;rm\n")
    assert not (work / "x").exists()
