"""A model of an unpatched qmail-smtpd, in process: its replies and state
as qmail-smtpd.c gives them, written out again from qmail-smtpd.c and
independently of qmailverify.shim, which it is there to check.

The shim's session tests drive it through a pump of their own; the fuzz
harness's session target drives it and judges what reaches it; the
stand-in qmail-smtpd process the shim's tests run (tests/fake_smtpd.py)
takes its address parsing and rcpthosts from here.  Being fed bytes
(feed, end) and answering in .out, the model holds its place between
feeds in a generator, so the bytes may come cut anywhere.
"""

import re

ME = b"local.test"
OWN_IPS = frozenset({bytes([127, 0, 0, 1]), bytes(4)})
ACCEPTED = b"250 ok 1764000000 qp 4242\r\n"
PATH_TOKEN = re.compile(rb'\\(.?)|"|[^\\"]+', re.DOTALL)   # an escape, a quote, a run of neither


class Exit(Exception):
    """qmail-smtpd exits: its input ended, or it gave up."""


def parse_path(arg: bytes) -> bytes:
    """addrparse() up to its localiphost rewrite: after '<', or else after
    ':' and spaces; a source route dropped; backslashes and quotes taken
    out; up to the terminator ('>', or a space).  Quick for a line of a
    mebibyte: read a run of plain bytes at a time, never byte by byte."""
    if b"<" in arg:
        arg, term = arg[arg.index(b"<") + 1:], b">"
    else:
        arg, term = (arg[arg.index(b":") + 1:] if b":" in arg else b"").lstrip(b" "), b" "
    if arg[:1] == b"@":
        arg = arg[arg.index(b":") + 1:] if b":" in arg else b""
    end = arg.find(term)
    out = arg if end < 0 else arg[:end]
    if b"\\" not in out and b'"' not in out:
        return out
    kept, quoted = bytearray(), False
    for piece in PATH_TOKEN.finditer(arg):
        text = piece.group()
        if text[:1] == b"\\":                # the next byte, whatever it is
            kept += piece.group(1)
        elif text == b'"':
            quoted = not quoted
        elif quoted or term not in text:
            kept += text
        else:
            kept += text[:text.index(term)]
            break
    return bytes(kept)


def ip_literal(host: bytes) -> bytes | None:
    """The four bytes of '[a.b.c.d]' as ip_scanbracket() reads them: each
    number any run of digits, kept modulo 256 (10**8 is a multiple of 256,
    so its last eight digits are enough)."""
    parts = host[1:-1].split(b".")
    if host[:1] != b"[" or host[-1:] != b"]" or len(parts) != 4 \
            or not all(p.isdigit() for p in parts):
        return None
    return bytes(int(p[-8:]) % 256 for p in parts)


def addrparse(arg: bytes, localiphost: bytes | None = ME, ipme=OWN_IPS) -> bytes | None:
    """qmail-smtpd's addrparse(): the path, with user@[IP] for one of ipme
    rewritten to user@localiphost (none without a localiphost); None when
    qmail-smtpd refuses it as too long (555)."""
    out = parse_path(arg)
    at = out.rfind(b"@")
    if localiphost and at >= 0 and ip_literal(out[at + 1:]) in ipme:
        out = out[:at + 1] + localiphost
    return out if len(out) + 1 <= 900 else None


class Rcpthosts:
    """control/rcpthosts as qmail-smtpd reads it: an address without '@',
    or whose host (in any case) is listed or ends in a listed '.domain',
    may come in.  hosts None (no such file): every address may."""

    def __init__(self, hosts=(ME,)):
        self.hosts = None if hosts is None else {h.lower() for h in hosts}

    def allowed(self, addr: bytes) -> bool:
        if self.hosts is None or b"@" not in addr:
            return True
        host = addr.rsplit(b"@", 1)[1].lower()
        dot = 0
        while dot >= 0:
            if host[dot:] in self.hosts:
                return True
            dot = host.find(b".", dot + 1)
        return False


def bare_lf(data: bytes, start: int, end: int) -> bool:
    """Is there an LF without its CR in data[start:end]?"""
    i = data.find(b"\n", start, end)
    while i >= 0:
        if data[i - 1] != 13:
            return True
        i = data.find(b"\n", i + 1, end)
    return False


