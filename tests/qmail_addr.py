"""qmail-smtpd's addrparse() up to its localiphost rewrite, written out
from qmail-smtpd.c for the test stand-ins (fake_smtpd.py, the process;
smtpd_model.py, the in-process model) and independently of
qmailverify.shim.smtp, which they check: '<' or else ':' and spaces, a
source route dropped, backslashes and quotes taken out, up to the
terminator.  Each stand-in then rewrites [IP] literals its own way."""


def parse_path(arg: bytes) -> bytearray:
    if b"<" in arg:
        arg, term = arg[arg.index(b"<") + 1:], ord(">")
    else:
        arg, term = (arg[arg.index(b":") + 1:] if b":" in arg else b"").lstrip(b" "), ord(" ")
    if arg[:1] == b"@":
        arg = arg[arg.index(b":") + 1:] if b":" in arg else b""
    out, esc, quoted = bytearray(), False, False
    for ch in arg:
        if esc:
            out.append(ch)
            esc = False
        elif not quoted and ch == term:
            break
        elif ch == ord("\\"):
            esc = True
        elif ch == ord('"'):
            quoted = not quoted
        else:
            out.append(ch)
    return out


def fits(out) -> bytes | None:
    """The address, or None when qmail-smtpd refuses it as too long (555)."""
    return bytes(out) if len(out) + 1 <= 900 else None
