"""qmail-verify's log: one line an event, 'qmail-verify: ...', kept until
the daemon waits for work and the oldest line has waited EVERY seconds
(or HOLD bytes are kept), then written at once: a query costs no write
of its own, however the queries come (in bursts, or one at a time as a
single qmail-smtpd asks), and multilog's stamp is at most EVERY late.
Exit, a fatal error and a crash write what is kept first.

With VERIFY_WORKERS, several processes write to one log (a pipe to
multilog, or the -o file), so every write is whole lines and at most
PIPE_BUF (4096) bytes: the kernel never mixes two such writes to a pipe,
and appends each to a file in one piece, so lines of different workers
never interleave inside a line.  A line longer than that (none of ours
comes near) is cut to fit and ends with '...'.  A stream without a
descriptor (syslog's, or one a test hands in) is written as it is.
"""

import io
import os
import time

PROG = b"qmail-verify: "
CHUNK = 4096                        # PIPE_BUF on Linux
HOLD = 1 << 16                      # written at once beyond this much
EVERY = 0.1                         # seconds a line may wait to be written


class Log:
    def __init__(self, stream):
        self.stream = stream
        try:
            self.fd = stream.fileno()
            stream.flush()
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            self.fd = None
        self.pending = bytearray()
        self.due = 0.0                  # when the oldest line kept must be written

    def line(self, msg: bytes) -> None:
        text = PROG + msg + b"\n"
        if self.fd is None:
            try:
                self.stream.write(text)
            except (OSError, ValueError):
                pass
            return
        if len(text) > CHUNK:
            text = text[:CHUNK - 4] + b"...\n"
        if not self.pending:
            self.due = time.monotonic() + EVERY
        self.pending += text
        if len(self.pending) >= HOLD:
            self.flush()

    def flush_due(self, now: float) -> float | None:
        """Write the lines kept if they are due; else how long the loop
        may wait before they are (None: nothing kept)."""
        if not self.pending:
            return None
        if now < self.due:
            return self.due - now
        self.flush()
        return None

    def flush(self) -> None:
        if self.fd is None:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                pass
            return
        data, self.pending = self.pending, bytearray()
        view, start = memoryview(data), 0
        try:
            while start < len(data):
                end = len(data) if len(data) - start <= CHUNK else \
                    data.rindex(b"\n", start, start + CHUNK) + 1
                chunk = view[start:end]
                while chunk:                        # a short write: the rest, again
                    chunk = chunk[os.write(self.fd, chunk):]
                start = end
        except OSError:
            pass                                    # a log we cannot write loses lines
