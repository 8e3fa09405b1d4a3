"""Benchmark: what qmail-logmsg adds to an SMTP session.

    python3 bench/shim.py [--sessions S] [--commands N] [--megabytes M]

Starts Debian's tcpserver twice on 127.0.0.1, once running a stand-in
qmail-smtpd directly (bench/sink_smtpd.py) and once running it behind
the installed qmail-logmsg entry point, and a UDP responder that answers
"deliverable" as qmail-verify would.

Sessions: S whole sequential sessions on each (HELO, MAIL, a RCPT that
qmail-logmsg verifies with VERIFY set, QUIT; connect to close), and S
runs of `python3 -c pass` of the interpreter the entry point names, all
interleaved in one run; medians.  The shim's overhead (shimmed minus
direct) is compared with the bare interpreter start.  Also printed: the
pip that wrote the entry point's wrapper and whether it imports re.

Throughput (unless --commands 0): N sequential NOOP round trips and an
M-megabyte DATA body in one session each way (VERIFY unset), three
rounds.  Run where tcpserver is installed.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, logfile, **env):
    port = free_port()
    p = subprocess.Popen(["tcpserver", "-R", "-H", "-l", "localhost", "127.0.0.1", str(port), *cmd],
                         stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL,
                         env={"PATH": os.environ["PATH"], **env})
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


def responder() -> int:
    """A UDP server answering every query 'deliverable (bench)', in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(b"\x00bench", peer)
    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def session(port) -> float:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        expect(s, b"220")
        for command, code in ((b"HELO bench\r\n", b"250"), (b"MAIL FROM:<>\r\n", b"250"),
                              (b"RCPT TO:<a@bench.example>\r\n", b"250"), (b"QUIT\r\n", b"221")):
            s.sendall(command)
            expect(s, code)
        while s.recv(65536):
            pass
    return time.perf_counter() - t0


def bare(interpreter) -> float:
    t0 = time.perf_counter()
    subprocess.run([interpreter, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def wrapper_facts(script: str) -> tuple[str, str]:
    with open(script) as f:
        text = f.read()
    interpreter = text.splitlines()[0][2:].strip()
    pip = subprocess.run([interpreter, "-m", "pip", "--version"], capture_output=True, text=True)
    version = pip.stdout.split(" from ")[0] if pip.returncode == 0 else "pip not found"
    editable = subprocess.run([interpreter, "-c", "import qmailverify; print(qmailverify.__file__)"],
                              capture_output=True, text=True, cwd="/").stdout.strip()
    how = f"{version}; wrapper imports re: {'yes' if 'import re' in text else 'no'}; " \
          f"package at {os.path.dirname(editable)}"
    return interpreter, how


def startup(shim, sink, log, sessions) -> None:
    home = tempfile.mkdtemp(prefix="qv-shim-bench-")
    os.mkdir(os.path.join(home, "control"))
    with open(os.path.join(home, "control", "rcpthosts"), "w") as f:
        f.write("bench.example\n")
    interpreter, how = wrapper_facts(shim)
    direct, dport = start(sink, log)
    shimmed, sport = start([shim, *sink], log, VERIFY=f":{responder()}", QMAILHOME=home)
    times = {"direct": [], "qmail-logmsg": [], "python3 -c pass": []}
    try:
        for _ in range(sessions):
            times["direct"].append(session(dport))
            times["qmail-logmsg"].append(session(sport))
            times["python3 -c pass"].append(bare(interpreter))
    finally:
        direct.terminate()
        shimmed.terminate()
        shutil.rmtree(home)
    med = {name: median(t) * 1e3 for name, t in times.items()}
    print(f"{sessions} sessions each (HELO, MAIL, verified RCPT, QUIT), interleaved; medians")
    print(f"  entry point {shim}: {how}")
    for name, ms in med.items():
        print(f"  {name:<16} {ms:8.2f} ms")
    overhead = med["qmail-logmsg"] - med["direct"]
    print(f"  overhead of qmail-logmsg: {overhead:.2f} ms = "
          f"{overhead / med['python3 -c pass']:.2f}x a bare interpreter start (target: at most 2x)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--megabytes", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # the installed script itself, not a wrapper such as a pyenv shim
    shim = os.path.join(sysconfig.get_path("scripts"), "qmail-logmsg")
    if not shutil.which("tcpserver") or not os.path.exists(shim):
        raise SystemExit("bench: needs tcpserver (ucspi-tcp) and an installed qmail-logmsg")
    fd, logpath = tempfile.mkstemp(prefix="qv-shim-bench-")
    os.close(fd)
    log = open(logpath, "wb")
    sink = [sys.executable, str(HERE / "sink_smtpd.py")]
    try:
        if args.sessions:
            startup(shim, sink, log, args.sessions)
        if args.commands:
            throughput(shim, sink, log, args)
    finally:
        log.close()
        os.unlink(logpath)


def throughput(shim, sink, log, args):
    line = b"x" * 76 + b"\r\n"
    body = line * (args.megabytes * 1_000_000 // len(line)) + b".\r\n"
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
