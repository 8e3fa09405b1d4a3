"""Deep mode (issue 11, item 1): answer by what a -default file does.

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
  vdelivermail's answer (vpopmail.vdeliver), a refusal or deferral of it
  ends the file; any other program: valid, unknowable;
- forwards ('&address' or a bare address) are sent at the end, if nothing
  bounced or deferred: valid if any line delivered or any target is valid
  (a remote target is: the forward leaves this host), temporary if none
  is but one is temporary, else not valid; a target seen before on the
  path is a loop (temporary), as is a path deeper than MAX_DEPTH;
- a file with nothing but comments and '+' lines: qmail-local accepts the
  mail and drops it; valid ("anything else: valid").

Design note for the integration (after issue 9's restructure)
--------------------------------------------------------------
Hook.  rules.decide() step 8 ends with first_stat() finding a dot-qmail
file.  When deep mode is on (VERIFY_DEEP=1) and the file found is a
-default one (index > 0), the System is asked for DeepFacts: the home
directory's mode and the file's mode and first MAX_READ bytes, opened as
the user (Identity: the same effective uid/gid/empty groups as the stat,
O_NOFOLLOW not used since qmail-local follows links; a read error is
"temporary", errno logged like a stat error).  System grows
deep_facts(uid, gid, home, path) -> DeepFacts, made in system.Identity
next to first_stat().  decide() then returns judge()'s code with a new
position (15 is free in the nibble: "deep mode"), the controlling user,
and the reason for the trace.  EXT is the ext decide() already has; HOST
the query's domain after rewrite(); vdelivermail's lookups need users/cdb
(system.users()) and the vpopmail store named by VERIFY_VPOPMAIL=files or
mysql (vpasswd.FileStore with an opener that opens as the domain's
uid/gid from users/assign, or vpmysql.store_from_env), and the build from
vpopmail.build_from_env.  Forward targets are judged by decide() itself
with deep mode on and the path passed down (follow()).

No stall.  The deciding stays in the loop's thread, the only one that
takes a user's ids (identity.py): no stat, no open-as-user and no
users/cdb read may happen in another thread.  So the MySQL store runs with blocking=False: a lookup
not in its one-second cache raises outcome.NeedLookup before any answer
is sent.  The daemon then parks the query (datagram, client address,
extended flag, arrival time) under NeedLookup.key, hands key to ONE
worker thread (a queue; the same key is fetched once for all parked
queries) that calls store.fill(key) (network only, bounded by
VERIFY_VPOPMAIL_TIMEOUT, at most ~2 s even with its one reconnect), and
goes on answering other queries.  The worker wakes the loop through a
self-pipe registered in the selector; the loop re-runs decide() for each
query parked on that key from the start (stats included: the file system
may have changed, and the cache now answers).  A query parked longer
than PARK_MAX (3 s) is answered "temporary" (or nothing to a legacy
client).  Parked queries are bounded (e.g. 1000; beyond it a new query
needing a fetch is answered temporary at once); a re-run that raises
NeedLookup again (a second key, e.g. valias then user) parks again.

Temporary answers.  judge()'s TEMPORARY travels as rules' Verdict(
TEMPORARY, position, reason=...): spec 6, so nothing at all to a legacy
client (which then says 451 for its own reasons) and status 2 with the
reason to a client that asked for extended replies; never "not
deliverable" for our trouble.
"""

from typing import Callable, NamedTuple

from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail import dotqmail
from qmailverify.qmail.model import MAX_READ, DeepFacts

MAX_DEPTH = 5          # forwards followed through at most this many files
PATRN = 0o002          # notqmail conf-patrn: mode bits not allowed in ~ and ~/.qmail


class _Judged(NamedTuple):
    code: int            # wire.DELIVERABLE, UNDELIVERABLE or TEMPORARY
    reason: str          # for the client: no path, no errno text


class Judgement(_Judged):
    """(code, reason), and .detail for the log when it says more than
    reason (a path, an errno's words); equal to the plain pair."""

    detail = ""

    def __new__(cls, code: int, reason: str, detail: str = ""):
        self = super().__new__(cls, code, reason)
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
    """Judge a forward target by lookup(target, path + (target,)),
    refusing loops and depth beyond MAX_DEPTH as temporary."""
    key = target.lower()
    if key in path:
        return Judgement(TEMPORARY, "forward loop")
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
    configured, is vpopmail.vdeliver with the query's EXT and HOST bound.
    parsed: the file's lines if already parsed (parse_of()).  May raise
    outcome.NeedLookup (from either)."""
    why = qmail_local_defer(facts.home_mode, facts.file_mode)
    if why:
        return Judgement(TEMPORARY, "qmail-local: " + why)
    if len(facts.content) > MAX_READ:
        return Judgement(TEMPORARY, "the .qmail file is too long to judge")
    if parsed is None:
        parsed = parse_of(facts)
    if parsed.empty:
        return Judgement(DELIVERABLE, "empty .qmail file: default delivery")
    delivered = ""
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
                delivered = delivered or out.reason
            else:
                return Judgement(DELIVERABLE, "program")
    if parsed.defer:
        return Judgement(TEMPORARY, "qmail-local: " + parsed.defer)
    if delivered:
        return Judgement(DELIVERABLE, delivered)
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
