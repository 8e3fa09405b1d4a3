"""The stand-in system the fuzz checks (targets.py) run against, and the
seeds a run starts from: a system in memory, as a million inputs cannot
each build a qmail tree on disk.

The system is the reference fixture P1 (tests/data/P1.json) held in
memory: its users/cdb, passwd, home owners and dot-qmail files, with a
file system model that fails the way Linux does for a path through a file
(ENOTDIR) and for a name or path too long (ENAMETOOLONG); targets'
check_p1() proves it gives all of P1's recorded replies.  The fault modes
make one of the system's methods raise Trouble, with a reason full of
characters a log line must not hold.
"""

import errno
import json
from pathlib import Path

from qmailverify.errors import Trouble
from qmailverify.qmail.model import GOES_ON, Controls, StatHit
from qmailverify.system.userdb import parse_passwd
from qmailverify.testing.newu import compile_assign

P1_PATH = Path(__file__).resolve().parents[3] / "tests" / "data" / "P1.json"
ROOT = "/fz"
HOSTILE = "unable to read \x07users/\x1b[2Jcdb\r\nfake: \u00e9\u2028\x7f<x>"
FAULTS = ("none", "fastforward", "no users/cdb", "users", "getpw", "owner",
          "first_stat", "fastforward fails")
FASTFORWARD = {b":known@example.com": b"", b":@list.example.com": b"", b":bob@": b""}


def _lines(text: str) -> list[bytes]:
    """A control file's meaningful lines, as controls.read_lines() reads them."""
    out = [line.rstrip(" \t").encode() for line in text.split("\n")]
    return [line for line in out if line and not line.startswith(b"#")]


class World:
    """P1 in memory."""

    def __init__(self, spec: dict):
        def sub(text):
            return text.replace("{root}", ROOT)
        control = {k: sub(v) for k, v in spec["control"].items()}
        me = _lines(control.get("me", ""))
        envnoathost = (_lines(control.get("envnoathost", "")) or me or [b"envnoathost"])[0]
        self.controls = Controls.build(envnoathost, _lines(control.get("locals", "")) or me,
                                       _lines(control.get("percenthack", "")),
                                       _lines(control.get("virtualdomains", "")))
        self.users = {}
        assign = "".join(sub(line) + "\n" for line in spec["users_assign"]).encode()
        for key, value in compile_assign(assign):
            self.users.setdefault(key, value)
        self.passwd = parse_passwd("".join(sub(line) + "\n" for line in spec["passwd"]).encode())
        self.owners, self.files = {}, set()
        for name, home in spec["homes"].items():
            path = f"{ROOT}/home/{name}".encode()
            self.owners[path] = home["owner_uid"]
            self.files.update(path + b"/" + f.encode() for f in home["files"])
        # the homes a stat may be made in, each with the ids it must be made as
        self.ids = {pw.home: (pw.uid, pw.gid) for pw in self.passwd.values()}
        for key, value in self.users.items():
            f = value.split(b"\0")
            if key and len(f) >= 5:
                self.ids[f[3]] = (int(f[1]), int(f[2]))
        self.alias = spec["alias_user"].encode()
        self.cases = [(bytes.fromhex(c["q"]), bytes.fromhex(c["r"])) for c in spec["cases"]]


def load_world(path=None) -> World:
    """The World of the fixture at path (default: the checkout's P1)."""
    return World(json.loads(Path(path or P1_PATH).read_text()))


