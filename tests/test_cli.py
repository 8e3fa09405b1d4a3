"""What every program does on its command line and its standard output:
-h and -V answer and exit 0, and a write error (a full disk, /dev/full)
is one 'program: fatal:' line and exit 111, never a traceback."""

import os
import subprocess

import pytest
from helpers import executable

from qmailverify import __version__

pytestmark = pytest.mark.system   # runs the installed programs, as root

PROGRAMS = ["qmail-verify", "verify-query", "verify-migrate", "qmail-verify-conf",
            "qmail-logmsg-conf", "qmail-verify-http", "qmail-verify-http-conf",
            "qmail-verify-demo", "qmail-verify-status"]


def run(args, stdout=subprocess.PIPE, **kw):
    return subprocess.run([executable(args[0]), *args[1:]], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"]}, stdin=subprocess.DEVNULL, **kw)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_the_usage_and_exits_0(program, flag):
    r = run([program, flag])
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith(f"usage: {program}") and r.stdout.count("\n") == 1


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_prints_the_version_and_exits_0(program, flag):
    r = run([program, flag])
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{program} {__version__}\n", "")


def test_demo_help_does_not_run_the_demo_and_status_help_is_not_a_folder():
    r = run(["qmail-verify-demo", "--help"])
    assert "answering" not in r.stdout
    r = run(["qmail-verify-status", "--help"])
    assert "no service directory" not in r.stdout + r.stderr
    r = run(["qmail-verify-demo", "extra"])
    assert r.returncode == 100 and r.stderr.startswith("qmail-verify-demo: usage:")


def full(args):
    with open("/dev/full", "w") as devfull:
        return run(args, stdout=devfull)


def assert_one_fatal_line(r, program):
    assert r.returncode == 111, r.stderr
    if program == "qmail-verify-status":             # a shell script cannot tell why
        assert r.stderr == f"{program}: fatal: unable to write output\n"
    else:
        assert r.stderr == f"{program}: fatal: unable to write output: no space left on device\n"


@pytest.mark.parametrize("program", PROGRAMS)
def test_version_to_a_full_disk(program):
    assert_one_fatal_line(full([program, "-V"]), program)


def test_migrate_check_to_a_full_disk(tmp_path):
    rules = tmp_path / "rules"
    rules.write_bytes(b"10.:allow,VERIFY=\":\"\n")
    assert_one_fatal_line(full(["verify-migrate", "-c", str(rules), "1.2.3.4"]), "verify-migrate")


def test_migrate_diff_to_a_full_disk_writes_nothing(tmp_path):
    rules = tmp_path / "rules"
    rules.write_bytes(b"10.:allow,VERIFYDEFER=\"\"\n")
    r = full(["verify-migrate", "-w", str(rules)])
    assert_one_fatal_line(r, "verify-migrate")
    assert rules.read_bytes() == b"10.:allow,VERIFYDEFER=\"\"\n"
    assert not (tmp_path / "rules.cdb").exists()


def test_conf_to_a_full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (the log folder belongs to another account)")
    assert_one_fatal_line(full(["qmail-verify-conf", "root", "nobody", str(tmp_path / "s")]),
                          "qmail-verify-conf")


def test_logmsg_conf_to_a_full_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (the log folder belongs to another account)")
    assert_one_fatal_line(full(["qmail-logmsg-conf", "nobody", "nobody", str(tmp_path / "s")]),
                          "qmail-logmsg-conf")


def test_demo_to_a_full_disk():
    assert_one_fatal_line(full(["qmail-verify-demo"]), "qmail-verify-demo")


def test_query_to_a_full_disk(verifyd):
    assert_one_fatal_line(full(["verify-query", "-s", f":{verifyd.port}", "alice@demo.example"]),
                          "verify-query")
