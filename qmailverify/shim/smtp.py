"""SMTP as qmail-smtpd reads and writes it; pure helpers for the shim.

  split_command  qmail's commands.c: a line is a verb and an argument
  addrparse      qmail-smtpd's addrparse(): the address in MAIL/RCPT,
                 with its localiphost rewrite of user@[IP]
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


def addrparse(arg: bytes, localiphost: bytes | None = None, ipme=None) -> bytes | None:
    """The address qmail-smtpd takes from 'TO:<addr>' or 'FROM:<addr>':
    quotes and backslashes removed, any source route dropped, and, when
    localiphost is known, 'user@[IP]' for one of this host's own IPs
    (ipme(four bytes) -> bool, which may raise ipme.IpmeError) rewritten to
    'user@LOCALIPHOST'.  None if the result is over 900 bytes."""
    i = arg.find(b"<")
    if i >= 0:
        arg, terminator = arg[i + 1:], b">"
    else:
        terminator = b" "
        i = arg.find(b":")
        arg = arg[i + 1:] if i >= 0 else b""
        arg = arg.lstrip(b" ")
    if arg.startswith(b"@"):
        i = arg.find(b":")
        arg = arg[i + 1:] if i >= 0 else b""
    end = arg.find(terminator)
    head = arg if end < 0 else arg[:end]
    if b"\\" in head or b'"' in head:
        head = _unquote(arg, terminator[0])
    if localiphost is not None:
        at = head.rfind(b"@")
        if at >= 0:
            ip = scan_bracket(head[at + 1:])
            if ip is not None and ipme(ip):
                head = head[:at + 1] + localiphost
    return head if len(head) + 1 <= 900 else None


def _unquote(arg: bytes, terminator: int) -> bytes:
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
    return bytes(out)


def scan_bracket(text: bytes) -> bytes | None:
    """The IPv4 address of '[a.b.c.d]' (nothing after the ']'), as qmail's
    ip_scanbracket reads it: each number any run of digits, modulo 256."""
    if text[:1] != b"[" or text[-1:] != b"]":
        return None
    parts = text[1:-1].split(b".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return bytes(int(p[-8:]) % 256 for p in parts)       # 10**8 is 0 modulo 256


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
