"""What every program's command line shares: -h, -V, and an exit in one
line when standard output cannot be written (a full disk, /dev/full).

Each program keeps its own pure parseargs(); options() is the getopt
call they share, answering -h (--help) and -V (--version) itself.
guarded() runs a program's body and turns a write error on standard
output into one 'program: fatal: ...' line and exit 111, never a
traceback; a reader that went away (| head) ends it quietly.
"""

import getopt
import os
import sys

from qmailverify import __version__
from qmailverify.errors import Fatal, errtext


class Shown(Exception):
    """-h or -V was given: str() is what to print on standard output (exit 0)."""


def options(argv: list[str], shortopts: str, usage: str, longopts=()):
    """getopt with -h/--help and -V/--version answered by raising Shown.

    A usage error raises Fatal(usage (reason), 100)."""
    try:
        opts, args = getopt.getopt(argv, "hV" + shortopts, ["help", "version", *longopts])
    except getopt.GetoptError as e:
        raise Fatal(f"{usage} ({e})", 100) from None
    for name, _ in opts:
        if name in ("-h", "--help"):
            raise Shown(usage_text(usage))
        if name in ("-V", "--version"):
            raise Shown(version_text(usage))
    return opts, args


def program_name(usage: str) -> str:
    """'prog' from 'prog: usage: ...'."""
    return usage.split(":", 1)[0]


def usage_text(usage: str) -> str:
    return usage.split(": usage: ", 1)[-1].join(("usage: ", ""))


def version_text(usage: str) -> str:
    return f"{program_name(usage)} {__version__}"


def help_or_version(argv: list[str], usage: str) -> None:
    """For programs without options: raises Shown if argv is just -h or -V."""
    if len(argv) == 1 and argv[0] in ("-h", "--help"):
        raise Shown(usage_text(usage))
    if len(argv) == 1 and argv[0] in ("-V", "--version"):
        raise Shown(version_text(usage))


def silence_stdout() -> None:
    """Point descriptor 1 at /dev/null, so that the interpreter's own last
    flush of what could not be written fails no more."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.close(fd)
    except OSError:
        pass


def guarded(prog: str, body, on_broken_pipe: int = 111) -> int:
    """body() -> exit code, with standard output flushed before it counts."""
    try:
        try:
            code = body()
        except Shown as e:
            print(e)
            code = 0
        sys.stdout.flush()
        return code
    except BrokenPipeError:              # the reader went away: say nothing more
        silence_stdout()
        return on_broken_pipe
    except Fatal as e:
        if str(e):
            print(e, file=sys.stderr, flush=True)
        return e.code
    except OSError as e:
        if e.filename is not None:       # not standard output: not ours to word here
            raise
        silence_stdout()
        print(f"{prog}: fatal: unable to write output: {errtext(e.errno)}",
              file=sys.stderr, flush=True)
        return 111
