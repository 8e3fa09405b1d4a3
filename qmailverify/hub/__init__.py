"""Hub mode (control/verifyhub): domains another qmail-verify answers for
(map), the far answers kept and asked for (cache), and a hub domain's
query answered from them (answer).

May import: qmail, protocol and the top-level modules.
"""
