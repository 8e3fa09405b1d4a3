"""VERIFY_WORKERS=N: the master (master), each worker's life (worker), the
counts they share (counts) and the SO_REUSEPORT group with its steering
program (steering).

May import: the rest of daemon and what daemon may import.
"""
