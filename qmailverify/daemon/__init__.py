"""qmail-verify, the UDP daemon: the program (main), its settings, the loop
(loop) around the pure answer (answer), signals, parking of slow
lookups, the fair queue, statistics, the log, the process title,
background mode and the socket; workers/ for VERIFY_WORKERS.

May import: every package but shim and tools.
"""
