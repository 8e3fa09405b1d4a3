"""The decision core on its own: rules.decide() against a stand-in System,
for the rules the P1 fixture does not reach."""

import errno

import pytest
from helpers import FakeSystem
from hypothesis import example, given
from hypothesis import strategies as st

from qmailverify.errors import Trouble
from qmailverify.protocol.wire import DELIVERABLE, TEMPORARY, UNDELIVERABLE
from qmailverify.qmail.model import Controls, Passwd
from qmailverify.qmail.rules import (
    GETPW_USERLEN,
    decide,
    dotqmail_paths,
    passwd_lookup,
    rewrite,
    users_lookup,
)

C = Controls.build(b"example.com", [b"example.com"], [b"example.net"],
                   [b"virt.example.org:vo"])
ALIAS = Passwd(b"alias", 7790, 7790, b"/h/alias")
KIM = Passwd(b"kim", 2010, 2010, b"/h/kim")


def verdict(addr, system, controls=C, **kw):
    v = decide(addr, controls, system, **kw)
    return v.code, v.position, v.user


@pytest.mark.parametrize("value,position", [
    (b"", 4), (b"u", 4), (b"u\0001", 5), (b"u\0001\0002", 6), (b"u\0001\0002\0/h", 7)])
def test_short_users_cdb_values_are_deliverable_at_once(value, position):
    users = {b"": b"", b"!x\0": value}
    assert verdict(b"x@example.com", FakeSystem(users)) == (DELIVERABLE, position, value.split(b"\0")[0])


def test_five_field_value_has_an_empty_extension():
    users = {b"": b"", b"!x\0": b"u\0001\0002\0/h/u\0-"}
    s = FakeSystem(users, files={b"/h/u/.qmail-": 0})
    assert verdict(b"x@example.com", s) == (DELIVERABLE, 10, b"u")
    assert s.stats_as == [(1, 2, b"/h/u/.qmail-")]


def test_wildcard_appends_the_original_case_rest_before_splitting():
    users = {b"": b"-", b"!lists-": b"ml\0009\0009\0/h/ml\0-\0"}
    s = FakeSystem(users, files={b"/h/ml/.qmail-foo-default": 0})
    assert verdict(b"Lists-Foo-Bar@example.com", s) == (DELIVERABLE, 12, b"ml")
    assert s.stats_as[0][2] == b"/h/ml/.qmail-foo-bar"


def test_bang_key_catches_everything():
    users = {b"": b"", b"!": b"catch\0005\0005\0/h/c\0-\0"}
    s = FakeSystem(users, files={b"/h/c/.qmail-anyone": 0})
    assert verdict(b"AnyOne@example.com", s) == (DELIVERABLE, 10, b"catch")


def test_users_cdb_without_wildcard_entry_is_our_trouble():
    code, position, _ = verdict(b"x@example.com", FakeSystem({b"!x\0": b"u"}))
    assert (code, position) == (TEMPORARY, 6)


def test_missing_alias_user_is_not_deliverable():
    assert verdict(b"nobody@example.com", FakeSystem(None)) == (UNDELIVERABLE, 8, b"alias")


def test_root_and_foreign_homes_do_not_count():
    root = Passwd(b"toor", 0, 0, b"/h/toor")
    lent = Passwd(b"lent", 2020, 2020, b"/h/lent")
    s = FakeSystem(None, [root, lent, ALIAS], owners={b"/h/lent": 0, b"/h/alias": 7790})
    assert verdict(b"toor@example.com", s) == (UNDELIVERABLE, 14, b"alias")
    assert verdict(b"lent@example.com", s) == (UNDELIVERABLE, 14, b"alias")


def test_user_name_parts_of_32_bytes_or_more_are_not_looked_up():
    long = Passwd(b"a" * 32, 2030, 2030, b"/h/long")
    short = Passwd(b"a" * 31, 2031, 2031, b"/h/short")
    s = FakeSystem(None, [long, ALIAS])
    assert verdict(b"a" * 32 + b"@example.com", s)[2] == b"alias"
    s = FakeSystem(None, [short, ALIAS])
    assert verdict(b"a" * 31 + b"@example.com", s) == (DELIVERABLE, 9, b"a" * 31)


