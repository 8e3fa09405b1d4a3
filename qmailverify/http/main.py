"""qmail-verify-http: the qmail-verify daemon's answers over
Qmail::Deliverable's HTTP protocol, a drop-in for qmail-deliverabled.

    qmail-verify-http

Configured from the environment:

    LISTEN                    where to listen (TCP): IP, IP:PORT, :PORT,
                              [IPV6]:PORT; 127.0.0.1:8998 by default, as
                              qmail-deliverabled
    VERIFY_SERVER             the qmail-verify daemon (UDP), same forms;
                              127.0.0.1:11113 by default
    VERIFY_TIMEOUT            seconds the daemon has to answer (5)
    VERIFY_HTTP_CONNECTIONS   connections open at once (100)
    VERIFY_HTTP_IDLE          seconds a connection has to send a request
                              or read a response (10)

It answers from the daemon alone (no rules of its own) and never runs as
root: it needs no privilege, and its input comes from the network.
Refusals at start are one line and exit 111 (100 for a usage error).
"""

import os
import signal
import socket
import sys
import time

from qmailverify.cli import guarded, help_or_version
from qmailverify.errors import Fatal, errtext
from qmailverify.http.server import Limits, Server
from qmailverify.protocol.addrspec import AddressError, format_server, parse_server

PROG = "qmail-verify-http"
USAGE = f"{PROG}: usage: {PROG}"
DEFAULT_PORT = 8998
DAEMON_PORT = 11113
LOG_EVERY = 0.1          # seconds a log line may wait to be written
LOG_HOLD = 64            # lines written at once beyond this many


class Stop(Exception):
    """SIGTERM: finish the log and exit 0."""


def fatal(msg: str, code: int = 111) -> Fatal:
    return Fatal(f"{PROG}: fatal: {msg}", code)


def number(env, name: str, default: float, whole: bool = False) -> float:
    text = env.get(name, "")
    if not text:
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        value = 0
    if not 0 < value <= 3600:
        raise fatal(f"{name} must be a number more than 0 and at most 3600")
    return value


def settings(env) -> tuple[tuple[str, int], tuple[str, int], Limits]:
    """(listen address, daemon address, limits) from env; Fatal if unusable."""
    try:
        listen = parse_server(env.get("LISTEN", ""), default_port=DEFAULT_PORT)
    except AddressError as e:
        raise fatal(f"bad LISTEN: {e}") from None
    try:
        daemon = parse_server(env.get("VERIFY_SERVER", ""), default_port=DAEMON_PORT)
    except AddressError as e:
        raise fatal(f"bad VERIFY_SERVER: {e}") from None
    limits = Limits(int(number(env, "VERIFY_HTTP_CONNECTIONS", 100, whole=True)),
                    number(env, "VERIFY_HTTP_IDLE", 10.0),
                    number(env, "VERIFY_TIMEOUT", 5.0))
    return listen, daemon, limits


def bind(listen: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(listen)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise fatal(f"unable to listen on {format_server(*listen)}: {errtext(e.errno)}") from None
    return sock


def write_lines(lines: list) -> None:
    if lines:
        data = b"".join(PROG.encode() + b": " + line + b"\n" for line in lines)
        lines.clear()
        try:
            while data:
                data = data[os.write(2, data):]
        except OSError:
            pass                  # a log we cannot write loses lines


def run(argv: list[str]) -> int:
    help_or_version(argv, USAGE)
    if argv:
        raise Fatal(USAGE, 100)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise fatal("refusing to run as root: start me under setuidgid with an account of my own")
    listen, daemon, limits = settings(os.environ)
    sock = bind(listen)
    server = Server(sock, daemon, limits)

    def stop(signum, frame):
        raise Stop

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)      # nothing to reload: the daemon has the rules
    server.log.append(f"Listening on {format_server(*listen)}, asking qmail-verify at "
                      f"{format_server(*daemon)}.".encode())
    try:
        flushed = 0.0
        while True:
            # the log is written a few times a second, or when it holds
            # many lines: under load a line a request costs no write of its own
            now = time.monotonic()
            if server.log and (len(server.log) >= LOG_HOLD or now - flushed >= LOG_EVERY):
                write_lines(server.log)
                flushed = now
            server.step(LOG_EVERY if server.log else None)
    except Stop:
        server.log.append(b"exiting on SIGTERM.")
    except Exception as e:            # a bug of ours: one line, and supervise starts us again
        server.log.append(f"fatal: internal error: {type(e).__name__}: {e}".encode(
            "ascii", "replace"))
        return 111
    finally:
        write_lines(server.log)
        server.close_all()
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded(PROG, lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
