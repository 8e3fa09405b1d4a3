"""qmail-verify-http: the qmail-verify daemon's answers over
Qmail::Deliverable's HTTP protocol, for Haraka's and qpsmtpd's
qmail_deliverable plugins: the pure request-to-answer core (qd1), the
h11 server around it (server), and the program (main).

May import: protocol (the daemon's client) and the top-level modules;
nothing of the daemon or the rules: the daemon is the one source of
truth, asked over UDP.
"""
