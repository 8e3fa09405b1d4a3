"""qmail-logmsg: session logging and VERIFY for an unpatched qmail-smtpd.

    tcpserver ... qmail-logmsg /var/qmail/bin/qmail-smtpd
    qmail-logmsg -s < /service/qmail-smtpd/log/main/current

It reads qmail-smtpd's controls the session needs (control/rcpthosts,
morercpthosts.cdb, localiphost or me) before anything else, so that
trouble answers "421 unable to read controls (#4.3.0)" in place of the
greeting, as qmail-smtpd would, and qmail-smtpd is never started; then
it starts qmail-smtpd on two pipes (spawn.py) and hands the descriptors
to the byte pump (pump.py), thin around the pure session (session.py,
which says what is decided and how).  The session log goes to stderr.
Only what a session needs is imported: the summariser (-s) and the UDP
client (at the first check) come in when asked for.
"""

import os
import sys

from qmailverify.clean import clean
from qmailverify.errors import errtext
from qmailverify.protocol.verifyenv import (
    SetupError,
    harvest_from,
    parse_verify,
    rollout_of,
)
from qmailverify.qmail.controlfile import ControlError, read_first_line
from qmailverify.shim.commands import R421CONTROLS, Policy
from qmailverify.shim.ipme import Ipme
from qmailverify.shim.pump import Pump, discard_input, spawn
from qmailverify.shim.rcpthosts import Rcpthosts
from qmailverify.shim.session import Session

USAGE = "qmail-logmsg: usage: qmail-logmsg program [arg ...] | qmail-logmsg -s | -h | -V"


def policy_from(env, prefix: bytes) -> tuple[Policy, float]:
    """The session's Policy and qmail-verify's timeout; ControlError if
    qmail-smtpd's controls cannot be read."""
    mode, setup_error, timeout, harvest = None, None, 5.0, None
    rollout, warning = rollout_of(env.get("VERIFY_ROLLOUT"))
    try:
        mode = parse_verify(env.get("VERIFY"))
        if mode.enabled:
            timeout = verify_timeout(env)
            harvest = harvest_from(env)
    except SetupError as e:
        setup_error = str(e)
    qmailhome = env.get("QMAILHOME") or "/var/qmail"
    control = os.path.join(qmailhome, "control")
    rcpthosts = Rcpthosts(qmailhome)
    localiphost = read_first_line(os.path.join(control, "localiphost"))
    if localiphost is None:
        localiphost = read_first_line(os.path.join(control, "me"))
    ip = env.get("TCPREMOTEIP", "").encode("ascii", "replace") or None
    policy = Policy(prefix, mode, setup_error, "RELAYCLIENT" in env, rcpthosts, localiphost, Ipme(),
                    rollout, (warning,) if warning else (), harvest, ip)
    return policy, timeout


def verify_timeout(env) -> float:
    try:
        timeout = float(env.get("VERIFY_TIMEOUT") or 5)
    except ValueError:
        timeout = 0
    if not 0 < timeout <= 300:
        raise SetupError(f"bad VERIFY_TIMEOUT {env.get('VERIFY_TIMEOUT')!r}")
    return timeout


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["-s"]:
        from qmailverify.shim.summary import main as summarise
        return summarise()
    if argv in (["-h"], ["-V"]):
        from qmailverify import __version__
        print(USAGE.partition(": ")[2] if argv == ["-h"] else f"qmail-logmsg {__version__}")
        return 0
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 100
    env = os.environ
    prefix = f"qmail-smtpd: pid {os.getpid()} from {env.get('TCPREMOTEIP', 'unknown')}: ".encode()
    try:
        policy, timeout = policy_from(env, prefix)
    except ControlError as e:
        os.write(2, prefix + b"unable to read controls (" + clean(str(e).encode()) + b")\n")
        try:
            os.write(1, R421CONTROLS)
        except OSError:
            pass
        discard_input()
        return 1
    try:
        pid, sin, sout = spawn(argv)
    except OSError as e:
        print(f"qmail-logmsg: fatal: unable to run {argv[0]}: "
              f"{errtext(e.errno)}", file=sys.stderr)
        return 111
    try:
        return Pump(Session(policy), pid, sin, sout, timeout).run()
    except MemoryError:                           # as qmail-smtpd's die_nomem; nothing forwarded
        for fd, data in ((2, prefix + b"out of memory\n"), (1, b"421 out of memory (#4.3.0)\r\n")):
            try:
                os.write(fd, data)
            except OSError:
                pass
        return 111


if __name__ == "__main__":
    sys.exit(main())
