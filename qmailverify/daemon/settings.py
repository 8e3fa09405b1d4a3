"""qmail-verify's environment, read into Settings once at start:

  QMAILHOME              qmail's home (default /var/qmail)
  LISTEN                 IP, IP:PORT, :PORT or [IPV6]:PORT (127.0.0.1:11113)
  VERIFY_PASSWD          a passwd-format file to use instead of getpwnam()
  VERIFY_ALIASUSER       the alias user (alias)
  VERIFY_BREAK           the extension separator (-)
  VERIFY_FASTFORWARDCDB  fastforward's cdb, to check what ~alias/.qmail-default takes
  VERIFY_HARVEST_WINDOW  seconds refusals count against a client IP (600; 0: off)
  VERIFY_HARVEST_IPS     client IPs counted at most (65536; harvest.py)
  VERIFY_DEEP            1: judge a -default file by what it does (deep/judge.py)
  VERIFY_VPOPMAIL        files or mysql: the store vdelivermail lines are judged by
                         (needs VERIFY_DEEP=1; the VERIFY_VPOPMAIL_* details are
                         read in deep/vpopmail/: delivery.py, mysql.py and
                         mysqlconf.py)
  VERIFY_TRACE           1: one trace line per decision (protocol/trace.py)
  VERIFY_HUB_TTL         seconds a far "deliverable" is kept (300; hub/cache.py)
  VERIFY_HUB_NEGATIVE_TTL  seconds a far "not deliverable" is kept (5)
  VERIFY_HUB_ENTRIES     far answers kept at most (10000)
  VERIFY_HUB_TIMEOUT     seconds to wait for a far server (2; at most 2.5)
  VERIFY_WORKERS         processes answering on the one port (1; 2 to 64:
                         workers/master.py)

Paths are made absolute here, so that -d may change directory.  A value
that cannot be used is Fatal (exit 111), before anything is opened.
(The shim's VERIFY is read by protocol/verifyenv.py.)
"""

import os
from typing import NamedTuple

from qmailverify.errors import Fatal
from qmailverify.protocol.addrspec import AddressError, parse_server

MAX_WORKERS = 64


class Settings(NamedTuple):
    qmailhome: str
    listen: tuple[str, int]
    passwd: str | None
    alias: bytes
    brk: bytes
    fastforward: str | None
    harvest_window: float = 600.0
    harvest_ips: int = 65536
    deep: bool = False
    vpopmail: str | None = None
    trace: bool = False
    hub_ttl: float = 300.0
    hub_negative_ttl: float = 5.0
    hub_entries: int = 10000
    hub_timeout: float = 2.0
    workers: int = 1


def settings_from_env(env) -> Settings:
    try:
        listen = parse_server(env.get("LISTEN", ""))
    except AddressError as e:
        raise Fatal(f"qmail-verify: fatal: unable to parse LISTEN: {e}") from None
    brk = os.fsencode(env.get("VERIFY_BREAK", "-"))
    if len(brk) != 1:
        raise Fatal("qmail-verify: fatal: VERIFY_BREAK must be one character")
    deep, trace = _flag(env, "VERIFY_DEEP"), _flag(env, "VERIFY_TRACE")
    vpopmail = env.get("VERIFY_VPOPMAIL") or None
    if vpopmail not in (None, "files", "mysql"):
        raise Fatal("qmail-verify: fatal: VERIFY_VPOPMAIL must be files or mysql")
    if vpopmail and not deep:
        raise Fatal("qmail-verify: fatal: VERIFY_VPOPMAIL needs VERIFY_DEEP=1")

    def path(name):               # absolute, so that -d may change directory
        value = env.get(name)
        return os.path.abspath(value) if value else None

    try:
        window = float(env.get("VERIFY_HARVEST_WINDOW") or 600)
        ips = int(env.get("VERIFY_HARVEST_IPS") or 65536)
    except ValueError:
        window = ips = -1
    if not (0 <= window <= 86400 and 1 <= ips <= 1 << 24):
        raise Fatal("qmail-verify: fatal: VERIFY_HARVEST_WINDOW must be 0 to 86400 seconds "
                    "and VERIFY_HARVEST_IPS 1 to 16777216")
    try:
        hub = (float(env.get("VERIFY_HUB_TTL") or 300), float(env.get("VERIFY_HUB_NEGATIVE_TTL") or 5),
               int(env.get("VERIFY_HUB_ENTRIES") or 10000), float(env.get("VERIFY_HUB_TIMEOUT") or 2))
    except ValueError:
        hub = (-1, -1, -1, -1)
    if not (0 <= hub[0] <= 86400 and 0 <= hub[1] <= 86400 and 1 <= hub[2] <= 1 << 24
            and 0.1 <= hub[3] <= 2.5):
        raise Fatal("qmail-verify: fatal: VERIFY_HUB_TTL and VERIFY_HUB_NEGATIVE_TTL must be 0 to "
                    "86400 seconds, VERIFY_HUB_ENTRIES 1 to 16777216 and VERIFY_HUB_TIMEOUT "
                    "0.1 to 2.5 seconds")
    workers = env.get("VERIFY_WORKERS") or "1"
    if not (workers.isascii() and workers.isdigit() and 1 <= int(workers) <= MAX_WORKERS):
        raise Fatal(f"qmail-verify: fatal: VERIFY_WORKERS must be 1 to {MAX_WORKERS}")
    return Settings(
        qmailhome=path("QMAILHOME") or "/var/qmail",
        listen=listen,
        passwd=path("VERIFY_PASSWD"),
        alias=os.fsencode(env.get("VERIFY_ALIASUSER") or "alias"),
        brk=brk,
        fastforward=path("VERIFY_FASTFORWARDCDB"),
        harvest_window=window,
        harvest_ips=ips,
        deep=deep,
        vpopmail=vpopmail,
        trace=trace,
        hub_ttl=hub[0],
        hub_negative_ttl=hub[1],
        hub_entries=hub[2],
        hub_timeout=hub[3],
        workers=int(workers),
    )


def _flag(env, name: str) -> bool:
    """An on/off variable: unset, empty or 0 is off, 1 is on."""
    value = env.get(name, "")
    if value not in ("", "0", "1"):
        raise Fatal(f"qmail-verify: fatal: {name} must be 0 or 1")
    return value == "1"
