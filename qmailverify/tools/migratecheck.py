"""verify-migrate -c: which verification each client gets, so that an
admin can compare a rules file before and after the migration.

-c reads FILE (rules source, or a .cdb) and prints, for each IP, what a
connection from it gets, as 1.30 reads VERIFY (and VERIFY_ROLLOUT, when a
rule sets it: soft, log-only or enforced), or with -o as pre-1.30
qmail-smtpd (and, with -r, realrcptto) read the old variables.  Run it
with -o on the old file and without on the new one, and compare.
"""

import ipaddress
import os
import sys

import cdblib

from qmailverify.clean import visible
from qmailverify.errors import Fatal
from qmailverify.protocol.addrspec import (
    DEFAULT_IP,
    DEFAULT_PORT,
    AddressError,
    format_server,
    parse_server,
)
from qmailverify.protocol.verifyenv import (
    ENFORCE,
    LOG,
    SOFT,
    SetupError,
    ignored,
    parse_verify,
    rollout_of,
)
from qmailverify.qmail.tcprules import lookup, parse, records

DEFAULT_SERVER = format_server(DEFAULT_IP, DEFAULT_PORT)


def describe_verification(env: dict, old: bool, realrcptto: bool) -> str:
    """What a connection with this rules environment gets."""
    if b"RELAYCLIENT" in env:
        return "relay client: not verified"
    if old:
        server = env.get(b"VERIFYSVR", b"").decode("latin-1")
        try:
            where = format_server(*parse_server(server))
        except AddressError:
            where = DEFAULT_SERVER                      # pre-1.30 fell back silently
        if b"VERIFYDEFER" in env:
            return f"deferred, {where}"
        if b"VERIFY" in env:
            return f"immediate, {where}"
        if env.get(b"QMAILRRTDENYALL") == b"1":
            return f"deferred, {DEFAULT_SERVER}"
        if realrcptto:
            return f"immediate, {DEFAULT_SERVER}"
        return "not verified"
    value = env.get(b"VERIFY")
    try:
        mode = parse_verify(None if value is None else value.decode("latin-1"))
    except SetupError as e:
        return f"setup failure: every RCPT gets 451 ({e})"
    if not mode.enabled:
        return "not verified (explicitly)" if mode.note else "not verified"
    return (f"{'deferred' if mode.deferred else 'immediate'}, {format_server(*mode.server)}"
            + describe_rollout(env.get(b"VERIFY_ROLLOUT")))


def describe_rollout(value: bytes | None) -> str:
    """VERIFY_ROLLOUT's part of -c's line: nothing when unset (enforced)."""
    if value is None:
        return ""
    text = value.decode("latin-1")
    rollout, warning = rollout_of(text)
    if warning:
        return f", unknown VERIFY_ROLLOUT {text!r}: enforced"
    return {ENFORCE: ", enforced", SOFT: ", soft rollout: 450 at RCPT, 451 at DATA",
            LOG: ", log-only rollout: refusals logged, mail accepted"}[rollout]


def check_ips(ips: list[str]) -> None:
    """Every IP must be an address tcpserver could put in TCPREMOTEIP."""
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise Fatal(f"verify-migrate: fatal: not an IP address: "
                        f"{visible(os.fsencode(ip)).decode()}", 100) from None


def check(path: str, data: bytes, ips: list[str], old: bool, realrcptto: bool, out) -> None:
    """Write to out, for each IP (check_ips() has passed them), what a
    connection from it gets by data, the rules file at path (a cdb if
    its name ends in .cdb)."""
    if path.endswith(".cdb"):
        try:
            table = cdblib.Reader(data=data)
        except Exception:
            raise Fatal(f"verify-migrate: fatal: {path} is not a cdb file", 111) from None
        get = table.get
    else:
        first: dict[bytes, bytes] = {}
        for key, value in records(parse(data)):
            first.setdefault(key, value)
        get = first.get
    warned: set = set()
    for ip in ips:
        env = lookup(get, ip.encode())
        warn_ignored(env.env, old, warned)
        rule = "no rule" if env.key is None else f"rule '{visible(env.key).decode()}'"
        what = "connection refused" if env.deny else describe_verification(env.env, old, realrcptto)
        out.write(f"{ip}: {what} [{rule}]\n")


def warn_ignored(env: dict, old: bool, warned: set) -> None:
    """Warn (once a value) about a VERIFY whose host name the grammar skips."""
    value = env.get(b"VERIFY")
    if old or not value or value in warned:
        return
    warned.add(value)
    text = value.decode("latin-1")
    skipped = ignored(text)
    if skipped:
        try:
            where = format_server(*parse_verify(text).server)
        except SetupError:
            return                                  # describe_verification() says setup failure
        print(f"verify-migrate: warning: VERIFY={text!r} asks {where}: "      # repr: escaped
              f"{skipped!r} is ignored "
              f"(only what follows the first digit, ':' or '[' names the server)",
              file=sys.stderr)
