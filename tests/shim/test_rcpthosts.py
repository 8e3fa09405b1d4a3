"""qmail-smtpd's control/rcpthosts and morercpthosts.cdb, as the shim
reads them (shim/rcpthosts.py), with real files."""

from qmailverify.qmail.cdbmake import write_cdb
from qmailverify.shim.rcpthosts import Rcpthosts


def test_rcpthosts_as_qmail_smtpd_reads_it(tmp_path):
    (tmp_path / "control").mkdir()
    assert Rcpthosts(str(tmp_path)).allowed(b"x@anywhere.example")     # no rcpthosts: no limit
    (tmp_path / "control" / "rcpthosts").write_text("Example.COM\n.sub.example.org\n# c\n")
    write_cdb(str(tmp_path / "control" / "morercpthosts.cdb"), [(b"more.example", b"")])
    r = Rcpthosts(str(tmp_path))
    assert r.allowed(b"x@example.com") and r.allowed(b"x@EXAMPLE.com")
    assert not r.allowed(b"x@www.example.com")                          # exact, unless dotted
    assert r.allowed(b"x@a.sub.example.org") and not r.allowed(b"x@sub.example.org")
    assert r.allowed(b"x@more.example") and not r.allowed(b"x@a.b.more.example")
    assert not r.allowed(b"x@other.example")
    assert r.allowed(b"postmaster")                                      # no @: envnoathost
