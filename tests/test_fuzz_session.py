"""Found by fuzzing the shim's session core (bench/fuzz_session.py), and
kept fixed: qmail-logmsg logged the reason of a "temporary" answer as it
came over the network, control bytes and all."""

import socket
import threading

import pytest

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
    from test_logmsg import last_session_pid, lines_of, raw_session
    s = shim(VERIFY=f":{hostile_verifier}")
    got = raw_session(s.port, b"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@demo.example>\r\n",
                      read_until=b"451 ")
    assert got.endswith(b"451 qv temporary failure (#4.3.0)\r\n")
    log = s.wait_for("Session ended", count=2)
    assert "temporary failure (_[2J_/qmail-smtpd: forged_)" in lines_of(log, last_session_pid(log))
    assert "\x1b" not in log and "\x07" not in log and "\r" not in log
