"""qmail-verify-http-conf: make a service directory for qmail-verify-http.

    qmail-verify-http-conf ACCT LOGACCT /DIR [LISTEN [SERVER]]

conf.py's sibling, in the same manner: DIR (absolute, new) gets run
(envdir ./env, softlimit, setuidgid ACCT, qmail-verify-http by its
absolute path), env/LISTEN (TCP, 127.0.0.1:8998 by default, where
qmail-deliverabled listens), env/VERIFY_SERVER (the qmail-verify daemon,
127.0.0.1:11113 by default) and log/run (setuidgid LOGACCT multilog).
ACCT may not be root: qmail-verify-http needs no privilege and reads the
network, so it runs as an account of its own (qmail-verify-http refuses
root itself).

Exit 100 for a usage error or a bad argument, 111 when the system
refuses (an unknown account, DIR already there, a write that fails).
"""

import sys

from qmailverify.cli import guarded, help_or_version
from qmailverify.errors import Fatal
from qmailverify.protocol.addrspec import AddressError, format_server, parse_server
from qmailverify.tools import servicedir
from qmailverify.tools.conf import SOFTLIMIT

ME = "qmail-verify-http-conf"
USAGE = f"{ME}: usage: {ME} acct logacct /dir [listen [server]]"
HTTP_PORT = 8998
DAEMON_PORT = 11113


def render(acct: str, logacct: str, listen: str, server: str,
           program: str) -> list[servicedir.Entry]:
    """The service directory, as conf.render() lists it."""
    run = ("#!/bin/sh\n"
           "# qmail-verify-http under supervise (made by qmail-verify-http-conf):\n"
           "# never root; the program by absolute path (svscanboot's PATH has no\n"
           "# virtual environment)\n"
           "exec 2>&1\n"
           f"exec envdir ./env softlimit -m {SOFTLIMIT} setuidgid {acct} {program}\n")
    return servicedir.entries(run, {"LISTEN": listen, "VERIFY_SERVER": server}, logacct)


def address(text: str, port: int, what: str) -> str:
    try:
        return format_server(*parse_server(text, default_port=port))
    except AddressError as e:
        raise Fatal(f"{ME}: fatal: bad {what} address: {e}", 100) from None


def run(argv: list[str]) -> int:
    help_or_version(argv, USAGE)
    if not 3 <= len(argv) <= 5:
        raise Fatal(USAGE, 100)
    acct, logacct, directory = argv[:3]
    if not directory.startswith("/"):
        raise Fatal(f"{ME}: fatal: dir must start with a slash", 100)
    directory = directory.rstrip("/") or "/"
    if acct == "root":
        raise Fatal(f"{ME}: fatal: acct must not be root: qmail-verify-http runs as an "
                    "account of its own", 100)
    listen = address(argv[3] if len(argv) > 3 else "", HTTP_PORT, "listen")
    server = address(argv[4] if len(argv) > 4 else "", DAEMON_PORT, "server")
    program = servicedir.program_path(ME, "qmail-verify-http")
    servicedir.make_service(ME, directory, acct, logacct,
                            render(acct, logacct, listen, server, program))
    svc, start = servicedir.start_hint(directory)
    print(f"{ME}: made {directory}\n{start}"
          f"  check it:  svstat {svc}; tail {directory}/log/main/current")
    return 0


def main(argv: list[str] | None = None) -> int:
    return guarded(ME, lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
