"""What crosses the wire between qmail-smtpd and the daemon, and what every
client needs to ask: the datagram formats (wire), the server addresses
(addrspec), VERIFY and its companion variables as tcpserver's rules set
them (verifyenv), the client (client), and a verdict said as a reply and
log lines (reply, trace).

May import: the top-level modules (errors, clean, cli) only.
"""
