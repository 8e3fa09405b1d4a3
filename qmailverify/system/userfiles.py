"""Reading a user's files for deep mode, as plain functions that
identity.Identity calls with the user's effective ids already in place.

home_mode() is the home directory's mode as qmail-local's checkhome()
stats it after its chdir().  read_default_file() gathers
qmail.model.DeepFacts the way qmail-local meets them: that mode, then
the -default file opened for reading with O_NONBLOCK (qmail-local's
open_read: a FIFO cannot hang us), its mode from fstat (anything but a
regular file is not read), and its first MAX_READ + 1 bytes (judge()
calls anything longer "temporary").  Links are followed, as qmail-local
follows them.  Any failure is Trouble: qmail-local would defer, so the
answer is "temporary".  Nothing is run.

open_for_read() is deep.vpopmail.cdbstore.FileStore's opener: a
descriptor, or None when the file does not exist.
"""

import errno
import os
from stat import S_ISREG

from qmailverify.clean import cleantext
from qmailverify.errors import Trouble, errtext
from qmailverify.qmail.model import MAX_READ, DeepFacts

READ_KIND = "unable to read a .qmail file"
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def home_mode(home: bytes) -> int:
    """st_mode of home as qmail-local's chdir() and stat(".") find it:
    through home/. a home the user may not enter, or that is not a
    folder, fails as the chdir() would."""
    try:
        return os.stat(home + b"/.").st_mode
    except (OSError, ValueError) as e:
        raise Trouble(f"unable to switch to {cleantext(home)}: {_reason(e)}",
                      "unable to enter a home directory") from None


def read_default_file(home: bytes, path: bytes) -> DeepFacts:
    mode = home_mode(home)
    try:
        fd = os.open(path, _FLAGS)
    except (OSError, ValueError) as e:
        raise Trouble(f"unable to open {cleantext(path)}: {_reason(e)}", READ_KIND) from None
    try:
        file_mode = os.fstat(fd).st_mode
        if not S_ISREG(file_mode):       # no longer what the search found
            raise Trouble(f"{cleantext(path)} is not a regular file", READ_KIND)
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
    return DeepFacts(mode, file_mode, b"".join(chunks))


def open_for_read(path: bytes) -> int | None:
    try:
        return os.open(path, _FLAGS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _reason(e: Exception) -> str:
    return errtext(e.errno) if isinstance(e, OSError) and e.errno else "invalid path"
