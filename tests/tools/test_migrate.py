"""verify-migrate, and our reading of tcprules files, against Debian's
real tcprules and tcprulescheck."""

import os
import shutil
import subprocess

import cdblib
import pytest
from helpers import vm
from hypothesis import given, settings
from hypothesis import strategies as st

from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.qmail.tcprules import RulesError, lookup, parse, records

OLD = (b"# tcp.smtp, before 1.30\n"
       b"127.0.0.1:allow\n"
       b"10.:allow,VERIFYDEFER=\"\"\n"
       b"192.168.:allow,VERIFY=\"\"\n"
       b":allow,VERIFYDEFER=\"\",VERIFYSVR=\"192.168.1.100:1234\"\n")
NEW = (b"# tcp.smtp, before 1.30\n"
       b"127.0.0.1:allow\n"
       b"10.:allow,VERIFY=\"DEFER\"\n"
       b"192.168.:allow,VERIFY=\":\"\n"
       b":allow,VERIFY=\"DEFER,192.168.1.100:1234\"\n")


def tcprules_cdb(tmp_path, text: bytes) -> bytes | None:
    """What the real tcprules makes of text (None if it refuses it)."""
    if shutil.which("tcprules") is None:
        pytest.skip("tcprules (Debian's ucspi-tcp) is not installed")
    cdb, tmp = tmp_path / "real.cdb", tmp_path / "real.tmp"
    r = subprocess.run(["tcprules", str(cdb), str(tmp)], input=text, capture_output=True)
    return cdb.read_bytes() if r.returncode == 0 else None


@pytest.mark.system
def test_the_spec_example(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(OLD)
    r = vm(str(rules))
    assert r.returncode == 0 and rules.read_bytes() == OLD          # shown, not written
    assert b'\n-10.:allow,VERIFYDEFER=""\n' in r.stdout and b'\n+10.:allow,VERIFY="DEFER"\n' in r.stdout
    assert not (tmp_path / "tcp.smtp.cdb").exists()
    rules.chmod(0o640)
    r = vm("-w", str(rules))
    assert r.returncode == 0, r.stderr
    assert rules.read_bytes() == NEW and rules.stat().st_mode & 0o777 == 0o640
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("tcp.smtp.bak-")]
    assert len(backups) == 1 and backups[0].read_bytes() == OLD
    assert (tmp_path / "tcp.smtp.cdb").read_bytes() == tcprules_cdb(tmp_path, NEW)
    assert not list(tmp_path.glob("*.tmp"))
    r = vm("-w", str(rules))
    assert r.returncode == 0 and b"nothing to change" in r.stderr


def test_everything_else_stays_byte_for_byte():
    from qmailverify.tools.migrate import migrate
    text = (b"#VERIFY=\"\" in a comment stays\n\n"
            b"1.2.3.:allow,X='a,b',VERIFYDEFER='',Y=/c/,VERIFYSVR='10.0.0.1:99'  \t\n"
            b"=mail.example.com:deny\n"
            b"5.6.:allow,RELAYCLIENT=\"\",VERIFY=\"\"\n"
            b"7.:allow,VERIFY=\"DEFER\"\n"
            b"no rule here\n")
    new, notes = migrate(text, False)
    assert new == (b"#VERIFY=\"\" in a comment stays\n\n"
                   b"1.2.3.:allow,X='a,b',VERIFY='DEFER,10.0.0.1:99',Y=/c/  \t\n"
                   b"=mail.example.com:deny\n"
                   b"5.6.:allow,RELAYCLIENT=\"\",VERIFY=\":\"\n"
                   b"7.:allow,VERIFY=\"DEFER\"\n"
                   b"no rule here\n")
    assert notes == ["line 6: VERIFY='DEFER' is already 1.30 syntax; left alone"]


def test_realrcptto(tmp_path):
    from qmailverify.tools.migrate import migrate
    text = (b"127.0.0.1:allow,RELAYCLIENT=\"\"\n1.2.3.4:deny\n"
            b"10.:allow,QMAILRRTDENYALL=\"1\"\n20.:allow,QMAILRRTDENYALL=\"0\"\n:allow\n")
    new, _ = migrate(text, True)
    assert new == (b"127.0.0.1:allow,RELAYCLIENT=\"\"\n1.2.3.4:deny\n"
                   b"10.:allow,VERIFY=\"DEFER\"\n20.:allow,VERIFY=\":\"\n:allow,VERIFY=\":\"\n")
    new, notes = migrate(text, False)
    assert new.splitlines()[3] == b"20.:allow" and notes


