"""qmail-logmsg, the shim between tcpserver and an unpatched qmail-smtpd:
SMTP as qmail-smtpd reads it (smtp), the pure session (session, with one
handler a command in commands and qmail-smtpd's transaction in view),
the I/O around it (pump: qmail-smtpd started on pipes and reaped, and
the byte pump), qmail-smtpd's controls (rcpthosts, ipme), the program (main), and -s's
log summary (summary, sessionrecord).

May import: protocol, qmail and the top-level modules; nothing of the
daemon.  Kept lean: every session is a new process that imports it.
"""
