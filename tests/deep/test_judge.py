"""deep.judge.judge(): what a -default file makes of the mail, on real trees
(a vpopmail domain as vadddomain leaves it, a Plesk-style bouncesaying
mailname folder) and on forwards with loops."""

import os

import pytest

from qmailverify.deep.judge import Judgement, follow, judge
from qmailverify.deep.vpopmail.cdbstore import FileStore
from qmailverify.deep.vpopmail.delivery import Build, vdeliver
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.model import MAX_READ, DeepFacts
from qmailverify.testing.vpoptree import Tree

OK = Judgement(DELIVERABLE, "t")
NO = Judgement(UNDELIVERABLE, "t")
LATER = Judgement(TEMPORARY, "t")


def facts_of(home: bytes, name: bytes) -> DeepFacts:
    """What the daemon gathers (as the user): modes and content."""
    path = home + b"/" + name
    with open(path, "rb") as f:
        content = f.read(MAX_READ + 1)
    return DeepFacts(os.stat(home).st_mode, os.stat(path).st_mode, content)


def never(address):
    raise AssertionError("no forward expected")


def plain(content: bytes, forward=never, mode=0o100600) -> Judgement:
    return judge(DeepFacts(0o40700, mode, content), forward)


@pytest.fixture
def vtree(tmp_path):
    t = Tree(tmp_path)
    t.add_domain(b"example.com", [(b"postmaster", 0), (b"bob", 0), (b"locked", 0x10)])
    return t


def vjudge(tree, ext, domain=b"example.com"):
    home = tree.domain_dir(domain)
    cdb = tree.users_cdb()
    return judge(facts_of(home, b".qmail-default"), never,
                 lambda args: vdeliver(args, ext, domain, FileStore(), cdb, Build()))


def test_vpopmail_domain_as_vadddomain_writes_it(vtree):
    with open(vtree.domain_dir(b"example.com") + b"/.qmail-default", "rb") as f:
        assert f.read() == b"| " + vtree.vpop + b"/bin/vdelivermail '' delete\n"
    assert vjudge(vtree, b"bob").code == DELIVERABLE
    assert vjudge(vtree, b"nobody").code == UNDELIVERABLE
    assert vjudge(vtree, b"locked").code == UNDELIVERABLE


def test_vpopmail_catch_all_domain(vtree):
    home = vtree.add_domain(b"catch.example", [(b"bob", 0)],
                            default=b"| /home/vpopmail/bin/vdelivermail '' /home/vpopmail/domains/catch.example/bob\n")
    assert vjudge(vtree, b"anyone", b"catch.example").code == DELIVERABLE
    assert os.path.isdir(home)


def test_without_vpopmail_configured_vdelivermail_is_an_opaque_program(vtree):
    home = vtree.domain_dir(b"example.com")
    assert judge(facts_of(home, b".qmail-default"), never).code == DELIVERABLE


def test_plesk_style_bouncesaying_tree(tmp_path):
    home = tmp_path / "mailnames" / "example.org"
    home.mkdir(parents=True, mode=0o700)
    (home / ".qmail-default").write_bytes(b"|bouncesaying 'This address no longer accepts mail.'\n")
    (home / ".qmail-default").chmod(0o600)
    (home / ".qmail-bob").write_bytes(b"./bob/Maildir/\n")
    out = judge(facts_of(os.fsencode(home), b".qmail-default"), never)
    assert out == (UNDELIVERABLE, "bouncesaying", b"")
    (home / ".qmail-default").write_bytes(b"| /usr/bin/bouncesaying 'No.' /opt/shop/bin/known-user\n")
    assert judge(facts_of(os.fsencode(home), b".qmail-default"), never).code == DELIVERABLE


def test_bouncesaying_after_a_delivery_still_bounces_before_it_does_not_run():
    assert plain(b"./Maildir/\n|bouncesaying gone\n").code == UNDELIVERABLE
    assert plain(b"|bouncesaying\n").code == UNDELIVERABLE              # its usage error is 100 too
    assert plain(b"|filter\n|bouncesaying gone\n").code == DELIVERABLE  # the filter may exit 99


def test_mailbox_program_and_other_lines_are_valid():
    assert plain(b"./Maildir/\n").code == DELIVERABLE
    assert plain(b"/var/spool/mail/bob\n").code == DELIVERABLE
    assert plain(b"|preline /usr/bin/procmail\n").code == DELIVERABLE
    assert plain(b"").code == DELIVERABLE                               # default delivery
    assert plain(b"# nothing here\n").code == DELIVERABLE


def test_qmail_local_deferrals_in_its_order():
    c = b"|bouncesaying gone\n"
    assert judge(DeepFacts(0o40707, 0o100600, c), never) == (TEMPORARY, "qmail-local: home directory is writable", b"")
    assert judge(DeepFacts(0o41700, 0o100600, c), never) == (TEMPORARY, "qmail-local: home directory is sticky", b"")
    assert judge(DeepFacts(0o40700, 0o100602, c), never) == (TEMPORARY, "qmail-local: .qmail file is writable", b"")
    assert judge(DeepFacts(0o40770, 0o100660, c), never).code == UNDELIVERABLE   # group bits are allowed
    assert plain(b"\n./Maildir/\n").code == TEMPORARY
    assert plain(b"./Maildir/\n", mode=0o100700).code == TEMPORARY
    assert plain(b"&a@b\n+list\n|prog\n").code == TEMPORARY
    assert plain(b"|bouncesaying gone\n+list\n|prog\n").code == UNDELIVERABLE   # it bounced first
    assert plain(b"x" * (MAX_READ + 1)).code == TEMPORARY


def test_forwards_valid_if_any_target_is_or_anything_delivers():
    table = {b"a@here": NO, b"b@here": OK, b"c@here": LATER}
    fwd = table.__getitem__
    assert plain(b"&a@here\n&b@here\n", fwd).code == DELIVERABLE
    assert plain(b"a@here\n", fwd).code == UNDELIVERABLE
    assert plain(b"&a@here\nc@here\n", fwd).code == TEMPORARY
    assert plain(b"&a@here\n./Maildir/\n", never).code == DELIVERABLE
    assert plain(b"&a@here\n|bouncesaying no\n", never).code == UNDELIVERABLE


def test_follow_bounces_loops_and_caps_depth():
    files = {b"a@h": b"&b@h\n", b"b@h": b"&A@h\n", b"c@h": b"&d@h\n", b"d@h": b"./Maildir/\n"}

    def lookup(address, path):
        content = files.get(address.lower())
        if content is None:
            return NO
        return plain(content, lambda t: follow(t, path, lookup))
    assert follow(b"B@h", (b"a@h", b"b@h"), lookup) == (UNDELIVERABLE, "forward loop", b"")
    assert follow(b"a@h", (), lookup) == (UNDELIVERABLE, "every forward target is undeliverable",
                                          b"")
    assert follow(b"c@h", (), lookup).code == DELIVERABLE
    chain = {b"n%d@h" % i: b"&n%d@h\n" % (i + 1) for i in range(10)}
    chain[b"n10@h"] = b"./Maildir/\n"
    files.update(chain)
    assert follow(b"n0@h", (), lookup) == (TEMPORARY, "forwards nested too deep", b"")
    assert follow(b"n7@h", (), lookup).code == DELIVERABLE
