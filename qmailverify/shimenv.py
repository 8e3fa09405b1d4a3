"""qmail-logmsg's settings beyond VERIFY (issue 11), set per client in
tcpserver's rules like VERIFY itself; every one off when unset, so that a
session without them answers and logs exactly as before.

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

from .verifyenv import SetupError

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
