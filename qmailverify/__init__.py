"""qmailverify: refuse mail for nonexistent qmail recipients at SMTP time.

The package is laid out so that the decision logic stands apart from I/O:

  wire.py      the UDP datagram formats (pure)
  rules.py     qmail's delivery rules: address bytes in, verdict out (pure)
  clean.py     making untrusted bytes safe for a log line (pure)
  addrspec.py  LISTEN and VERIFY server addresses (pure)
  controls.py  reading qmail control files
  system.py    users/cdb, the passwd source, and stats made as the user
  daemon.py    the qmail-verify UDP server around rules.decide()
"""

__version__ = "0.1.0"
