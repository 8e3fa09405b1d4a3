"""Reading the qmail control files the daemon decides by, into a
qmail.model.Controls.

They are read the way qmail-send reads them (qmail/controlfile.py).  Lookups
are ASCII case-insensitive and exact, and in virtualdomains the later of
two equal keys wins, as with qmail's constmap (Controls.build).
control/verifyhub (ours, hub mode: hub/map.py) is read here too, so that
it is reloaded with the rest and a bad line keeps the old set, as any
unreadable control does.  The shim reads qmail-smtpd's controls itself
(shim/rcpthosts.py, shim/main.py).
"""

import os

from qmailverify.clean import cleanpath
from qmailverify.hub.map import HubError, parse_hub_lines
from qmailverify.qmail.controlfile import ControlError, read_first_line, read_lines
from qmailverify.qmail.model import Controls


def load(qmailhome: str) -> Controls:
    """Read QMAILHOME/control/*, with qmail-send's fallbacks to control/me.

    Deliberate change: a control/me whose first line is empty, with no
    control/locals, is refused: it would make every address non-local,
    so that every address passed."""
    def ctl(name):
        return os.path.join(qmailhome, "control", name)

    me = read_first_line(ctl("me"))
    envnoathost = read_first_line(ctl("envnoathost"))
    if envnoathost is None:
        envnoathost = me if me is not None else b"envnoathost"
    locals_ = read_lines(ctl("locals"))
    if locals_ is None:
        if me is None:
            raise ControlError(f"neither {cleanpath(ctl('locals'))} nor {cleanpath(ctl('me'))} exists")
        if not me:
            raise ControlError(f"the first line of {cleanpath(ctl('me'))} is empty and there is"
                               f" no {cleanpath(ctl('locals'))}")
        locals_ = [me]
    try:
        hub = parse_hub_lines(read_lines(ctl("verifyhub")) or ())
    except HubError as e:
        raise ControlError(f"{cleanpath(ctl('verifyhub'))}: {e}") from None
    return Controls.build(envnoathost, locals_,
                          read_lines(ctl("percenthack")) or (),
                          read_lines(ctl("virtualdomains")) or (), hub)
