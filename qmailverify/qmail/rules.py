"""qmail's delivery rules: would qmail deliver this address locally?

decide() is the whole decision and does no I/O of its own: it asks a
System (users/cdb, the passwd source, stats made as the user) for facts
and returns a Verdict (both in model.py, with the Controls it reads).
The steps follow qmail-send's rewrite(), qmail-lspawn's users/cdb
lookup, qmail-getpw and qmail-local's dot-qmail search; the step numbers in comments are those of the spec, and each
verdict carries the position (1 to 14; 15 for deep mode, deep/hook.py) of
the rule that made it.
"""

import errno

from qmailverify.clean import cleantext
from qmailverify.errors import Trouble, errtext, is_temporary
from qmailverify.protocol.wire import (
    DELIVERABLE,
    NOT_OURS,
    TEMPORARY,
    UNDELIVERABLE,
    VIRTUAL_EXCEPTION,
)
from qmailverify.qmail.model import Controls, Found, StatHit, System, Verdict

GETPW_USERLEN = 32   # qmail-getpw: a user name part must be shorter

# the answers for an address qmail does not deliver here (local_name()'s
# last item): made once, not for every query for another domain
NOT_HERE = {p: Verdict(DELIVERABLE, p) for p in (NOT_OURS, VIRTUAL_EXCEPTION)}


def rewrite(addr: bytes, c: Controls) -> tuple[bytes, int]:
    """qmail-send's rewrite(): steps 1 to 3.  (address, index of its last @)."""
    i = addr.rfind(b"@")
    rewritten = i < 0
    if rewritten:                                   # 1: no @
        i = len(addr)
        addr = addr + b"@" + c.envnoathost
    while addr[i + 1:].lower() in c.percenthack:    # 2: percent hack
        j = addr.rfind(b"%", 0, i)
        if j < 0:
            break
        addr = addr[:j] + b"@" + addr[j + 1:i]
        i, rewritten = j, True
    return addr, addr.rfind(b"@") if rewritten else i    # 3 (as it came: i is the last @)


def virtual_prefix(addr: bytes, at: int, vdoms: dict) -> bytes | None:
    """Step 5: the virtualdomains prefix for addr, None if no key matches.

    Keys tried: the whole address, the domain, each dot-suffix of the
    domain (longest first), then the empty key."""
    low = addr.lower()
    prefix = vdoms.get(low)
    if prefix is None:
        prefix = vdoms.get(low[at + 1:])
    dot = low.find(b".", at + 1)
    while prefix is None and dot >= 0:
        prefix = vdoms.get(low[dot:])
        dot = low.find(b".", dot + 1)
    if prefix is None:
        prefix = vdoms.get(b"")
    return prefix


def local_name(addr: bytes, c: Controls) -> tuple[bytes, int, bytes | None, int]:
    """Steps 1 to 5: (address after rewrite(), index of its last @, the
    local name qmail-local gets, 0).  When qmail does not deliver the
    address here the name is None and the last item the position that
    says so: 1 (no virtualdomains key matches) or 2 (an empty prefix)."""
    a, at = rewrite(addr, c)
    if a[at + 1:].lower() in c.locals:              # 4
        return a, at, a[:at], 0
    prefix = virtual_prefix(a, at, c.virtualdomains)   # 5
    if prefix is None:
        return a, at, None, 1
    if not prefix:
        return a, at, None, 2
    return a, at, prefix + b"-" + a[:at], 0


def users_lookup(cdb, name: bytes) -> bytes | None:
    """Step 6, qmail-lspawn's lookup: the users/cdb value for name, with
    the rest of a wildcard match appended; None if nothing matches.

    After the exact key, the prefixes of '!name' are tried from the
    longest: those that end in a wildcard character (qmail-newu's, the
    value of the empty key: usually one, '-'), and '!' itself."""
    wild = cdb.get(b"")
    if wild is None:
        raise Trouble("users/cdb has no wildcard entry", "users/cdb unusable")
    lower = b"!" + name.lower()
    value = cdb.get(lower + b"\0")
    if value is not None:
        return value
    cuts = []
    # each wildcard character once: a set only for several (qmail-newu's is '-')
    for ch in (wild if len(wild) == 1 else set(wild)):
        i = lower.rfind(ch, 1)
        while i > 0:
            cuts.append(i + 1)
            i = lower.rfind(ch, 1, i)
    if len(wild) > 1:                # each character's cuts came longest first
        cuts.sort(reverse=True)
    cuts.append(1)
    for i in cuts:
        value = cdb.get(lower[:i])
        if value is not None:
            return value + name[i - 1:]
    return None


