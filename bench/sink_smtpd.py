"""A fast stand-in qmail-smtpd for benchmarks: qmail's replies, and the
DATA body consumed in large chunks (the test stand-in reads it byte by
byte, which would be the bottleneck here)."""

import os

buf = b""


def read() -> bytes:
    data = os.read(0, 1 << 20)
    if not data:
        raise SystemExit(0)
    return data


def line() -> bytes:
    global buf
    while b"\n" not in buf:
        buf += read()
    i = buf.index(b"\n") + 1
    result, buf = buf[:i], buf[i:]
    return result


def body() -> None:
    global buf
    tail = b"\r\n"
    while True:
        window = tail + buf
        i = window.find(b"\r\n.\r\n")
        if i >= 0:
            buf = window[i + 5:]
            return
        tail, buf = window[-4:], b""
        buf = read()


os.write(1, b"220 sink.example ESMTP\r\n")
while True:
    verb = line()[:4].upper()
    if verb == b"DATA":
        os.write(1, b"354 go ahead\r\n")
        body()
        os.write(1, b"250 ok 1764000000 qp 1\r\n")
    elif verb == b"QUIT":
        os.write(1, b"221 sink.example\r\n")
        break
    else:
        os.write(1, b"250 ok\r\n")
