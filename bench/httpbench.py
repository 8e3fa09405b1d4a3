"""Benchmark: qmail-verify-http against a minimal qd1 server answering
from a table (bench/qd1table.py: the cost of HTTP and sockets alone),
both measured in the same run; then RCPTs a second through the real
Haraka in front of each.  A second qmail-verify-http, in front of a
daemon that answers from a table (bench/verifytable.py), shows what the
UDP hop to the daemon costs apart from the daemon's own work.

    sudo python3 bench/httpbench.py [--seconds S] [--rounds R] [--no-haraka]

Builds the reference fixture (P1) in a temporary folder (root is needed:
its homes belong to other uids), starts the installed qmail-verify on it,
qmail-verify-http in front of it as uid 65534, and the table server with
the answers qmail-verify-http gave for the same targets (checked once
more at the end), and verifytable.py with the daemon's replies to the
queries qmail-verify-http sends for them, a second qmail-verify-http in
front of it.  The targets are P1's addresses that an HTTP query can
carry (printable ASCII), URI-escaped as Haraka escapes them.  bench/
httpload.py (a process of its own) keeps 1 and 16 requests in flight,
on kept-alive connections and with one connection a request (as
Haraka's plugin asks), against the three in turn, round after round;
medians are reported with each round's ratio to the table server.
Then Haraka (tests/http/node_modules, installed by sh bin/dev test) is
started in front of each server in turn and 4 SMTP sessions send RCPTs
as fast as it answers them.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from statistics import median

from qmailverify.protocol.client import RECV_MAX
from qmailverify.protocol.wire import make_query

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from haraka import Haraka, why_no_haraka  # noqa: E402  (the tests' own Haraka)
from helpers import unprivileged  # noqa: E402  (uid 65534, with what it needs to reach us)

P1 = HERE.parent / "tests" / "data" / "P1.json"
MODES = (("keep-alive", False), ("close", True))
SERVERS = ("table", "qmail-verify-http", "over a table daemon")


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on port {port}")


def fetch(port: int, target: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=10) as r:
        return r.read()


def load(port: int, n: int, seconds: float, targetfile: Path, close: bool) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "httpload.py"), "127.0.0.1", str(port),
                          str(n), str(seconds), str(targetfile)] + (["close"] if close else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def rcpts_per_second(haraka: Haraka, addresses: list[str], seconds: float,
                     sessions: int = 4) -> tuple[float, dict]:
    """RCPTs a second over sessions SMTP sessions, and how many got each
    reply code."""
    counts = [0] * sessions
    codes: dict = {}
    end = time.monotonic() + seconds

    def one(i):
        s = haraka.session()
        k = i
        while time.monotonic() < end:
            code = s.rcpt(addresses[k % len(addresses)])[0]
            codes[code] = codes.get(code, 0) + 1
            counts[i] += 1
            k += sessions
            if counts[i] % 50 == 0:
                s.rset()
                s.mail("sender@client.example")
        s.quit()

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started), codes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-haraka", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the fixture's homes belong to other uids)")
    from qmailverify.testing import tree
    spec = json.loads(P1.read_text())
    root = Path(tempfile.mkdtemp(prefix="qv-bench-http-"))
    root.chmod(0o755)
    try:
        run(args, spec, tree.build(spec, root), root)
    finally:
        shutil.rmtree(root)


def run(args, spec, paths, root):
    addresses = []
    for case in spec["cases"]:
        address = bytes.fromhex(case["q"]).partition(b"\0")[0]
        if address and all(0x20 <= b < 0x7F for b in address) and address not in addresses:
            addresses.append(address)
    targets = ["/qd1/deliverable?" + urllib.parse.quote(a, safe="-_.!~*'()") for a in addresses]
    targetfile = root / "targets"
    targetfile.write_text("".join(t + "\n" for t in targets))
    vport, hport, tport = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    fport, fhport = free_port(socket.SOCK_DGRAM), free_port()
    program = shutil.which("qmail-verify-http")
    procs = []
    logs = [open(root / name, "wb") for name in ("daemon.log", "http.log", "hop.log")]
    procs.append(subprocess.Popen(
        ["qmail-verify"], stderr=logs[0],
        env={"PATH": os.environ["PATH"], "QMAILHOME": str(paths["qmail"]),
             "VERIFY_PASSWD": str(paths["passwd"]), "LISTEN": f"127.0.0.1:{vport}"}))
    procs.append(subprocess.Popen(
        unprivileged(program) + [program], stderr=logs[1],
        env={"LISTEN": f"127.0.0.1:{hport}", "VERIFY_SERVER": f"127.0.0.1:{vport}"}))
    try:
        wait_http(hport)
        answers = [fetch(hport, t) for t in targets]
        (root / "table").write_bytes(b"".join(t.encode() + b" " + a + b"\n"
                                              for t, a in zip(targets, answers)))
        procs.append(subprocess.Popen([sys.executable, str(HERE / "qd1table.py"), str(tport),
                                       str(root / "table")]))
        (root / "replies").write_text(reply_table(addresses, vport))
        procs.append(subprocess.Popen([sys.executable, str(HERE / "verifytable.py"), str(fport),
                                       str(root / "replies")]))
        procs.append(subprocess.Popen(
            unprivileged(program) + [program], stderr=logs[2],
            env={"LISTEN": f"127.0.0.1:{fhport}", "VERIFY_SERVER": f"127.0.0.1:{fport}"}))
        wait_http(tport)
        wait_http(fhport)
        if [fetch(fhport, t) for t in targets] != answers:
            raise SystemExit("bench: the table daemon's answers differ from the daemon's")
        rows = []
        for mode, close in MODES:
            for n in (1, 16):
                runs = [tuple(load(port, n, args.seconds, targetfile, close)
                              for port in (tport, hport, fhport))
                        for _ in range(args.rounds)]
                rows.append((mode, n, runs))
        if [fetch(hport, t) for t in targets] != answers:
            raise SystemExit("bench: qmail-verify-http's answers changed")
        haraka = None if args.no_haraka else haraka_rates(args, tport, hport, addresses)
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        for f in logs:
            f.close()
    report(args, rows, haraka, len(targets), root)


def reply_table(addresses: list[bytes], port: int) -> str:
    """The daemon's reply to each query qmail-verify-http sends for
    addresses, as verifytable.py reads them."""
    lines = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        for a in addresses:
            query = make_query(a, detail=True)
            s.send(query)
            lines.append(f"{query.hex()} {s.recv(RECV_MAX).hex()}\n")
    return "".join(lines)


def haraka_rates(args, tport, hport, addresses):
    why = why_no_haraka()
    if why:
        print(f"bench: no Haraka figures: {why}")
        return None
    rcpts = [a.decode() for a in addresses if b"@" in a and b" " not in a and b'"' not in a]
    rates = {"table": [], "qmail-verify-http": []}
    codes = {}
    for _ in range(args.rounds):
        for name, port in (("table", tport), ("qmail-verify-http", hport)):
            h = Haraka(port, {})
            try:
                rcpts_per_second(h, rcpts, 1.0)                 # warm up
                rate, codes[name] = rcpts_per_second(h, rcpts, args.seconds)
                rates[name].append(rate)
            finally:
                h.stop()
    print(f"Haraka's replies to the RCPTs of the last round: {codes}")
    if codes["table"].keys() != codes["qmail-verify-http"].keys():
        raise SystemExit("bench: Haraka answered differently")
    return rates


def report(args, rows, haraka, ntargets, root):
    print(f"{args.rounds} rounds of {args.seconds:g} s each, {ntargets} targets; medians, "
          "and each round's ratio")
    print(f"{'mode':<11}{'N':>3} {'server':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6}")
    for mode, n, runs in rows:
        med = []
        for i, name in enumerate(SERVERS):
            r = {k: median(run[i][k] for run in runs) for k in ("rps", "p50_ms", "p99_ms", "errors")}
            med.append(r)
            print(f"{mode:<11}{n:>3} {name:<20} {r['rps']:>8.0f} {r['p50_ms']:>8.3f} "
                  f"{r['p99_ms']:>8.3f} {r['errors']:>6.0f}")
            if i:
                shares = sorted(100 * run[i]["rps"] / run[0]["rps"] for run in runs)
                print(f"{'':<16}{name}: req/s at {median(shares):.1f}% of the table's "
                      f"(rounds: {', '.join(f'{x:.1f}%' for x in shares)}); "
                      f"p99 {r['p99_ms'] - med[0]['p99_ms']:+.3f} ms")
    if haraka:
        for name, values in haraka.items():
            print(f"Haraka in front of {name:<18} {median(values):>6.0f} RCPTs/s "
                  f"(rounds: {', '.join(f'{v:.0f}' for v in values)})")
        print(f"Haraka with qmail-verify-http at "
              f"{100 * median(haraka['qmail-verify-http']) / median(haraka['table']):.1f}% "
              "of Haraka with the table")
    print(f"qmail-verify-http log lines: {sum(1 for _ in open(root / 'http.log', 'rb'))}")


if __name__ == "__main__":
    main()
