"""qmailverify: refuse mail for nonexistent qmail recipients at SMTP time.

The decision logic stands apart from I/O.

Pure (bytes in, answers out; no sockets, no files):
  wire.py      the UDP datagram formats
  rules.py     qmail's delivery rules: address in, verdict out
  clean.py     making untrusted bytes safe for a log line
  addrspec.py  LISTEN and VERIFY server addresses
  smtp.py      SMTP as qmail-smtpd reads it
  smtpsession.py, smtpcommands.py, smtpview.py   qmail-logmsg's session
  verifyenv.py VERIFY's grammar
  tcprules.py  tcpserver rules files, as tcprules and tcpserver read them

What the rules read, from the running system:
  controls.py  qmail's control files (controlfile.py: one file;
               rcpthosts.py: qmail-smtpd's rcpthosts; ipme.py: own IPs)
  system.py    users/cdb, the user database, stats made as the user
  errors.py    temporary trouble or not, and qmail's wording for errno
  newu.py, cdbmake.py, tree.py   building users/cdb, cdb files, whole trees

Programs, thin around the above:
  daemon.py (qmail-verify, with background.py for -d), client.py and
  query.py (verify-query), logmsg.py, spawn.py and summary.py (qmail-logmsg),
  conf.py (qmail-verify-conf), migrate.py (verify-migrate), demo.py
"""

__version__ = "0.1.0"
