"""A flood from one sender does not cost another sender its answer
the daemon reads everything waiting and answers
round-robin by sender (daemon/fairqueue.py), so a query sent during the flood
is answered, and the flood's excess is shed and counted.

The flood comes in bursts of 3,000 datagrams, each far more than the
daemon's queue holds (2,048) and than it can answer in the time, at an
average of 40,000 a second, which a busy machine still reads: the kernel
then drops nothing (the daemon's receive buffer holds a burst), so what
the test sees is the daemon's own choice.  bench/flood.py floods at full
speed instead, and reports the kernel's drops."""

import re
import signal
import subprocess
import sys
import time

import pytest
from helpers import need_root

pytestmark = pytest.mark.system   # runs the installed programs, as root

FLOODER = r"""
import socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
mix = [b"alice@demo.example", b"nobody-here@demo.example", b"alice-nosuch@demo.example\0QV2",
       b"", b"\xff" * 40, b"x" * 1200]
BURST, RATE = 3000, 40000          # bursts far past what it answers, on average what it reads
start = time.monotonic()
sent = 0
print("flooding", flush=True)
while time.monotonic() < start + seconds:
    for i in range(BURST):
        try:
            s.sendto(mix[i % len(mix)], ("127.0.0.1", port))
            sent += 1
        except OSError:            # our own send buffer full: go on
            pass
    try:
        while s.recv(64):          # replies are not wanted; keep our buffer empty
            pass
    except OSError:
        pass
    time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
print(sent, flush=True)
"""


def kernel_drops(port: int) -> int:
    """The drops column of /proc/net/udp for the daemon's socket."""
    with open("/proc/net/udp") as f:
        for line in f:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}"):
                return int(fields[-1])
    return 0


def probe(verifyd, expected, tries: int = 3):
    """The daemon's answer to one query, sent again only when the kernel
    dropped datagrams meanwhile (this machine starved the daemon of CPU
    longer than its buffer lasts): what is tested is the daemon's choice."""
    for _ in range(tries):
        before = kernel_drops(verifyd.port)
        reply = verifyd.ask(b"kim@demo.example", timeout=3.0)
        if reply is not None or kernel_drops(verifyd.port) == before:
            return reply
    return None


def test_a_query_sent_during_a_flood_from_another_sender_is_answered(verifyd):
    need_root()                      # for a receive buffer past net.core.rmem_max
    expected = verifyd.ask(b"kim@demo.example")
    assert expected is not None and expected[0] & 0x0F == 1     # nobody named kim: 550
    flood = subprocess.Popen([sys.executable, "-c", FLOODER, str(verifyd.port), "6"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout.readline() == "flooding\n"
        time.sleep(0.5)                      # let the queue fill
        answers = []
        for _ in range(5):
            answers.append(probe(verifyd, expected))
            time.sleep(0.2)
        assert answers == [expected] * 5, "every probe answered, exactly"
        sent = int(flood.stdout.readline())
    finally:
        flood.kill()
        flood.wait()
    assert verifyd.ask(b"kim@demo.example") == expected, "still answering"
    verifyd.signal(signal.SIGALRM)
    log = verifyd.wait_for(" shed=")
    shed = int(re.search(r"stats: queries=\d+ .* shed=(\d+) ", log).group(1))
    assert 0 < shed < sent, "the flood's excess was read and shed, not all of it"