def passwd_lookup(system: System, name: bytes, brk: bytes, budget=None):
    """Step 7, qmail-getpw's userext(): (entry, dash, ext) or None.

    qmail-getpw cuts name for a user name at its end, then at each
    separator (brk), from the back; a user name part must be shorter
    than GETPW_USERLEN.  Each entry asked for is a row of the budget,
    each owner stat a stat, charged when the loop ends: it asks at most
    GETPW_USERLEN of each, whatever the name."""
    getpw, owner, low = system.getpw, system.owner, name.lower()
    cut = len(name)
    rows = stats = 0
    found = None
    while cut >= 0:
        if cut < GETPW_USERLEN:
            rows += 1
            pw = getpw(low[:cut])
            if pw is not None and pw.uid != 0:
                stats += 1
                if owner(pw.home) == pw.uid:
                    found = (pw, b"", b"") if cut == len(name) else (pw, b"-", name[cut + 1:])
                    break
        cut = name.rfind(brk, 0, cut)
    if budget is not None:
        if rows <= budget.rows and stats <= budget.stats:     # the usual: charged inline
            budget.rows -= rows
            budget.stats -= stats
        else:
            budget.lookups(rows, stats)                       # says which ran out
    return found


def dotqmail_paths(home: bytes, dash: bytes, ext: bytes, budget=None):
    """Step 8, qmail-local's qmesearch(): the files to look for, in order.

    First .qmail<dash><ext>, then each .qmail<dash><prefix>default where
    prefix is ext cut after a '-' (from the back), and at its start.
    budget: a stat of it is spent before each is handed out (inline: the
    hot path; Budget.stat() does the rest when a count runs out)."""
    safe = ext.lower().replace(b".", b":")
    base = home + b"/.qmail" + dash
    if budget is None:
        yield base + safe
        i = safe.rfind(b"-")
        while i >= 0:
            yield base + safe[:i + 1] + b"default"
            i = safe.rfind(b"-", 0, i)
        yield base + b"default"
        return
    path, last = base + safe, False
    i = safe.rfind(b"-")
    while True:
        if budget.stats > 0 and budget.timed > 0:
            budget.stats -= 1
            budget.timed -= 1
        else:
            budget.stat()               # raises, or reads the clock
        yield path
        if last:
            return
        if i >= 0:
            path = base + safe[:i + 1] + b"default"
            i = safe.rfind(b"-", 0, i)
        else:
            path, last = base + b"default", True


def dotqmail_search(system: System, uid: int, gid: int, home: bytes, dash: bytes,
                    ext: bytes, budget=None) -> StatHit:
    """Step 8, qmail-local's qmesearch() with qmeexists(): the first of
    dotqmail_paths() that is a regular file, or the stat failure that
    ends the search.

    The System passes over what qmeexists() passes over by its errno
    alone, and names that are not regular files.  ENOTDIR is passed over
    here where the name qmail-local opens in the home holds a '/' (the
    extension runs through a file: user-file/x).  On a name without one
    it is the home that is not a directory, where qmail-local cannot
    chdir: then every name failed alike and the first ENOTDIR answers, as
    it did in 1.32.  The names are handed out one at a time, so that
    budget is charged a stat for each name stat'ed and no more."""
    paths = dotqmail_paths(home, dash, ext, budget)
    hit = system.first_stat(uid, gid, paths)
    if hit.errno != errno.ENOTDIR:                     # the usual search: one call
        return hit
    start, first = 0, None
    while True:
        if start:
            hit = hit._replace(index=start + hit.index)
        if hit.errno != errno.ENOTDIR:
            return hit
        if first is None:
            first = hit
        if b"/" not in hit.path[len(home) + 1:]:
            return first
        start = hit.index + 1
        hit = system.first_stat(uid, gid, paths)       # goes on where it stopped
        if hit.index < 0:
            return hit


def fastforward_keys(addr: bytes) -> list[bytes]:
    """The keys fastforward's cdb may hold for addr, most specific first."""
    low = addr.lower()
    at = low.rfind(b"@")
    if at < 0:
        return [b":" + low]
    return [b":" + low, b":" + low[at:], b":" + low[:at + 1]]


