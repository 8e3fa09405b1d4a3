"""qmail-verify-demo: the daemon on a small qmail tree, answering.

Builds a demo qmail tree in a new temporary folder (control files,
users/assign and users/cdb, a passwd file, homes with dot-qmail files),
for the current user so that no system accounts are needed, starts the
qmail-verify of its own installation on it on a free port of 127.0.0.1,
asks it about a few addresses, prints the answers and the daemon's log,
stops it and removes the tree.  The tree goes however the demo ends: at
its end, on an error, on Ctrl-C (SIGINT), SIGTERM or SIGHUP; the daemon
runs in a session of its own, so a Ctrl-C reaches the demo, which then
stops it.

    qmail-verify-demo          (no arguments; -h and -V answer and exit)
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qmailverify.cli import guarded, help_or_version
from qmailverify.errors import Fatal, errtext
from qmailverify.protocol.wire import make_query, parse_reply
from qmailverify.testing import tree
from qmailverify.tools import installed

USAGE = "qmail-verify-demo: usage: qmail-verify-demo"
# What the name in parentheses is: qmail's controlling user.
USER_NOTE = ("(in parentheses: the name qmail looked up, the controlling user;"
             " not necessarily an account)")

QUERIES = [
    (b"alice@demo.example", "a passwd user's own mailbox"),
    (b"alice-work@demo.example", "~alice/.qmail-work"),
    (b"alice-lists-qmail@demo.example", "~alice/.qmail-lists-default"),
    (b"alice-nosuch@demo.example", "no such extension"),
    (b"postmaster@demo.example", "~alias/.qmail-postmaster"),
    (b"nobody-here@demo.example", "no such user"),
    (b"help-billing@demo.example", "users/assign wildcard +help-"),
    (b"sales@shop.example", "virtual domain shop.example"),
    (b"someone@elsewhere.example", "not our domain: relaying is smtpd's business"),
    (b"alice", "bare name: control/me's domain"),
]


def demo_spec(uid: int, gid: int) -> dict:
    users = ["alice", "carol", "alias"]
    return {
        "control": {
            "me": "mail.demo.example\n",
            "locals": "demo.example\nmail.demo.example\n",
            "virtualdomains": "shop.example:carol\n",
        },
        "users_assign": [f"+help-:carol:{uid}:{gid}:{{root}}/home/carol:-:support-:", "."],
        "passwd": [f"{u}:x:{uid}:{gid}::{{root}}/home/{u}:/bin/sh" for u in users],
        "homes": {
            "alice": {"owner_uid": uid, "files": [".qmail", ".qmail-work", ".qmail-lists-default"]},
            "carol": {"owner_uid": uid, "files": [".qmail-sales", ".qmail-support-default"]},
            "alias": {"owner_uid": uid, "files": [".qmail-postmaster", ".qmail-root"]},
        },
    }


def describe_reply(reply: bytes | None) -> str:
    r = parse_reply(reply) if reply is not None else None
    if r is None:
        return "no answer"
    word = {0: "deliverable", 1: "not deliverable", 2: "temporary failure"}[r.code]
    user = f" ({r.user.decode('ascii', 'replace')})" if r.user else ""
    return f"{word}{user} [rule {r.position}]"


def daemon_command() -> list[str]:
    exe = installed.program("qmail-verify")
    return [exe] if exe else [sys.executable, "-m", "qmailverify.daemon.main"]


class Stopped(Exception):
    """A signal asked the demo to end."""


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP end the demo.  The first one raises
    Stopped, at once, or while held (when a Stopped would lose track of
    something to clean up, such as a just-started daemon) on release();
    later ones are ignored, so the clean-up runs undisturbed."""

    NAMES = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.held, self.pending = True, None
        for signum in self.NAMES:
            signal.signal(signum, self.caught)

    def caught(self, signum, frame):
        self.ignore()
        self.pending = signal.Signals(signum).name
        if not self.held:
            raise Stopped(self.pending)

    def ignore(self):
        for signum in self.NAMES:
            signal.signal(signum, signal.SIG_IGN)

    def hold(self):
        self.held = True

    def release(self):
        self.held = False
        if self.pending:
            raise Stopped(self.pending)


def in_a_tree() -> int:
    """The demo in a temporary tree, removed however the demo ends."""
    signals = StopSignals()                 # held until there is a tree to remove
    root = None
    try:
        root = Path(tempfile.mkdtemp(prefix="qmail-verify-demo-"))
        signals.release()
        return demo(root, signals)
    except Stopped as e:
        print(f"qmail-verify-demo: fatal: stopped by {e}", file=sys.stderr)
        return 111
    except OSError as e:
        if e.filename is None:          # standard output: guarded() words it
            raise
        print(f"qmail-verify-demo: fatal: {errtext(e.errno)}", file=sys.stderr)
        return 111
    finally:
        signals.ignore()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def run(argv: list[str]) -> int:
    help_or_version(argv, USAGE)
    if argv:
        raise Fatal(f"{USAGE} (it takes no arguments)", 100)
    return in_a_tree()


def main(argv=None) -> int:
    # | head stops it quietly
    return guarded("qmail-verify-demo", lambda: run(sys.argv[1:] if argv is None else argv),
                   on_broken_pipe=0)


def demo(root: Path, signals: StopSignals) -> int:
    # As root, demo users get a uid of their own: root's homes never count.
    uid, gid = (os.getuid(), os.getgid()) if os.geteuid() else (7001, 7001)
    paths = tree.build(demo_spec(uid, gid), root)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, QMAILHOME=str(paths["qmail"]), VERIFY_PASSWD=str(paths["passwd"]),
               LISTEN=f"127.0.0.1:{port}")
    log = root / "daemon.log"
    proc = None
    try:
        signals.hold()                  # until proc names the daemon
        with open(log, "wb") as out:
            proc = subprocess.Popen(daemon_command(), env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out, start_new_session=True)
        signals.release()
        deadline = time.monotonic() + 10
        while b"Listening" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.stderr.write(log.read_text())
                print("qmail-verify-demo: fatal: the daemon did not start", file=sys.stderr)
                return 111
            time.sleep(0.02)
        print(f"qmail-verify is answering on 127.0.0.1:{port} for the demo tree in {root}\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            for addr, why in QUERIES:
                try:
                    s.send(make_query(addr))
                    reply = s.recv(64)
                except OSError:             # a timeout, or nobody there
                    reply = None
                print(f"  {addr.decode():32} {describe_reply(reply):42} {why}")
            print(f"\n  {USER_NOTE}")
    finally:
        signals.hold()
        if proc is not None:
            stop(proc)
    print("\nThe daemon's log:")
    print("".join("  " + line for line in log.read_text().splitlines(True)), end="")
    print("\nThe demo tree goes when the demo ends.  INSTALL shows how to run qmail-verify"
          " for your qmail.")
    return 0


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the daemon and wait for it (SIGKILL if it does not go)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