def test_a_name_through_a_file_is_passed_over_as_qmail_local_passes_it():
    s = FakeSystem(None, [KIM], files={b"/h/kim/.qmail-x/y": errno.ENOTDIR,
                                       b"/h/kim/.qmail-default": 0})
    assert verdict(b"kim-x/y@example.com", s) == (DELIVERABLE, 12, b"kim-x/y")
    s.files.pop(b"/h/kim/.qmail-default")
    assert verdict(b"kim-x/y@example.com", s) == (UNDELIVERABLE, 14, b"kim-x/y")


@pytest.mark.parametrize("ext", [b"a/b-c", b"c"])
def test_a_home_that_is_not_a_folder_answers_its_first_stat_as_1_32_did(ext):
    s = FakeSystem(None, [KIM], files={p: errno.ENOTDIR
                                       for p in dotqmail_paths(b"/h/kim", b"-", ext)})
    v = decide(b"kim-" + ext + b"@example.com", C, s)
    assert (v.code, v.position, v.stat_path, v.stat_errno) == \
        (DELIVERABLE, 11, b"/h/kim/.qmail-" + ext, errno.ENOTDIR)


@pytest.mark.parametrize("err", [errno.EACCES, errno.EPERM, errno.EINVAL])
def test_other_stat_failures_are_deliverable_and_reported(err):
    s = FakeSystem(None, [KIM], files={b"/h/kim/.qmail-x": err})
    v = decide(b"kim-x@example.com", C, s)
    assert (v.code, v.position, v.stat_path, v.stat_errno) == \
        (DELIVERABLE, 11, b"/h/kim/.qmail-x", err)
    s = FakeSystem(None, [KIM], files={b"/h/kim/.qmail-default": err})
    assert verdict(b"kim-x@example.com", s) == (DELIVERABLE, 13, b"kim-x")


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOMEM, errno.ESTALE, errno.ENOLCK])
def test_a_temporary_stat_failure_is_temporary_as_qmail_local_defers(err):
    s = FakeSystem(None, [KIM], files={b"/h/kim/.qmail-x": err})
    v = decide(b"kim-x@example.com", C, s)
    assert (v.code, v.position, v.user, v.stat_errno) == (TEMPORARY, 11, b"kim-x", 0)
    assert v.reason == "unable to stat a .qmail file"                # no path for a client
    assert v.detail.startswith("unable to stat /h/kim/.qmail-x: ")   # the log's
    s = FakeSystem(None, [KIM], files={b"/h/kim/.qmail-default": err})
    assert verdict(b"kim-x@example.com", s) == (TEMPORARY, 13, b"kim-x")


class PassedOver(FakeSystem):
    """Every name fails in a way qmail-local passes over: too long, or
    (with a '/' in it) through a file."""

    def __init__(self):
        super().__init__(None, [KIM])

    def first_stat(self, uid, gid, paths):
        def failing():                  # each name as the search hands it out, as stat sees it
            for p in paths:
                self.files[p] = errno.ENOTDIR if b"/" in p[len(KIM.home) + 1:] \
                    else errno.ENAMETOOLONG
                yield p
        return super().first_stat(uid, gid, failing())


@given(st.binary(max_size=60).map(lambda b: b.translate(bytes(b"a-/"[i % 3] for i in range(256)))))
@example(b"-" * 60)
@example(b"/" + b"-" * 59)
def test_a_search_that_passes_over_every_name_stats_each_name_once(ext):
    s = PassedOver()
    assert verdict(b"kim-" + ext + b"@example.com", s)[:2] == (UNDELIVERABLE, 14)
    names = [p for _, _, p in s.stats_as]
    assert names == list(dotqmail_paths(b"/h/kim", b"-", ext))
    assert len(names) <= len(ext) + 2


def test_dot_qmail_stats_are_made_as_the_user_of_the_home():
    s = FakeSystem(None, [KIM, ALIAS])
    decide(b"kim-a.B-c@example.com", C, s)
    assert s.stats_as == [(2010, 2010, p) for p in (
        b"/h/kim/.qmail-a:b-c", b"/h/kim/.qmail-a:b-default", b"/h/kim/.qmail-default")]
    s = FakeSystem(None, [ALIAS])
    decide(b"ghost@example.com", C, s)
    assert {(uid, gid) for uid, gid, _ in s.stats_as} == {(7790, 7790)}


FF = {b":known@example.com": b"", b":@list.example.com": b"", b":bob@": b""}


@pytest.mark.parametrize("addr,code", [
    (b"Known@Example.COM", DELIVERABLE), (b"x@List.example.com", DELIVERABLE),
    (b"bob@example.com", DELIVERABLE), (b"other@example.com", UNDELIVERABLE)])
