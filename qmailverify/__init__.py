"""qmailverify: refuse mail for nonexistent qmail recipients at SMTP time.

The decision logic stands apart from I/O.  Every module is named below,
once (tests/test_layout.py holds this map to the tree).

The decision (pure: bytes in, answers out; no sockets, no files):
  model.py        Controls, Passwd, StatHit, Verdict and the System interface
  rules.py        qmail's delivery rules: address in, Verdict out
  verifier.py     one datagram in, its reply and log lines out (get_reply)
  wire.py         the UDP datagram formats
  errors.py       Fatal, Trouble, LostPrivileges; errtext() words an errno

Pure helpers the programs share:
  clean.py        making untrusted bytes safe for a log line
  addrspec.py     LISTEN and VERIFY server addresses
  verifyenv.py    VERIFY's grammar, one parser for every program
  tcprules.py     tcpserver rules files, as tcprules and tcpserver read them
  stats.py        the daemon's counters and its statistics line
  harvest.py      refused recipients counted per client IP, in a sliding window
  cli.py          -h, -V, getopt and output errors, for every program

What the daemon reads from the running system:
  controls.py     qmail's control files into a Controls
  controlfile.py  how qmail reads one control file
  system.py       the System on the machine: users/cdb, stats made as the user
  cdbsource.py    users/cdb or fastforward's cdb, reopened when replaced, read whole
  identity.py     stats as the user (CVE-2020-3812): the ids, per thread when needed
  libc.py         the C library's functions the standard library lacks, opened once
  inotify.py      knowing that users/cdb or a passwd file changed without a stat
  userdb.py       the user database: a passwd file, or getpwnam_r()
  startup.py      what is checked before the daemon says it listens

qmail-verify, the daemon:
  daemon.py       the program: options, start-up, main()
  daemonenv.py    its environment (QMAILHOME, LISTEN, VERIFY_*) into Settings
  daemonloop.py   the UDP loop: read, answer in batches, wait
  signalqueue.py  signals queued by the handlers, dispatched by name by the loop
  daemonlog.py    the log: whole lines, written in pieces no bigger than PIPE_BUF
  daemonpark.py   the loop's side of parking: park, resume, give up
  fairqueue.py    datagrams read but not yet answered, taken round-robin by sender
  background.py   -d: detached, for systems without supervise
  title.py        the process title and command name
  workerstart.py  VERIFY_WORKERS: the master's start, up to "Listening"
  workers.py      the master: its signals, its workers' lives
  workerloop.py   one worker, from the fork to its exit
  workerstats.py  the workers' counts shared with the master, for one stats line
  steering.py     the SO_REUSEPORT group and its BPF program: one worker per client IP
  udpsocket.py    the daemon's UDP socket: bound, with a buffer for a burst

verify-query:
  client.py       asking the daemon (PendingQuery, ask)
  query.py        the program

qmail-logmsg, the shim before an unpatched qmail-smtpd:
  smtp.py         SMTP as qmail-smtpd reads it (pure)
  smtpsession.py  the session: events in, actions out (pure)
  smtpcommands.py its one handler a command, and the Policy (pure)
  smtpview.py     qmail-smtpd's transaction, as its replies tell it (pure)
  shimenv.py      VERIFY_ROLLOUT and the VERIFY_HARVEST_* limits
  rcpthosts.py    control/rcpthosts and morercpthosts.cdb, as qmail-smtpd reads them
  ipme.py         this host's IPv4 addresses, as qmail's ipme.c finds them
  spawn.py        starting qmail-smtpd on pipes, and reaping it
  relay.py        the select() loop moving bytes around the session
  logmsg.py       the program: controls, then qmail-smtpd and the relay
  summary.py      qmail-logmsg -s: one line a session from its log
  loggedsession.py  one session's record for -s, from its log lines

The other programs:
  conf.py         qmail-verify-conf (and the service files it writes)
  migrate.py      verify-migrate: the old VERIFY variables rewritten to 1.30's
  migratecheck.py verify-migrate -c: which verification each client gets
  demo.py         qmail-verify-demo
  installed.py    where this installation's own programs are
  cdbmake.py      writing a cdb atomically, as djb's tools do

Deep mode and vpopmail (VERIFY_DEEP=1, VERIFY_VPOPMAIL, VERIFY_TRACE):
  deep.py         the hook rules.decide() calls at a -default file (position 15)
  userfiles.py    reading a user's -default file and vpasswd as that user
  parking.py      queries waiting for a slow store, and its one worker thread
  trace.py        the decision trace line
  dotqmail.py     what a dot-qmail file tells qmail-local to do
  deepmode.py     judging an address by what its -default file does
  outcome.py      a deep-mode answer, and NeedLookup for a slow store
  vpopmail.py     would vdelivermail deliver this address?
  vpasswd.py      vpopmail's cdb backend: vpasswd and vpasswd.cdb
  vpmysql.py      vpopmail's MySQL/MariaDB backend, through PyMySQL
  vpmysqlconf.py  vpopmail's MySQL settings, as vpopmail reads them

Hub mode (control/verifyhub; VERIFY_HUB_*):
  hubmap.py       control/verifyhub: which domains a far qmail-verify answers for
  hubcache.py     far answers kept (positive and negative lifetimes), and the ask
  hubrelay.py     a hub domain's query relayed, with its legacy or extended semantics

Fixture builders (tests, bench, the demo; no program's own work):
  testing/tree.py  a whole qmail tree from a description
  testing/newu.py  users/assign to users/cdb, as qmail-newu does
"""

__version__ = "0.1.0"
