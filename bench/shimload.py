"""Shim load: 200 concurrent SMTP sessions through the installed
qmail-logmsg under Debian's tcpserver for 60 s.

    python3 bench/shimload.py [--seconds 60] [--concurrency 200]

Builds the demo qmail tree, starts the installed qmail-verify on it and
`tcpserver -v -c C+50 -b C+50 ... qmail-logmsg python3 tests/fake_smtpd.py`
with VERIFY=":PORT" (the stand-in qmail-smtpd records each message it
queues: its recipients, then its body).  One client process keeps C
sessions open at all times until the time is up, then lets the last ones
finish.  Session N says, turn by turn:

    EHLO client-N                                 250
    MAIL FROM:<s-N@remote.example>                250
    RCPT TO:<alice-nosuch-N@demo.example>         550 (checked: no such mailbox)
    RCPT TO:<alice-lists-N@demo.example>          250 (checked: ~alice/.qmail-lists-default)
    DATA, a body naming N                         354, 250 ok
    QUIT                                          221

and every reply is checked against that.  Lost or mixed up: a session
with any other reply sequence (a 451 from a verification timeout is
counted on its own, with the shim's logged reason), one cut off, one over 120 s; and in the stand-in's
queue, a message whose recipient and body name different sessions, a
session queued twice, or a session told 250 whose message is not there.
Reported: sessions completed and per second, their length (median,
99th percentile, max), the most concurrent sessions tcpserver reported
(its "status: N/MAX" lines), the load average.  Exit 1 if any session
was lost or mixed up.
"""

import argparse
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FAKE_SMTPD = HERE.parent / "tests" / "fake_smtpd.py"
STEP_TIMEOUT = 120.0


def build_tree(root: Path) -> dict:
    from qmailverify.testing import tree
    from qmailverify.tools import demo
    uid, gid = (os.getuid(), os.getgid()) if os.geteuid() else (7001, 7001)
    paths = tree.build(demo.demo_spec(uid, gid), root)
    (paths["qmail"] / "control" / "rcpthosts").write_text("demo.example\n")
    return paths


def script(n: int) -> list[tuple[bytes, bytes]]:
    """(what the client sends, the reply code it must get) for session n."""
    body = (b"Subject: session %d\r\nX-Session: %d\r\n\r\nbody of session %d\r\n.\r\n"
            % (n, n, n))
    return [(b"", b"220"), (b"EHLO client-%d\r\n" % n, b"250"),
            (b"MAIL FROM:<s-%d@remote.example>\r\n" % n, b"250"),
            (b"RCPT TO:<alice-nosuch-%d@demo.example>\r\n" % n, b"550"),
            (b"RCPT TO:<alice-lists-%d@demo.example>\r\n" % n, b"250"),
            (b"DATA\r\n", b"354"), (body, b"250"), (b"QUIT\r\n", b"221")]


class Client:
    """One session, a step at a time."""

    def __init__(self, n: int, port: int):
        self.n, self.steps, self.step = n, script(n), 0
        self.buf, self.codes, self.started = b"", [], time.monotonic()
        self.deadline = self.started + STEP_TIMEOUT
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.result = None                     # "ok", or what went wrong

    def feed(self, data: bytes) -> None:
        if not data:
            self.result = f"cut off after {self.codes}"
            return
        self.buf += data
        while self.result is None:
            m = re.search(rb"(?m)^(\d{3}) [^\n]*\n", self.buf)
            if not m:
                return
            code = m.group(1)
            self.buf = self.buf[m.end():]
            self.codes.append(code.decode())
            want = self.steps[self.step][1]
            if code != want:
                self.result = "451" if code == b"451" else f"wrong reply {code!r} at step {self.step}"
                return
            if self.step == 6:
                self.qp = m.group(0)
            self.step += 1
            if self.step == len(self.steps):
                self.result = "ok"
                return
            self.sock.sendall(self.steps[self.step][0])


def drive(port: int, seconds: float, concurrency: int) -> tuple[list, int]:
    sel = selectors.DefaultSelector()
    done, n, end, most = [], 0, time.monotonic() + seconds, 0
    live = {}

    def start():
        nonlocal n
        c = Client(n, port)
        n += 1
        live[c.sock] = c
        sel.register(c.sock, selectors.EVENT_READ, c)

    def finish(c):
        sel.unregister(c.sock)
        c.sock.close()
        del live[c.sock]
        c.length = time.monotonic() - c.started
        done.append(c)

    while live or time.monotonic() < end:
        while time.monotonic() < end and len(live) < concurrency:
            start()
        most = max(most, len(live))
        for key, _ in sel.select(0.5):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                c.result = f"socket error {e}"
            else:
                c.feed(data)
            if c.result is not None:
                finish(c)
        now = time.monotonic()
        for c in [c for c in live.values() if now > c.deadline]:
            c.result = "timed out"
            finish(c)
    return done, most


