"""Every program has a man page, installed with it, and the pages say what
the tests show: qmail-verify(8) lists its signals, its statistics fields,
its control files and its start-up refusals."""

import configparser
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qmailverify.daemon.stats import Counts

REPO = Path(__file__).resolve().parent.parent


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg


def programs():
    cfg = setup_cfg()
    scripts = [line.split("=")[0].strip() for line in
               cfg["options.entry_points"]["console_scripts"].split("\n") if line.strip()]
    scripts += [Path(line.strip()).name for line in cfg["options"]["scripts"].split("\n")
                if line.strip()]
    return scripts


def installed_pages():
    cfg = setup_cfg()
    return [line.strip() for value in cfg["options.data_files"].values()
            for line in value.split("\n") if line.strip()]


def test_every_program_has_a_man_page_that_is_installed():
    pages = installed_pages()
    for program in programs():
        found = [p for p in pages if re.fullmatch(rf"man/{re.escape(program)}\.[18]", p)]
        assert found, f"no man page for {program} in setup.cfg's data_files"
        assert (REPO / found[0]).exists()
    assert set(programs()) >= {"qmail-verify-status", "qmail-verify-demo"}


def text(page: str) -> str:
    """The page as a reader sees it, on one long line (no hyphenation)."""
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed")
    r = subprocess.run(["groff", "-man", "-Tascii", "-rLL=5000n", "-ww"],
                       stdin=open(REPO / "man" / page, "rb"), capture_output=True, check=True)
    assert r.stderr == b""
    plain = re.sub(r".\x08", "", r.stdout.decode("ascii", "replace"))
    return " ".join(plain.split())


@pytest.mark.system
def test_qmail_verify_8_lists_signals_log_lines_controls_and_refusals():
    page = text("qmail-verify.8")
    for word in ("SIGHUP", "SIGTERM", "SIGINT", "SIGALRM", "SIGUSR1", "SIGUSR2", "svc -a",
                 "control/me", "control/envnoathost", "control/locals", "START-UP REFUSALS"):
        assert word in page, word
    fields = [f.name for f in dataclasses.fields(Counts)] + ["uptime", "controls_age"]
    assert "stats: " + " ".join(f"{f}=" for f in fields) in re.sub(r"=\S+", "=", page)
    for line in ("Listening on address: ip, port port.", "version version.",
                 "received SIGUSR1: ignored.", "exiting on SIGTERM.", "controls reloaded.",
                 "warning: Unable to read controls: reason: keeping the old ones.",
                 "Unable to read controls: reason: exiting.",
                 "the first line of qmailhome/control/me is empty and there is no",
                 "fatal: QMAILHOME: unable to use path: reason",
                 "fatal: VERIFY_PASSWD: unable to read path: reason",
                 "fatal: users/cdb: path is not a cdb file",
                 "fatal: VERIFY_FASTFORWARDCDB: path is not a cdb file",
                 "fatal: no descriptor left for reading files",
                 "softlimit -o 8", "fatal: unable to write pidfile: reason",
                 "not answered: temporary failure: reason.",
                 "fatal: internal error: type: message", "Fatal Python error"):
        assert line in page, line


@pytest.mark.system
def test_the_other_pages_say_what_their_tests_show():
    vq = text("verify-query.1")
    assert "controlling user" in vq and "not necessarily an account" in vq
    assert "one pair of angle brackets" in vq and "longer than 896 bytes is not asked" in vq
    assert "more than 0 and at most 3600" in vq
    assert "address: not checked: not our domain" in vq
    assert "0 if every address is deliverable or not checked" in vq
    logmsg = text("qmail-logmsg.8")
    assert "Unverified mailbox at RCPT time: <address> (550 given)" in logmsg
    assert "Unverified mailbox(es) at DATA time: <address> (554 given;" in logmsg
    assert "The patch logs those two alone" in logmsg and "Counting refused recipients" in logmsg
    assert "not necessarily an account" in text("qmail-verify-demo.1")
    conf = text("qmail-verify-conf.8")
    assert "multilog t s16777215 n20 ./main" in conf and "100,000 queries" in conf
    status = text("qmail-verify-status.8")
    assert "state: restarting" in status and "last fatal:" in status
    migrate = text("verify-migrate.8")
    assert "carriage return" in migrate and "must be an IPv4 or IPv6 address" in migrate
    logmsgconf = text("qmail-logmsg-conf.8")
    assert "softlimit -m 30000000" in logmsgconf and "owns log/main and nothing else" in logmsgconf
    assert "update-service --add /dir" in logmsgconf and "update-service --add /dir" in conf
    assert "There is no log/status" in conf
    assert "/etc/service/qmail-verify (Debian's daemontools-run), then /service/qmail-verify" \
        in status
    for page in ("qmail-verify.8", "verify-query.1", "verify-migrate.8", "qmail-verify-conf.8",
                 "qmail-logmsg-conf.8", "qmail-verify-status.8", "qmail-verify-demo.1"):
        body = text(page)
        assert "-h Print the usage and exit 0" in body or "-h prints the usage" in body, page


# which page documents the environment each package's code reads
PAGE_OF = {"daemon": "qmail-verify.8", "system": "qmail-verify.8", "deep": "qmail-verify.8",
           "hub": "qmail-verify.8", "shim": "qmail-logmsg.8", "protocol": "qmail-logmsg.8",
           "tools/query.py": "verify-query.1", "tools/conf.py": "qmail-verify-conf.8",
           "tools/demo.py": "qmail-verify-demo.1"}
VARIABLE = re.compile(r"^(VERIFY(_[A-Z0-9]+)*|QMAILHOME|TCPREMOTEIP|MYSQL_UNIX_PORT|LISTEN|RELAYCLIENT)$")


def variables_read(path: Path) -> set[str]:
    import ast
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and VARIABLE.match(node.value)}


def test_every_variable_a_program_reads_is_in_its_man_page():
    package = REPO / "qmailverify"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        page = PAGE_OF.get(rel) or PAGE_OF.get(rel.split("/")[0])
        if page is None:
            continue
        text = re.sub(r"\\f[BIRP]|\\", "", (REPO / "man" / page).read_text())   # font changes
        missing += [f"{name} ({rel}) not in {page}" for name in sorted(variables_read(path))
                    if not re.search(rf"\b{name}\b", text)]
    assert missing == []


def test_a_variable_missing_from_its_page_is_found(tmp_path):
    code = tmp_path / "x.py"
    code.write_text('import os\nos.environ.get("VERIFY_NOWHERE")\n')
    assert variables_read(code) == {"VERIFY_NOWHERE"}
    assert not re.search(r"\bVERIFY_NOWHERE\b", (REPO / "man" / "qmail-verify.8").read_text())
def test_qmail_verify_http_8_has_the_answer_table_and_what_each_client_does():
    page = text("qmail-verify-http.8")
    for row in ("a vpopmail user's mailbox 200 242 0xf2 250 (and LMTP) DECLINED",
                "not delivered here 200 255 0xff 550 DECLINED",
                "not deliverable 200 0 550 DENY, 550",
                "temporary: the daemon's 503 450 DECLINED",
                "qpsmtpd cannot defer a recipient through it",
                "0x11 to 0x14, 0x21, 0x22, 0xf5 and 0xfe are never sent",
                "fatal: refusing to run as root", "Connection: close"):
        assert row in page, row
    for page in ("qmail-verify-http.8", "qmail-verify-http-conf.8"):
        assert "-h prints the usage" in text(page), page
