"""Flood: the installed qmail-verify under a 60-second flood of mixed
valid, invalid and garbage datagrams sent at full speed from other
processes.

    sudo python3 bench/flood.py [--seconds 60] [--senders 1] [--warmup 5]

Builds the reference fixture P1 (root is needed: its homes belong to
other uids), starts the installed qmail-verify on it with its log in a
file, checks every P1 reply is exact, and floods it: each sender process
sends, without waiting, P1's queries (half of the datagrams, legacy and
extended), invalid queries (hostile addresses: '..', '/', NUL, over 900
bytes, control bytes; a third) and garbage (random bytes, empty
datagrams), and drains whatever replies come back.  Meanwhile a probe
sends one well-formed query a second (kim@example.com, from a socket of
its own, as qmail-smtpd would) and waits up to 5 s (VERIFY_TIMEOUT's
default) for the exact reply.

Reported: the daemon's RSS (VmRSS from /proc/PID/status) after the
warm-up and at the end, and its peak; memory is FLAT when the end value
is within 5% (and 2 MB) of the value after the warm-up.  Queries answered
per second (from the daemon's own stats line, SIGALRM, before and after),
datagrams sent per second, kernel drops on the daemon's socket (the drops
column of /proc/net/udp) and the host's Udp RcvbufErrors (/proc/net/snmp,
every socket on the host), the probes answered of those sent with their
latency, and that every P1 reply is still exact after the flood.  Exit
code 1 if memory is not flat, a P1 reply is wrong or the daemon died.

Why datagrams are dropped, and where.  The flood is sent far faster than
any daemon answers.  qmail-verify reads everything waiting before it
answers (daemon/fairqueue.py), so what the flood loses it mostly loses in
the daemon's queue: read, then dropped at the bound, the longest queue's
oldest first ("shed" in the stats line), while the probe, a sender of its
own, waits behind at most one datagram of the flood.  The kernel drops a
datagram only when the daemon's receive buffer (4 MB asked for:
daemon/udpsocket.py) is full, that is when the sender outruns the
daemon's reading itself, as a sender on another core can for a while;
those drops are blind, and a probe caught in them costs its client a
timeout and a 451, never a 550.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
P1 = HERE.parent / "tests" / "data" / "P1.json"
PROBE, PROBE_REPLY = b"kim@example.com", b"\x90kim"


def build_tree(spec: dict, root: Path) -> dict:
    from qmailverify.testing import tree
    return tree.build(spec, root)


# -- the sender (a process of its own) --------------------------------------------

def datagrams(spec: dict, seed: int, n: int = 20000) -> list[bytes]:
    rng = random.Random(seed)
    valid = [bytes.fromhex(c["q"]) for c in spec["cases"]]
    tokens = [b"..", b"/", b"\0", b"%", b"@", b"-", b"\x1b[2J", b"\r\n", b"\xff", b"example.com",
              b"kim", b"alias", b"default", b"\0QV2"]
    out = []
    for _ in range(n):
        pick = rng.random()
        if pick < 0.5:
            q = rng.choice(valid)
            out.append(q.split(b"\0")[0] + b"\0QV2" if rng.random() < 0.3 else q)
        elif pick < 0.83:
            addr = b"".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))
            if rng.random() < 0.1:
                addr = b"x" * rng.randint(880, 1500) + addr
            out.append(addr)
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    return out


def sender(port: int, seconds: float, seed: int) -> None:
    """Send at full speed for seconds; print {"sent": N, "replies": M}."""
    spec = json.loads(P1.read_text())
    grams = datagrams(spec, seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    sent = replies = 0
    end = time.monotonic() + seconds
    n = len(grams)
    while time.monotonic() < end:
        for i in range(256):
            try:
                s.send(grams[(sent + i) % n])
            except (BlockingIOError, ConnectionRefusedError):
                pass
        sent += 256
        while True:
            try:
                s.recv(64)
                replies += 1
            except (BlockingIOError, ConnectionRefusedError):
                break
    print(json.dumps({"sent": sent, "replies": replies}), flush=True)


# -- what is measured -------------------------------------------------------------

def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit("flood: no VmRSS")


def socket_drops(port: int) -> tuple[int, int]:
    """(drops, rx_queue bytes) of the UDP socket bound to port, /proc/net/udp."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port:
            return int(f[-1]), int(f[4].split(":")[1], 16)
    return 0, 0


