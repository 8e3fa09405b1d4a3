"""qmail-verify-conf: make a service directory for qmail-verify.

    qmail-verify-conf ACCT LOGACCT /DIR [LISTEN]

In the manner of dnscache-conf (servicedir.py makes it): DIR must be
absolute and must not exist; it gets run (envdir ./env, softlimit, the
daemon), env/QMAILHOME (from $QMAILHOME, /var/qmail by default),
env/LISTEN (127.0.0.1:11113 by default) and log/run (setuidgid LOGACCT
multilog, keeping 20 files of 16 MB).  ACCT is the account the daemon
runs as: root on a normal qmail system, where each dot-qmail stat is made
as the user whose home it is; the one uid of a single-uid virtual-domain
system otherwise.  Only log/main belongs to LOGACCT.  The run script
names the qmail-verify of this same installation by its absolute path
(svscanboot's PATH does not reach a virtual environment).  Handing DIR
to svscan is left to the admin: the closing hint says how
(update-service --add DIR with Debian's daemontools-run, a link into
/service in djb's layout).

Exit 100 for a usage error or a bad argument, 111 when the system
refuses (an unknown account, DIR already there, a write that fails).
"""

import os
import sys
from typing import NamedTuple

from qmailverify.cli import guarded, help_or_version
from qmailverify.errors import Fatal
from qmailverify.protocol.addrspec import AddressError, format_server, parse_server
from qmailverify.tools import servicedir

PROG = "qmail-verify-conf"
USAGE = "qmail-verify-conf: usage: qmail-verify-conf acct logacct /dir [listen]"
SOFTLIMIT = 64_000_000        # measured floor 20 MB; see INSTALL
MULTILOG = servicedir.MULTILOG


def program_path(name: str = "qmail-verify") -> str:
    return servicedir.program_path(PROG, name)


def render(acct: str, logacct: str, listen: str, qmailhome: str,
           program: str) -> list[servicedir.Entry]:
    """The service directory: (path, content or None for a folder, mode,
    owned by the log account)."""
    drop = "" if acct == "root" else f"setuidgid {acct} "
    run = ("#!/bin/sh\n"
           "# qmail-verify under supervise (made by qmail-verify-conf)\n"
           "# the daemon by absolute path (svscanboot's PATH has no virtual\n"
           "# environment): qmail-verify-conf names the qmail-verify of its own\n"
           "# installation; INSTALL puts it in /opt/qmailverify/bin\n"
           "exec 2>&1\n"
           f"exec envdir ./env softlimit -m {SOFTLIMIT} {drop}{program}\n")
    return servicedir.entries(run, {"QMAILHOME": qmailhome, "LISTEN": listen}, logacct)


class ConfOptions(NamedTuple):
    acct: str
    logacct: str
    dir: str                  # absolute, without a trailing slash
    listen: str               # as written to env/LISTEN
    qmailhome: str


def parseargs(argv: list[str], env=os.environ) -> ConfOptions:
    help_or_version(argv, USAGE)
    acct, logacct, directory, qmailhome = servicedir.common_args(PROG, USAGE, argv, env)
    try:
        listen = format_server(*parse_server(argv[3] if len(argv) == 4 else ""))
    except AddressError as e:
        raise Fatal(f"qmail-verify-conf: fatal: bad listen address: {e}", 100) from None
    return ConfOptions(acct, logacct, directory, listen, qmailhome)


def make(a: ConfOptions, program: str) -> None:
    servicedir.make_service(PROG, a.dir, a.acct, a.logacct,
                            render(a.acct, a.logacct, a.listen, a.qmailhome, program))


def run(argv: list[str]) -> int:
    a = parseargs(argv)
    make(a, program_path())
    d = a.dir
    svc, start = servicedir.start_hint(d)
    print(f"qmail-verify-conf: made {d}\n{start}"
          f"  check it:  qmail-verify-status {svc}\n"
          f"  reload:    svc -h {svc}   (after editing control files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded("qmail-verify-conf", lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
