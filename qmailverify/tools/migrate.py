"""verify-migrate: move tcpserver rules to qmail-verify 1.30's VERIFY.

    verify-migrate [-r] RULES                show what would change (a diff)
    verify-migrate [-r] -w RULES [CDB]       change it, keep a backup, rebuild CDB
    verify-migrate -c [-o] [-r] FILE IP...   which verification each client gets

Before 1.30 three variables did the job of one (spec section 8):

    VERIFY=""                      ->  VERIFY=":"        (it meant: on!)
    VERIFYDEFER=""                 ->  VERIFY="DEFER"
    VERIFYSVR="IP:PORT" with them  ->  VERIFY="IP:PORT" or VERIFY="DEFER,IP:PORT"
    realrcptto QMAILRRTDENYALL="1" ->  VERIFY="DEFER"
    realrcptto, on by default (-r) ->  VERIFY=":" on every allow rule that has
                                       no RELAYCLIENT and no verification yet

Only those instructions change: the first old one becomes the new VERIFY
(in its own quote character), the others go; every other rule, comment,
blank, order and quoting stays byte for byte.  A VERIFY that already has
a 1.30 value is left alone (and reported).  A VERIFYSVR that 1.30 could
not parse is an error: qmail-smtpd would answer every RCPT with 451.

-w writes RULES atomically (RULES.tmp, then a rename), keeps the old file
as RULES.bak-YYYYMMDDHHMMSS, and rebuilds CDB (RULES.cdb by default)
exactly as tcprules would, by the same atomic rename.

-c compares what clients get, before and after (migratecheck.py).

Exit 0 on success, 100 for a usage error or a rules file tcprules would
refuse, 111 when a file cannot be read or written.
"""

import difflib
import os
import shutil
import sys
import time
from typing import NamedTuple

from qmailverify.cli import guarded, options
from qmailverify.errors import Fatal, errtext
from qmailverify.protocol.addrspec import AddressError, parse_server
from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.qmail.tcprules import Rule, RulesError, parse, records
from qmailverify.tools.migratecheck import check, check_ips

USAGE = ("verify-migrate: usage: verify-migrate [-r] [-w] rules [cdb] | "
         "verify-migrate -c [-o] [-r] rules-or-cdb ip ...")
OLD = (b"VERIFY", b"VERIFYDEFER", b"VERIFYSVR", b"QMAILRRTDENYALL")


def new_verify(rule: Rule, realrcptto: bool) -> tuple[bytes | None, list[str]]:
    """The 1.30 VERIFY value for a rule's old instructions (None: none),
    and notes about the rule."""
    first = {}
    for i in rule.instructions:
        first.setdefault(i.name, i)
    verify, defer = first.get(b"VERIFY"), first.get(b"VERIFYDEFER")
    svr, rrt = first.get(b"VERIFYSVR"), first.get(b"QMAILRRTDENYALL")
    where = f"line {rule.lineno}"
    if defer:
        deferred = True
    elif verify:
        deferred = False
    elif rrt and rrt.value == b"1":
        deferred = True
    elif rrt and realrcptto:
        deferred = False
    else:
        what = "VERIFYSVR without VERIFY or VERIFYDEFER" if svr else "QMAILRRTDENYALL"
        return None, [f"{where}: {what} turned nothing on; removed"]
    server = svr.value if svr else b""             # kept as the admin wrote it...
    try:
        parse_server(server.decode("latin-1"))     # ...once we know 1.30 can read it
    except AddressError as e:
        raise RulesError(f"{where}: VERIFYSVR {server.decode('latin-1')!r}: {e}") from None
    value = (b"DEFER" if deferred else b":") if not server else \
        (b"DEFER," + server if deferred else server)
    return value, []


