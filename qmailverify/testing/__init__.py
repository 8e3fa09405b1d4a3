"""Fixture builders: qmail trees made from a description, for the tests,
the benchmarks, the fuzz harness and qmail-verify-demo; none of the
programs' own work imports them.

  tree.py   a whole qmail tree (control files, users/assign and its cdb,
            a passwd file, homes with dot-qmail files)
  newu.py   users/assign to users/cdb, as qmail-newu does
"""
