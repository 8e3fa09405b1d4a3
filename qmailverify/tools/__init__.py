"""The programs around the daemon: verify-query (query), qmail-verify-conf
(conf) and qmail-verify-http-conf (httpconf), verify-migrate (migrate,
migratecheck), qmail-verify-demo (demo), and where this installation's
programs are (installed).

May import: protocol, qmail, testing (the demo's tree) and the top-level
modules; never daemon or shim internals, so that each starts quickly.
"""