@pytest.mark.system
def test_unusable_server_or_rules_are_refused(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(b":allow,VERIFY=\"\",VERIFYSVR=\"192.168.1\"\n")
    r = vm("-w", str(rules))
    assert r.returncode == 100 and b"VERIFYSVR '192.168.1'" in r.stderr
    assert rules.read_bytes() == b":allow,VERIFY=\"\",VERIFYSVR=\"192.168.1\"\n"
    rules.write_bytes(b"1.2.3.4:allow ,X=\"y\"\n")
    r = vm(str(rules))
    assert r.returncode == 100 and b"unable to parse line 1" in r.stderr
    assert vm().returncode == 100 and vm("-c", str(rules)).returncode == 100
    assert vm(str(tmp_path / "missing")).returncode == 111


@pytest.mark.system
def test_check_mode_before_and_after_agree(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(OLD + b"172.16.:deny\n")
    ips = ["127.0.0.1", "10.9.8.7", "192.168.0.1", "172.16.5.5", "8.8.8.8"]
    before = vm("-c", "-o", str(rules), *ips)
    assert vm("-w", str(rules)).returncode == 0
    after = vm("-c", str(rules) + ".cdb", *ips)
    assert before.returncode == after.returncode == 0
    assert before.stdout == after.stdout == (
        b"127.0.0.1: not verified [rule '127.0.0.1']\n"
        b"10.9.8.7: deferred, 127.0.0.1:11113 [rule '10.']\n"
        b"192.168.0.1: immediate, 127.0.0.1:11113 [rule '192.168.']\n"
        b"172.16.5.5: connection refused [rule '172.16.']\n"
        b"8.8.8.8: deferred, 192.168.1.100:1234 [rule '']\n")
    # read with 1.30 eyes, the old file means something else entirely
    backup = next(tmp_path.glob("tcp.smtp.bak-*"))
    assert b"192.168.0.1: not verified (explicitly) [rule '192.168.']" in \
        vm("-c", str(backup), "192.168.0.1").stdout


# -- our tcprules against the real one ----------------------------------

ADDRESSES = st.one_of(
    st.sampled_from(["", "1.2.3.4", "1.2.3.", "10.", "=", "=host.Example.com", "=.example.com",
                     "info@1.2.3.4", "Info@=Host", "1.2.3.40-49", "1.2.3-5.", "X.1-2.Y",
                     "1.2.3.250-300", "1.2.3.9-4", "1.2.3.-2", "1.2.3.4-x", "1-3"]),
    st.text(alphabet="0123456789.=-@abcXYZ ", max_size=12))
VALUES = st.text(alphabet="abc:,.\"'/ =", max_size=8)


@st.composite
def rules_files(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["rule", "rule", "rule", "comment", "blank", "junk"]))
        if kind == "comment":
            lines.append("# " + draw(VALUES))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\t"])))
        elif kind == "junk":
            lines.append(draw(st.sampled_from(["no colon", "1.2.3.4:allowx", "1.2.3.4:allow ,A=xyx",
                                               "1.2.3.4:Allow", "1.2.3.4:allow,A"])))
        else:
            line = draw(ADDRESSES) + ":" + draw(st.sampled_from(["allow", "deny"]))
            for _ in range(draw(st.integers(0, 3))):
                value = draw(VALUES)
                quote = draw(st.sampled_from([q for q in "\"'/|" if q not in value] or ["#"]))
                line += f",{draw(st.sampled_from(['VERIFY', 'RELAYCLIENT', 'X']))}={quote}{value}{quote}"
            lines.append(line + draw(st.sampled_from(["", " ", "\t "])))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.system
@settings(max_examples=150, deadline=None, database=None)
@given(rules_files())
def test_our_cdb_is_byte_for_byte_what_tcprules_makes(tmp_path_factory, text):
    tmp = tmp_path_factory.mktemp("rules")
    real = tcprules_cdb(tmp, text)
    try:
        ours_records = records(parse(text))
    except RulesError:
        assert real is None, text
        return
    assert real is not None, text
    write_cdb(str(tmp / "ours.cdb"), ours_records)
    assert (tmp / "ours.cdb").read_bytes() == real


@pytest.mark.system
@pytest.mark.parametrize("ip", ["1.2.3.4", "1.2.3.5", "1.2.9.9", "10.0.0.1", "7.7.7.7", "1.2.3.45"])
def test_lookup_order_agrees_with_tcprulescheck(tmp_path, ip):
    if shutil.which("tcprulescheck") is None:
        pytest.skip("tcprulescheck (Debian's ucspi-tcp) is not installed")
    text = (b"1.2.3.4:allow,A=\"exact\"\n1.2.3.40-49:allow,A=\"range\"\n1.2.3.:deny\n"
            b"1.2.:allow,A=\"short\"\n10.0.0.1:allow\n:allow,A=\"default\"\n")
    cdb = tmp_path / "r.cdb"
    write_cdb(str(cdb), records(parse(text)))
    table = cdblib.Reader(data=cdb.read_bytes())
    ours = lookup(table.get, ip.encode())
    out = subprocess.run(["tcprulescheck", str(cdb)], env={**os.environ, "TCPREMOTEIP": ip},
                         capture_output=True, text=True).stdout
    rule = out.splitlines()[0]
    assert rule == f"rule {ours.key.decode()}:"
    assert ("deny connection" in out) == ours.deny
    for name, value in ours.env.items():
        assert f"set environment variable {name.decode()}={value.decode()}" in out


@pytest.mark.system
def test_check_refuses_what_is_not_an_ip(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(OLD)
    r = vm("-c", str(rules), "10.1.2.3", "not-an-ip")
    assert (r.returncode, r.stdout) == (100, b"")
    assert r.stderr == b"verify-migrate: fatal: not an IP address: not-an-ip\n"
    assert vm("-c", str(rules), "10.1.2.3", "::1").returncode == 0


@pytest.mark.system
def test_a_crlf_file_is_refused_naming_the_cr(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(OLD.replace(b"\n", b"\r\n"))
    r = vm(str(rules))
    assert r.returncode == 100
    assert r.stderr == (f"verify-migrate: fatal: {rules}: unable to parse line 2: 127.0.0.1:allow_"
                        " (it holds a carriage return, shown as _: the file has CRLF line ends;"
                        " tcprules refuses them too)\n").encode()
    assert tcprules_cdb(tmp_path, OLD.replace(b"\n", b"\r\n")) is None


@pytest.mark.system
def test_a_binary_file_does_not_reach_the_terminal_raw(tmp_path):
    rules = tmp_path / "tcp.smtp"
    data = b"\x1b[2J\x00\xff\x07:allow,\x9bX\n"
    rules.write_bytes(data)
    r = vm(str(rules))
    assert r.returncode == 100
    assert r.stderr == f"verify-migrate: fatal: {rules}: unable to parse line 1: _[2J___:allow,_X\n".encode()
    assert tcprules_cdb(tmp_path, data) is None


@pytest.mark.system
def test_check_mode_shows_the_rollout_each_ip_gets(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(b'10.1.:allow,VERIFY=":",VERIFY_ROLLOUT="log"\n'
                      b'10.2.:allow,VERIFY="DEFER",VERIFY_ROLLOUT="soft"\n'
                      b'10.3.:allow,VERIFY=":",VERIFY_ROLLOUT="sfot"\n'
                      b':allow,VERIFY=":"\n')
    r = vm("-c", str(rules), "10.1.0.1", "10.2.0.1", "10.3.0.1", "10.4.0.1")
    assert r.returncode == 0
    assert r.stdout.decode().splitlines() == [
        "10.1.0.1: immediate, 127.0.0.1:11113, log-only rollout: refusals logged, mail accepted"
        " [rule '10.1.']",
        "10.2.0.1: deferred, 127.0.0.1:11113, soft rollout: 450 at RCPT, 451 at DATA"
        " [rule '10.2.']",
        "10.3.0.1: immediate, 127.0.0.1:11113, unknown VERIFY_ROLLOUT 'sfot': enforced"
        " [rule '10.3.']",
        "10.4.0.1: immediate, 127.0.0.1:11113 [rule '']"]
