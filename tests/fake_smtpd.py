#!/usr/bin/env python3
"""A stand-in for qmail-smtpd: answers as qmail-smtpd does and appends
every byte it receives to the file named by FAKE_SMTPD_RECORD.

FAKE_TLS=1 offers STARTTLS (after "220 ready for tls" it echoes raw
bytes back, as if encrypted); FAKE_AUTH=1 offers AUTH PLAIN;
FAKE_TIMEOUT=N gives up after N idle seconds with qmail's 451 timeout.
Recipients at notours.example get qmail's rcpthosts refusal."""

import os
import select
import sys

ME = b"fake.example"
record = open(os.environ["FAKE_SMTPD_RECORD"], "ab", buffering=0)
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


def body() -> None:
    """Read up to CR LF . CR LF, byte by byte as qmail-smtpd's blast()."""
    global buf
    seen = b"\r\n"
    while True:
        while not buf:
            if not fill():
                sys.exit(0)
        ch, buf = buf[:1], buf[1:]
        seen = (seen + ch)[-5:]
        if seen == b"\r\n.\r\n":
            return


def main() -> None:
    out(b"220 " + ME + b" ESMTP\r\n")
    seenmail = False
    rcpts = 0
    while True:
        cmd = line().rstrip(b"\r\n")
        verb = cmd.split(b" ", 1)[0].upper()
        if verb == b"HELO":
            seenmail = False
            out(b"250 " + ME + b"\r\n")
        elif verb == b"EHLO":
            seenmail = False
            extra = (b"250-STARTTLS\r\n" if os.environ.get("FAKE_TLS") else b"") + \
                    (b"250-AUTH PLAIN\r\n" if os.environ.get("FAKE_AUTH") else b"")
            out(b"250-" + ME + b"\r\n250-PIPELINING\r\n" + extra + b"250 8BITMIME\r\n")
        elif verb == b"MAIL":
            seenmail, rcpts = True, 0
            out(b"250 ok\r\n")
        elif verb == b"RCPT":
            if not seenmail:
                out(b"503 MAIL first (#5.5.1)\r\n")
            elif b"@notours.example" in cmd.lower():
                out(b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n")
            else:
                rcpts += 1
                out(b"250 ok\r\n")
        elif verb == b"DATA":
            if not seenmail:
                out(b"503 MAIL first (#5.5.1)\r\n")
            elif not rcpts:
                out(b"503 RCPT first (#5.5.1)\r\n")
            else:
                out(b"354 go ahead\r\n")
                body()
                seenmail = False
                out(b"250 ok 1764000000 qp %d\r\n" % os.getpid())
        elif verb == b"RSET":
            seenmail = False
            out(b"250 flushed\r\n")
        elif verb == b"NOOP":
            out(b"250 ok\r\n")
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
