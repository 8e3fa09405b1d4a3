"""What qmail-verify checks before it says it listens.

A daemon that starts and then answers nobody (every legacy client timing
out, 451 for every local recipient) is worse than one that refuses to
start with one line saying why.  So whatever can be checked at start is:
QMAILHOME must be a folder; a passwd file named by VERIFY_PASSWD must be
readable; users/cdb, if there is one, and a fastforward cdb named by
VERIFY_FASTFORWARDCDB must be readable cdb files; and a descriptor must
be left over for the files a query reads.  Trouble that comes later is
still handled per query (system/live.py).  listening() then says so, one
process or a master with its workers alike; the steps a single daemon,
the master and each worker share (checked_deep(), check_descriptors(),
watch_sources()) are here once.
"""

import errno
import faulthandler
import os
import stat

import cdblib

from qmailverify import __version__
from qmailverify.clean import cleanpath
from qmailverify.deep.hook import make_deep
from qmailverify.errors import Fatal, Trouble, errtext


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def qmailhome_trouble(qmailhome: str) -> str | None:
    try:
        st = os.stat(qmailhome)
    except OSError as e:
        return f"QMAILHOME: unable to use {cleanpath(qmailhome)}: {errtext(e.errno)}"
    if not stat.S_ISDIR(st.st_mode):
        return f"QMAILHOME: {cleanpath(qmailhome)} is not a directory"
    return None


def file_trouble(name: str, path: str, cdb: bool, missing_ok: bool = False) -> str | None:
    """Why the file named by name (a variable, or what it is) cannot be used."""
    try:
        data = _read(path)
    except OSError as e:
        if e.errno == errno.ENOENT and missing_ok:
            return None
        return f"{name}: unable to read {cleanpath(path)}: {errtext(e.errno)}"
    if cdb:
        try:
            cdblib.Reader(data=data)
        except Exception:
            return f"{name}: {cleanpath(path)} is not a cdb file"
    return None


def start_trouble(qmailhome: str, passwd: str | None, fastforward: str | None) -> str | None:
    """The first reason not to start, or None."""
    checks = [lambda: qmailhome_trouble(qmailhome)]
    if passwd:
        checks.append(lambda: file_trouble("VERIFY_PASSWD", passwd, cdb=False))
    checks.append(lambda: file_trouble("users/cdb", os.path.join(qmailhome, "users", "cdb"),
                                       cdb=True, missing_ok=True))
    if fastforward:
        checks.append(lambda: file_trouble("VERIFY_FASTFORWARDCDB", fastforward, cdb=True))
    for check in checks:
        trouble = check()
        if trouble:
            return trouble
    return None


def spare_descriptor_trouble() -> str | None:
    """None if one more file can be opened (a query reads users/cdb, passwd)."""
    try:
        os.close(os.open("/", os.O_RDONLY))
    except OSError as e:
        return f"no descriptor left for reading files: {errtext(e.errno)} (raise the open files limit)"
    return None


def check_descriptors() -> None:
    """Fatal unless a descriptor is left for the files a query reads."""
    trouble = spare_descriptor_trouble()
    if trouble:
        raise Fatal(f"qmail-verify: fatal: {trouble}")


def watch_sources(system) -> None:
    """check_descriptors(), then the sources watched with inotify; given up
    if the watch took the last descriptor (inotify saves stats, it is not
    needed: the sources are stat'ed instead)."""
    check_descriptors()
    system.start_watching()
    if spare_descriptor_trouble():
        system.watcher.close()


def checked_deep(settings, system):
    """deep.hook.make_deep() for settings (None: deep mode off), or the refusal."""
    try:
        return make_deep(settings, os.environ, system)
    except Trouble as e:
        raise Fatal(f"qmail-verify: fatal: VERIFY_VPOPMAIL={settings.vpopmail}: {e}") from None


def listening(log, listen, ready) -> None:
    """Everything checked: say so (and tell -d's starting process, ready);
    from now on a fatal signal leaves its trace in the log."""
    log.line("Listening on address: {}, port {}.".format(*listen).encode())
    log.line(f"version {__version__}.".encode())
    log.flush()
    if ready:
        ready.ok()
    faulthandler.enable()
