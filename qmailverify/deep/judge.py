"""Deep mode: answer by what a -default file does.

qmail-verify 1.32 calls a domain valid as soon as its dot-qmail search
ends at a .qmail-default, whatever that file does.  judge() reads it
(never runs it) and decides the way qmail-local and the programs it
would run decide:

- qmail-local's own deferrals, in its order: the home directory writable
  by others (mode & 002, conf-patrn) or sticky (01000, "user is editing
  his .qmail file") in checkhome(), then the dot-qmail file writable by
  others, then (dotqmail.parse_dotqmail) a blank first line, or a file or program
  line after '+list' or in a file with the owner-execute bit: "temporary";
- an empty file is the default delivery: valid;
- lines are taken in order, as qmail-local runs them: a mailbox line
  delivers; `|bouncesaying MESSAGE` alone bounces (not valid), with a
  program after it the outcome is the program's (valid: it cannot be
  known without running it); vpopmail's vdelivermail line gives
  vdelivermail's answer (deep.vpopmail.delivery.vdeliver), a refusal or
  deferral of it ends the file; any other program: valid, unknowable;
- forwards ('&address' or a bare address) are sent at the end, if nothing
  bounced or deferred: valid if any line delivered or any target is valid
  (a remote target is: the forward leaves this host), temporary if none
  is but one is temporary, else not valid; a target seen before on the
  path is a loop, which qmail-local bounces (not valid: the file is
  judged by its other lines), and a path deeper than MAX_DEPTH is
  temporary;
- a file with nothing but comments and '+' lines: qmail-local accepts the
  mail and drops it; valid ("anything else: valid").

How the daemon uses it: with VERIFY_DEEP=1, rules.decide() has the hook
(deep/hook.py) check every address's home as qmail-local's checkhome()
does, before the search and whatever the extension, and the file the
search finds (writable by others: temporary); it calls the hook again
when the search ends at a -default file, to judge it.
The System reads that file as its owner would (System.deep_facts, in
system/userfiles.py: the home's and the file's modes and the first
MAX_READ + 1 bytes, opened as the user, links followed as qmail-local
follows them; a read error is "temporary").  The answer carries position
15, the controlling user and judge()'s reason for the trace.  Forward
targets are judged by decide() itself, deep mode on and the path passed
down (follow()).  vdelivermail lines are judged over users/cdb and the
store VERIFY_VPOPMAIL names (deep/vpopmail/).

A store that must ask the network never stalls the loop: the MySQL store
runs non-blocking, a lookup not in its cache raises errors.NeedLookup,
and the daemon parks the query until the lookup is done or its time is
up (daemon/parking.py).

judge()'s TEMPORARY is status 2 (spec 6): nothing to a legacy client,
which then says 451, and status 2 with the reason to a client that asked
for the extended reply; never "not deliverable" for our own trouble.
"""

from typing import Callable, NamedTuple

from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail import dotqmail
from qmailverify.qmail.model import MAX_READ, DeepFacts

MAX_DEPTH = 5          # forwards followed through at most this many files
PATRN = 0o002          # notqmail conf-patrn: mode bits not allowed in ~ and ~/.qmail


class _Judged(NamedTuple):
    code: int            # protocol.wire.DELIVERABLE, UNDELIVERABLE or TEMPORARY
    reason: str          # for the client: no path, no errno text
    variant: bytes = b""  # deliverable through vdelivermail: how (wire.VARIANTS)


class Judgement(_Judged):
    """(code, reason, variant), and .detail for the log when it says more
    than reason (a path, an errno's words); equal to the plain triple."""

    detail = ""

    def __new__(cls, code: int, reason: str, variant: bytes = b"", detail: str = ""):
        self = super().__new__(cls, code, reason, variant)
        if detail:
            self.detail = detail
        return self


def qmail_local_defer(home_mode: int, file_mode: int) -> str:
    """Why qmail-local would defer before reading the file, "" if not."""
    if home_mode & PATRN:
        return "home directory is writable"
    if home_mode & 0o1000:
        return "home directory is sticky"
    if file_mode & PATRN:
        return ".qmail file is writable"
    return ""


def follow(target: bytes, path: tuple, lookup) -> Judgement:
    """Judge a forward target by lookup(target, path + (target,)): a
    target already on the path loops (not deliverable), a path deeper
    than MAX_DEPTH is temporary."""
    key = target.lower()
    if key in path:                 # qmail-local bounces it: "This message is looping"
        return Judgement(UNDELIVERABLE, "forward loop")
    if len(path) >= MAX_DEPTH:
        return Judgement(TEMPORARY, "forwards nested too deep")
    return lookup(target, path + (key,))


def parse_of(facts: DeepFacts) -> dotqmail.Parsed:
    """The lines of the file facts holds, as qmail-local reads them."""
    return dotqmail.parse_dotqmail(facts.content, bool(facts.file_mode & 0o100))


def judge(facts: DeepFacts, forward: Callable[[bytes], Judgement],
          vdelivermail: Callable[[tuple], Judgement] | None = None,
          parsed: dotqmail.Parsed | None = None) -> Judgement:
    """What the -default file makes of the mail.  forward(address) judges
    a forward target (see follow()); vdelivermail(args), if vpopmail is
    configured, is deep.vpopmail.delivery.vdeliver with the query's EXT
    and HOST bound.  parsed: the file's lines if already parsed
    (parse_of()).  May raise errors.NeedLookup (from either)."""
    why = qmail_local_defer(facts.home_mode, facts.file_mode)
    if why:
        return Judgement(TEMPORARY, "qmail-local: " + why)
    if len(facts.content) > MAX_READ:
        return Judgement(TEMPORARY, "the .qmail file is too long to judge")
    if parsed is None:
        parsed = parse_of(facts)
    if parsed.empty:
        return Judgement(DELIVERABLE, "empty .qmail file: default delivery")
    delivered, variant = "", b""
    targets = []
    for line in parsed.lines:
        if line.kind in (dotqmail.MAILDIR, dotqmail.MBOX):
            delivered = delivered or line.kind
        elif line.kind == dotqmail.FORWARD:
            targets.append(line.text)
        elif line.kind == dotqmail.PROGRAM:
            prog = dotqmail.program_kind(line.text)
            if prog.name == dotqmail.BOUNCESAYING:
                if len(prog.args) <= 1:
                    return Judgement(UNDELIVERABLE, "bouncesaying")
                return Judgement(DELIVERABLE, "bouncesaying with a program")
            if prog.name == dotqmail.VDELIVERMAIL and vdelivermail is not None:
                out = vdelivermail(prog.args)
                if out.code != DELIVERABLE:
                    return out
                if not delivered:
                    delivered, variant = out.reason, out.variant
            else:
                return Judgement(DELIVERABLE, "program")
    if parsed.defer:
        return Judgement(TEMPORARY, "qmail-local: " + parsed.defer)
    if delivered:
        return Judgement(DELIVERABLE, delivered, variant)
    if not targets:
        return Judgement(DELIVERABLE, "no delivery line")
    temporary = None
    for target in targets:
        out = forward(target)
        if out.code == DELIVERABLE:
            return Judgement(DELIVERABLE, "forward")
        if out.code == TEMPORARY and temporary is None:
            temporary = out
    if temporary is not None:
        return temporary
    return Judgement(UNDELIVERABLE, "every forward target is undeliverable")