def queued(path: Path) -> list[tuple[int | None, int | None]]:
    """(session named by the recipient, session named by the body) per message."""
    data = path.read_bytes() if path.exists() else b""
    out = []
    for m in re.finditer(rb"((?:T[^\n]*\n)+)(.*?\r\n\.\r\n)", data, re.S):
        rcpt = re.findall(rb"Talice-lists-(\d+)@demo\.example\n", m.group(1))
        body = re.findall(rb"X-Session: (\d+)\r\n", m.group(2))
        out.append((int(rcpt[0]) if len(rcpt) == 1 else None,
                    int(body[0]) if len(body) == 1 else None))
    return out


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="shimload.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=200)
    a = p.parse_args(argv)
    for program in ("tcpserver", "qmail-logmsg", "qmail-verify"):
        if shutil.which(program) is None:
            raise SystemExit(f"shimload: {program} is not on PATH")
    root = Path(tempfile.mkdtemp(prefix="qv-shimload-"))
    root.chmod(0o755)
    procs = []
    try:
        paths = build_tree(root)
        vport, sport = free_port(socket.SOCK_DGRAM), free_port()
        env = {"PATH": os.environ["PATH"], "QMAILHOME": str(paths["qmail"])}
        vlog, slog = open(root / "verify.log", "wb"), open(root / "smtpd.log", "wb")
        procs.append(subprocess.Popen(
            ["qmail-verify"], env={**env, "VERIFY_PASSWD": str(paths["passwd"]),
                                   "LISTEN": f"127.0.0.1:{vport}"},
            stdout=vlog, stderr=vlog, stdin=subprocess.DEVNULL))
        limit = str(a.concurrency + 50)
        record = root / "record"
        procs.append(subprocess.Popen(
            ["tcpserver", "-v", "-c", limit, "-b", limit, "-R", "-H", "-l", "localhost",
             "127.0.0.1", str(sport), "qmail-logmsg", sys.executable, str(FAKE_SMTPD)],
            env={**env, "VERIFY": f":{vport}", "FAKE_SMTPD_RECORD": str(record)},
            stdout=slog, stderr=slog, stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while b"tcpserver: status: 0/" not in (root / "smtpd.log").read_bytes() \
                or b"Listening on address" not in (root / "verify.log").read_bytes():
            if time.monotonic() > deadline:
                raise SystemExit("shimload: tcpserver did not start")
            time.sleep(0.05)
        t0 = time.monotonic()
        done, most = drive(sport, a.seconds, a.concurrency)
        elapsed = time.monotonic() - t0
        load = os.getloadavg()
        time.sleep(1)
        messages = queued(record.with_name(record.name + ".queue"))
        log = (root / "smtpd.log").read_bytes()
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()
        if os.environ.get("SHIMLOAD_KEEP"):
            print(f"shimload: kept {root}")
        else:
            shutil.rmtree(root)
    results = {}
    for c in done:
        key = "ok" if c.result == "ok" else "451" if c.result == "451" else "lost"
        results.setdefault(key, []).append(c)
    told_250 = {c.n for c in results.get("ok", [])}
    mixed = [m for m in messages if m[0] is None or m[0] != m[1]]
    seen = [m[0] for m in messages]
    twice = {x for x in seen if seen.count(x) > 1}
    missing = told_250 - set(seen)
    statuses = [int(x) for x in re.findall(rb"tcpserver: status: (\d+)/", log)]
    lengths = sorted(c.length for c in results.get("ok", []))

    def pct(q):
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else float("nan")
    print(f"shimload: {len(done)} sessions in {elapsed:.1f} s ({a.seconds:g} s of starting new ones), "
          f"{a.concurrency} at a time (most open at once: {most} by the client, "
          f"{max(statuses, default=0)} by tcpserver's status lines); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"  complete and right: {len(results.get('ok', []))} "
          f"({len(results.get('ok', [])) / elapsed:.1f} sessions/s); length median {pct(0.5):.2f} s, "
          f"p99 {pct(0.99):.2f} s, max {lengths[-1] if lengths else float('nan'):.2f} s")
    reasons = sorted(set(re.findall(rb": (temporary failure \(.*?\)|Timeout .*)\n", log)))
    print(f"  451 qv temporary failure: {len(results.get('451', []))} "
          f"{b', '.join(reasons).decode('ascii', 'replace')}")
    lost = results.get("lost", [])
    print(f"  lost or wrong: {len(lost)}" + (f" (first: session {lost[0].n}: {lost[0].result})"
                                           if lost else ""))
    print(f"  queued: {len(messages)} messages; recipient and body of different sessions: "
          f"{len(mixed)}; queued twice: {len(twice)}; told 250 but not queued: {len(missing)}")
    return 1 if lost or mixed or twice or missing else 0


if __name__ == "__main__":
    sys.exit(main())
