"""deep.Deep in process: rules.decide() with deep mode over an in-memory
System (hypothesis-free, fast): the hook judges only a -default file,
forwards are decided as queries of their own, a loop bounces, the
fastforward check keeps its answer; qmail-local's deferrals at the home
and at a writable .qmail file are temporary for every address; with
deep=None nothing changes."""

from helpers import NOT_REGULAR, FakeSystem

from qmailverify.deep.hook import DEEP, Deep
from qmailverify.errors import Trouble
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.model import Controls, DeepFacts, Passwd
from qmailverify.qmail.rules import decide

C = Controls.build(b"mx.example", locals=[b"mx.example"])
JOE = Passwd(b"joe", 1001, 1001, b"/home/joe")
ALIAS = Passwd(b"alias", 1002, 1002, b"/var/qmail/alias")


class DeepSystem(FakeSystem):
    """FakeSystem whose dot-qmail files have content (path -> bytes), and
    whose homes have modes (home -> st_mode; a home not there cannot be
    entered)."""

    def __init__(self, contents, homes=None, **kw):
        files = {p: 0 for p in contents}
        files.update(kw.pop("files", {}))
        super().__init__(passwd=[JOE, ALIAS], files=files, **kw)
        self.contents = contents
        self.homes = homes or {JOE.home: 0o40755, ALIAS.home: 0o40755}
        self.read_as = []

    def home_mode(self, uid, gid, home):
        if home not in self.homes:
            raise Trouble(f"unable to switch to {home.decode()}: file does not exist",
                          "unable to enter a home directory")
        return self.homes[home]

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


def test_forwards_are_decided_as_queries_and_a_loop_is_not_deliverable():
    s = DeepSystem({b"/home/joe/.qmail-a-default": b"&joe-b-1@mx.example\n",
                    b"/home/joe/.qmail-b-default": b"&joe-a-1@mx.example\n",
                    b"/home/joe/.qmail-r-default": b"someone@remote.example\n",
                    b"/home/joe/.qmail-n-default": b"&nobody-here@mx.example\n",
                    b"/home/joe/.qmail-u-default": None})
    loop = ask(s, b"joe-a-1@mx.example")
    assert loop.code == UNDELIVERABLE
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


def test_qmail_local_defers_at_the_home_for_every_address():
    s = DeepSystem({b"/home/joe/.qmail-x": b"./Maildir/\n",
                    b"/home/joe/.qmail-fwd-default": b"&joe@mx.example\n"},
                   homes={JOE.home: 0o41755, ALIAS.home: 0o40755})
    for addr in (b"joe", b"joe-x", b"joe-nope"):
        v = ask(s, addr + b"@mx.example")
        assert (v.code, v.position, v.reason) == \
            (TEMPORARY, DEEP, "qmail-local: home directory is sticky"), addr
    s.homes[JOE.home] = 0o40777
    assert ask(s, b"joe@mx.example").reason == "qmail-local: home directory is writable"
    assert s.read_as == []
    users = {b"": b"-", b"!gone-": b"gone\0009\0009\0/nowhere\0-\0"}
    s = DeepSystem({}, users=users)
    v = ask(s, b"gone-x@mx.example")
    assert (v.code, v.reason) == (TEMPORARY, "qmail-local: unable to enter a home directory")
    assert v.detail == "qmail-local: unable to switch to /nowhere: file does not exist"
    assert decide(b"gone-x@mx.example", C, s).code == UNDELIVERABLE        # deep=None: 1.32


def test_a_forward_whose_only_target_defers_is_temporary():
    s = DeepSystem({b"/home/joe/.qmail-default": b"&alias-gone@mx.example\n"},
                   homes={JOE.home: 0o40755})
    assert ask(s, b"joe-x@mx.example").code == TEMPORARY


def test_a_dot_qmail_file_writable_by_others_defers():
    s = DeepSystem({b"/home/joe/.qmail-x": b"./Maildir/\n", b"/home/joe/.qmail": b"./Maildir/\n"},
                   modes={b"/home/joe/.qmail-x": 0o100646, b"/home/joe/.qmail": 0o100602})
    for addr in (b"joe-x@mx.example", b"joe@mx.example"):
        v = ask(s, addr)
        assert (v.code, v.reason) == (TEMPORARY, "qmail-local: .qmail file is writable"), addr
    s.modes = {b"/home/joe/.qmail-x": 0o100664}                            # group bits may be set
    assert ask(s, b"joe-x@mx.example").position == 10
    assert ask(s, b"joe@mx.example").position == 9


def test_a_default_that_is_not_a_regular_file_is_passed_over_and_never_read():
    s = DeepSystem({b"/home/joe/.qmail-default": b"|bouncesaying gone\n"},
                   files={b"/home/joe/.qmail-a-default": NOT_REGULAR})
    assert ask(s, b"joe-a-b@mx.example").code == UNDELIVERABLE
    assert s.read_as == [(1001, 1001, b"/home/joe/.qmail-default")]
