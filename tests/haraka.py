"""The real Haraka, from npm (tests/http/package-lock.json, installed into
tests/http/node_modules by sh bin/dev test), started on 127.0.0.1 with a
config folder of its own: for tests/http and bench/httpbench.py."""

import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MODULES = Path(__file__).resolve().parent / "http" / "node_modules"
NODE_MIN = 20


def why_no_haraka() -> str | None:
    """Why the Haraka tests cannot run here (None: they can)."""
    node = shutil.which("node")
    if node is None:
        return f"no node on PATH: Haraka needs Node.js {NODE_MIN} or newer"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)", version)
    if major is None or int(major.group(1)) < NODE_MIN:
        return f"node {version or '(no version)'} is older than {NODE_MIN}: Haraka needs it"
    if not (MODULES / "Haraka" / "bin" / "haraka").exists():
        return "Haraka is not installed in tests/http/node_modules (sh bin/dev test runs npm ci)"
    return None


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Haraka:
    """Haraka with that plugin and a discarding queue (plugins: the rcpt
    plugins, in order), in a config folder of its own, on a free port;
    qmail-deliverable.ini points at http_port, and each of domains (a
    dict domain -> port) at its own port."""

    def __init__(self, http_port: int, domains: dict, plugins=("qmail-deliverable",),
                 host_list=()):
        self.root = Path(tempfile.mkdtemp(prefix="qv-haraka-"))
        self.port = free_tcp_port()
        config = self.root / "config"
        config.mkdir()
        (config / "smtp.ini").write_text(f"listen=127.0.0.1:{self.port}\nnodes=0\n")
        # Haraka reads its greeting and limits from connection.ini: its own, as shipped
        shutil.copy(MODULES / "Haraka" / "config" / "connection.ini", config)
        (config / "plugins").write_text("".join(p + "\n" for p in plugins) + "queue/discard\n")
        (config / "host_list").write_text("".join(d + "\n" for d in host_list))
        (config / "log.ini").write_text("[main]\nlevel=info\n")
        ini = f"host=127.0.0.1\nport={http_port}\n" + "".join(
            f"\n[{domain}]\nhost=127.0.0.1\nport={port}\n" for domain, port in domains.items())
        (config / "qmail-deliverable.ini").write_text(ini)
        self.logpath = self.root / "haraka.log"
        self.log_file = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [shutil.which("node"), str(MODULES / "Haraka" / "bin" / "haraka"), "-c", str(self.root)],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
            env={"PATH": os.environ["PATH"], "YES_REALLY_DO_DISCARD": "1"})
        deadline = time.monotonic() + 60
        while "Listening on" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = self.log()
                self.stop()
                raise RuntimeError(f"Haraka did not start: {log}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.logpath.read_text(errors="replace")

    def session(self) -> smtplib.SMTP:
        """An SMTP session after MAIL FROM."""
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
        s.ehlo("client.example")
        code, text = s.mail("sender@client.example")
        assert code == 250, text
        return s

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        shutil.rmtree(self.root, ignore_errors=True)
