"""Realistic vpopmail trees for the tests and the benchmarks, written the way vpopmail's own
tools write them (vadddomain, vadduser, vmoduser -b, vaddaliasdomain):

- QMAIL/users/assign "+DOMAIN-:REALDOMAIN:UID:GID:DIR:-::" and users/cdb
  as qmail-newu compiles it (key "!DOMAIN-", value "REALDOMAIN\\0UID\\0
  GID\\0DIR\\0-\\0": qmail-newu stops at the sixth ':', so the value ends
  with the empty prepend field and qmail-lspawn's appended rest of the
  name is EXT; key "" the wildcard characters);
- DIR/.qmail-default "| VPOPMAIL/bin/vdelivermail '' delete" (mode 0600);
- DIR/vpasswd lines "NAME:CRYPTED:1:0:GECOS:DIR/NAME:NOQUOTA", sorted, and
  DIR/vpasswd.cdb (key NAME, value the rest of the line).
"""

import os
from pathlib import Path

from qmailverify.qmail.cdbmake import write_cdb

CRYPTED = b"$1$Xk3jP0aQ$e5mgxN8yWq7x0wJtV6P9q/"


def vpasswd_line(name: bytes, dir_: bytes, flags: int = 0, apop: int = 1) -> bytes:
    return b"%s:%s:%d:%d:%s:%s/%s:NOQUOTA\n" % (name, CRYPTED, apop, flags, name, dir_, name)


class Tree:
    def __init__(self, root, uid=89, gid=89):
        self.root = os.fsencode(root)            # a str, bytes or Path
        self.qmail = self.root + b"/qmail"
        self.vpop = self.root + b"/vpopmail"
        self.uid, self.gid = uid, gid
        self.assign: list[tuple] = []
        os.makedirs(self.qmail + b"/users", exist_ok=True)

    def domain_dir(self, domain: bytes) -> bytes:
        return self.vpop + b"/domains/" + domain

    def add_domain(self, domain: bytes, users=(), default: bytes | None = None, cdb=True):
        d = self.domain_dir(domain)
        os.makedirs(d, mode=0o700, exist_ok=True)
        if default is None:
            default = b"| " + self.vpop + b"/bin/vdelivermail '' delete\n"
        self.write(d + b"/.qmail-default", default, 0o600)
        lines = b"".join(vpasswd_line(u, d, flags) for u, flags in sorted(users))
        self.write(d + b"/vpasswd", lines, 0o600)
        if cdb:
            self.write_vpasswd_cdb(domain)
        self.assign.append((domain, domain, d))
        self.write_users()
        return d

    def add_alias_domain(self, alias: bytes, real: bytes):
        self.assign.append((alias, real, self.domain_dir(real)))
        self.write_users()

    def write_vpasswd_cdb(self, domain: bytes):
        d = self.domain_dir(domain)
        with open(d + b"/vpasswd", "rb") as f:
            records = [line.split(b":", 1) for line in f.read().split(b"\n") if line]
        write_cdb(os.fsdecode(d + b"/vpasswd.cdb"), records, os.fsdecode(d + b"/cdb.tmp"))

    def write_users(self):
        text = b"".join(b"+%s-:%s:%d:%d:%s:-::\n" % (a, r, self.uid, self.gid, d)
                        for a, r, d in self.assign) + b".\n"
        self.write(self.qmail + b"/users/assign", text, 0o644)
        records = [(b"", b"-")] + [
            (b"!" + a + b"-", b"%s\0%d\0%d\0%s\0-\0" % (r, self.uid, self.gid, d))
            for a, r, d in self.assign]
        write_cdb(os.fsdecode(self.qmail + b"/users/cdb"), records)

    def users_cdb(self):
        import cdblib
        with open(self.qmail + b"/users/cdb", "rb") as f:
            return cdblib.Reader(f.read())

    @staticmethod
    def write(path: bytes, data: bytes, mode: int):
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)


# -- the tree deep mode's daemon tests share ------------------------------

VUID = 7089          # the vpopmail user of the tree
FWD_UID = 7091


def chown_tree(path: bytes, uid: int, gid: int) -> None:
    for top, dirs, files in os.walk(path):
        os.chown(top, uid, gid)
        for f in files:
            os.chown(os.path.join(top, f), uid, gid)


def sql_site(root) -> None:
    """Under root, a qmail tree (control/me mx.example) whose one virtual
    domain, example.com, is vpopmail's with no user of its own in files:
    the site bench/ builds to ask deep mode about users kept in MariaDB."""
    t = Tree(root, 89, 89)
    t.add_domain(b"example.com", [])
    chown_tree(t.vpop, 89, 89)
    control = Path(root) / "qmail" / "control"
    control.mkdir()
    (control / "me").write_text("mx.example\n")
    (control / "virtualdomains").write_text("example.com:example.com\n")


def deep_tree(root):
    """The tree: example.com (vpopmail, users bob, alice, locked; alias
    domain example.net; a .qmail-info alias), plesk.example (a
    bouncesaying catch-all), and on the local host mx.example the system
    user fwd whose .qmail-default forwards to bob@example.com and whose
    .qmail-loop-default forwards back to itself."""
    t = Tree(root, VUID, VUID)
    d = t.add_domain(b"example.com", [(b"alice", 0), (b"bob", 0), (b"locked", 0x10)])
    t.write(d + b"/.qmail-info", b"&bob@example.com\n", 0o600)
    t.add_alias_domain(b"example.net", b"example.com")
    t.add_domain(b"plesk.example", [], default=b"|bouncesaying 'No such user.'\n")
    chown_tree(t.vpop, VUID, VUID)
    q = t.qmail
    os.makedirs(q + b"/control", exist_ok=True)
    t.write(q + b"/control/me", b"mx.example\n", 0o644)
    t.write(q + b"/control/locals", b"mx.example\n", 0o644)
    t.write(q + b"/control/virtualdomains",
            b"example.com:example.com\nexample.net:example.net\nplesk.example:plesk.example\n", 0o644)
    fwd = t.root + b"/fwd"
    alias = t.root + b"/alias"
    for home, uid in ((fwd, FWD_UID), (alias, 7090)):
        os.makedirs(home)
        os.chown(home, uid, uid)
    t.write(fwd + b"/.qmail-default", b"&bob@example.com\n", 0o644)
    t.write(fwd + b"/.qmail-gone-default", b"&nobody@example.com\n", 0o644)
    t.write(fwd + b"/.qmail-loop-default", b"&fwd-loop-again@mx.example\n", 0o644)
    for f in (b"/.qmail-default", b"/.qmail-gone-default", b"/.qmail-loop-default"):
        os.chown(fwd + f, FWD_UID, FWD_UID)
    passwd = t.root + b"/passwd"
    t.write(passwd, b"fwd:x:%d:%d::%s:/bin/sh\nalias:x:7090:7090::%s:/bin/false\n"
            % (FWD_UID, FWD_UID, fwd, alias), 0o644)
    return t, {"QMAILHOME": os.fsdecode(q), "VERIFY_PASSWD": os.fsdecode(passwd)}
