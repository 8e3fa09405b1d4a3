"""VERIFY's grammar read alike by qmail-logmsg, verify-query and
verify-migrate (protocol/verifyenv.py), and the warning about ignored host names."""

import pytest
from helpers import vm, vq

from qmailverify.protocol.verifyenv import (
    SetupError,
    ignored,
    parse_server_part,
    parse_verify,
)


@pytest.mark.parametrize("value,server", [
    ("DEFER:10101", ("127.0.0.1", 10101)),          # verify-query once took 11113 here
    ("Defer 192.168.1.1:10101", ("192.168.1.1", 10101)),
    ("DEFER,mx.example:10101", ("127.0.0.1", 10101)),
    ("mx.example", ("127.0.0.1", 11113)),
])
def test_the_server_is_what_follows_the_first_digit_colon_or_bracket(value, server):
    assert parse_verify(value).server == parse_server_part(value) == server


@pytest.mark.parametrize("value,skipped", [
    (":", ""), ("DEFER", ""), ("d", ""), ("DEFER,:10101", ""), ("defer,1.2.3.4", ""),
    ("DEFERRED", ""), ("DEFER,mx.example:10101", "mx.example"), ("mx.example:25", "mx.example"),
    ("yes", "yes"),
])
def test_ignored_names_what_an_admin_meant_as_a_server(value, skipped):
    assert ignored(value) == skipped


@pytest.mark.parametrize("value,enabled,deferred,server", [
    (None, False, False, None), ("", False, False, None),
    (":", True, False, ("127.0.0.1", 11113)), ("DEFER", True, True, ("127.0.0.1", 11113)),
    ("d", True, True, ("127.0.0.1", 11113)), ("192.168.1.1", True, False, ("192.168.1.1", 11113)),
    (":10101", True, False, ("127.0.0.1", 10101)),
    ("192.168.1.1:10101", True, False, ("192.168.1.1", 10101)),
    ("DEFER,:10101", True, True, ("127.0.0.1", 10101)),
    ("DEFER,192.168.1.1:10101", True, True, ("192.168.1.1", 10101)),
    ("DEFER,[::1]:10101", True, True, ("::1", 10101)),
])
def test_verify_values(value, enabled, deferred, server):
    m = parse_verify(value)
    assert (m.enabled, m.deferred, m.server) == (enabled, deferred, server)
    assert bool(m.note) == (value == "")


@pytest.mark.parametrize("value", ["DEFER,192.168.1", ":99999", "1.2.3.4:x", "DEFER,[::1"])
def test_unparsable_verify_servers_are_setup_errors(value):
    with pytest.raises(SetupError):
        parse_verify(value)


@pytest.mark.system
def test_verify_query_reads_s_as_the_shim_reads_verify(verifyd):
    assert vq(["-s", f"DEFER:{verifyd.port}", "alice@demo.example"]).returncode == 0
    r = vq(["-s", f"DEFER,mx.example:{verifyd.port}", "alice@demo.example"])
    assert r.returncode == 100 and b"'mx.example' is not read" in r.stderr


@pytest.mark.system
def test_verify_migrate_check_warns_about_ignored_host_names(tmp_path):
    rules = tmp_path / "tcp.smtp"
    rules.write_bytes(b'10.:allow,VERIFY="DEFER,mx.example:10101"\n:allow,VERIFY=":"\n')
    r = vm("-c", str(rules), "10.0.0.1", "10.0.0.2", "192.168.0.1")
    assert r.returncode == 0
    assert r.stderr.decode().splitlines() == [
        "verify-migrate: warning: VERIFY='DEFER,mx.example:10101' asks 127.0.0.1:10101: "
        "'mx.example' is ignored (only what follows the first digit, ':' or '[' names the server)"]
    assert b"10.0.0.1: deferred, 127.0.0.1:10101" in r.stdout


def test_verify_migrate_reads_verify_without_the_udp_client():
    import subprocess
    import sys
    code = "import sys, qmailverify.tools.migrate; print('qmailverify.protocol.client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False\n"
