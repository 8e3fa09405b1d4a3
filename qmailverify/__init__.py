"""qmailverify: refuse mail for nonexistent qmail recipients at SMTP time.

The packages, by role (each one's docstring says what it holds and what
it may import; tests/test_layering.py holds them to it):

  protocol/   the datagrams, VERIFY's variables, the client, a reply
  qmail/      qmail's delivery rules and file formats (pure where it can be)
  system/     the running machine: control files, users, stats as the user
  hub/        hub mode: domains a far qmail-verify answers for
  deep/       deep mode: what a -default file does; vpopmail/ and its stores
  daemon/     qmail-verify, the UDP daemon; workers/ for VERIFY_WORKERS
  shim/       qmail-logmsg, before an unpatched qmail-smtpd
  tools/      verify-query, qmail-verify-conf, verify-migrate, the demo
  testing/    fixture builders and models for the tests and the fuzzers

errors.py, clean.py and cli.py are the base every package shares: the
failures and their exit codes, untrusted bytes made safe for a log line,
and the programs' common options.
"""

__version__ = "0.1.0"
