"""The budget's limits never change an ordinary answer: a large realistic
tree (3,000 users with their .qmail files, forwards among them, long but
ordinary extensions, four vpopmail domains of 300 users) decided with
the limits on and with limits no query reaches, in default and in deep
mode, on the real files (stats made as the users: root).  The largest
cost any of its queries needs is at most half of each limit: the margin
budget.py states (36 stats, 5 reads, 9 decisions, 8 forwards, 22 rows)."""

import os
import random
import shutil

import pytest
from helpers import need_root, world_tempdir

from qmailverify.deep.hook import Deep
from qmailverify.deep.vpopmail.cdbstore import FileStore
from qmailverify.qmail.budget import LIMITS, Budget
from qmailverify.qmail.model import Controls
from qmailverify.qmail.rules import decide
from qmailverify.system.live import LiveSystem
from qmailverify.testing.vpoptree import Tree

USERS = 3000
DOMAINS = [b"shop%d.example" % i for i in range(4)]
VUSERS = 300
UNLIMITED = {k: 10 ** 9 for k in LIMITS}
FIRST = [b"ann", b"bob", b"mary-ann", b"jean-luc", b"li", b"kim", b"jo"]
WORDS = [b"list", b"owner", b"bounce", b"return", b"subscribe", b"news", b"work", b"shop"]


def long_ext(rnd: random.Random) -> bytes:
    """A VERP-like extension: list-return-NNN-john-paul-smith=a-long-name.example."""
    local = b"-".join(rnd.choice(FIRST) for _ in range(rnd.randint(1, 4)))
    host = b"-".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))) + b".example"
    return b"%s-return-%d-%s=%s" % (rnd.choice(WORDS), rnd.randint(1, 99999), local, host)


def build(root: bytes, rnd: random.Random):
    tree = Tree(root)
    for domain in DOMAINS:
        users = [(b"%s%d" % (rnd.choice(FIRST), i), 0) for i in range(VUSERS)]
        tree.add_domain(domain, users)
    qmail = root + b"/qmail"
    os.makedirs(qmail + b"/control", exist_ok=True)
    tree.write(qmail + b"/control/me", b"mx.example\n", 0o644)
    tree.write(qmail + b"/control/locals", b"mx.example\nlocalhost\n", 0o644)
    tree.write(qmail + b"/control/virtualdomains",
               b"".join(b"%s:%s\n" % (d, d) for d in DOMAINS), 0o644)
    names = [b"%s%d" % (rnd.choice(FIRST), i) for i in range(USERS)]
    passwd = [b"alias:x:7790:7790::%s/home/alias:/bin/sh" % root]
    os.makedirs(root + b"/home/alias", mode=0o755)
    os.chown(root + b"/home/alias", 7790, 7790)
    for i, name in enumerate(names):
        uid = 20000 + i
        home = root + b"/home/" + name
        os.mkdir(home, 0o755)
        files = {b".qmail": b"./Maildir/\n"}
        if i % 3 == 0:
            files[b".qmail-default"] = rnd.choice([
                b"./Maildir/\n",
                b"&%s@mx.example\n" % rnd.choice(names),
                b"|bouncesaying 'This address no longer accepts mail.'\n",
                b"".join(b"&%s-work@mx.example\n" % rnd.choice(names) for _ in range(3)),
                b"&%s@%s\n" % (b"nosuch%d" % i, rnd.choice(DOMAINS)),
            ])
        if i % 4 == 0:
            files[b".qmail-list-default"] = b"&%s-list-x@mx.example\n" % rnd.choice(names)
        if i % 5 == 0:
            files[b".qmail-work"] = b"./Maildir/.work/\n"
        for f, content in files.items():
            Tree.write(home + b"/" + f, content, 0o644)
            os.chown(home + b"/" + f, uid, uid)
        os.chown(home, uid, uid)
        passwd.append(b"%s:x:%d:%d::%s:/bin/sh" % (name, uid, uid, home))
    Tree.write(root + b"/passwd", b"\n".join(passwd) + b"\n", 0o644)
    queries = []
    for name in names:
        queries += [name, name + b"-work", name + b"-list-" + long_ext(rnd),
                    name + b"-" + long_ext(rnd), name + b"-nope", b"x" + name]
    queries = [q + b"@mx.example" for q in queries]
    for domain in DOMAINS:
        for i in range(0, VUSERS, 3):
            queries += [b"%s%d@%s" % (rnd.choice(FIRST), i, domain),
                        b"nobody%d@%s" % (i, domain), b"%s@%s" % (long_ext(rnd), domain)]
    return queries


@pytest.mark.system
def test_a_large_ordinary_tree_answers_the_same_with_the_limits_on():
    need_root()
    root = world_tempdir("qv-large-")
    system = None
    try:
        rnd = random.Random(18)
        broot = os.fsencode(str(root))
        queries = build(broot, rnd)
        assert len(queries) > 18000
        system = LiveSystem(str(root / "qmail"), str(root / "passwd"), watch=False)
        controls = Controls.build(b"mx.example", [b"mx.example", b"localhost"],
                                  virtualdomains=[b"%s:%s" % (d, d) for d in DOMAINS])
        most = dict.fromkeys(LIMITS, 0)
        seen = set()
        for deep in (None, Deep(FileStore(system.open_as))):
            for q in queries:
                system.begin_query()
                b = Budget()
                limited = decide(q, controls, system, deep=deep, budget=b)
                system.begin_query()
                unlimited = decide(q, controls, system, deep=deep, budget=Budget(limits=UNLIMITED))
                assert limited == unlimited, q
                seen.add((limited.code, limited.position))
                for kind, n in b.used().items():
                    most[kind] = max(most[kind], n)
        assert len(seen) >= 6                        # the answers are varied
        print("largest cost:", most, "limits:", LIMITS)
        for kind, n in most.items():
            assert n * 2 <= LIMITS[kind], (kind, n)
    finally:
        if system is not None:
            system.settle()                      # root's gid back, for the tests after
        shutil.rmtree(root)
