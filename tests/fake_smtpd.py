#!/usr/bin/env python3
"""A stand-in for qmail-smtpd: answers as qmail-smtpd.c does and appends
every byte it receives to the file named by FAKE_SMTPD_RECORD, and each
message it would queue (its recipients, then its body) to that name
plus ".queue".

Its replies and state are qmail-smtpd's: the command line read whole
whatever its length, the verb up to the first space, case-insensitive;
addrparse (quotes, backslashes, source routes; "user@[127.0.0.1]"
becomes user@ control/localiphost or control/me; over 900 bytes: 555);
503 MAIL first, 555 for MAIL changing nothing, 503 RCPT first leaving
the transaction open, control/rcpthosts under QMAILHOME (553, none
with RELAYCLIENT), 502 for unknown verbs, 221 and exit on QUIT, a bare
LF in a body: 451 and exit; input ending anywhere: exit, nothing queued.

FAKE_TLS=1 offers STARTTLS (after "220 ready for tls" it echoes raw
bytes back, as if encrypted); FAKE_AUTH=1 offers AUTH PLAIN;
FAKE_TIMEOUT=N gives up after N idle seconds with qmail's 451 timeout.

Its address parsing and rcpthosts are the qmail-smtpd model's
(qmailverify.testing.smtpd, from the installed package that the python
running this script has), so that the tests hold the shim to one reading
of qmail-smtpd."""

import os
import select
import sys

from qmailverify.testing.smtpd import OWN_IPS, Rcpthosts, addrparse

ME = b"fake.example"
record = open(os.environ["FAKE_SMTPD_RECORD"], "ab", buffering=0)
queue = os.environ["FAKE_SMTPD_RECORD"] + ".queue"
CONTROL = os.path.join(os.environ.get("QMAILHOME", "/var/qmail"), "control")


def control_lines(name: str) -> list[bytes] | None:
    try:
        with open(os.path.join(CONTROL, name), "rb") as f:
            lines = [line.rstrip(b" \t\r") for line in f.read().split(b"\n")]
    except FileNotFoundError:
        return None
    return [line for line in lines if line and not line.startswith(b"#")]


RCPTHOSTS = Rcpthosts(control_lines("rcpthosts"))
LOCALIPHOST = (control_lines("localiphost") or control_lines("me") or [None])[0]
timeout = float(os.environ.get("FAKE_TIMEOUT", "1200"))
buf = b""


def out(data: bytes) -> None:
    os.write(1, data)


def fill() -> bool:
    global buf
    if not select.select([0], [], [], timeout)[0]:
        out(b"451 timeout (#4.4.2)\r\n")
        sys.exit(1)
    data = os.read(0, 65536)
    if not data:
        return False
    record.write(data)
    buf += data
    return True


def line() -> bytes:
    global buf
    while b"\n" not in buf:
        if not fill():
            sys.exit(0)
    i = buf.index(b"\n") + 1
    result, buf = buf[:i], buf[i:]
    return result


def body() -> bytes:
    """Read up to CR LF . CR LF, byte by byte as qmail-smtpd's blast()."""
    global buf
    seen, got = b"\r\n", bytearray()
    while True:
        while not buf:
            if not fill():
                sys.exit(0)
        ch, buf = buf[:1], buf[1:]
        if ch == b"\n" and seen[-1:] != b"\r":
            out(b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n")
            sys.exit(1)
        got += ch
        seen = (seen + ch)[-5:]
        if seen == b"\r\n.\r\n":
            return bytes(got)


def main() -> None:
    out(b"220 " + ME + b" ESMTP\r\n")
    seenmail = False
    rcpts = []
    while True:
        cmd = line()[:-1]
        cmd = (cmd[:-1] if cmd.endswith(b"\r") else cmd).split(b"\0")[0]
        verb, _, arg = cmd.partition(b" ")
        verb, arg = verb.upper(), arg.lstrip(b" ")
        if verb == b"HELO":
            seenmail = False
            out(b"250 " + ME + b"\r\n")
        elif verb == b"EHLO":
            seenmail = False
            extra = (b"250-STARTTLS\r\n" if os.environ.get("FAKE_TLS") else b"") + \
                    (b"250-AUTH PLAIN\r\n" if os.environ.get("FAKE_AUTH") else b"")
            out(b"250-" + ME + b"\r\n250-PIPELINING\r\n" + extra + b"250 8BITMIME\r\n")
        elif verb == b"MAIL":
            if addrparse(arg, LOCALIPHOST, OWN_IPS) is None:
                out(b"555 syntax error (#5.5.4)\r\n")
            else:
                seenmail, rcpts = True, []
                out(b"250 ok\r\n")
        elif verb == b"RCPT":
            addr = addrparse(arg, LOCALIPHOST, OWN_IPS)
            if not seenmail:
                out(b"503 MAIL first (#5.5.1)\r\n")
            elif addr is None:
                out(b"555 syntax error (#5.5.4)\r\n")
            elif "RELAYCLIENT" not in os.environ and not RCPTHOSTS.allowed(addr):
                out(b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n")
            else:
                rcpts.append(addr)
                out(b"250 ok\r\n")
        elif verb == b"DATA":
            if not seenmail:
                out(b"503 MAIL first (#5.5.1)\r\n")
            elif not rcpts:
                out(b"503 RCPT first (#5.5.1)\r\n")
            else:
                seenmail = False
                out(b"354 go ahead\r\n")
                message = body()
                with open(queue, "ab") as f:
                    f.write(b"".join(b"T" + r + b"\n" for r in rcpts) + message)
                out(b"250 ok 1764000000 qp %d\r\n" % os.getpid())
        elif verb == b"RSET":
            seenmail = False
            out(b"250 flushed\r\n")
        elif verb == b"NOOP":
            out(b"250 ok\r\n")
        elif verb == b"VRFY":
            out(b"252 send some mail, i'll try my best\r\n")
        elif verb == b"HELP":
            out(b"214 qmail home page: http://pobox.com/~djb/qmail.html\r\n")
        elif verb == b"QUIT":
            out(b"221 " + ME + b"\r\n")
            return
        elif verb == b"STARTTLS" and os.environ.get("FAKE_TLS"):
            out(b"220 ready for tls\r\n")
            global buf
            while True:
                if buf:
                    out(buf)
                    buf = b""
                if not fill():
                    return
        elif verb == b"AUTH" and os.environ.get("FAKE_AUTH"):
            if cmd.count(b" ") < 2:
                out(b"334 \r\n")
                line()
            out(b"235 ok, go ahead (#2.0.0)\r\n")
        else:
            out(b"502 unimplemented (#5.5.1)\r\n")


main()