def snmp_udp() -> dict:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def stats(daemon, logpath: Path, count: int) -> dict:
    """Ask for the stats line (SIGALRM) and wait for it: the count-th one."""
    daemon.send_signal(signal.SIGALRM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = [line for line in logpath.read_bytes().split(b"\n") if b": stats: " in line]
        if len(lines) >= count:
            fields = lines[count - 1].split(b"stats: ")[1].split()
            return {k.decode(): int(v) for k, v in (f.split(b"=") for f in fields)}
        time.sleep(0.05)
    raise SystemExit("flood: no stats line from the daemon")


def probe(port: int, timeout: float = 5.0) -> float | None:
    """Seconds until the exact reply to one well-formed query, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(timeout)
        t0 = time.monotonic()
        s.send(PROBE)
        end = t0 + timeout
        while True:
            try:
                if s.recv(64) == PROBE_REPLY:
                    return time.monotonic() - t0
            except (socket.timeout, OSError):
                return None
            s.settimeout(max(end - time.monotonic(), 0.001))


def check_exact(port: int, cases: list) -> int:
    """How many of P1's replies are wrong (or missing)."""
    wrong = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(5)
        for case in cases:
            s.send(bytes.fromhex(case["q"]))
            try:
                wrong += s.recv(100) != bytes.fromhex(case["r"])
            except socket.timeout:
                wrong += 1
    return wrong


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(a, spec: dict, paths: dict, root: Path) -> int:
    port = free_port()
    env = {"PATH": os.environ["PATH"], "QMAILHOME": str(paths["qmail"]),
           "VERIFY_PASSWD": str(paths["passwd"]), "LISTEN": f"127.0.0.1:{port}"}
    logpath = root / "daemon.log"
    with open(logpath, "wb") as log:
        daemon = subprocess.Popen([shutil.which("qmail-verify") or "qmail-verify"], env=env,
                                  stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while probe(port, 0.2) is None:
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit(f"flood: the daemon did not start: {logpath.read_text()}")
        wrong_before = check_exact(port, spec["cases"])
        rss_start = rss_kb(daemon.pid)
        senders = [subprocess.Popen([sys.executable, __file__, "--send", str(port),
                                     str(a.warmup + a.seconds), str(i)],
                                    stdout=subprocess.PIPE, text=True)
                   for i in range(a.senders)]
        time.sleep(a.warmup)
        rss_warm = rss_kb(daemon.pid)
        s0, d0, u0 = stats(daemon, logpath, 1), socket_drops(port)[0], snmp_udp()
        t0 = time.monotonic()
        latencies, probes, peak, queue_max = [], [], rss_warm, 0
        while time.monotonic() - t0 < a.seconds:       # a probe a second, each in a thread
            tick = time.monotonic()
            probes.append(threading.Thread(target=lambda: latencies.append(probe(port))))
            probes[-1].start()
            peak = max(peak, rss_kb(daemon.pid))
            queue_max = max(queue_max, socket_drops(port)[1])
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        s1, d1, u1 = stats(daemon, logpath, 2), socket_drops(port)[0], snmp_udp()
        elapsed = time.monotonic() - t0
        rss_end = rss_kb(daemon.pid)
        flood = [json.loads(p.communicate()[0]) for p in senders]
        for t in probes:
            t.join()
        sent_probes = len(latencies)
        latencies = sorted(x for x in latencies if x is not None)
        time.sleep(1)
        wrong_after = check_exact(port, spec["cases"])
        alive = daemon.poll() is None
    finally:
        daemon.terminate()
        daemon.wait()
    sent = sum(f["sent"] for f in flood)
    answered = (s1["permitted"] + s1["denied"] + s1["temporary"]
                - s0["permitted"] - s0["denied"] - s0["temporary"])
    growth = rss_end - rss_warm
    flat = growth <= max(0.05 * rss_warm, 2048)
    lat = (f"median {1e3 * latencies[len(latencies) // 2]:.1f} ms, "
           f"max {1e3 * latencies[-1]:.1f} ms") if latencies else "none answered"
    load = os.getloadavg()
    print(f"flood: {a.seconds:g} s after a {a.warmup:g} s warm-up, {a.senders} sender process(es); "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"  RSS: {rss_start} kB at start, {rss_warm} kB after the warm-up, {rss_end} kB at the "
          f"end (peak {peak} kB): growth {growth:+d} kB = {100 * growth / rss_warm:+.1f}%: "
          f"{'FLAT' if flat else 'NOT FLAT'} (limit: 5% or 2 MB)")
    print(f"  sent: {sent} datagrams during warm-up and flood "
          f"({sent / (a.warmup + a.seconds):.0f}/s); the senders got {sum(f['replies'] for f in flood)} replies")
    print(f"  the daemon: {s1['queries'] - s0['queries']} queries taken, {answered} answered "
          f"({answered / elapsed:.0f}/s), {s1['unanswered'] - s0['unanswered']} left unanswered "
          f"(its own trouble), during the {elapsed:.1f} s measured")
    print(f"  shed by the daemon (read, then dropped at its queue's bound, the flood's "
          f"oldest first: daemon/fairqueue.py): {s1.get('shed', 0) - s0.get('shed', 0)}")
    print(f"  kernel drops on its socket: {d1 - d0} (/proc/net/udp drops); host Udp RcvbufErrors "
          f"+{u1['RcvbufErrors'] - u0['RcvbufErrors']}, InErrors +{u1['InErrors'] - u0['InErrors']}; "
          f"receive queue up to {queue_max} bytes (net.core.rmem_default "
          f"{Path('/proc/sys/net/core/rmem_default').read_text().strip()})")
    print(f"  probes: {len(latencies)} of {sent_probes} answered exactly within 5 s ({lat})")
    print(f"  P1 replies wrong: {wrong_before} before, {wrong_after} after; daemon "
          f"{'alive' if alive else 'DEAD'}; log {logpath.stat().st_size // 1024} kB")
    return 0 if flat and alive and wrong_before == wrong_after == 0 else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="flood.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--senders", type=int, default=1)
    p.add_argument("--send", nargs=3, help=argparse.SUPPRESS)   # a sender process
    a = p.parse_args(argv)
    if a.send:
        sender(int(a.send[0]), float(a.send[1]), int(a.send[2]))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("flood: run as root (the fixture's homes belong to other uids)")
    spec = json.loads(P1.read_text())
    root = Path(tempfile.mkdtemp(prefix="qv-flood-"))
    root.chmod(0o755)
    try:
        return run(a, spec, build_tree(spec, root), root)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    sys.exit(main())
