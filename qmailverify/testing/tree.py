"""A whole qmail tree from a description: control files, users/assign and
its cdb, a passwd file, home folders with their owners and dot-qmail
files.  The description is the conformance fixtures' format, so the same
code lays out the reference fixture for tests and benchmarks and the demo
tree; '{root}' in any text stands for the folder built in.
"""

import os
from pathlib import Path

from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.testing.newu import compile_assign


def build(spec: dict, root: Path) -> dict:
    """Lay spec out under root (which must exist); returns its paths.

    Every folder made is world-searchable, since stats are made as the
    users.  Owners other than our own uid need root."""
    root = Path(root)
    root.chmod(0o755)

    def sub(text: str) -> str:
        return text.replace("{root}", str(root))

    qmail = root / "qmail"
    for d in (qmail, qmail / "control", qmail / "users", root / "home"):
        d.mkdir(mode=0o755, exist_ok=True)
        d.chmod(0o755)
    for name, text in spec["control"].items():
        (qmail / "control" / name).write_text(sub(text))
    assign = "".join(sub(line) + "\n" for line in spec["users_assign"])
    (qmail / "users" / "assign").write_text(assign)
    write_cdb(str(qmail / "users" / "cdb"), compile_assign(assign.encode()))
    passwd = root / "passwd"
    passwd.write_text("".join(sub(line) + "\n" for line in spec["passwd"]))
    me = os.geteuid()
    for name, home in spec["homes"].items():
        d = root / "home" / name
        d.mkdir(mode=0o755)
        d.chmod(0o755)
        owner = home["owner_uid"]
        for f in home["files"]:
            (d / f).touch()
            if owner != me:
                os.chown(d / f, owner, owner)
        if owner != me:
            os.chown(d, owner, owner)
    return {"root": root, "qmail": qmail, "passwd": passwd}
