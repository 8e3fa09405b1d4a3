"""VERIFY, as set per client in tcpserver's rules (spec section 7): the one
parser that qmail-logmsg, the client library, verify-query -s and
verify-migrate all use, so that a value means the same everywhere.

  unset             no verification
  ""                no verification, and a note in the log
  ":"               immediate: a bad RCPT gets 550
  "DEFER"           deferred (any value starting with D or d): every RCPT
                    is accepted, DATA gets 554 if any was bad
  "IP", ":PORT", "IP:PORT", "[IPV6]:PORT", with or without "DEFER,"
                    the same, asking that server

The server is what follows from the first digit, ':' or '[' of the value
(spec 7 names the digit and ':'; '[' is ours, for IPv6); missing parts
default to 127.0.0.1 and 11113.  Everything before it is ignored, even a
host name: "DEFER,mx.example:10101" asks 127.0.0.1:10101 (ignored() says
what was skipped, for verify-migrate's warning).  A server part that
cannot be parsed is a SetupError (1.32 silently used the defaults).

The companions of VERIFY, set per client in the same rules; every one off
when unset, so that a session without them answers and logs exactly as
with VERIFY alone:

  VERIFY_ROLLOUT          how refusals are carried out:
                            unset, "enforce"  550 at RCPT, 554 at DATA (spec 7)
                            "soft"            450 at RCPT, 451 at DATA instead
                            "log"             log what would be refused; accept
                          any other value: enforce, and a warning in the log
                          (fail closed: a typo never lets a recipient past)
  VERIFY_HARVEST_DELAY=N  once the daemon counts more than N refused
                          recipients from the client's IP, every further
                          checked RCPT reply waits VERIFY_HARVEST_STEP
                          seconds (default 1) a refusal over N, at most
                          VERIFY_HARVEST_MAXDELAY (default 20)
  VERIFY_HARVEST_DROP=M   at M or more refusals: 421 and the session ends

The shim sends the client's IP (TCPREMOTEIP) to the daemon only when one
of the two HARVEST limits is set.  A HARVEST value that is not a number
in range is a setup failure (451 at the first checked RCPT), as an
unparsable VERIFY is.  rollout_of() is what verify-migrate -c shows.
"""

from qmailverify.protocol.addrspec import AddressError, parse_server

SERVER_START = "0123456789:["


class SetupError(ValueError):
    """A VERIFY value whose server address cannot be parsed."""


class Mode:
    """The verification a VERIFY value asks for."""
    __slots__ = ("enabled", "deferred", "server", "note")

    def __init__(self, enabled: bool, deferred: bool = False,
                 server: tuple[str, int] | None = None, note: str = ""):
        self.enabled, self.deferred, self.server, self.note = enabled, deferred, server, note

    def __repr__(self) -> str:
        return (f"Mode(enabled={self.enabled}, deferred={self.deferred}, "
                f"server={self.server}, note={self.note!r})")


def _start(value: str) -> int:
    return next((i for i, ch in enumerate(value) if ch in SERVER_START), len(value))


def parse_server_part(value: str) -> tuple[str, int]:
    """The (ip, port) a VERIFY value (or verify-query -s) asks."""
    part = value[_start(value):]
    try:
        return parse_server(part)
    except AddressError as e:
        raise SetupError(f"unable to parse VERIFY server {part!r}: {e}") from None


def parse_verify(value: str | None) -> Mode:
    """The verification a VERIFY value asks for."""
    if value is None:
        return Mode(False)
    if value == "":
        return Mode(False, note="Note recipient verification explicitly disabled.")
    return Mode(True, value[0] in "Dd", parse_server_part(value))


def ignored(value: str) -> str:
    """What the grammar skips in value besides a leading DEFER-word and
    its comma: text an admin probably meant as a server (a host name)."""
    skipped = value[:_start(value)]
    if skipped[:1] in ("D", "d"):
        i = 0
        while i < len(skipped) and skipped[i].isascii() and skipped[i].isalpha():
            i += 1
        skipped = skipped[i:]
        if skipped.startswith(","):
            skipped = skipped[1:]
    return skipped.strip()


ENFORCE, SOFT, LOG = "enforce", "soft", "log"
MAX_DELAY_LIMIT = 120.0          # well under qmail-smtpd's 1200 s and a client's 300 s


def rollout_of(value: str | None) -> tuple[str, str]:
    """(mode, warning) for a VERIFY_ROLLOUT value; warning "" if none."""
    if value is None or value in (ENFORCE, SOFT, LOG):
        return value or ENFORCE, ""
    return ENFORCE, f"warning: unknown VERIFY_ROLLOUT {value!r}: enforcing"


class Harvest:
    """The harvest limits: None for a limit that is not set."""
    __slots__ = ("delay_after", "drop_at", "step", "max_delay")

    def __init__(self, delay_after=None, drop_at=None, step=1.0, max_delay=20.0):
        self.delay_after, self.drop_at = delay_after, drop_at
        self.step, self.max_delay = step, max_delay

    @property
    def enabled(self) -> bool:
        return self.delay_after is not None or self.drop_at is not None

    def delay(self, refusals: int) -> float:
        """How long the reply to a RCPT waits, the IP having this many refusals."""
        if self.delay_after is None or refusals <= self.delay_after:
            return 0.0
        return min(self.step * (refusals - self.delay_after), self.max_delay)

    def drops(self, refusals: int) -> bool:
        return self.drop_at is not None and refusals >= self.drop_at


def _number(env, name: str, default, kind, low, high):
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        n = kind(value)
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        raise SetupError(f"bad {name} {value!r}")
    return n


def harvest_from(env) -> Harvest:
    """The harvest limits from the environment; SetupError for a bad value."""
    return Harvest(_number(env, "VERIFY_HARVEST_DELAY", None, int, 0, 1 << 30),
                   _number(env, "VERIFY_HARVEST_DROP", None, int, 1, 1 << 30),
                   _number(env, "VERIFY_HARVEST_STEP", 1.0, float, 0.0, MAX_DELAY_LIMIT),
                   _number(env, "VERIFY_HARVEST_MAXDELAY", 20.0, float, 0.0, MAX_DELAY_LIMIT))
