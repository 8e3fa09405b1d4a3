"""The installed qmail-verify-http over real sockets, run as uid 65534 in
front of a real qmail-verify: the answers, HTTP/1.0 and 1.1 with and
without keep-alive, and the limits a hostile client meets."""

import os
import signal
import socket
import subprocess
import time

import pytest
from helpers import executable, free_port, wait_until

pytestmark = pytest.mark.system   # runs the installed qmail-verify and qmail-verify-http


def connect(d, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", d.port), timeout=timeout)


def get(target: str, version: str = "1.1", headers: str = "") -> bytes:
    return (f"GET {target} HTTP/{version}\r\nHost: 127.0.0.1\r\n{headers}\r\n").encode()


def read_response(s: socket.socket, buf: bytearray) -> tuple[int, dict, bytes]:
    """One response from s (buf holds what was read past the last one)."""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise EOFError(bytes(buf))
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = s.recv(65536)
        if not data:
            raise EOFError(rest)
        rest += data
    buf[:] = rest[length:]
    return status, headers, rest[:length]


def request(d, target: str, headers: str = "") -> tuple[int, bytes]:
    with connect(d) as s:
        s.sendall(get(target, headers="Connection: close\r\n" + headers))
        status, _, body = read_response(s, bytearray())
        return status, body


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_the_answers_for_a_vpopmail_tree(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    assert request(h, "/qd1/deliverable?bob%40example.com") == (200, b"242")      # 0xf2
    assert request(h, "/qd1/deliverable?nobody%40example.com") == (200, b"0")
    assert request(h, "/qd1/deliverable?locked%40example.com") == (200, b"0")     # vmoduser -b
    assert request(h, "/qd1/deliverable?fwd%40mx.example") == (200, b"241")
    assert request(h, "/qd1/deliverable?x%40elsewhere.example") == (200, b"255")
    assert request(h, "/qd1/qmail_local?bob%40example.net") == (200, b"example.net-bob")
    assert request(h, "/qd1/qmail_local?x%40elsewhere.example") == (204, b"")
    assert request(h, "/qd1/deliverable?") [0] == 400
    assert request(h, "/qd1/deliverable?a%0Ab%40example.com")[0] == 400
    assert request(h, "/qd1/nothing?bob%40example.com")[0] == 403
    # one line a request, the address cleaned
    log = h.wait_for("403 forbidden: GET /qd1/nothing")
    lines = log.splitlines()
    assert len(lines) == 11 and all(line.startswith("qmail-verify-http: ") for line in lines)
    assert "127.0.0.1 deliverable bob@example.com 200 0xf2" in log
    assert "127.0.0.1 400 bad query: a%0Ab%40example.com" in log


def test_keep_alive_pipelining_and_connection_close(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    with connect(h) as s:
        buf = bytearray()
        for addr in ("bob", "nobody", "alice"):
            s.sendall(get(f"/qd1/deliverable?{addr}%40example.com"))
            status, headers, body = read_response(s, buf)
            assert status == 200 and headers.get("connection") != "close"
        # two requests in one write: two answers, in order
        s.sendall(get("/qd1/deliverable?nobody%40example.com")
                  + get("/qd1/deliverable?bob%40example.com", headers="Connection: close\r\n"))
        assert read_response(s, buf)[2] == b"0"
        status, headers, body = read_response(s, buf)
        assert (body, headers["connection"]) == (b"242", "close")
        assert closed(s)


def test_requests_sent_at_once_then_a_half_close_each_get_their_answer(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    with connect(h) as s:
        s.sendall(get("/qd1/deliverable?nobody%40example.com")
                  + get("/qd1/deliverable?bob%40example.com"))
        s.shutdown(socket.SHUT_WR)
        buf = bytearray()
        assert read_response(s, buf)[:3:2] == (200, b"0")
        assert read_response(s, buf)[:3:2] == (200, b"242")
        assert closed(s)


def test_another_method_is_403_head_included(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    with connect(h) as s:
        s.sendall(b"HEAD /qd1/deliverable?bob%40example.com HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 403 ") and head.endswith(b"\r\n\r\n")
        assert closed(s)
    assert request(h, "/qd1/deliverable?bob%40example.com", "X: POST\r\n") == (200, b"242")
    with connect(h) as s:
        s.sendall(b"POST /qd1/deliverable?bob%40example.com HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 3\r\n\r\nabc")
        assert read_response(s, bytearray())[:1] == (403,)


def test_http_1_0_gets_its_answer_and_the_connection_closed(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    with connect(h) as s:
        s.sendall(b"GET /qd1/deliverable?bob%40example.com HTTP/1.0\r\n\r\n")
        buf = bytearray()
        status, headers, body = read_response(s, buf)
        assert (status, body) == (200, b"242")
        assert closed(s)


@pytest.mark.parametrize("junk,status", [
    (b"hello\r\n\r\n", 400),
    (b"GET /qd1/deliverable?a@b HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n", 431),
    (b"GET /qd1/deliverable?a@b HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n" + b"z" * 9000,
     413),
    (b"GET /qd1/deliverable?a@b HTTP/1.1\r\n\r\n", 400),            # 1.1 without Host
    (b"GET /qd1/deliverable?a@b HTTP/1.1\r\nHost x\r\n\r\n", 400),     # a header without ':'
    (b"GET /qd1/deliverable?a@b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"2328\r\n" + b"z" * 9000 + b"\r\n0\r\n\r\n", 413),
])
def test_bad_http_gets_its_4xx_and_the_server_goes_on(deep_daemon, front, junk, status):
    d, t = deep_daemon
    h = front(d.port)
    with connect(h) as s:
        s.sendall(junk)
        assert read_response(s, bytearray())[0] == status
        assert closed(s)
    assert request(h, "/qd1/deliverable?bob%40example.com") == (200, b"242")
    assert "Traceback" not in h.log() and h.proc.poll() is None
    h.signal(signal.SIGHUP)                       # nothing to reload: it goes on
    assert request(h, "/qd1/deliverable?bob%40example.com") == (200, b"242")


def test_a_slow_client_holds_up_no_one_and_is_cut_off(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port, VERIFY_HTTP_IDLE="2")
    slow = connect(h)
    try:
        started = time.monotonic()
        slow.sendall(b"G")
        # others are answered while the slow client is mid-request
        assert request(h, "/qd1/deliverable?bob%40example.com") == (200, b"242")
        for byte in b"ET /qd1/deliverable?bob%40example.com HTTP/1.1\r\n":
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if time.monotonic() - started > 5:
                break
            time.sleep(0.25)
        # a byte every quarter second does not keep the connection open
        assert closed(slow)
    finally:
        slow.close()


def test_at_the_connection_cap_new_clients_wait_in_the_backlog(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port, VERIFY_HTTP_CONNECTIONS="2", VERIFY_HTTP_IDLE="30")
    holders = [connect(h), connect(h)]
    try:
        wait_until(lambda: len(os.listdir(f"/proc/{h.proc.pid}/fd")) >= 6)
        waiting = connect(h, timeout=1.0)
        waiting.sendall(get("/qd1/deliverable?bob%40example.com"))
        with pytest.raises(socket.timeout):
            waiting.recv(1)
        holders.pop().close()
        waiting.settimeout(10)
        assert read_response(waiting, bytearray())[2] == b"242"
        waiting.close()
    finally:
        for s in holders:
            s.close()


def test_a_daemon_that_is_down_or_silent_is_503_never_a_number(front, silent_port):
    down = front(free_port())
    status, body = request(down, "/qd1/deliverable?bob%40example.com")
    assert status == 503 and body == b"temporary failure: connection refused\n"
    silent = front(silent_port, VERIFY_TIMEOUT="1")
    status, body = request(silent, "/qd1/deliverable?bob%40example.com")
    assert status == 503 and body == b"temporary failure: no response from verification server\n"
    assert request(silent, "/qd1/qmail_local?bob%40example.com")[0] == 503
    silent.wait_for("deliverable bob@example.com 503 temporary failure")


def test_a_temporary_answer_of_the_daemon_is_503(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port)
    os.chmod(t.domain_dir(b"example.com") + b"/vpasswd.cdb", 0)
    os.chmod(t.domain_dir(b"example.com") + b"/vpasswd", 0)
    status, body = request(h, "/qd1/deliverable?carol%40example.com")
    assert status == 503 and body.startswith(b"temporary failure: ")


def run(env, wrapper=()):
    return subprocess.run([*wrapper, executable("qmail-verify-http")], capture_output=True,
                          text=True, timeout=30, env={"PATH": os.environ["PATH"], **env})


def test_it_refuses_root_and_bad_settings_in_one_line():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    r = run({})
    assert (r.returncode, r.stderr) == (111, "qmail-verify-http: fatal: refusing to run as root: "
                                             "start me under setuidgid with an account of my own\n")
    from helpers import unprivileged
    wrapper = unprivileged(executable("qmail-verify-http"))
    r = run({"LISTEN": "1.2.3"}, wrapper)
    assert r.returncode == 111 and r.stderr.startswith("qmail-verify-http: fatal: bad LISTEN: ")
    r = run({"VERIFY_TIMEOUT": "0"}, wrapper)
    assert r.returncode == 111 and r.stderr.count("\n") == 1 and "VERIFY_TIMEOUT" in r.stderr
    r = run({"LISTEN": "127.0.0.1:80"}, wrapper)          # a port below 1024, not root
    assert (r.returncode, r.stderr) == (111, "qmail-verify-http: fatal: unable to listen on "
                                             "127.0.0.1:80: access denied\n")


def test_out_of_descriptors_it_waits_instead_of_spinning_then_serves_again(deep_daemon, front):
    d, t = deep_daemon
    h = front(d.port, VERIFY_HTTP_IDLE="30", wrapper=["prlimit", "--nofile=16:16"])
    held = [connect(h) for _ in range(24)]          # more than it has descriptors for
    try:
        wait_until(lambda: len(os.listdir(f"/proc/{h.proc.pid}/fd")) >= 16)

        def cpu_ticks():
            fields = open(f"/proc/{h.proc.pid}/stat").read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        before = cpu_ticks()
        time.sleep(1.0)
        assert cpu_ticks() - before < 50           # not a loop of failing accepts
    finally:
        for s in held:
            s.close()
    assert wait_until(lambda: request(h, "/qd1/deliverable?bob%40example.com")) == (200, b"242")
    assert h.proc.poll() is None and "Traceback" not in h.log()