def decide(addr: bytes, c: Controls, system: System, alias: bytes = b"alias",
           brk: bytes = b"-", deep=None, budget=None, named: tuple | None = None) -> Verdict:
    """Would qmail deliver addr locally?  addr is the query, as bytes.

    deep (deep.hook.Deep, VERIFY_DEEP=1) answers temporary (position 15)
    where qmail-local would defer at the home or at the file found (the
    search is then made for an empty extension too: ~/.qmail), and judges
    a -default file that ends the search instead of answering deliverable
    [12]; it may raise errors.NeedLookup.  None: the 1.32 answers.  budget
    (qmail/budget.py's Budget) counts the steps; it raises
    budget.OverBudget, which goes up to the caller with the decision
    unfinished.  named: local_name(addr, c), when the caller has it."""
    a, at, name, outside = named if named is not None else local_name(addr, c)
    if name is None:
        return NOT_HERE[outside]

    try:                                            # 6
        cdb = system.users()
        value = users_lookup(cdb, name) if cdb is not None else None
    except Trouble as t:
        return Verdict(TEMPORARY, 6, reason=t.kind, detail=str(t))
    via_alias = False
    if value is not None:
        fields = value.split(b"\0")
        user = fields[0]
        if len(fields) < 5:
            return Verdict(DELIVERABLE, 3 + len(fields), user)
        uid, gid = _scan_ulong(fields[1]), _scan_ulong(fields[2])
        home, dash = fields[3], fields[4]
        ext = fields[5] if len(fields) > 5 else b""
    else:                                           # 7
        try:
            found = passwd_lookup(system, name, brk, budget)
            if found is None:
                if budget is not None:
                    budget.row()
                pw = system.getpw(alias)
                if pw is None:
                    return Verdict(UNDELIVERABLE, 8, alias)
                user, dash, ext, via_alias = alias, b"-", name, True
            else:
                pw, dash, ext = found
                user = name
        except Trouble as t:
            return Verdict(TEMPORARY, 7, reason=t.kind, detail=str(t))
        uid, gid, home = pw.uid, pw.gid, pw.home

    if deep is not None:                            # qmail-local's checkhome()
        v = deep.checkhome(system, uid, gid, home, user, budget)
        if v is not None:
            return v
    if not dash and deep is None:                   # 8
        return Verdict(DELIVERABLE, 9, user)
    if budget is not None:
        if budget.home is None:
            budget.home = home
        if budget.costly is not None and budget.costly.homes:
            budget.search(home)
    try:
        index, err, path, mode = dotqmail_search(system, uid, gid, home, dash, ext, budget)
    except Trouble as t:
        return Verdict(TEMPORARY, 11, reason=t.kind, detail=str(t))
    if deep is not None:                            # ~/.qmail too: a writable one defers
        v = deep.checkfile(mode, user)
        if v is not None:
            return v
        if not dash and not err:
            return Verdict(DELIVERABLE, 9, user)
    if index < 0:
        return Verdict(UNDELIVERABLE, 14, user)
    if index == 0:
        position = 10 if not err else 11
    else:
        position = 12 if not err else 13
    if err and is_temporary(err):           # qmail-local defers: so do we
        return Verdict(TEMPORARY, position, user, reason="unable to stat a .qmail file",
                       detail=f"unable to stat {cleantext(path)}: {errtext(err)}")
    if err:
        return Verdict(DELIVERABLE, position, user, path, err)
    ff = None
    if via_alias and index > 0 and path == home + b"/.qmail-default":
        try:
            ff = system.fastforward()
            if ff is not None and not any(
                    ff.get(k) is not None for k in fastforward_keys(addr)):
                return Verdict(UNDELIVERABLE, 12, user)
        except Trouble as t:
            return Verdict(TEMPORARY, 12, reason=t.kind, detail=str(t))
    if deep is not None and index > 0 and ff is None:   # fastforward's answer stands
        return deep.verdict(system, c, Found(a, a[at + 1:], user, uid, gid, home, path, ext),
                            budget)
    return Verdict(DELIVERABLE, position, user)


def _scan_ulong(field: bytes) -> int:
    """scan_ulong(): the leading decimal digits of field, 0 if none."""
    digits = len(field) - len(field.lstrip(b"0123456789"))
    return int(field[:digits]) if digits else 0
