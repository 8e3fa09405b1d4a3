"""Stand-ins for what the programs meet on a real machine, for the tests,
the benchmarks, the fuzz harness and qmail-verify-demo; none of the
programs' own work imports them.

  tree.py    a whole qmail tree (control files, users/assign and its cdb,
             a passwd file, homes with dot-qmail files)
  newu.py    users/assign to users/cdb, as qmail-newu does
  mariadb.py a MariaDB server of the tests' own, in a temporary folder
  vpoptree.py vpopmail domains as vpopmail's own tools write them
  smtpd.py   a model of an unpatched qmail-smtpd, in process, and its
             address parsing and rcpthosts
  fuzz/      the fuzz harness (python3 -m qmailverify.testing.fuzz), a
             layer of its own: it may import the daemon and the shim,
             which nothing else here may

May import: protocol, qmail and the top-level modules.
"""
