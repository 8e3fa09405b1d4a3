"""qmail's own rules and formats, as qmail reads and writes them: the
delivery decision (model, rules), what a dot-qmail file tells qmail-local
(dotqmail), one control file (controlfile), tcpserver's rules files
(tcprules) and cdb writing (cdbmake).  The decision is pure: bytes in, a
Verdict out, asking a System (model.System) for every fact.

May import: protocol and the top-level modules.
"""
