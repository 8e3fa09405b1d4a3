"""What a dot-qmail file tells qmail-local to do, read as qmail-local reads
it, never run.

Deep mode reads the .qmail-default file (or .qmail-EXT-default) that ends
the dot-qmail search, to answer by what it does rather than by its mere
existence.  parse_dotqmail() splits the content into lines exactly as
qmail-local's main() does (notqmail qmail-local.c):

- an empty file means the default delivery (qmail-start's aliasempty
  argument, usually ./Maildir/): Parsed.empty;
- a missing final newline is supplied; lines end at LF; trailing spaces
  and tabs are cut; a NUL ends a line's text (qmail-local works on C
  strings);
- a blank first line makes qmail-local defer ("first line of .qmail file
  is blank"); later blank lines are skipped;
- '#' comment; '.' or '/' a file: a maildir when the line ends in '/',
  else an mbox; '|' a program (the rest of the line, run by /bin/sh -c);
  '+list' makes every later file or program line a deferral, as does the
  file's owner-execute bit from the start; any other '+' line is ignored;
  '&' a forward to the rest of the line; anything else a forward to the
  whole line.

A deferral stops the reading where qmail-local would stop (exit 111):
Parsed.defer says why, the lines before it stay.

program_kind() then names the two programs deep mode understands, from the
command's shell words (words()): vpopmail's vdelivermail and djb's
bouncesaying.  A command whose words cannot be known without a shell
(expansions, redirections, several commands) is an opaque program.
"""

from typing import NamedTuple

COMMENT = "comment"
MAILDIR = "maildir"
MBOX = "mbox"
PROGRAM = "program"
FORWARD = "forward"
LIST = "list"            # the '+list' line
IGNORED = "ignored"      # any other '+' line

DEFER_BLANK = "first line of .qmail file is blank"
DEFER_FILE_X = ".qmail has file delivery but has x bit set"
DEFER_PROG_X = ".qmail has prog delivery but has x bit set"


class Line(NamedTuple):
    kind: str
    text: bytes          # path, command (after '|'), address (after '&'), or the line


class Parsed(NamedTuple):
    lines: tuple         # of Line, in file order, up to a deferral
    empty: bool = False  # no content at all: the default delivery applies
    defer: str = ""      # why qmail-local would defer, "" if it would not


def parse_dotqmail(content: bytes, executable: bool = False) -> Parsed:
    """The lines of a dot-qmail file; executable is its mode's 0100 bit."""
    if not content:
        return Parsed((), empty=True)
    if not content.endswith(b"\n"):
        content += b"\n"
    forwardonly = executable
    lines = []
    for number, raw in enumerate(content.split(b"\n")[:-1]):
        full = raw.rstrip(b" \t")
        text = full.split(b"\0", 1)[0]
        if not text:
            if number == 0:
                return Parsed(tuple(lines), defer=DEFER_BLANK)
            continue
        first = text[:1]
        if first == b"#":
            lines.append(Line(COMMENT, text))
        elif first in (b".", b"/"):
            if forwardonly:
                return Parsed(tuple(lines), defer=DEFER_FILE_X)
            lines.append(Line(MAILDIR if full.endswith(b"/") else MBOX, text))
        elif first == b"|":
            if forwardonly:
                return Parsed(tuple(lines), defer=DEFER_PROG_X)
            lines.append(Line(PROGRAM, text[1:]))
        elif first == b"+":
            if text == b"+list":
                forwardonly = True
                lines.append(Line(LIST, text))
            else:
                lines.append(Line(IGNORED, text))
        elif first == b"&":
            lines.append(Line(FORWARD, text[1:]))
        else:
            lines.append(Line(FORWARD, text))
    return Parsed(tuple(lines))


# Bytes that make a shell do more than split words: with any of them
# outside quotes, the command is opaque.
_META = frozenset(b";&|<>()$`*?[]!\n\r")
_META_FIRST = b"#~"       # only at the start of a word
_BLANK = b" \t"


def words(command: bytes) -> list[bytes] | None:
    """The words /bin/sh -c would pass for a plain command, or None when
    the shell would do more than split words and remove quotes."""
    out: list[bytes] = []
    word = bytearray()
    inword = False
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c in _BLANK:
            if inword:
                out.append(bytes(word))
                word.clear()
                inword = False
            i += 1
        elif c == 0x27:                                  # '...'
            j = command.find(b"'", i + 1)
            if j < 0:
                return None
            word += command[i + 1:j]
            inword, i = True, j + 1
        elif c == 0x22:                                  # "..."
            i += 1
            while True:
                if i >= n:
                    return None
                c = command[i]
                if c == 0x22:
                    break
                if c in b"$`":
                    return None
                if c == 0x5C and i + 1 < n and command[i + 1] in b'"\\':
                    i += 1
                    c = command[i]
                elif c == 0x5C and i + 1 < n and command[i + 1] in b"$`\n":
                    return None
                word.append(c)
                i += 1
            inword, i = True, i + 1
        elif c == 0x5C:                                  # backslash
            if i + 1 >= n or command[i + 1] in b"\n":
                return None
            word.append(command[i + 1])
            inword, i = True, i + 2
        elif c in _META or (not inword and c in _META_FIRST):
            return None
        else:
            word.append(c)
            inword, i = True, i + 1
    if inword:
        out.append(bytes(word))
    if out and out[0] == b"exec":
        out = out[1:]
    if not out or b"=" in out[0]:                     # VAR=value command
        return None
    return out


VDELIVERMAIL = "vdelivermail"
BOUNCESAYING = "bouncesaying"


class Program(NamedTuple):
    name: str            # VDELIVERMAIL, BOUNCESAYING or "" (opaque)
    args: tuple = ()     # the words after the program's name


def program_kind(command: bytes) -> Program:
    """Which program a '|' line runs, with its arguments."""
    w = words(command)
    if not w:
        return Program("")
    base = w[0].rsplit(b"/", 1)[-1]
    if base == b"vdelivermail":
        return Program(VDELIVERMAIL, tuple(w[1:]))
    if base == b"bouncesaying":
        return Program(BOUNCESAYING, tuple(w[1:]))
    return Program("")
