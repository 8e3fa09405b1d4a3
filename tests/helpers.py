"""What the tests share: fixtures built as real qmail trees, and the
installed qmail-verify started as a real process on a real UDP socket."""

import errno
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from qmailverify.protocol.wire import make_query
from qmailverify.qmail.model import GOES_ON, StatHit
from qmailverify.testing import tree
from qmailverify.testing.mariadb import available

DATA = Path(__file__).resolve().parent / "data"
P1 = DATA / "P1.json"


def executable(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run pip install . first")
    return path


def free_port(family=socket.AF_INET, host="127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_taken(d: "Daemon") -> bool:
    """Did d exit because another process bound the free port it was
    given, between free_port() and its own bind (suites running side by
    side on one machine)?"""
    return d.proc.poll() is not None and "address already in use" in d.log()


def started_on_free_port(make, ready, pinned: bool = False, attempts: int = 3):
    """make() a Daemon on a freshly picked port and ready(d) it, which
    raises AssertionError if it never comes up; while that is because its
    port was taken first (port_taken), again on a new one.  pinned: the
    caller chose the port, so a new pick would not help."""
    for attempt in range(attempts):
        d = make()
        try:
            ready(d)
            return d
        except AssertionError:
            if pinned or attempt == attempts - 1 or not port_taken(d):
                raise


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the fixture's homes belong to other uids")


def need_system(*programs):
    """Skip unless root and the programs (Debian's daemontools, ucspi-tcp) are here."""
    if os.geteuid() != 0:
        pytest.skip("needs root (service files are owned by root and the log account)")
    for p in programs:
        if shutil.which(p) is None:
            pytest.skip(f"{p} (Debian's daemontools or ucspi-tcp) is not installed")


def wait(predicate, what, timeout=20.0):
    """predicate's first true value, polled; what names it when it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def world_tempdir(prefix="qv-") -> Path:
    """A temporary folder every uid can traverse (stats as users need it)."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


def build_fixture(spec: dict, root: Path) -> dict:
    return tree.build(spec, root)


def load_p1() -> dict:
    return json.loads(P1.read_text())


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def children(pid: int) -> list[int]:
    """The pids of pid's children, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def has_root_ids(pid: int) -> bool:
    """Every uid and gid of pid 0 (qmail-verify shows root's ids once it
    waits for work; while it answers, its gid may be a user's)."""
    with open(f"/proc/{pid}/status") as f:
        return all(line.split()[1:] == ["0"] * 4 for line in f
                   if line.startswith(("Uid:", "Gid:")))


def unprivileged(program: str, uid: int = 65534) -> list[str]:
    """A wrapper that runs the installed program as uid (for root).

    Where the installation or its interpreter lies where uid may not go
    (a clone or pyenv under /root, mode 0700), the program is lent the
    right to search and read any folder; an installation as INSTALL
    makes it needs no such help."""
    wrapper = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    probe = subprocess.run(wrapper + [program, "-V"], capture_output=True, env={})
    if probe.returncode != 0:
        wrapper += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return wrapper


def env_for(paths, **extra):
    """The daemon's environment for a tree built by tree.build()."""
    env = {"QMAILHOME": str(paths["qmail"]), "VERIFY_PASSWD": str(paths["passwd"])}
    env.update(extra)
    return env


def run_once(env, args=()):
    """Run qmail-verify expecting it to stop by itself."""
    full = {"PATH": os.environ["PATH"], "LISTEN": f"127.0.0.1:{free_port()}", **env}
    return subprocess.run([executable("qmail-verify"), *args], env=full, capture_output=True,
                          text=True, timeout=20)


def private_passwd(passwd) -> list[str]:
    """A wrapper that runs the daemon with passwd over /etc/passwd (skips the
    test where no private mount namespace can be made)."""
    script = f"mount --bind {shlex.quote(str(passwd))} /etc/passwd && exec \"$0\""
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c", script]


def vq(args, input=None, env=None):
    """Run the installed verify-query."""
    return subprocess.run([executable("verify-query"), *args], input=input, capture_output=True,
                          env={"PATH": os.environ["PATH"], **(env or {})}, timeout=120)


def vm(*args, cwd=None):
    """Run the installed verify-migrate."""
    return subprocess.run([executable("verify-migrate"), *args], capture_output=True, cwd=cwd)


class Daemon:
    """The installed qmail-verify, started with env, logging to a file."""

    def __init__(self, env: dict, wrapper: list[str] = (), port: int | None = None,
                 host: str = "127.0.0.1", program: str | None = None):
        self.host = host
        self.port = port or free_port(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        self.logpath = Path(tempfile.mkstemp(prefix="qv-log-")[1])
        full = {"PATH": os.environ["PATH"]}
        if "LISTEN" not in env:
            full["LISTEN"] = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        full.update(env)
        self.log_file = open(self.logpath, "wb")
        try:
            self.proc = subprocess.Popen(list(wrapper) + [program or executable("qmail-verify")],
                                         env=full, stdin=subprocess.DEVNULL,
                                         stdout=self.log_file, stderr=self.log_file)
        except BaseException:
            self.log_file.close()
            self.logpath.unlink()
            raise

    def wait_for(self, text: str, timeout: float = 10.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if log.count(text) >= count:
                return log
            if self.proc.poll() is not None:
                raise AssertionError(f"qmail-verify exited {self.proc.returncode}: {log}")
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} in the log within {timeout}s: {self.log()}")

    def started(self) -> "Daemon":
        self.wait_for("Listening on address")
        return self

    def log(self) -> str:
        """The log as it is now.  The daemon writes its lines when it
        waits for work, a tenth of a second after the reply at most: to see
        a line a query causes, use wait_for()."""
        return self.logpath.read_bytes().decode("latin-1")

    def query(self, datagram: bytes, timeout: float = 5.0) -> bytes | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(datagram, (self.host, self.port))
            try:
                return s.recv(2048)
            except socket.timeout:
                return None

    def ask(self, address: bytes, extended: bool = False, timeout: float = 5.0):
        return self.query(make_query(address, extended) if extended else address, timeout)

    def ask_unanswered(self, address: bytes, timeout: float = 10.0) -> bytes | None:
        """Ask as a legacy client that the daemon should leave unanswered:
        wait for the log's "ADDRESS not answered" line, then return what
        came back meanwhile (None: nothing).  The daemon writes a query's
        log lines after its reply, and a datagram on loopback is in the
        socket's buffer once sent, so this proves silence without waiting
        out a client's timeout."""
        text = address.decode("latin-1") + " not answered"
        seen = self.log().count(text)
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(address, (self.host, self.port))
            self.wait_for(text, timeout, seen + 1)
            s.setblocking(False)
            try:
                return s.recv(2048)
            except BlockingIOError:
                return None

    def signal(self, signum) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        self.logpath.unlink(missing_ok=True)


FAKE_SMTPD = Path(__file__).resolve().parent / "fake_smtpd.py"


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpShim:
    """Debian's tcpserver running qmail-logmsg in front of fake_smtpd.py."""

    def __init__(self, env: dict, workdir: Path, wrapper: list[str] = ()):
        if shutil.which("tcpserver") is None:
            pytest.skip("tcpserver (Debian's ucspi-tcp) is not installed")
        self.port = free_tcp_port()
        self.record = workdir / f"record-{self.port}"
        self.record.touch()
        self.logpath = workdir / f"smtpd-{self.port}.log"
        full = {"PATH": os.environ["PATH"], "FAKE_SMTPD_RECORD": str(self.record), **env}
        self.log_file = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [*wrapper, "tcpserver", "-v", "-R", "-H", "-l", "localhost", "127.0.0.1", str(self.port),
             executable("qmail-logmsg"), sys.executable, str(FAKE_SMTPD)],
            env=full, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"tcpserver did not start: {self.log()}")
                time.sleep(0.05)
        self.wait_for("Session ended", count=1)       # the probe's own session

    def log(self) -> str:
        return self.logpath.read_bytes().decode("latin-1")

    def wait_for(self, text: str, count: int | None = None, timeout: float = 15.0) -> str:
        """Wait until text is in the log (count times, if given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if (log.count(text) >= count) if count else (text in log):
                return log
            time.sleep(0.02)
        raise AssertionError(f"no {text!r} in the log: {self.log()}")

    def received(self) -> bytes:
        return self.record.read_bytes()

    def queued(self) -> bytes:
        """What the stand-in queued: 'T' + recipient lines, then each body."""
        queue = self.record.with_name(self.record.name + ".queue")
        return queue.read_bytes() if queue.exists() else b""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log_file.close()


NOT_REGULAR = -1       # FakeSystem's files: the name is a directory, a FIFO, ...


class FakeSystem:
    """rules.System in memory, for in-process tests of the decision and of
    the daemon's get_reply(): users is users/cdb as a dict (None: none),
    passwd the entries, owners each home's uid (by default the entry's),
    files path -> errno (0: a regular file, NOT_REGULAR: something else),
    modes a regular file's st_mode (default 0100644), ff the fastforward
    cdb as a dict."""

    def __init__(self, users=None, passwd=(), owners=None, files=None, ff=None, modes=None):
        self.cdb = users                      # dict or None (no users/cdb)
        self.passwd = {p.name: p for p in passwd}
        self.owners = owners or {p.home: p.uid for p in passwd}
        self.files = files or {}              # path -> errno (0: exists)
        self.modes = modes or {}
        self.ff = ff
        self.stats_as = []
        self.queries = 0                      # begin_query() calls

    def begin_query(self):
        self.queries += 1

    def users(self):
        return self.cdb

    def getpw(self, name):
        return self.passwd.get(name)

    def owner(self, path):
        return self.owners.get(path)

    def first_stat(self, uid, gid, paths):
        for i, p in enumerate(paths):
            self.stats_as.append((uid, gid, p))
            err = self.files.get(p, errno.ENOENT)
            if err == 0:
                return StatHit(i, 0, p, self.modes.get(p, 0o100644))
            if err != NOT_REGULAR and err not in GOES_ON:
                return StatHit(i, err, p)
        return StatHit(-1)

    def fastforward(self):
        return self.ff


# -- qmail-logmsg sessions under tcpserver ---------------------------------------

GOOD, BAD = "alice@demo.example", "nobody-here@demo.example"   # in the demo tree


def lines_of(log: str, pid: str) -> list[str]:
    prefix = f"qmail-smtpd: pid {pid} from 127.0.0.1: "
    return [line[len(prefix):] for line in log.splitlines() if line.startswith(prefix)]


def last_session_pid(log: str) -> str:
    return re.findall(r"tcpserver: pid (\d+) from 127\.0\.0\.1", log)[-1]


def raw_session(port: int, data: bytes, read_until: bytes = b"221 ", timeout=10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while read_until not in got and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def need_mariadb():
    """Skip a test that needs a MariaDB server of its own where none can be
    started, but fail it in CI (CI=true), where mariadb-server is installed."""
    why = available()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the MariaDB tests: {why}")
        pytest.skip(why)
