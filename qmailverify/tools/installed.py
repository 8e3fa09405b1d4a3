"""Where this installation's own programs are.

A service's run script names qmail-verify by absolute path (svscanboot
clears PATH), and the demo must start the daemon that came with it, not
whichever qmail-verify a PATH search finds first.  pip puts an
installation's console scripts in one folder: the one that holds the
program now running (followed through symbolic links, so a link in a
folder on PATH still leads to the installation), or else the scripts
folder of the interpreter's own prefix (a virtual environment's bin).
"""

import os
import sys
import sysconfig


def folders() -> list[str]:
    """The folders that may hold our programs, the likeliest first."""
    found = []
    if sys.argv and sys.argv[0]:
        found.append(os.path.dirname(os.path.realpath(sys.argv[0])))
    found.append(sysconfig.get_path("scripts"))
    found.append(os.path.dirname(os.path.abspath(sys.executable)))
    unique = []
    for folder in found:
        if folder not in unique:
            unique.append(folder)
    return unique


def program(name: str) -> str | None:
    """The absolute path of this installation's program NAME, or None."""
    for folder in folders():
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None
