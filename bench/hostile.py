"""Hostile work: what a local user or a remote sender can make the daemon
spend, and what everyone else sees meanwhile.

    sudo python3 bench/hostile.py deep [--forwards N] [--program PATH]
    sudo python3 bench/hostile.py dashes [--seconds S] [--sockets K] [--program PATH]
    sudo python3 bench/hostile.py sqlflood [--seconds S] [--program PATH]
    (each also [--workers N]: VERIFY_WORKERS)

Each builds its tree in a temporary folder (root is needed: homes belong
to other uids), starts the qmail-verify named by --program (the installed
one by default; another tree's venv/bin/qmail-verify to compare), and
sends the hostile queries while a probe, another sender with a socket of
its own, asks for an ordinary address and times each reply (5 s at most,
a client's VERIFY_TIMEOUT; none by then is lost).

deep      VERIFY_DEEP=1; kim's ~/.qmail-default holds N lines forwarding to
          kim's own -default addresses (kim-f0 ... kim-fN-1; N=600 fills
          most of the 8 KB deep mode reads).  One extended query for
          kim-f0, 20 probes sent meanwhile (one each 10 ms).
dashes    kim's home holds, for each of the 243 names the .qmail search of
          kim-<241 dashes> stats, a symbolic link through a chain of 40
          (the kernel's limit), each link's target a path of 2,000 './'
          before the next: every stat walks 80,000 names and fails "no
          such file".  K sockets send such queries (each a different
          number of dashes, so no two are the same address), each waiting
          for its reply before the next, for S seconds; the probe asks
          every 20 ms.
sqlflood  VERIFY_DEEP=1 VERIFY_VPOPMAIL=mysql on a MariaDB of its own:
          two processes send addresses never seen (random) in the SQL
          domain, --rate a second in all (50,000), for S seconds; 100 probes for a
          plain local user (kim@mx.example), one each S/100 seconds.
          --domain mx.example floods the local domain instead (no SQL):
          the baseline of the same machine under the same flood.

Prints the hostile query's answer and time (deep), the probes answered of
those sent with p50/p99/max latency, and the kernel's drops on the
daemon's socket (/proc/net/udp).  Figures from a shared machine swing:
compare trees run one after the other on one machine.
"""

import argparse
import json
import multiprocessing
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
KIM_UID = 2010


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_p1(root: Path) -> dict:
    from qmailverify.testing import tree
    return tree.build(json.loads(P1.read_text()), root)


WORKERS = "1"


