"""Making a daemontools service directory, for qmail-verify-conf and
qmail-logmsg-conf.

Both make theirs the way djb's -conf programs do: DIR must be absolute
and must not exist; files are written, fsynced and given their modes
and owners explicitly; only log/main belongs to the log account (git and
cp keep no owners, which is why a directory copied from an example
cannot log); if anything fails, DIR is removed again.  Both end with the
same hint: how to hand DIR to the svscan of this system (update-service
with Debian's daemontools-run, a link into /service in djb's layout).
"""

import os
import pwd
import re
import shutil

from qmailverify.errors import Fatal, errtext
from qmailverify.tools import installed

# multilog's default (10 files of 99999 bytes) holds about 12,000 log
# lines: one busy minute.  16 MB (the most multilog takes) times 20 files
# holds about four million, in at most 320 MB.  No =./status: multilog
# would rewrite that file for every line it logs.
MULTILOG = "multilog t s16777215 n20 ./main"

# Paths written into a run script are not quoted there: these characters only.
PLAIN_PATH = re.compile(r"/[A-Za-z0-9/._+@,=-]*")

ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]*")

Entry = tuple[str, str | None, int, bool]   # path, content (None: a folder), mode, log-owned


def log_entries(logacct: str) -> list[Entry]:
    return [
        ("log", None, 0o2755, False),
        ("log/run", f"#!/bin/sh\nexec setuidgid {logacct} {MULTILOG}\n", 0o755, False),
        ("log/main", None, 0o2755, True),
    ]


def entries(run: str, env: dict[str, str], logacct: str) -> list[Entry]:
    """A service directory: run, env/ with a file for each of env (in
    order), and log/ (multilog as logacct)."""
    return [("run", run, 0o755, False), ("env", None, 0o2755, False),
            *[(f"env/{name}", value + "\n", 0o644, False) for name, value in env.items()],
            *log_entries(logacct)]


def common_args(prog: str, usage: str, argv: list[str], env) -> tuple[str, str, str, str]:
    """acct, logacct, /dir (without a trailing slash) and QMAILHOME ($QMAILHOME,
    /var/qmail by default), as both tools take them; the fourth argument
    is each tool's own."""
    if len(argv) not in (3, 4):
        raise Fatal(usage, 100)
    acct, logacct, directory = argv[:3]
    if not directory.startswith("/"):
        raise Fatal(f"{prog}: fatal: dir must start with a slash", 100)
    qmailhome = env.get("QMAILHOME") or "/var/qmail"
    if not qmailhome.startswith("/"):
        raise Fatal(f"{prog}: fatal: QMAILHOME must start with a slash", 100)
    return acct, logacct, directory.rstrip("/") or "/", qmailhome


def plain_path(prog: str, what: str, path: str, code: int = 100) -> str:
    if not PLAIN_PATH.fullmatch(path):
        raise Fatal(f"{prog}: fatal: {what} must be an absolute path of letters, digits"
                    f" and / . _ + @ , = - only", code)
    return path


def program_path(prog: str, name: str) -> str:
    """The absolute path of this installation's program NAME (not a wrapper
    found on PATH, such as a pyenv shim)."""
    path = installed.program(name)
    if path is None:
        raise Fatal(f"{prog}: fatal: unable to find the {name} installed "
                    f"with me (looked in {', '.join(installed.folders())})", 111)
    return plain_path(prog, f"the {name} installed with me", path, 111)


def account(prog: str, name: str) -> pwd.struct_passwd:
    """The account, whose name a run script may hold unquoted."""
    try:
        if not ACCOUNT_NAME.fullmatch(name):
            raise KeyError(name)
        return pwd.getpwnam(name)
    except KeyError:
        raise Fatal(f"{prog}: fatal: unknown account {name}", 111) from None


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


def make_service(prog: str, directory: str, acct: str, logacct: str,
                 entries: list[Entry]) -> None:
    """Make directory and its entries for acct and logacct, or nothing."""
    account(prog, acct)
    make(prog, directory, entries, account(prog, logacct))


def make(prog: str, directory: str, entries: list[Entry], log: pwd.struct_passwd) -> None:
    """Make directory and its entries, or nothing."""
    try:
        os.mkdir(directory, 0o2755)
    except OSError as e:
        raise Fatal(f"{prog}: fatal: unable to create {directory}: "
                    f"{errtext(e.errno)}", 111) from None
    try:
        os.chmod(directory, 0o2755)
        for rel, content, mode, logowned in entries:
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
        raise Fatal(f"{prog}: fatal: unable to write {where}: "
                    f"{errtext(e.errno)}", 111) from None


def service_folder() -> str:
    """Where svscan looks: Debian's daemontools-run watches /etc/service,
    djb's own layout /service."""
    return "/etc/service" if os.path.isdir("/etc/service") else "/service"


def update_service() -> str | None:
    """Debian's update-service(8) (daemontools-run, runit), if installed."""
    for folder in ("/usr/sbin", "/sbin", "/usr/bin"):
        path = os.path.join(folder, "update-service")
        if os.access(path, os.X_OK):
            return path
    return None


def start_hint(directory: str) -> tuple[str, str]:
    """(the service's name in svscan's folder, the lines that say how to start it)."""
    folder = service_folder()
    svc = f"{folder}/{os.path.basename(directory)}"
    if folder == "/etc/service" and update_service():
        return svc, (f"  start it:  update-service --add {directory}\n"
                     f"             (Debian's daemontools-run: svscan watches /etc/service)\n")
    where = ("svscan watches /etc/service" if folder == "/etc/service"
             else "svscan watches /service in djb's layout")
    return svc, (f"  start it:  ln -s {directory} {svc}\n"
                 f"             ({where})\n")