def test_fastforward_decides_what_alias_default_takes(addr, code):
    s = FakeSystem(None, [ALIAS], files={b"/h/alias/.qmail-default": 0}, ff=FF)
    c = Controls.build(b"example.com", [b"example.com", b"list.example.com"])
    assert verdict(addr, s, c)[:2] == (code, 12)


def test_fastforward_uses_the_original_query_not_the_rewritten_address():
    s = FakeSystem(None, [ALIAS], files={b"/h/alias/.qmail-default": 0},
                   ff={b":known@example.com": b""})
    assert verdict(b"known%example.com@example.net", s)[:2] == (UNDELIVERABLE, 12)
    s.ff = {b":known%example.com@example.net": b""}
    assert verdict(b"known%example.com@example.net", s)[:2] == (DELIVERABLE, 12)


def test_fastforward_only_for_the_alias_users_own_default():
    users = {b"": b"", b"!alias\0": b"alias\0007790\0007790\0/h/alias\0-\0"}
    s = FakeSystem(users, [ALIAS], files={b"/h/alias/.qmail-default": 0}, ff={})
    assert verdict(b"alias-x@example.com", s)[:2] == (DELIVERABLE, 12)
    s = FakeSystem(None, [ALIAS], files={b"/h/alias/.qmail-x-default": 0}, ff={})
    assert verdict(b"x-y@example.com", s)[:2] == (DELIVERABLE, 12)


def test_fastforward_trouble_is_temporary():
    class Broken:
        def get(self, key):
            raise Trouble("fastforward cdb is corrupt", "fastforward cdb unusable")
    s = FakeSystem(None, [ALIAS], files={b"/h/alias/.qmail-default": 0}, ff=Broken())
    v = decide(b"x@example.com", C, s)
    assert (v.code, v.position, v.reason) == (TEMPORARY, 12, "fastforward cdb unusable")
    assert v.detail == "fastforward cdb is corrupt"


def test_temporary_home_stat_trouble():
    class Sick(FakeSystem):
        def owner(self, path):
            raise Trouble("unable to stat /h/kim: input/output error")
    v = decide(b"kim@example.com", C, Sick(None, [KIM, ALIAS]))
    assert (v.code, v.position) == (TEMPORARY, 7)


def test_percent_hack_follows_qmail_send():
    # qmail keeps looking at the domain after the % it turned into @,
    # not after the last @ of the address.
    # (The spec's wording would go on to give b"w@u@v".)
    assert rewrite(b"w%u%v@example.net@example.net", C) == (b"w%u@v@example.net", 5)
    assert rewrite(b"a%b@c%example.net@example.net", C) == (b"a@b@c", 3)
    assert rewrite(b"a%b%example.net@example.net", C)[0] == b"a@b"


def test_virtualdomains_later_line_wins_and_lines_without_colon_are_ignored():
    c = Controls.build(b"h", [b"h"], [], [b"v.org:first", b"junk", b"V.ORG:second"])
    s = FakeSystem(None, [Passwd(b"second", 5, 5, b"/h/s")])
    assert verdict(b"x@v.org", s, c) == (UNDELIVERABLE, 14, b"second-x")
    assert c.virtualdomains == {b"v.org": b"second"}


def test_bare_local_part_gets_envnoathost():
    assert rewrite(b"kim", C) == (b"kim@example.com", 3)


def test_empty_virtual_prefix_and_foreign_domains_are_not_ours():
    c = Controls.build(b"h", [b"h"], [], [b"relay.org:", b".sub.org:s"])
    s = FakeSystem(None)
    assert verdict(b"x@relay.org", s, c) == (DELIVERABLE, 2, None)
    assert verdict(b"x@elsewhere.org", s, c) == (DELIVERABLE, 1, None)
    assert verdict(b"x@sub.org", s, c) == (DELIVERABLE, 1, None)


def test_break_character_is_configurable():
    s = FakeSystem(None, [KIM, ALIAS], files={b"/h/kim/.qmail-box": 0})
    assert verdict(b"kim+box@example.com", s, brk=b"+") == (DELIVERABLE, 10, b"kim+box")
    assert verdict(b"kim+box@example.com", s)[2] == b"alias"


# Steps 6, 7 and 8 against models written as qmail's C loops are, byte
# by byte from the end, so that a faster search cannot drift from them.
PARTS = st.lists(st.sampled_from([b"-", b"+", b".", b"a", b"B", b"ab", b"a" * 15]),
                 max_size=12).map(b"".join)


