"""verify-query: ask qmail-verify about addresses, from a shell or a script.

    verify-query [-s SERVER] [-t SECONDS] [-c N] ADDRESS...
    verify-query [-s SERVER] [-t SECONDS] [-c N] -      (addresses on stdin, one a line)

SERVER is written as in VERIFY (":10101", "192.168.1.1:10101",
"[::1]:11113"); without -s, LISTEN (as the daemon reads it) or
127.0.0.1:11113.  One line an address on stdout, in input order:

    ADDRESS: deliverable (USER)
    ADDRESS: not deliverable
    ADDRESS: temporary failure: REASON
    ADDRESS: not checked: not our domain
    ADDRESS: not checked: not our domain (a virtualdomains exception)

ADDRESS is cleaned as in the daemon's log, so each answer is one line.
USER is the controlling user: the name qmail looked up (a user, a
users/assign name, or the alias user), not necessarily an account.

Each address is tidied first, as admins' lists come: blanks around it go,
and so does one pair of angle brackets ("<x@y>" asks about x@y).  An
address longer than the daemon reads whole (protocol.wire.ADDRESS_MAX) is not
asked: a warning on stderr says so, and it counts as not deliverable.

"not checked": the domain is neither in locals nor virtual, or a
virtualdomains line with an empty prefix sends it elsewhere; the daemon
answered "deliverable" without looking (qmail-smtpd's rcpthosts decides
about relaying, and qmail-logmsg never asks about such a domain).

Exit 0 if every address is deliverable or not checked (qmail-verify lets
each through), 100 if any is not (and none failed), 111 if any failed
temporarily (or on a usage error: 100).  Up to
N queries (default 32) are in flight at once, each on its own socket; a
progress line goes to stderr when stderr is a terminal.
"""

import os
import selectors
import sys
import time
from typing import NamedTuple

from qmailverify.clean import clean, visible
from qmailverify.cli import Shown, guarded, options, silence_stdout
from qmailverify.errors import Fatal, errtext
from qmailverify.protocol.addrspec import AddressError, parse_server
from qmailverify.protocol.client import TIMEOUT, PendingQuery, timeout_answer
from qmailverify.protocol.verifyenv import SetupError, ignored, parse_server_part
from qmailverify.protocol.wire import (
    ADDRESS_MAX,
    DELIVERABLE,
    NOT_OURS,
    TEMPORARY,
    UNDELIVERABLE,
    VIRTUAL_EXCEPTION,
)

USAGE = "verify-query: usage: verify-query [-s server] [-t seconds] [-c inflight] address ... | -"


class UsageError(Exception):
    pass


class QueryOptions(NamedTuple):
    server: tuple[str, int]
    timeout: float
    inflight: int
    addresses: list[bytes] | None      # None: read stdin


def parseargs(argv: list[str], env=os.environ) -> QueryOptions:
    opts, args = options(argv, "s:t:c:", USAGE)      # raises Fatal, Shown
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
    except ValueError:
        timeout = -1.0
    if not 0 < timeout <= 3600:
        raise UsageError("-t takes a number of seconds, more than 0 and at most 3600")
    try:
        inflight = int(o.get("-c", 32))
    except ValueError:
        inflight = -1
    if not 0 < inflight <= 1024:
        raise UsageError("-c takes a whole number of queries, 1 to 1024")
    if not args:
        raise UsageError("no addresses")
    if args == ["-"]:
        return QueryOptions(server, timeout, inflight, None)
    return QueryOptions(server, timeout, inflight, [tidy(os.fsencode(a)) for a in args])


def tidy(address: bytes) -> bytes:
    """address without the blanks around it and one pair of angle brackets."""
    address = address.strip(b" \t")
    if address.startswith(b"<") and address.endswith(b">") and len(address) >= 2:
        address = address[1:-1].strip(b" \t")
    return address


# The answer's decision point says only how to word it, never the exit code.
UNCHECKED = {NOT_OURS: b"not checked: not our domain",
             VIRTUAL_EXCEPTION: b"not checked: not our domain (a virtualdomains exception)"}


def describe_answer(answer) -> bytes:
    if answer.code == DELIVERABLE and not answer.user and answer.position in UNCHECKED:
        return UNCHECKED[answer.position]
    if answer.code == DELIVERABLE:
        return b"deliverable" + (b" (" + clean(answer.user) + b")" if answer.user else b"")
    if answer.code == UNDELIVERABLE:
        return b"not deliverable"
    return b"temporary failure: " + visible(answer.reason.encode("utf-8", "replace"))


def too_long(address: bytes) -> str:
    return (f"verify-query: warning: not asked: an address of {len(address)} bytes"
            f" ({clean(address[:40]).decode()}...) is longer than the {ADDRESS_MAX} bytes"
            f" qmail-verify reads")


def ask_all(addresses, server, timeout: float, inflight: int, out, progress=None,
            warn=None) -> int:
    """Ask about every address (an iterable of bytes); write the answers in
    order to out (a binary stream); return the exit code.  An address too
    long to ask is not asked: warn(message) says so, and it counts as 100."""
    worst = 0
    pending = iter(enumerate(addresses))
    results: dict[int, tuple[bytes, object]] = {}
    next_out = 0
    active: dict[PendingQuery, int] = {}
    sel = selectors.DefaultSelector()
    done = sent = 0
    exhausted = False
    last_progress = 0.0

    def finish(q: PendingQuery, answer) -> None:
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
            if len(address) > ADDRESS_MAX:
                if warn:
                    warn(too_long(address))
                results[index] = (address, None)
                continue
            q = PendingQuery(address, server, True, timeout)
            active[q] = index
            sel.register(q, selectors.EVENT_READ)
            sent += 1
            failed = q.send()
            if failed:
                finish(q, failed)
        while next_out in results:
            address, answer = results.pop(next_out)
            next_out += 1
            if answer is None:                 # not asked
                worst = max(worst, 100)
                continue
            out.write(clean(address) + b": " + describe_answer(answer) + b"\n")
            worst = max(worst, {DELIVERABLE: 0, UNDELIVERABLE: 100, TEMPORARY: 111}[answer.code])
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
        line = tidy(line.rstrip(b"\r\n"))
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
    except Fatal as e:
        print(e, file=sys.stderr)
        return e.code
    except Shown as e:
        text = str(e)
        return guarded("verify-query", lambda: print(text) or 0)
    addresses = opts.addresses if opts.addresses is not None else stdin_addresses()
    progress = terminal_progress(sys.stderr) if sys.stderr.isatty() else None
    out = sys.stdout.buffer
    try:
        code = ask_all(addresses, opts.server, opts.timeout, opts.inflight, out, progress,
                   warn=lambda message: print(message, file=sys.stderr, flush=True))
        out.flush()
    except BrokenPipeError:             # the reader went away: say nothing more
        silence_stdout()
        return 111
    except OSError as e:
        silence_stdout()
        print(f"verify-query: fatal: unable to write output: {errtext(e.errno)}",
              file=sys.stderr)
        return 111
    return code


if __name__ == "__main__":
    sys.exit(main())
