"""qmail-verify's log: one line an event, 'qmail-verify: ...', kept until
the daemon waits for work (so a burst of queries costs one write).

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

PROG = b"qmail-verify: "
CHUNK = 4096                        # PIPE_BUF on Linux
HOLD = 1 << 16                      # written at once beyond this much


class Log:
    def __init__(self, stream):
        self.stream = stream
        try:
            self.fd = stream.fileno()
            stream.flush()
        except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
            self.fd = None
        self.pending = bytearray()

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
        self.pending += text
        if len(self.pending) >= HOLD:
            self.flush()

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
