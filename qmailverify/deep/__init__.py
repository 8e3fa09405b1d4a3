"""Deep mode (VERIFY_DEEP=1): an address whose dot-qmail search ends at a
-default file is judged by what that file does (judge), through the hook
the rules call (hook), and vpopmail's own decision with its stores
(vpopmail/).

May import: qmail, system, protocol and the top-level modules.
"""
