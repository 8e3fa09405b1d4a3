"""The answer of a deep-mode judgement, and the one exception it may raise.

Judgement carries a wire code (wire.DELIVERABLE, UNDELIVERABLE, TEMPORARY)
and a short reason for the decision trace and for an extended reply's
temporary text.  NeedLookup is how a judgement says "the answer waits for
a slow store": the daemon parks the query, a worker fetches the key into
the store's cache, and the query is judged again (see deepmode.py's
design note).  Nothing else may escape a judgement: a store's trouble is
a Judgement with TEMPORARY, never an exception and never "not deliverable".
"""

from typing import NamedTuple


class Judgement(NamedTuple):
    code: int            # wire.DELIVERABLE, UNDELIVERABLE or TEMPORARY
    reason: str


class NeedLookup(Exception):
    """The answer needs store.fill(key) first (a slow store in non-blocking
    use); .store and .key say what to fetch."""

    def __init__(self, store, key):
        super().__init__(key)
        self.store = store
        self.key = key
