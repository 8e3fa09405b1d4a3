"""The fuzz harness: properties of the decision core, the daemon's
datagram path, the tcprules reader and the shim's session core, checked
over inputs a mutator (or libFuzzer, through atheris) draws from seeds.
Run as

    python3 -m qmailverify.testing.fuzz [--target ...] [--runs N] ...

(runner.py says how); the test suite runs a short run of every target.

  runner.py       the options, the engines and the structure-aware mutator
  targets.py      what is checked, one function a target
  world.py        the system the checks run against: P1 in memory
  session.py      the session target: the shim against the qmail-smtpd model
  sessionpump.py  the shim's session and the qmail-smtpd model wired in
                  process, the pump's part played by hand (the session's
                  tests drive it too)

May import: every package but tools, as it drives the daemon's and the
shim's cores; kept apart from testing's fixture builders so that what
tools imports from testing reaches neither.
"""