def qmesearch_model(home, dash, ext):
    """qmail-local: .qmail<dash><ext>, then for i from len(ext) down to 0,
    where i is 0 or ext[i-1] is '-', .qmail<dash><ext[:i]>default; each
    with ext lowercased and '.' made ':'."""
    safe = bytes(b + 32 if 65 <= b <= 90 else 58 if b == 46 else b for b in ext)
    paths = [home + b"/.qmail" + dash + safe]
    for i in range(len(safe), -1, -1):
        if i == 0 or safe[i - 1] == ord("-"):
            paths.append(home + b"/.qmail" + dash + safe[:i] + b"default")
    return paths


@given(ext=PARTS, dash=st.sampled_from([b"-", b""]))
def test_dot_qmail_search_order_is_qmesearch(ext, dash):
    assert list(dotqmail_paths(b"/h/u", dash, ext)) == qmesearch_model(b"/h/u", dash, ext)


def userext_model(users, owners, name, brk):
    """qmail-getpw's userext(): cut name at its end, then at each brk byte
    from the back; the first cut shorter than GETPW_USERLEN that names a
    non-root user owning its home wins."""
    for i in range(len(name), -1, -1):
        if i < len(name) and name[i:i + 1] != brk:
            continue
        if i >= GETPW_USERLEN:
            continue
        pw = users.get(name[:i].lower())
        if pw is not None and pw.uid != 0 and owners[pw.home] == pw.uid:
            return pw, (b"-" if i < len(name) else b""), name[i + 1:]
    return None


NAMES = st.sampled_from([b"a", b"ab", b"a-b", b"A-b", b"", b"a" * 31, b"a" * 32])


@given(name=PARTS, known=st.lists(NAMES, max_size=4), brk=st.sampled_from([b"-", b"+"]))
@example(name=b"ab-x", known=[b"ab", b"a"], brk=b"-")
@example(name=b"a-b-c", known=[b"a-b", b"a"], brk=b"-")
@example(name=b"A-b", known=[b"a"], brk=b"-")
@example(name=b"a" * 32 + b"-x", known=[b"a" * 32], brk=b"-")
@example(name=b"a" * 31 + b"-x", known=[b"a" * 31], brk=b"-")
def test_user_name_cuts_are_qmail_getpws(name, known, brk):
    # "ab" is root's, and "a-b"'s home belongs to someone else: neither counts
    users = {n: Passwd(n, 0 if n == b"ab" else 3000 + i, 3000, b"/h/" + n)
             for i, n in enumerate(known)}
    owners = {p.home: 1 if p.name == b"a-b" else p.uid for p in users.values()}
    s = FakeSystem(None, list(users.values()), owners=owners)
    assert passwd_lookup(s, name, brk) == userext_model(users, owners, name, brk)


def lspawn_model(cdb, name):
    """qmail-lspawn: i from the length of '!name' plus its NUL down to 1;
    the first i takes the whole key, later ones only i == 1 or a prefix
    ending in a wildcard character; a wildcard match gets name's rest."""
    lower = b"!" + name.lower() + b"\0"
    wild = cdb[b""]
    for i in range(len(lower), 0, -1):
        if i == len(lower) or i == 1 or lower[i - 1] in wild:
            value = cdb.get(lower[:i])
            if value is not None:
                return value if i == len(lower) else value + name[i - 1:]
    return None


@given(name=PARTS, wild=st.sampled_from([b"", b"-", b"+", b"-+", b"+-a"]),
       keys=st.lists(st.sampled_from([b"!", b"!-", b"!a-", b"!a", b"!ab+", b"!a-b-", b"!b\0", b"!a-b\0"]),
                     max_size=4))
@example(name=b"a-b-c", wild=b"-", keys=[b"!a-", b"!a-b-"])
@example(name=b"ab+x-y", wild=b"-+", keys=[b"!ab+", b"!"])
@example(name=b"a+b-c", wild=b"-+", keys=[b"!a+", b"!a+b-"])
@example(name=b"a-b+c", wild=b"-+", keys=[b"!a-", b"!a-b+"])
def test_users_cdb_search_is_qmail_lspawns(name, wild, keys):
    cdb = {b"": wild, **{k: b"<" + k + b">" for k in keys}}
    assert users_lookup(cdb, name) == lspawn_model(cdb, name)
