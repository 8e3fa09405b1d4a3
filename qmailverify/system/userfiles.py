"""Reading a user's files for deep mode, as plain functions that
system.Identity calls with the user's effective ids already in place.

read_default_file() gathers deepmode.DeepFacts the way qmail-local meets
them: the home directory's mode (qmail-local stats it after chdir), then
the -default file opened for reading with O_NONBLOCK (qmail-local's
open_read: a FIFO cannot hang us), its mode from fstat, and its first
MAX_READ + 1 bytes (judge() calls anything longer "temporary").  Links
are followed, as qmail-local follows them.  Any failure is Trouble:
qmail-local would defer, so the answer is "temporary".  Nothing is run.

open_for_read() is vpasswd.FileStore's opener: a descriptor, or None
when the file does not exist.
"""

import errno
import os

from qmailverify.clean import cleantext
from qmailverify.errors import Trouble, errtext
from qmailverify.qmail.model import MAX_READ, DeepFacts

READ_KIND = "unable to read a .qmail file"
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_default_file(home: bytes, path: bytes) -> DeepFacts:
    try:
        home_mode = os.stat(home).st_mode
    except (OSError, ValueError) as e:
        raise Trouble(f"unable to stat {cleantext(home)}: {_reason(e)}",
                      "unable to stat a home directory") from None
    try:
        fd = os.open(path, _FLAGS)
    except (OSError, ValueError) as e:
        raise Trouble(f"unable to open {cleantext(path)}: {_reason(e)}", READ_KIND) from None
    try:
        file_mode = os.fstat(fd).st_mode
        chunks, total = [], 0
        while total <= MAX_READ:
            chunk = os.read(fd, MAX_READ + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise Trouble(f"unable to read {cleantext(path)}: {_reason(e)}", READ_KIND) from None
    finally:
        os.close(fd)
    return DeepFacts(home_mode, file_mode, b"".join(chunks))


def open_for_read(path: bytes) -> int | None:
    try:
        return os.open(path, _FLAGS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _reason(e: Exception) -> str:
    return errtext(e.errno) if isinstance(e, OSError) and e.errno else "invalid path"
