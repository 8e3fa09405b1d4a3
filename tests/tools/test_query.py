"""verify-query and the client library, against the real daemon."""

import os
import pty
import socket
import subprocess

import pytest
from helpers import executable, vq

from qmailverify.protocol.client import PendingQuery, ask
from qmailverify.protocol.wire import DELIVERABLE, EXTENDED_TAG, TEMPORARY


@pytest.mark.system
def test_answers_and_exit_codes(verifyd):
    server = f":{verifyd.port}"
    r = vq(["-s", server, "alice@demo.example", "alice-work@demo.example"])
    assert (r.returncode, r.stdout) == (0, b"alice@demo.example: deliverable (alice)\n"
                                           b"alice-work@demo.example: deliverable (alice-work)\n")
    r = vq(["-s", server, "alice@demo.example", "nobody@demo.example", "x@elsewhere.example"])
    assert r.returncode == 100
    assert r.stdout.splitlines() == [b"alice@demo.example: deliverable (alice)",
                                     b"nobody@demo.example: not deliverable",
                                     b"x@elsewhere.example: not checked: not our domain"]
    # not checked is not a refusal: qmail-verify lets it through, exit 0
    r = vq(["-s", server, "alice@demo.example", "x@elsewhere.example"])
    assert (r.returncode, r.stdout) == (0, b"alice@demo.example: deliverable (alice)\n"
                                           b"x@elsewhere.example: not checked: not our domain\n")


def test_a_virtualdomains_exception_is_not_checked_either():
    from qmailverify.protocol.client import Answer
    from qmailverify.tools.query import describe_answer
    assert describe_answer(Answer(DELIVERABLE, position=2)) == (
        b"not checked: not our domain (a virtualdomains exception)")
    # a deliverable answer with a user is a real check, whatever its position
    assert describe_answer(Answer(DELIVERABLE, b"alias", position=1)) == b"deliverable (alias)"
    assert describe_answer(Answer(DELIVERABLE, b"carol", position=9)) == b"deliverable (carol)"


@pytest.mark.system
def test_server_from_listen_and_verify_style_values(verifyd):
    r = vq(["alice@demo.example"], env={"LISTEN": f"127.0.0.1:{verifyd.port}"})
    assert r.returncode == 0
    r = vq(["-s", f"DEFER,127.0.0.1:{verifyd.port}", "alice@demo.example"])
    assert r.returncode == 0


@pytest.mark.system
def test_temporary_failures_exit_111(verifyd, demo_tree):
    from helpers import free_port
    r = vq(["-s", f":{free_port()}", "-t", "1", "alice@demo.example", "nobody@demo.example"])
    assert r.returncode == 111
    assert r.stdout.splitlines()[0] == b"alice@demo.example: temporary failure: connection refused"
    (demo_tree["qmail"] / "users" / "cdb").write_bytes(b"garbage")
    r = vq(["-s", f":{verifyd.port}", "alice@demo.example", "x@elsewhere.example"])
    assert r.returncode == 111
    assert r.stdout.splitlines() == [
        b"alice@demo.example: temporary failure: users/cdb unusable",
        b"x@elsewhere.example: not checked: not our domain"]


@pytest.mark.system
def test_usage_errors_exit_100():
    for args in ([], ["-s", "mailhost", "a@b"], ["-t", "x", "a@b"], ["-c", "0", "a@b"], ["-z"]):
        r = vq(args)
        assert r.returncode == 100 and r.stderr.startswith(b"verify-query: usage:"), args


@pytest.mark.system
def test_a_large_batch_from_stdin_keeps_order(verifyd):
    addresses = [b"user%d@demo.example" % i if i % 3 else b"alice-work@demo.example"
                 for i in range(100_000)]
    r = vq(["-s", f":{verifyd.port}", "-"], input=b"\n".join(addresses) + b"\n")
    assert r.returncode == 100 and r.stderr == b""
    lines = r.stdout.splitlines()
    assert len(lines) == len(addresses)
    for i in (0, 1, 2, 3, 99_999):
        want = b"deliverable (alice-work)" if i % 3 == 0 else b"not deliverable"
        assert lines[i] == addresses[i] + b": " + want