def migrate_rule(rule: Rule, realrcptto: bool) -> tuple[bytes, list[str]]:
    """The rule's line in 1.30 terms, and notes."""
    line = rule.line
    olds = [i for i in rule.instructions if i.name in OLD]
    names = {i.name for i in rule.instructions}
    if not olds:
        if realrcptto and not rule.deny and b"RELAYCLIENT" not in names:
            end = len(line.rstrip(b"\n").rstrip(b" \t"))
            return line[:end] + b',VERIFY=":"' + line[end:], []
        return line, []
    verify = next((i for i in olds if i.name == b"VERIFY"), None)
    if verify and verify.value and len(olds) == 1:
        return line, [f"line {rule.lineno}: VERIFY={verify.value.decode('latin-1')!r} "
                      "is already 1.30 syntax; left alone"]
    value, notes = new_verify(rule, realrcptto)
    replacement = b""
    if value is not None:
        quote = next(q for q in (olds[0].quote, 0x22, 0x27, 0x2F, 0x7C) if q not in value)
        replacement = b",VERIFY=" + bytes([quote]) + value + bytes([quote])
    out, pos = b"", 0
    for n, i in enumerate(olds):
        out += line[pos:i.start] + (replacement if n == 0 else b"")
        pos = i.end
    return out + line[pos:], notes


def migrate(text: bytes, realrcptto: bool) -> tuple[bytes, list[str]]:
    out, notes = [], []
    for item in parse(text):
        if isinstance(item, Rule):
            line, n = migrate_rule(item, realrcptto)
            out.append(line)
            notes += n
        else:
            out.append(item)
    return b"".join(out), notes


def read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise Fatal(f"verify-migrate: fatal: unable to read {path}: {errtext(e.errno)}", 111) from None


def write(rules: str, cdb: str, new: bytes) -> str:
    """New rules in place (old kept as a backup), then the cdb; returns the backup's name."""
    backup = f"{rules}.bak-{time.strftime('%Y%m%d%H%M%S')}"
    tmp = rules + ".tmp"
    try:
        st = os.stat(rules)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, st.st_mode & 0o7777)
        with os.fdopen(fd, "wb") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, st.st_uid, st.st_gid)
        try:
            os.link(rules, backup)
        except OSError:
            shutil.copy2(rules, backup)
        os.rename(tmp, rules)
    except OSError as e:
        raise Fatal(f"verify-migrate: fatal: unable to write {e.filename or rules}: "
                    f"{errtext(e.errno)}", 111) from None
    try:
        write_cdb(cdb, records(parse(new)))
    except OSError as e:
        raise Fatal(f"verify-migrate: fatal: unable to write {cdb}: {errtext(e.errno)} "
                    f"({rules} is already migrated: run tcprules by hand)", 111) from None
    return backup


class MigrateOptions(NamedTuple):
    realrcptto: bool          # -r
    write: bool               # -w
    check: bool               # -c
    old: bool                 # -o
    args: list[str]           # RULES [CDB], or FILE IP...


def parseargs(argv: list[str]) -> MigrateOptions:
    opts, args = options(argv, "rwco", USAGE)
    o = {k for k, _ in opts}
    if "-c" in o:
        if "-w" in o or len(args) < 2:
            raise Fatal(USAGE, 100)
    elif "-o" in o or not 1 <= len(args) <= (2 if "-w" in o else 1):
        raise Fatal(USAGE, 100)
    return MigrateOptions("-r" in o, "-w" in o, "-c" in o, "-o" in o, args)


def run(argv: list[str]) -> int:
    o = parseargs(argv)
    args, realrcptto = o.args, o.realrcptto
    if o.check:
        check_ips(args[1:])             # a bad IP (100) before an unreadable file (111)
        check(args[0], read(args[0]), args[1:], o.old, realrcptto, sys.stdout)
        return 0
    rules = args[0]
    old = read(rules)
    try:
        parse(old)                      # the file must be one tcprules accepts
        new, notes = migrate(old, realrcptto)
    except RulesError as e:
        raise Fatal(f"verify-migrate: fatal: {rules}: {e}", 100) from None
    for note in notes:
        print(f"verify-migrate: {rules}: {note}", file=sys.stderr)
    if new == old:
        print(f"verify-migrate: {rules}: nothing to change", file=sys.stderr)
        return 0
    diff = difflib.unified_diff(old.decode("latin-1").splitlines(True),
                                new.decode("latin-1").splitlines(True),
                                rules, rules + " (1.30)")
    sys.stdout.buffer.write("".join(diff).encode("latin-1"))
    sys.stdout.flush()                  # a full disk stops it before -w writes
    if o.write:
        cdb = args[1] if len(args) > 1 else rules + ".cdb"
        backup = write(rules, cdb, new)
        print(f"verify-migrate: wrote {rules} (the old one is {backup}) and rebuilt {cdb}",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded("verify-migrate", lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