class QmailSmtpd:
    """Feed it bytes; it answers in .out as qmail-smtpd would; .exited once
    it has exited; .queued, each message it queued as (recipients, body).

    rcpthosts      a Rcpthosts, consulted for RCPT unless relaying
    relayclient    RELAYCLIENT is set: it relays
    auth           AUTH PLAIN is offered, and a response holding "ok" is
                   taken (a checkpassword's yes); then it passes bytes on
    tls            STARTTLS is offered; after it, what comes is echoed
                   back as it comes (as if encrypted), and .opaque is set
    unavailable    it greets with 421 and exits (a tcpserver rule's or
                   rblsmtpd's answer)
    judge          if given, told what reaches the transaction:
                   judge.mail() for each MAIL taken, judge.rcpt(addr,
                   relaying) for each RCPT taken, judge.data() for each
                   DATA taken
    """

    def __init__(self, rcpthosts=None, relayclient=False, auth=False, tls=False,
                 unavailable=False, judge=None):
        self.rcpthosts = rcpthosts or Rcpthosts()
        self.relayclient, self.auth, self.tls = relayclient, auth, tls
        self.unavailable, self.judge = unavailable, judge
        self.authenticated = self.opaque = False
        self.buf, self.eof, self.exited = bytearray(), False, False
        self.out, self.queued = bytearray(), []
        self.run = self.main()
        self.step()

    def feed(self, data: bytes) -> None:
        self.buf += data
        self.step()

    def end(self) -> None:
        self.eof = True
        self.step()

    def step(self) -> None:
        if not self.exited:
            try:
                next(self.run)
            except (Exit, StopIteration):
                self.exited = True

    def more(self):
        """Wait for input; at its end, exit."""
        while not self.buf:
            if self.eof:
                raise Exit
            yield

    def getline(self):
        while b"\n" not in self.buf:
            if self.eof:
                raise Exit
            yield
        i = self.buf.index(b"\n") + 1
        line = bytes(self.buf[:i])
        del self.buf[:i]
        return line

    def ehlo(self) -> bytes:
        return (b"250-" + ME + b"\r\n250-PIPELINING\r\n"
                + (b"250-STARTTLS\r\n" if self.tls else b"")
                + (b"250-AUTH PLAIN\r\n" if self.auth else b"") + b"250 8BITMIME\r\n")

    def main(self):
        if self.unavailable:
            self.out += b"421 service not available (#4.3.0)\r\n"
            return
        self.out += b"220 " + ME + b" ESMTP\r\n"
        seenmail, rcpts = False, []
        while True:
            line = (yield from self.getline())[:-1]
            line = (line[:-1] if line.endswith(b"\r") else line).split(b"\0")[0]
            verb, _, arg = line.partition(b" ")
            verb, arg = verb.upper(), arg.lstrip(b" ")
            if verb in (b"HELO", b"EHLO", b"RSET"):
                seenmail = False
                self.out += {b"HELO": b"250 " + ME + b"\r\n", b"RSET": b"250 flushed\r\n",
                             b"EHLO": self.ehlo()}[verb]
            elif verb == b"MAIL":
                if addrparse(arg) is None:
                    self.out += b"555 syntax error (#5.5.4)\r\n"
                else:
                    seenmail, rcpts = True, []
                    if self.judge:
                        self.judge.mail()
                    self.out += b"250 ok\r\n"
            elif verb == b"RCPT":
                addr = addrparse(arg)
                relaying = self.relayclient or self.authenticated
                if not seenmail:
                    self.out += b"503 MAIL first (#5.5.1)\r\n"
                elif addr is None:
                    self.out += b"555 syntax error (#5.5.4)\r\n"
                elif not relaying and not self.rcpthosts.allowed(addr):
                    self.out += (b"553 sorry, that domain isn't in my list of allowed "
                                 b"rcpthosts (#5.7.1)\r\n")
                else:
                    if self.judge:
                        self.judge.rcpt(addr, relaying)
                    rcpts.append(addr)
                    self.out += b"250 ok\r\n"
            elif verb == b"DATA":
                if not seenmail:
                    self.out += b"503 MAIL first (#5.5.1)\r\n"
                elif not rcpts:
                    self.out += b"503 RCPT first (#5.5.1)\r\n"
                else:
                    seenmail = False
                    if self.judge:
                        self.judge.data()
                    self.out += b"354 go ahead\r\n"
                    body = yield from self.blast()
                    self.queued.append((tuple(rcpts), body))
                    self.out += ACCEPTED
            elif verb == b"QUIT":
                self.out += b"221 " + ME + b"\r\n"
                return
            elif verb == b"NOOP":
                self.out += b"250 ok\r\n"
            elif verb == b"AUTH" and self.auth and not self.authenticated:
                response = arg.partition(b" ")[2]
                if not response:
                    self.out += b"334 \r\n"
                    response = yield from self.getline()
                self.authenticated = b"ok" in response
                self.out += b"235 ok, go ahead (#2.0.0)\r\n" if self.authenticated else \
                    b"535 authorization failed (#5.7.0)\r\n"
            elif verb == b"STARTTLS" and self.tls:
                self.out += b"220 ready for tls\r\n"
                self.opaque = True
                while True:
                    yield from self.more()
                    self.out += self.buf
                    self.buf.clear()
            else:
                self.out += b"502 unimplemented (#5.5.1)\r\n"

    def blast(self):
        """The body up to CR LF . CR LF (the body holds it), a bare LF being
        qmail's 451 and exit; read a chunk at a time, as a byte at a time
        is too slow for a mebibyte."""
        tail, body = b"\r\n", bytearray()
        while True:
            yield from self.more()
            window = tail + bytes(self.buf)
            end = window.find(b"\r\n.\r\n")
            upto = len(window) if end < 0 else end + 5
            if bare_lf(window, len(tail), upto):
                self.out += b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
                raise Exit
            body += window[len(tail):upto]
            if end >= 0:
                del self.buf[:upto - len(tail)]
                return bytes(body)
            tail = window[-4:]
            self.buf.clear()
