"""SMTP as qmail-smtpd reads and writes it; pure helpers for the shim.

  split_command  qmail's commands.c: a line is a verb and an argument
  addrparse      qmail-smtpd's addrparse(): the address in MAIL/RCPT
  ReplyReader    where one (possibly multi-line) reply ends
  BodyEnd        where the DATA body ends: the first CR LF . CR LF, the
                 CR LF before it possibly being the one that ended DATA's
                 line (qmail-smtpd's blast() is exactly that matcher)
"""

END_OF_DATA = b"\r\n.\r\n"


def split_command(line: bytes) -> tuple[bytes, bytes]:
    """(VERB in capitals, argument) of one command line, with its newline."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    line = line.split(b"\0", 1)[0]          # qmail reads the line as a C string
    verb, _, arg = line.partition(b" ")
    return verb.upper(), arg.lstrip(b" ")


def addrparse(arg: bytes) -> bytes | None:
    """The address of 'TO:<addr>' or 'FROM:<addr>', quotes and backslashes
    removed and any source route dropped; None if it is over 900 bytes."""
    i = arg.find(b"<")
    if i >= 0:
        arg, terminator = arg[i + 1:], 0x3E                 # '>'
    else:
        terminator = 0x20                                   # ' '
        i = arg.find(b":")
        arg = arg[i + 1:] if i >= 0 else b""
        arg = arg.lstrip(b" ")
    if arg.startswith(b"@"):
        i = arg.find(b":")
        arg = arg[i + 1:] if i >= 0 else b""
    out = bytearray()
    escaped = quoted = False
    for ch in arg:
        if escaped:
            out.append(ch)
            escaped = False
        elif not quoted and ch == terminator:
            break
        elif ch == 0x5C:                                    # backslash
            escaped = True
        elif ch == 0x22:                                    # double quote
            quoted = not quoted
        else:
            out.append(ch)
    return bytes(out) if len(out) + 1 <= 900 else None


class ReplyReader:
    """Feed it server output; it hands back complete replies."""

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        replies = []
        start = 0
        pos = 0
        while True:
            nl = self.buf.find(b"\n", pos)
            if nl < 0:
                break
            line = self.buf[pos:nl + 1]
            pos = nl + 1
            if line[3:4] != b"-":                           # "XYZ-" continues
                replies.append(self.buf[start:pos])
                start = pos
        self.buf = self.buf[start:]
        return replies


def reply_code(reply: bytes) -> int:
    head = reply[:3]
    return int(head) if head.isdigit() else 0


class BodyEnd:
    """Finds the end of a DATA body across chunks."""

    def __init__(self):
        self.tail = b"\r\n"          # DATA's own line ended with CR LF

    def feed(self, data: bytes) -> int:
        """Index in data just past the end of the body, or -1."""
        edge = self.tail + data[:4]                # an end across the chunk boundary
        i = edge.find(END_OF_DATA)
        if i >= 0:
            return i + len(END_OF_DATA) - len(self.tail)
        i = data.find(END_OF_DATA)
        if i >= 0:
            return i + len(END_OF_DATA)
        self.tail = (self.tail + data)[-4:] if len(data) < 4 else data[-4:]
        return -1