class FakeSystem:
    """rules.System over a World; fault names which method raises Trouble.
    Records what was stat'ed, and whether it raised."""

    def __init__(self, world: World, fault: str = "none"):
        self.world, self.fault = world, fault
        self.ff = FASTFORWARD if fault in ("fastforward", "fastforward fails") else None
        self.raised = False
        self.stats = []                    # (uid, gid, path)

    def _trouble(self, method: str) -> None:
        if self.fault == method:
            self.raised = True
            raise Trouble(HOSTILE)

    def begin_query(self):
        self.raised, self.stats = False, []

    def users(self):
        self._trouble("users")
        return None if self.fault == "no users/cdb" else self.world.users

    def getpw(self, name):
        self._trouble("getpw")
        return self.world.passwd.get(name)

    def owner(self, path):
        self._trouble("owner")
        return self.world.owners.get(path)

    def first_stat(self, uid, gid, paths):
        self._trouble("first_stat")
        for i, path in enumerate(paths):
            self.stats.append((uid, gid, path))
            err = self.stat(path)
            if err not in GOES_ON and path not in self.world.owners:    # a home: a folder
                return StatHit(i, err, path, 0o100644 if err == 0 else 0)
        return StatHit(-1)

    def stat(self, path: bytes) -> int:
        """0 or the errno Linux gives for stat(path) in the World: walking
        the path, the first name over 255 bytes (ENAMETOOLONG) or the
        first file it passes through (ENOTDIR).  The files are few and a
        fuzzed path may hold thousands of names, so each file is matched
        against the path once, never each prefix against the files."""
        if len(path) >= 4096:
            return errno.ENAMETOOLONG
        names = path.split(b"/")
        # the file met first: the one whose name ends earliest (it is
        # names[:k] joined, followed by names[k])
        through = min((f.count(b"/") + 1 for f in self.world.files
                       if path.startswith(f + b"/")), default=len(names))
        # names[k] over 255 bytes is met before the file names[:k], or earlier
        if any(len(name) > 255 for name in names[1:through + 1]):
            return errno.ENAMETOOLONG
        if through < len(names):
            return errno.ENOTDIR
        return 0 if path in self.world.files or path in self.world.owners else errno.ENOENT

    def fastforward(self):
        self._trouble("fastforward fails")
        return self.ff


def system_for(world: World, data: bytes) -> tuple[FakeSystem, bytes]:
    """The system data's first byte picks, and the rest of data."""
    fault = FAULTS[data[0] % len(FAULTS)] if data else "none"
    return FakeSystem(world, fault), data[1:]


# -- seeds ---------------------------------------------------------------------

TCPRULES_LINES = [
    b"127.0.0.1:allow\n", b"1.2.3.4:deny\n", b"10.:allow,VERIFY=\"DEFER\"\n",
    b"192.168.:allow,VERIFY=\":\"\n", b":allow,VERIFY=\"DEFER,192.168.1.100:1234\"\n",
    b":allow,VERIFYDEFER=\"\",VERIFYSVR=\"192.168.1.100:1234\"\n",
    b"=mail.example.com:deny\n", b"=.example.com:allow,RELAYCLIENT=\"\"\n", b"=:allow\n",
    b"info@1.2.3.4:allow,X='a,b'\n", b"Info@=Host:deny\n", b"1.2.3.40-49:allow,A=/range/\n",
    b"1.2.3-5.:deny\n", b"1.2.3.250-300:allow\n", b"1.2.3.9-4:allow\n", b"1-3:allow\n",
    b"1.2.3.:allow,X='a',Y=|b|,Z=\"\"  \t\n", b"# comment VERIFY=\"\"\n", b"\n", b"  \t\n",
    b"no colon here\n", b"1.2.3.4:allow ,X=\"y\"\n", b"1.2.3.4:allowx\n", b"1.2.3.4:Allow\n",
    b"1.2.3.4:allow,A\n", b"1.2.3.4-x:allow\n", b"1.2.3.4:allow,A=\"open\n", b"5.6.:deny",
]


def seeds(target: str, world: World) -> list[bytes]:
    """The inputs a run starts from: P1's queries (each under one of the
    systems, and as extended queries), or tcprules lines of every form,
    alone and together."""
    if target == "tcprules":
        return TCPRULES_LINES + [b"".join(TCPRULES_LINES[:16]), b"".join(TCPRULES_LINES[14:21])]
    out = []
    for i, (query, _) in enumerate(world.cases):
        out.append(b"\0" + query)
        out.append(bytes([i % len(FAULTS)]) + query + (b"\0QV2" if target == "datagram" else b""))
    return out
