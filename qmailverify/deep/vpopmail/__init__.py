"""vpopmail's decision, as vdelivermail makes it (delivery), and the stores
it asks: the cdb backend (cdbstore) and MySQL or MariaDB (mysql, with
vpopmail's own settings file in mysqlconf).

May import: deep.judge, qmail, protocol and the top-level modules.
"""
