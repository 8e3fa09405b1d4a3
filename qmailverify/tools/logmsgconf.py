"""qmail-logmsg-conf: make a service directory for qmail-smtpd behind
qmail-logmsg.

    qmail-logmsg-conf ACCT LOGACCT /DIR [RULES]

For a server that has no qmail-smtpd service yet (one that has keeps its
run script and puts qmail-logmsg in front of qmail-smtpd there: INSTALL,
4).  DIR gets, as qmail-verify-conf's does (servicedir.py): run, env/
(QMAILHOME from $QMAILHOME, /var/qmail by default; CONCURRENCY 40, IP 0,
PORT 25, tcpserver's -c and where it listens) and log/run, log/main
belonging to LOGACCT.  run is

    envdir ./env sh -c 'envuidgid ACCT softlimit -m 30000000 tcpserver
        -vRU -l NAME -x RULES -c ... QMAILLOGMSG $QMAILHOME/bin/qmail-smtpd'

tcpserver runs each session as ACCT (qmaild) with its primary group
(nofiles), as Life with qmail's run script does with id -u and id -g;
NAME is control/me's first line, for the Received line; RULES is the
rules cdb (/etc/tcp.smtp.cdb by default), where VERIFY is set per client.
The memory limit is for a Python program started for every connection
(qmail-logmsg(8), LIMITS): qmail's usual 2000000 would end every session
before the greeting.  QMAILLOGMSG is the qmail-logmsg of this same
installation, by its absolute path.  The rules file itself is the
admin's: while RULES does not exist tcpserver drops every connection,
and the closing hint says so.

Exit 100 for a usage error or a bad argument, 111 when the system
refuses (an unknown account, DIR already there, a write that fails).
"""

import os
import sys
from typing import NamedTuple

from qmailverify.cli import guarded, help_or_version
from qmailverify.tools import servicedir

PROG = "qmail-logmsg-conf"
USAGE = "qmail-logmsg-conf: usage: qmail-logmsg-conf acct logacct /dir [rules]"
RULES = "/etc/tcp.smtp.cdb"
# qmail-logmsg needs about 15 MB a session, 20 MB for a 2 MiB command line.
SOFTLIMIT = 30_000_000


def render(acct: str, logacct: str, rules: str, qmailhome: str,
           program: str) -> list[servicedir.Entry]:
    """The service directory: (path, content or None for a folder, mode,
    owned by the log account)."""
    run = ("#!/bin/sh\n"
           "# qmail-smtpd behind qmail-logmsg, under supervise (made by qmail-logmsg-conf)\n"
           "# VERIFY is set per client in the rules; qmail-logmsg by absolute path\n"
           "# (svscanboot's PATH has no virtual environment).\n"
           "# MEMORY: qmail-logmsg is a Python program started for every connection;\n"
           f"# it needs about 15 MB: do not lower -m {SOFTLIMIT} to qmail's usual\n"
           "# 2000000, which ends every session before the greeting.\n"
           "exec 2>&1\n"
           "exec envdir ./env sh -c '\n"
           f"  exec envuidgid {acct} softlimit -m {SOFTLIMIT} \\\n"
           f"  tcpserver -vRU -l \"$(head -1 \"$QMAILHOME/control/me\")\" -x {rules} \\\n"
           "    -c \"$CONCURRENCY\" \"$IP\" \"$PORT\" \\\n"
           f"    {program} \"$QMAILHOME/bin/qmail-smtpd\"\n"
           "'\n")
    return servicedir.entries(run, {"QMAILHOME": qmailhome, "CONCURRENCY": "40", "IP": "0",
                                    "PORT": "25"}, logacct)


class LogmsgConfOptions(NamedTuple):
    acct: str
    logacct: str
    dir: str                  # absolute, without a trailing slash
    rules: str
    qmailhome: str


def parseargs(argv: list[str], env=os.environ) -> LogmsgConfOptions:
    help_or_version(argv, USAGE)
    acct, logacct, directory, qmailhome = servicedir.common_args(PROG, USAGE, argv, env)
    rules = servicedir.plain_path(PROG, "rules", argv[3] if len(argv) == 4 else RULES)
    return LogmsgConfOptions(acct, logacct, directory, rules, qmailhome)


def run(argv: list[str]) -> int:
    a = parseargs(argv)
    program = servicedir.program_path(PROG, "qmail-logmsg")
    servicedir.make_service(PROG, a.dir, a.acct, a.logacct,
                            render(a.acct, a.logacct, a.rules, a.qmailhome, program))
    svc, start = servicedir.start_hint(a.dir)
    text = a.rules.removesuffix(".cdb")
    rules = "" if os.path.exists(a.rules) else (
        f"  rules:     {a.rules} does not exist yet: tcpserver drops every connection"
        f" until it does\n"
        f"             (tcprules {a.rules} {text}.tmp < {text}: INSTALL, 4 B)\n")
    print(f"{PROG}: made {a.dir}\n{rules}{start}"
          f"  check it:  svstat {svc}; tail {a.dir}/log/main/current")
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded(PROG, lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