@pytest.mark.system
def test_progress_goes_to_a_terminal_only(verifyd):
    master, slave = pty.openpty()
    try:
        p = subprocess.run([executable("verify-query"), "-s", f":{verifyd.port}", "-"],
                           input=b"alice@demo.example\n" * 50, stdout=subprocess.PIPE,
                           stderr=slave, timeout=60)
        os.close(slave)
        slave = None
        shown = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    assert b"verify-query: 50/50 answered" in shown
    assert b"verify-query" not in p.stdout


def test_replies_only_count_from_the_server_itself():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    q = PendingQuery(b"kim@example.com", server.getsockname(), timeout=2)
    try:
        assert q.send() is None
        data, client = server.recvfrom(100)
        assert data == b"kim@example.com\0" + EXTENDED_TAG
        intruder.sendto(b"\x01", client)              # a forged "not deliverable"
        server.sendto(b"\x90kim", client)
        import select
        select.select([q], [], [], 2)
        answer = q.receive()
        assert (answer.code, answer.user) == (DELIVERABLE, b"kim")
    finally:
        q.close()
        server.close()
        intruder.close()


def test_ask_times_out_as_a_temporary_failure():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        a = ask(b"x@y", silent.getsockname(), timeout=0.3)
        assert a.code == TEMPORARY and a.timeout
        assert a.log_message() == "Timeout (no response from verification server)"
    finally:
        silent.close()


@pytest.mark.system
def test_untidy_addresses_are_tidied(verifyd):
    server = f":{verifyd.port}"
    r = vq(["-s", server, " alice@demo.example", "nobody-here@demo.example\t ", "<alice-work@demo.example>"])
    assert r.stdout.splitlines() == [b"alice@demo.example: deliverable (alice)",
                                     b"nobody-here@demo.example: not deliverable",
                                     b"alice-work@demo.example: deliverable (alice-work)"]
    r = vq(["-s", server, "-"], input=b" alice@demo.example\r\n<nobody-here@demo.example> \n  \n"
                                        b"\t< alice-work@demo.example >\n")
    assert r.stdout.splitlines() == [b"alice@demo.example: deliverable (alice)",
                                     b"nobody-here@demo.example: not deliverable",
                                     b"alice-work@demo.example: deliverable (alice-work)"]
    assert r.returncode == 100


@pytest.mark.system
def test_an_address_longer_than_the_daemon_reads_is_not_answered(verifyd):
    from qmailverify.protocol.wire import ADDRESS_MAX, QUERY_MAX
    assert ADDRESS_MAX == QUERY_MAX - 1 - len(EXTENDED_TAG) == 896
    fits = b"x" * (ADDRESS_MAX - 18) + b"@elsewhere.example"         # 896 bytes
    long = b"alice@demo.example" + b"x" * (ADDRESS_MAX - 17)           # 897 bytes
    assert (len(fits), len(long)) == (896, 897)
    r = vq(["-s", f":{verifyd.port}", "alice@demo.example", long, fits])
    assert r.stdout.splitlines() == [b"alice@demo.example: deliverable (alice)",
                                     fits + b": not checked: not our domain"]
    assert r.stderr == (b"verify-query: warning: not asked: an address of 897 bytes "
                        b"(alice@demo.examplexxxxxxxxxxxxxxxxxxxxxx...) is longer than the "
                        b"896 bytes qmail-verify reads\n")
    assert r.returncode == 100


@pytest.mark.system
def test_bad_numbers_say_what_the_option_takes():
    r = vq(["-t", "abc", "a@b"])
    assert r.returncode == 100
    assert r.stderr.endswith(b"(-t takes a number of seconds, more than 0 and at most 3600)\n")
    r = vq(["-c", "many", "a@b"])
    assert r.returncode == 100 and r.stderr.endswith(b"(-c takes a whole number of queries, 1 to 1024)\n")