def start(program: str, env: dict, port: int) -> subprocess.Popen:
    full = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{port}",
            "VERIFY_WORKERS": WORKERS, **env}
    proc = subprocess.Popen([program], env=full, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(b"probe@nowhere.example\0QV2", ("127.0.0.1", port))
            try:
                s.recv(100)
                return proc
            except (socket.timeout, ConnectionRefusedError):
                pass
    proc.kill()
    raise SystemExit("hostile: the daemon did not answer")


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def ask(port: int, query: bytes, timeout: float = 5.0):
    """(reply or None, seconds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        t0 = time.monotonic()
        s.sendto(query, ("127.0.0.1", port))
        try:
            return s.recv(100), time.monotonic() - t0
        except socket.timeout:
            return None, time.monotonic() - t0


class Probe:
    """Another sender: one query every `every` seconds, each on a thread
    of its own, so a slow reply does not hold the next probe back."""

    def __init__(self, port: int, query: bytes, want: bytes):
        self.port, self.query, self.want = port, query, want
        self.times, self.lost, self.wrong, self.threads = [], 0, 0, []

    def one(self):
        reply, took = ask(self.port, self.query)
        if reply is None:
            self.lost += 1
        elif reply != self.want:
            self.wrong += 1
        else:
            self.times.append(took)

    def send(self, count: int, every: float):
        for _ in range(count):
            t = threading.Thread(target=self.one)
            t.start()
            self.threads.append(t)
            time.sleep(every)

    def report(self) -> str:
        for t in self.threads:
            t.join()
        sent = len(self.threads)
        ms = sorted(1000 * t for t in self.times) or [float("nan")]
        p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]     # noqa: E731
        return (f"probes: {len(self.times)}/{sent} answered, {self.lost} lost, {self.wrong} wrong;"
                f" p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {ms[-1]:.1f} ms")


def udp_drops(port: int) -> int:
    hexport = f"{port:04X}"
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(":" + hexport):
                    return int(fields[-1])
    return 0


def deep(a) -> None:
    root = Path(tempfile.mkdtemp(prefix="qv-hostile-"))
    try:
        paths = build_p1(root)
        default = root / "home" / "kim" / ".qmail-default"
        default.write_bytes(b"".join(b"kim-f%d\n" % i for i in range(a.forwards)))
        os.chown(default, KIM_UID, KIM_UID)
        port = free_port()
        proc = start(a.program, {"QMAILHOME": str(paths["qmail"]),
                                 "VERIFY_PASSWD": str(paths["passwd"]), "VERIFY_DEEP": "1"}, port)
        try:
            probe = Probe(port, b"pat@example.com\0QV2", b"\x90pat")
            got = {}
            hostile = threading.Thread(target=lambda: got.update(
                r=ask(port, b"kim-f0@example.com\0QV2", timeout=a.wait)))
            hostile.start()
            time.sleep(0.005)                   # the hostile query first
            probe.send(20, 0.010)
            hostile.join()
            reply, took = got["r"]
            print(f"deep N={a.forwards}: kim-f0 answered {reply!r} in {took * 1000:.0f} ms")
            print(probe.report())
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root)


def plant_links(home: Path, names: list[bytes]) -> None:
    """Each name a link into one chain of 40 that ends nowhere."""
    pad = "./" * 2000
    for k in range(1, 40):
        target = pad + (f"chain{k + 1}" if k < 39 else "nowhere")
        os.symlink(target, home / f"chain{k}")
        os.lchown(home / f"chain{k}", KIM_UID, KIM_UID)
    for name in names:
        os.symlink(pad + "chain1", os.fsencode(str(home)) + b"/" + name)
        os.lchown(os.fsencode(str(home)) + b"/" + name, KIM_UID, KIM_UID)


def dashes(a) -> None:
    from qmailverify.qmail.rules import dotqmail_paths
    root = Path(tempfile.mkdtemp(prefix="qv-hostile-"))
    try:
        paths = build_p1(root)
        home = root / "home" / "kim"
        names = {p.rsplit(b"/", 1)[1] for n in range(200, 242)
                 for p in dotqmail_paths(b"/h", b"-", b"-" * n)}
        names.discard(b".qmail-default")
        plant_links(home, sorted(names))
        port = free_port()
        proc = start(a.program, {"QMAILHOME": str(paths["qmail"]),
                                 "VERIFY_PASSWD": str(paths["passwd"])}, port)
        try:
            one, took = ask(port, b"kim-" + b"-" * 240 + b"@example.com\0QV2", timeout=60)
            print(f"dashes: one query answered {one!r} in {took * 1000:.0f} ms")
            stop_at = time.monotonic() + a.seconds
            drops0 = udp_drops(port)

            def attacker(k: int):
                n = 0
                while time.monotonic() < stop_at:
                    ask(port, b"kim-" + b"-" * (240 - (n * a.sockets + k) % 40)
                        + b"@example.com\0QV2", timeout=5)
                    n += 1
            attackers = [threading.Thread(target=attacker, args=(k,)) for k in range(a.sockets)]
            for t in attackers:
                t.start()
            probe = Probe(port, b"pat@example.com\0QV2", b"\x90pat")
            probe.send(int(a.seconds / 0.02), 0.02)
            for t in attackers:
                t.join()
            print(f"dashes from {a.sockets} sockets for {a.seconds:.0f} s: {probe.report()};"
                  f" kernel drops {udp_drops(port) - drops0}")
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root)


def flood_sender(port: int, seconds: float, seed: int, rate: float, domain: bytes) -> None:
    rnd = random.Random(seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    start_at = time.monotonic()
    stop_at = start_at + seconds
    sent = 0
    while time.monotonic() < stop_at:
        ahead = sent / rate - (time.monotonic() - start_at)
        if ahead > 0:
            time.sleep(ahead)
        sent += 64
        for _ in range(64):
            try:
                s.sendto(b"r%016x@%s" % (rnd.getrandbits(64), domain), ("127.0.0.1", port))
            except (BlockingIOError, ConnectionRefusedError):
                pass
        try:
            while s.recv(100):
                pass
        except (BlockingIOError, ConnectionRefusedError):
            pass


def sqlflood(a) -> None:
    from qmailverify.testing.mariadb import MariaDB, available
    from qmailverify.testing.vpoptree import sql_site
    why = available()
    if why:
        raise SystemExit(f"hostile: sqlflood cannot run: {why}")
    folder = tempfile.mkdtemp(prefix="qv-hostile-db-")
    root = Path(tempfile.mkdtemp(prefix="qv-hostile-"))
    root.chmod(0o755)
    db = MariaDB(folder).start()
    try:
        db.sql("CREATE DATABASE vpopmail",
               "CREATE USER 'vpopmail'@'127.0.0.1' IDENTIFIED BY 's3cret'",
               "GRANT SELECT ON vpopmail.* TO 'vpopmail'@'127.0.0.1'",
               "CREATE TABLE vpopmail.vpopmail (pw_name char(32), pw_domain varchar(96),"
               " pw_passwd varchar(128), pw_uid int, pw_gid int, pw_gecos varchar(48),"
               " pw_dir varchar(160), pw_shell varchar(20), primary key (pw_name, pw_domain))")
        sql_site(root)
        home = root / "kim"
        home.mkdir(mode=0o755)
        os.chown(home, KIM_UID, KIM_UID)
        (root / "passwd").write_text(f"kim:x:{KIM_UID}:{KIM_UID}::{home}:/bin/sh\n"
                                     f"alias:x:7790:7790::{root}/alias:/bin/sh\n")
        port = free_port()
        proc = start(a.program, {
            "QMAILHOME": str(root / "qmail"), "VERIFY_PASSWD": str(root / "passwd"),
            "VERIFY_DEEP": "1", "VERIFY_VPOPMAIL": "mysql",
            "VERIFY_VPOPMAIL_MYSQL": f"127.0.0.1|{db.port}|vpopmail|s3cret|vpopmail"}, port)
        try:
            drops0 = udp_drops(port)
            senders = [multiprocessing.Process(target=flood_sender,
                                               args=(port, a.seconds, i, a.rate / 2,
                                                     a.domain.encode()))
                       for i in range(2)]
            for p in senders:
                p.start()
            probe = Probe(port, b"kim@mx.example\0QV2", b"\x90kim")
            probe.send(100, a.seconds / 100)
            for p in senders:
                p.join()
            print(f"flood of {a.domain} at {a.rate:.0f}/s for {a.seconds:.0f} s: {probe.report()};"
                  f" kernel drops {udp_drops(port) - drops0}")
        finally:
            stop(proc)
    finally:
        db.stop()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(prog="hostile.py", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["deep", "dashes", "sqlflood"])
    p.add_argument("--program", default=shutil.which("qmail-verify"))
    p.add_argument("--forwards", type=int, default=25)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--sockets", type=int, default=8)
    p.add_argument("--rate", type=float, default=50000, help="sqlflood: datagrams a second")
    p.add_argument("--domain", default="example.com",
                   help="sqlflood: the flood's domain (mx.example: local, not SQL, a baseline)")
    p.add_argument("--workers", default="1", help="VERIFY_WORKERS for the daemon")
    p.add_argument("--wait", type=float, default=120.0,
                   help="deep: seconds the hostile query may take")
    a = p.parse_args()
    global WORKERS
    WORKERS = a.workers
    if os.geteuid() != 0:
        print("hostile: run it as root (the homes belong to other uids)", file=sys.stderr)
        return 111
    {"deep": deep, "dashes": dashes, "sqlflood": sqlflood}[a.what](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
