"""deep.vpopmail.delivery.vdeliver over deep.vpopmail.cdbstore.FileStore:
vdelivermail's answers for real domain folders with vpasswd and vpasswd.cdb as vpopmail writes them."""

import os

import pytest

from qmailverify.deep.vpopmail.cdbstore import FileStore, default_opener
from qmailverify.deep.vpopmail.delivery import (
    Assign,
    Build,
    VUser,
    assign_of,
    atoi,
    vdeliver,
)
from qmailverify.errors import Trouble
from qmailverify.protocol.wire import (
    CATCH_ALL,
    DELIVERABLE,
    MAILBOX,
    QMAIL_EXT,
    TEMPORARY,
    UNDELIVERABLE,
)
from qmailverify.testing.vpoptree import Tree

BOUNCE = (b"", b"bounce-no-mailbox")
DELETE = (b"", b"delete")


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path)
    t.add_domain(b"example.com", [(b"postmaster", 0), (b"bob", 0), (b"locked", 0x10),
                                  (b"nopop", 0x02), (b"joe.smith", 0)])
    t.add_alias_domain(b"example.net", b"example.com")
    return t


def ask(tree, ext, host=b"example.com", args=BOUNCE, build=Build(), store=None):
    return vdeliver(args, ext, host, store or FileStore(), tree.users_cdb(), build)


def test_known_users_are_delivered_unknown_refused(tree):
    assert ask(tree, b"bob") == (DELIVERABLE, "vdelivermail: user", MAILBOX)
    assert ask(tree, b"Joe.Smith", b"EXAMPLE.com").code == DELIVERABLE
    assert ask(tree, b"nobody") == (UNDELIVERABLE, "vdelivermail: no such user", b"")
    assert ask(tree, b"nobody", args=DELETE).code == UNDELIVERABLE


def test_only_bounce_mail_flag_refuses_a_known_user(tree):
    assert ask(tree, b"locked") == (UNDELIVERABLE, "vdelivermail: account is locked", b"")
    assert ask(tree, b"nopop").code == DELIVERABLE


def test_catch_alls_take_unknown_users(tree):
    assert ask(tree, b"nobody", args=(b"", b"someone@elsewhere.example")) == (
        DELIVERABLE, "vdelivermail: catch-all", CATCH_ALL)
    assert ask(tree, b"nobody", args=(b"", b"/home/vpopmail/domains/example.com/catchall")).code == DELIVERABLE
    # but never a locked account
    assert ask(tree, b"locked", args=(b"", b"someone@elsewhere.example")).code == UNDELIVERABLE


def test_alias_domain_reads_the_real_domain(tree):
    assert ask(tree, b"bob", b"example.net").code == DELIVERABLE
    assert ask(tree, b"nobody", b"example.net").code == UNDELIVERABLE


def test_a_domain_missing_from_assign_has_no_users(tree):
    assert ask(tree, b"bob", b"other.example").code == UNDELIVERABLE
    assert ask(tree, b"bob", b"other.example", args=(b"", b"x@y.example")).code == DELIVERABLE


def test_extension_rule_with_and_without_qmail_ext(tree):
    assert ask(tree, b"bob-lists").code == UNDELIVERABLE
    assert ask(tree, b"bob-lists", build=Build(qmail_ext=True)) == (
        DELIVERABLE, "vdelivermail: user", QMAIL_EXT)
    # vdelivermail cuts at the FIRST '-' only
    tree.add_domain(b"dash.example", [(b"a-b", 0)])
    assert ask(tree, b"a-b-c", b"dash.example", build=Build(qmail_ext=True)).code == UNDELIVERABLE
    assert ask(tree, b"a-b", b"dash.example").code == DELIVERABLE


def test_invalid_bytes_bounce_as_vdelivermail_does(tree):
    assert ask(tree, b"bob%x", args=(b"", b"x@y.example")) == (UNDELIVERABLE, "vdelivermail: invalid username", b"")
    assert ask(tree, b"b\xe9b").code == UNDELIVERABLE
    assert ask(tree, b"bob", b"ex_ample.com").code == UNDELIVERABLE


def test_wrong_argument_count_defers(tree):
    assert ask(tree, b"bob", args=(b"bounce-no-mailbox",)).code == TEMPORARY
    assert ask(tree, b"bob", args=(b"", b"delete", b"x")).code == TEMPORARY


