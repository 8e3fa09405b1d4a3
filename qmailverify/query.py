"""verify-query: ask qmail-verify about addresses, from a shell or a script.

    verify-query [-s SERVER] [-t SECONDS] [-c N] ADDRESS...
    verify-query [-s SERVER] [-t SECONDS] [-c N] -      (addresses on stdin, one a line)

SERVER is written as in VERIFY (":10101", "192.168.1.1:10101",
"[::1]:11113"); without -s, LISTEN (as the daemon reads it) or
127.0.0.1:11113.  One line an address on stdout, in input order:

    ADDRESS: deliverable (USER)
    ADDRESS: not deliverable
    ADDRESS: temporary failure: REASON

ADDRESS is cleaned as in the daemon's log, so each answer is one line.
Exit 0 if every address is deliverable, 100 if any is not (and none
failed), 111 if any failed temporarily (or on a usage error: 100).  Up to
N queries (default 32) are in flight at once, each on its own socket; a
progress line goes to stderr when stderr is a terminal.
"""

import getopt
import os
import selectors
import sys
import time
from typing import NamedTuple

from .addrspec import AddressError, parse_server
from .client import TIMEOUT, Query, timeout_answer
from .clean import clean
from .verifyenv import SetupError, ignored, parse_server_part
from .wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE

USAGE = "verify-query: usage: verify-query [-s server] [-t seconds] [-c inflight] address ... | -"


class UsageError(Exception):
    pass


class Options(NamedTuple):
    server: tuple[str, int]
    timeout: float
    inflight: int
    addresses: list[bytes] | None      # None: read stdin


def parseargs(argv: list[str], env=os.environ) -> Options:
    try:
        opts, args = getopt.getopt(argv, "s:t:c:")
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from None
    o = dict(opts)
    try:
        if "-s" in o:                                  # read as VERIFY is (verifyenv)
            if ignored(o["-s"]):                       # a host name VERIFY would skip
                raise UsageError(f"bad server address: {ignored(o['-s'])!r} is not read "
                                 f"(VERIFY's grammar ignores it): give an IP address")
            server = parse_server_part(o["-s"])
        else:
            server = parse_server(env.get("LISTEN", ""))
    except (AddressError, SetupError) as e:
        raise UsageError(f"bad server address: {e}") from None
    try:
        timeout = float(o.get("-t", TIMEOUT))
        inflight = int(o.get("-c", 32))
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 0 < timeout <= 3600 or not 0 < inflight <= 1024:
        raise UsageError("-t takes 0 to 3600 seconds, -c 1 to 1024")
    if not args:
        raise UsageError("no addresses")
    if args == ["-"]:
        return Options(server, timeout, inflight, None)
    return Options(server, timeout, inflight, [os.fsencode(a) for a in args])


def describe(answer) -> bytes:
    if answer.code == DELIVERABLE:
        return b"deliverable" + (b" (" + clean(answer.user) + b")" if answer.user else b"")
    if answer.code == UNDELIVERABLE:
        return b"not deliverable"
    return b"temporary failure: " + clean(answer.reason.encode())


def run(addresses, server, timeout: float, inflight: int, out, progress=None) -> int:
    """Ask about every address (an iterable of bytes); write the answers in
    order to out (a binary stream); return the exit code."""
    worst = 0
    pending = iter(enumerate(addresses))
    results: dict[int, tuple[bytes, object]] = {}
    next_out = 0
    active: dict[Query, int] = {}
    sel = selectors.DefaultSelector()
    done = sent = 0
    exhausted = False
    last_progress = 0.0

    def finish(q: Query, answer) -> None:
        nonlocal done
        sel.unregister(q)
        q.close()
        results[active.pop(q)] = (q.address, answer)
        done += 1

    while True:
        while not exhausted and len(active) < inflight:
            try:
                index, address = next(pending)
            except StopIteration:
                exhausted = True
                break
            q = Query(address, server, True, timeout)
            active[q] = index
            sel.register(q, selectors.EVENT_READ)
            sent += 1
            failed = q.send()
            if failed:
                finish(q, failed)
        while next_out in results:
            address, answer = results.pop(next_out)
            out.write(clean(address) + b": " + describe(answer) + b"\n")
            worst = max(worst, {DELIVERABLE: 0, UNDELIVERABLE: 100, TEMPORARY: 111}[answer.code])
            next_out += 1
        if exhausted and not active:
            break
        now = time.monotonic()
        if progress and now - last_progress >= 0.2:
            progress(done, sent, exhausted)
            last_progress = now
        wait = min(q.deadline for q in active) - now if active else 0
        for key, _ in sel.select(max(wait, 0)):
            answer = key.fileobj.receive()
            if answer is not None:
                finish(key.fileobj, answer)
        now = time.monotonic()
        for q in [q for q in active if q.expired(now)]:
            finish(q, timeout_answer())
    if progress:
        progress(done, sent, True, final=True)
    sel.close()
    return worst


def stdin_addresses():
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if line:
            yield line


def terminal_progress(stream):
    def show(done, sent, exhausted, final=False):
        total = f"/{sent}" if exhausted else ""
        stream.write(f"\rverify-query: {done}{total} answered" + ("\n" if final else ""))
        stream.flush()
    return show


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parseargs(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"{USAGE} ({e})", file=sys.stderr)
        return 100
    addresses = opts.addresses if opts.addresses is not None else stdin_addresses()
    progress = terminal_progress(sys.stderr) if sys.stderr.isatty() else None
    out = sys.stdout.buffer
    try:
        code = run(addresses, opts.server, opts.timeout, opts.inflight, out, progress)
        out.flush()
    except BrokenPipeError:             # the reader went away: say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 111
    except OSError as e:
        print(f"verify-query: fatal: {e.strerror or e}", file=sys.stderr)
        return 111
    return code


if __name__ == "__main__":
    sys.exit(main())
