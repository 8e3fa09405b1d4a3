"""The running machine, as the daemon sees it: the control files read into
a Controls (controls), the System that answers the rules (live), stats
and reads made as the user (identity, userfiles), the user database
(userdb), cdbs reopened when replaced (cdbsource), change notices
(inotify) and the C library's extra functions (libc).

May import: qmail, hub (control/verifyhub's parser), protocol and the
top-level modules.
"""
