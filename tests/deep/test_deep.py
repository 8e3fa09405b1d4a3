"""deep.Deep in process: rules.decide() with deep mode over an in-memory
System (hypothesis-free, fast): the hook fires only at a -default file,
forwards are decided as queries of their own, loops are temporary, the
fastforward check keeps its answer, and with deep=None nothing changes."""

from helpers import FakeSystem

from qmailverify.deep.hook import DEEP, Deep
from qmailverify.errors import Trouble
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.model import Controls, DeepFacts, Passwd
from qmailverify.qmail.rules import decide

C = Controls.build(b"mx.example", locals=[b"mx.example"])
JOE = Passwd(b"joe", 1001, 1001, b"/home/joe")
ALIAS = Passwd(b"alias", 1002, 1002, b"/var/qmail/alias")


class DeepSystem(FakeSystem):
    """FakeSystem whose dot-qmail files have content (path -> bytes)."""

    def __init__(self, contents, **kw):
        super().__init__(passwd=[JOE, ALIAS], files={p: 0 for p in contents}, **kw)
        self.contents = contents
        self.read_as = []

    def deep_facts(self, uid, gid, home, path):
        self.read_as.append((uid, gid, path))
        data = self.contents[path]
        if data is None:
            raise Trouble(f"unable to open {path.decode()}: access denied")
        return DeepFacts(0o40755, 0o100644, data)


def ask(system, addr, deep=Deep()):
    return decide(addr, C, system, deep=deep)


def test_the_hook_fires_only_at_a_default_file_and_reads_as_the_owner():
    s = DeepSystem({b"/home/joe/.qmail-x": b"|bouncesaying gone\n",
                    b"/home/joe/.qmail-default": b"|bouncesaying gone\n"})
    assert ask(s, b"joe-x@mx.example").position == 10               # not a -default file
    v = ask(s, b"joe-y@mx.example")
    assert (v.code, v.position, v.user, v.reason) == (UNDELIVERABLE, DEEP, b"joe-y", "bouncesaying")
    assert s.read_as == [(1001, 1001, b"/home/joe/.qmail-default")]
    assert decide(b"joe-y@mx.example", C, s).position == 12        # deep=None: 1.32


def test_forwards_are_decided_as_queries_and_loops_are_temporary():
    s = DeepSystem({b"/home/joe/.qmail-a-default": b"&joe-b-1@mx.example\n",
                    b"/home/joe/.qmail-b-default": b"&joe-a-1@mx.example\n",
                    b"/home/joe/.qmail-r-default": b"someone@remote.example\n",
                    b"/home/joe/.qmail-n-default": b"&nobody-here@mx.example\n",
                    b"/home/joe/.qmail-u-default": None})
    loop = ask(s, b"joe-a-1@mx.example")
    assert (loop.code, loop.reason) == (TEMPORARY, "forward loop")
    assert ask(s, b"joe-r-1@mx.example").code == DELIVERABLE          # leaves this host
    assert ask(s, b"joe-u-1@mx.example").code == TEMPORARY            # unreadable
    assert ask(s, b"joe-n-1@mx.example").code == UNDELIVERABLE        # the target gets [14]


def test_the_fastforward_check_keeps_its_answer():
    s = DeepSystem({b"/var/qmail/alias/.qmail-default": b"|bouncesaying gone\n"},
                   ff={b":known@mx.example": b"x"})
    assert ask(s, b"known@mx.example") == decide(b"known@mx.example", C, s)
    assert ask(s, b"known@mx.example").position == 12 and s.read_as == []
    s.ff = None                                  # no fastforward cdb: deep mode judges
    assert ask(s, b"known@mx.example").position == DEEP
