"""Benchmark: qmail-verify against a bare Python UDP echo server.

    sudo python3 bench/bench.py [--seconds S] [--fixture P1.json] [--workers N]

Builds the reference fixture (P1) in a temporary folder (root is needed:
its homes belong to other uids), starts the installed qmail-verify on it
(log to a file, as under multilog) and the echo server, and runs the load
generator (bench/load.py, a process of its own) against each with N = 1
and N = 16 queries in flight, sending the fixture's 366 queries
round-robin, in alternating rounds (medians are reported: one run on a
shared machine swings by 10%).  Prints queries/s and p50/p99 latency, and the daemon's rate
as a share of the echo server's, which is the figure that travels between
machines.  Before measuring it checks that every reply is still exact.
--workers N runs the daemon with VERIFY_WORKERS=N (a master and N workers
on one port); the echo server stays one process.  --program runs another
tree's qmail-verify (its venv/bin/qmail-verify), --n 16 only that load:
bench/compare.sh alternates two trees round by round with both.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
DEFAULT_FIXTURE = HERE.parent / "tests" / "data" / "P1.json"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_udp(port, probe, timeout=10):
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(probe, ("127.0.0.1", port))
            try:
                s.recv(100)
                return
            except socket.timeout:
                pass
    raise SystemExit(f"bench: server on port {port} did not answer")


def load(port, n, seconds, queryfile):
    out = subprocess.run([sys.executable, str(HERE / "load.py"), "127.0.0.1", str(port),
                          str(n), str(seconds), queryfile],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def check_exact(port, cases):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for case in cases:
            s.sendto(bytes.fromhex(case["q"]), ("127.0.0.1", port))
            if s.recv(100) != bytes.fromhex(case["r"]):
                raise SystemExit(f"bench: wrong reply for {case['q']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fixture", default=str(DEFAULT_FIXTURE))
    ap.add_argument("--workers", type=int, default=1, help="VERIFY_WORKERS for the daemon")
    ap.add_argument("--program", default="qmail-verify",
                    help="the qmail-verify to run (another tree's venv/bin/qmail-verify)")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 16], help="queries in flight")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the fixture's homes belong to other uids)")
    from qmailverify.testing import tree
    spec = json.loads(Path(args.fixture).read_text())
    root = Path(tempfile.mkdtemp(prefix="qv-bench-"))
    try:
        run(args, spec, tree.build(spec, root), root)
    finally:
        shutil.rmtree(root)


def run(args, spec, paths, root):
    queryfile = root / "queries.hex"
    queryfile.write_text("".join(c["q"] + "\n" for c in spec["cases"]))
    vport, eport = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "QMAILHOME": str(paths["qmail"]),
           "VERIFY_PASSWD": str(paths["passwd"]), "LISTEN": f"127.0.0.1:{vport}",
           "VERIFY_WORKERS": str(args.workers)}
    log = open(root / "daemon.log", "wb")
    daemon = subprocess.Popen([args.program], env=env, stderr=log)
    echo = subprocess.Popen([sys.executable, str(HERE / "echo.py"), str(eport)],
                            stdout=subprocess.DEVNULL)
    try:
        wait_udp(vport, b"kim@example.com")
        wait_udp(eport, b"x")
        check_exact(vport, spec["cases"])
        rows = []
        for n in args.n:
            runs = []
            for _ in range(args.rounds):      # alternate, so drift hits both alike
                runs.append((load(eport, n, args.seconds, str(queryfile)),
                             load(vport, n, args.seconds, str(queryfile))))
            rows.append((n, runs))
        check_exact(vport, spec["cases"])
    finally:
        daemon.terminate()
        echo.terminate()
        daemon.wait()
        echo.wait()
    print(f"{args.rounds} rounds of {args.seconds:g} s each, {args.workers} worker(s); "
          "medians, and the range of the share")
    print(f"{'N':>3} {'server':<13} {'queries/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5}")
    for n, runs in rows:
        for name, i in (("echo", 0), ("qmail-verify", 1)):
            r = {k: median(run[i][k] for run in runs) for k in ("qps", "p50_ms", "p99_ms", "lost")}
            print(f"{n:>3} {name:<13} {r['qps']:>10.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['lost']:>5.0f}")
        shares = sorted(100 * v["qps"] / e["qps"] for e, v in runs)
        print(f"{n:>3} qmail-verify at {median(shares):.1f}% of echo"
              f" (rounds: {', '.join(f'{x:.1f}%' for x in shares)})")
    print(f"log lines written: {sum(1 for _ in open(root / 'daemon.log', 'rb'))}")


if __name__ == "__main__":
    main()
