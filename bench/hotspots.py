"""Where the daemon's time goes, measured in ways that do not depend on
the machine's load: call counts (cProfile) and, under valgrind, a fixed
amount of work to count instructions.

    sudo python3 bench/hotspots.py [--passes 10] [--top 25]
    sudo python3 bench/hotspots.py --time [--passes 50]
    sudo valgrind --tool=callgrind python3 bench/hotspots.py --plain --passes 10

Builds the reference fixture (P1) in a temporary folder and runs the
daemon's own per-datagram path (Daemon.answer(): get_reply() on a
LiveSystem, the log lines, the counts) over its 366 queries, PASSES
times, in this process: no socket, so what it shows is the Python side.
The system calls each query makes are counted by perf stat on the real
daemon (see README, Performance).  With --plain it only runs (for
callgrind, whose total is then compared against --passes 0).  With
--time it times that path instead, in batches of 16 as the loop answers
(one freshness check a batch), and prints the best and the median of
seven runs, in microseconds a query: the figure to compare between two
trees on one machine, since it leaves out the socket and its wake-ups.
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_FIXTURE = HERE.parent / "tests" / "data" / "P1.json"


def make_daemon(paths):
    from qmailverify.daemon.loop import Daemon, Log
    from qmailverify.daemon.settings import settings_from_env
    from qmailverify.daemon.signals import SignalQueue
    from qmailverify.daemon.title import Title
    from qmailverify.system import controls as controlfiles
    from qmailverify.system.live import LiveSystem
    qmailhome = str(paths["qmail"])
    env = {"QMAILHOME": qmailhome, "VERIFY_PASSWD": str(paths["passwd"]),
           "LISTEN": "127.0.0.1:11113"}
    os.environ.update(env)
    settings = settings_from_env(env)
    controls = controlfiles.load(qmailhome)
    system = LiveSystem(qmailhome, str(paths["passwd"]), None)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    log = Log(open(os.devnull, "wb"))
    return Daemon(settings, controls, system, log, sock, Title("bench"), SignalQueue())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--fixture", default=str(DEFAULT_FIXTURE))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("hotspots: run as root (the fixture's homes belong to other uids)")
    from qmailverify.testing import tree
    spec = json.loads(Path(args.fixture).read_text())
    root = Path(tempfile.mkdtemp(prefix="qv-profile-"))
    try:
        daemon = make_daemon(tree.build(spec, root))
        queries = [bytes.fromhex(c["q"]) for c in spec["cases"]]
        for q, c in zip(queries, spec["cases"]):       # warm, and still exact
            if (daemon.answer(q) or b"") != bytes.fromhex(c["r"]):
                raise SystemExit(f"hotspots: wrong reply for {c['q']}")
        work = queries * args.passes
        if args.time:
            time_batches(daemon, work)
            return
        if args.plain:
            for q in work:
                daemon.answer(q)
            return
        prof = cProfile.Profile()
        prof.enable()
        for q in work:
            daemon.answer(q)
        prof.disable()
        out = io.StringIO()
        st = pstats.Stats(prof, stream=out)
        st.sort_stats("tottime").print_stats(args.top)
        total_calls = sum(v[1] for v in st.stats.values())
        print(f"{len(work)} queries; {total_calls / len(work):.1f} function calls a query")
        print(out.getvalue())
    finally:
        shutil.rmtree(root)


def time_batches(daemon, work, runs=7):
    """The answer path's time a query, answered in batches of 16."""
    system, answer, took = daemon.system, daemon.answer, []
    for _ in range(runs):
        start = time.perf_counter()
        for i in range(0, len(work), 16):
            system.begin_batch()
            for q in work[i:i + 16]:
                answer(q)
            system.end_batch()
        took.append((time.perf_counter() - start) / len(work) * 1e6)
    took.sort()
    print(f"{len(work)} queries a run: best {took[0]:.2f} us a query, median {took[runs // 2]:.2f}")


if __name__ == "__main__":
    main()
