"""qmail-verify-conf: make a service directory for qmail-verify.

    qmail-verify-conf ACCT LOGACCT /DIR [LISTEN]

In the manner of dnscache-conf: DIR must be absolute and must not exist;
it gets run (envdir ./env, softlimit, the daemon), env/QMAILHOME (from
$QMAILHOME, /var/qmail by default) and env/LISTEN (127.0.0.1:11113 by
default), and log/run (setuidgid LOGACCT multilog, keeping 20 files of
16 MB: see MULTILOG).  ACCT is
the account the daemon runs as: root on a normal qmail system, where
each dot-qmail stat is made as the user whose home it is; the one uid of
a single-uid virtual-domain system otherwise.  Only log/main and
log/status belong to LOGACCT.  Files are written, fsynced and given
their modes and owners explicitly; if anything fails, DIR is removed
again.  The run script names the qmail-verify of this same installation
by its absolute path (svscanboot's PATH does not reach a virtual
environment).  Linking DIR into the folder svscan watches is left to the
admin: the closing hint names /etc/service when it exists (Debian's
daemontools-run), /service otherwise (djb's layout).

Exit 100 for a usage error or a bad argument, 111 when the system
refuses (an unknown account, DIR already there, a write that fails).
"""

import os
import pwd
import shutil
import sys
from typing import NamedTuple

from qmailverify.cli import guarded, help_or_version
from qmailverify.errors import Fatal, errtext
from qmailverify.protocol.addrspec import AddressError, format_server, parse_server
from qmailverify.tools import installed

USAGE = "qmail-verify-conf: usage: qmail-verify-conf acct logacct /dir [listen]"
SOFTLIMIT = 64_000_000        # measured floor 20 MB; see INSTALL
# multilog's default (10 files of 99999 bytes) holds about 12,000 queries:
# one busy minute.  16 MB (the most multilog takes) times 20 files holds
# about four million log lines, in at most 320 MB.
MULTILOG = "multilog t s16777215 n20 ./main"


def program_path(name: str = "qmail-verify", me: str = "qmail-verify-conf") -> str:
    """The absolute path of this installation's program (not a wrapper
    found on PATH, such as a pyenv shim)."""
    path = installed.program(name)
    if path is None:
        raise Fatal(f"{me}: fatal: unable to find the {name} installed "
                    f"with me (looked in {', '.join(installed.folders())})", 111)
    return path


def service_folder() -> str:
    """Where svscan looks: Debian's daemontools-run watches /etc/service,
    djb's own layout /service."""
    return "/etc/service" if os.path.isdir("/etc/service") else "/service"


def render(acct: str, logacct: str, listen: str, qmailhome: str,
           program: str) -> list[tuple[str, str | None, int, bool]]:
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
    return service_files(run, logacct, {"QMAILHOME": qmailhome, "LISTEN": listen})


def service_files(run: str, logacct: str, env: dict) -> list[tuple[str, str | None, int, bool]]:
    """A service directory with run, env/ (a file for each of env, in
    order) and log/ (multilog as logacct): (path, content or None for a
    folder, mode, owned by the log account)."""
    logrun = ("#!/bin/sh\n"
              f"exec setuidgid {logacct} {MULTILOG}\n")
    return ([("run", run, 0o755, False), ("env", None, 0o2755, False)]
            + [(f"env/{name}", value + "\n", 0o644, False) for name, value in env.items()]
            + [("log", None, 0o2755, False),
               ("log/run", logrun, 0o755, False),
               ("log/main", None, 0o2755, True),
               ("log/status", "", 0o644, True)])


class ConfOptions(NamedTuple):
    acct: str
    logacct: str
    dir: str                  # absolute, without a trailing slash
    listen: str               # as written to env/LISTEN
    qmailhome: str


def parseargs(argv: list[str], env=os.environ) -> ConfOptions:
    help_or_version(argv, USAGE)
    if len(argv) not in (3, 4):
        raise Fatal(USAGE, 100)
    acct, logacct, directory = argv[:3]
    if not directory.startswith("/"):
        raise Fatal("qmail-verify-conf: fatal: dir must start with a slash", 100)
    try:
        listen = format_server(*parse_server(argv[3] if len(argv) == 4 else ""))
    except AddressError as e:
        raise Fatal(f"qmail-verify-conf: fatal: bad listen address: {e}", 100) from None
    qmailhome = env.get("QMAILHOME") or "/var/qmail"
    if not qmailhome.startswith("/"):
        raise Fatal("qmail-verify-conf: fatal: QMAILHOME must start with a slash", 100)
    return ConfOptions(acct, logacct, directory.rstrip("/") or "/", listen, qmailhome)


def account(name: str, me: str = "qmail-verify-conf") -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise Fatal(f"{me}: fatal: unknown account {name}", 111) from None


def write_file(path: str, content: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        data = content.encode()
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(path, mode)


def make(a: ConfOptions, program: str) -> None:
    write_service(a.dir, a.acct, a.logacct,
                  render(a.acct, a.logacct, a.listen, a.qmailhome, program))


def write_service(directory: str, acct: str, logacct: str, files,
                  me: str = "qmail-verify-conf") -> None:
    """Make directory with files (render()'s list), or nothing at all."""
    account(acct, me)
    log = account(logacct, me)
    try:
        os.mkdir(directory, 0o2755)
    except OSError as e:
        raise Fatal(f"{me}: fatal: unable to create {directory}: "
                    f"{errtext(e.errno)}", 111) from None
    try:
        os.chmod(directory, 0o2755)
        for rel, content, mode, logowned in files:
            path = os.path.join(directory, rel)
            if content is None:
                os.mkdir(path, mode)
                os.chmod(path, mode)
            else:
                write_file(path, content, mode)
            if logowned:
                os.chown(path, log.pw_uid, log.pw_gid)
        dirfd = os.open(directory, os.O_RDONLY)
        os.fsync(dirfd)
        os.close(dirfd)
    except OSError as e:
        shutil.rmtree(directory, ignore_errors=True)
        where = e.filename or directory
        raise Fatal(f"{me}: fatal: unable to write {where}: "
                    f"{errtext(e.errno)}", 111) from None


def run(argv: list[str]) -> int:
    a = parseargs(argv)
    make(a, program_path())
    print(hint(a.dir, "qmail-verify-conf") + "\n"
          f"  reload:    svc -h {service_folder()}/{os.path.basename(a.dir)}"
          "   (after editing control files)")
    return 0


def hint(d: str, me: str) -> str:
    """What to do with the service directory d now."""
    folder = service_folder()
    svc = f"{folder}/{os.path.basename(d)}"
    why = ("Debian's daemontools-run; djb's layout uses /service" if folder == "/etc/service"
           else "djb's layout; Debian's daemontools-run uses /etc/service, not here")
    return (f"{me}: made {d}\n"
            f"  start it:  ln -s {d} {svc}\n"
            f"             ({folder} is the folder svscan watches: {why})\n"
            f"  check it:  svstat {svc}; tail {d}/log/main/current")


def main(argv: list[str] | None = None) -> int:
    return guarded("qmail-verify-conf", lambda: run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
