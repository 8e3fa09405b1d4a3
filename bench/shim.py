"""Benchmark: what qmail-logmsg adds to an SMTP session.

    python3 bench/shim.py [--commands N] [--megabytes M]

Starts Debian's tcpserver twice on 127.0.0.1, once running a stand-in
qmail-smtpd directly (bench/sink_smtpd.py) and once running it behind
qmail-logmsg (VERIFY unset, so only the relaying and logging are
measured), and for each measures: the round trip of a NOOP (N
sequential commands in one session), the time from connect to the
greeting (the cost of starting the session), and the rate at which an
M-megabyte DATA body streams through (from the first body byte to the
final 250).  Run where tcpserver is installed.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, logfile):
    port = free_port()
    p = subprocess.Popen(["tcpserver", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port), *cmd],
                         stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL,
                         env={"PATH": os.environ["PATH"]})
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return p, port
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bench: tcpserver did not start")
            time.sleep(0.05)


def expect(sock, code: bytes, buf=b""):
    while not any(line.startswith(code + b" ") for line in buf.split(b"\r\n")):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"bench: connection closed waiting for {code!r}: {buf[-200:]!r}")
        buf += chunk
    return buf


def measure(port, commands, body):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    expect(s, b"220")
    greeting = time.perf_counter() - t0
    rtts = []
    for _ in range(commands):
        t = time.perf_counter()
        s.sendall(b"NOOP\r\n")
        expect(s, b"250")
        rtts.append(time.perf_counter() - t)
    s.sendall(b"MAIL FROM:<>\r\nRCPT TO:<a@b>\r\nDATA\r\n")
    got = b""
    for code in (b"250", b"250"):
        got = expect(s, code, got)
        got = got[got.index(code + b" ") + 4:]
    expect(s, b"354", got)
    t = time.perf_counter()
    s.sendall(body)
    expect(s, b"250")
    stream = time.perf_counter() - t
    s.sendall(b"QUIT\r\n")
    expect(s, b"221")
    s.close()
    rtts.sort()
    return greeting, median(rtts), rtts[int(0.99 * len(rtts))], len(body) / stream / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--megabytes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # the installed script itself, not a wrapper such as a pyenv shim
    shim = os.path.join(sysconfig.get_path("scripts"), "qmail-logmsg")
    if not shutil.which("tcpserver") or not os.path.exists(shim):
        raise SystemExit("bench: needs tcpserver (ucspi-tcp) and an installed qmail-logmsg")
    line = b"x" * 76 + b"\r\n"
    body = line * (args.megabytes * 1_000_000 // len(line)) + b".\r\n"
    fd, logpath = tempfile.mkstemp(prefix="qv-shim-bench-")
    os.close(fd)
    log = open(logpath, "wb")
    sink = [sys.executable, str(HERE / "sink_smtpd.py")]
    direct, dport = start(sink, log)
    shimmed, sport = start([shim, *sink], log)
    try:
        rows = {"direct": [], "qmail-logmsg": []}
        for _ in range(args.rounds):
            rows["direct"].append(measure(dport, args.commands, body))
            rows["qmail-logmsg"].append(measure(sport, args.commands, body))
    finally:
        direct.terminate()
        shimmed.terminate()
        direct.wait()
        shimmed.wait()
        log.close()
        os.unlink(logpath)
    print(f"{args.rounds} rounds; medians: {args.commands} NOOPs and a {args.megabytes} MB body a session")
    print(f"{'path':<14} {'greeting ms':>11} {'NOOP p50 ms':>12} {'NOOP p99 ms':>12} {'body MB/s':>10}")
    med = {}
    for name, runs in rows.items():
        med[name] = [median(r[i] for r in runs) for i in range(4)]
        g, p50, p99, rate = med[name]
        print(f"{name:<14} {g * 1e3:>11.2f} {p50 * 1e3:>12.3f} {p99 * 1e3:>12.3f} {rate:>10.1f}")
    d, s = med["direct"], med["qmail-logmsg"]
    print(f"added per command round trip: {(s[1] - d[1]) * 1e3:.3f} ms (p50), "
          f"{(s[2] - d[2]) * 1e3:.3f} ms (p99); body at {100 * s[3] / d[3]:.0f}% of direct; "
          f"session start +{(s[0] - d[0]) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