def test_missing_cdb_falls_back_to_vpasswd_as_vdelivermail_rebuilds(tree):
    d = tree.domain_dir(b"example.com")
    os.unlink(d + b"/vpasswd.cdb")
    assert ask(tree, b"bob").code == DELIVERABLE
    assert ask(tree, b"locked").code == UNDELIVERABLE
    assert ask(tree, b"nobody").code == UNDELIVERABLE


def test_the_cdb_not_the_text_is_read_when_both_exist(tree):
    d = tree.domain_dir(b"example.com")
    with open(d + b"/vpasswd", "ab") as f:          # vadduser without its cdb rebuild
        f.write(b"late:x:1:0:late:" + d + b"/late:NOQUOTA\n")
    assert ask(tree, b"late").code == UNDELIVERABLE
    tree.write_vpasswd_cdb(b"example.com")
    assert ask(tree, b"late").code == DELIVERABLE


def test_a_store_that_cannot_be_read_is_temporary_never_refused(tree):
    d = tree.domain_dir(b"example.com")
    os.unlink(d + b"/vpasswd.cdb")
    os.unlink(d + b"/vpasswd")
    out = ask(tree, b"bob")
    assert out == (TEMPORARY, "vdelivermail: vpopmail user file unusable", b"")
    assert "no vpasswd.cdb or vpasswd in " in out.detail
    os.mkdir(d + b"/vpasswd.cdb")                  # a read error: EISDIR
    assert ask(tree, b"bob").code == TEMPORARY
    os.rmdir(d + b"/vpasswd.cdb")
    with open(d + b"/vpasswd.cdb", "wb") as f:
        f.write(b"garbage")
    assert ask(tree, b"bob").code == TEMPORARY


def test_the_store_opens_as_the_domain_user(tree):
    seen = []

    def opener(path, uid, gid):
        seen.append((path, uid, gid))
        return default_opener(path, uid, gid)
    assert ask(tree, b"bob", store=FileStore(opener)).code == DELIVERABLE
    assert seen == [(tree.domain_dir(b"example.com") + b"/vpasswd.cdb", 89, 89)]


def test_the_store_sees_a_new_user_at_once(tree):
    store = FileStore()
    assert ask(tree, b"new", store=store).code == UNDELIVERABLE
    d = tree.domain_dir(b"example.com")
    with open(d + b"/vpasswd", "ab") as f:
        f.write(b"new:x:1:0:new:" + d + b"/new:NOQUOTA\n")
    tree.write_vpasswd_cdb(b"example.com")
    assert ask(tree, b"new", store=store).code == DELIVERABLE


def test_unreadable_users_cdb_is_temporary(tree):
    class Broken:
        def get(self, key):
            raise Trouble("unable to read users/cdb")
    assert vdeliver(BOUNCE, b"bob", b"example.com", FileStore(), Broken()).code == TEMPORARY


def test_assign_and_atoi_follow_c():
    class Cdb(dict):
        pass
    cdb = Cdb({b"!a.example-": b"a.example\x0089\x0089\x00/d\x00-\x00\x00"})
    assert assign_of(cdb, b"a.example") == Assign(b"a.example", 89, 89, b"/d")
    assert assign_of(cdb, b"b.example") is None and assign_of(None, b"a.example") is None
    assert (atoi(b" 16x"), atoi(b"-1"), atoi(b""), atoi(b"4294967312")) == (16, -1, 0, 16)
    assert VUser(b"x", 1, atoi(b"-1"), b"", b"").gid & 0x10


def test_valias_order_of_process_valias():
    asked = []

    class Store:
        def __init__(self, aliases):
            self.aliases = aliases

        def valias(self, alias, domain):
            asked.append(alias)
            return self.aliases.get(alias, [])

        def user(self, name, domain, assign):
            return None
    b = Build(valias=True)
    assert vdeliver(BOUNCE, b"a-b-c", b"x.example", Store({b"a-default": [b"&z@y"]}), None, b).code == DELIVERABLE
    assert asked == [b"a-b-c", b"a-b-default", b"a-default"]
    asked.clear()
    assert vdeliver(BOUNCE, b"a-b", b"x.example", Store({b"a": [b"&z@y"]}), None,
                    Build(qmail_ext=True, valias=True)).code == DELIVERABLE
    assert asked == [b"a-b", b"a-default", b"a"]
    assert vdeliver(BOUNCE, b"a-b", b"x.example", Store({b"a": [b"&z@y"]}), None, b).code == UNDELIVERABLE
