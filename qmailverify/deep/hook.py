"""Deep mode in the daemon (VERIFY_DEEP=1): the hooks rules.decide() calls
where qmail-local would defer (checkhome(): its chdir() and checkhome()
before every delivery; checkfile(): a .qmail file writable by others)
and when the dot-qmail search ends at a -default file (verdict()).

Deep.verdict() asks the System for the file as its owner would read it
(System.deep_facts: home and file modes, the first few KB; never run) and
lets judge() decide; the answer carries position 15 (DEEP) and judge()'s
reason.  Forwards are followed through decide() itself with a child Deep
that knows the path so far (judge.follow: a loop is not deliverable, a
path deeper than MAX_DEPTH is temporary), so a target is judged exactly as
a query for it would be, its home's deferrals included.  All of them
share the query's budget (qmail/budget.py): a forward target is judged
once a query however many files name it, at most FORWARDS_MAX targets
are followed, and a file is read once a query; a -default file
forwarding to its own addresses thus costs at most that many decisions,
not one for every path through it.
vdelivermail lines are judged by vpopmail.delivery.vdeliver() over the
store VERIFY_VPOPMAIL names (files: vpopmail.cdbstore.FileStore opening as
the domain's uid/gid; mysql: vpopmail.mysql.MysqlStore in non-blocking
use, whose NeedLookup goes up to the daemon's loop, see
daemon/parking.py).  With no store, a vdelivermail line is a program:
valid.

make_deep() builds the Deep from the daemon's Settings; None when deep
mode is off, so every answer stays the 1.32 one.
"""

from qmailverify.deep.judge import Judgement, follow, judge, parse_of, qmail_local_defer
from qmailverify.deep.vpopmail.delivery import Build, build_from_env, vdeliver
from qmailverify.errors import Trouble
from qmailverify.protocol.wire import TEMPORARY
from qmailverify.qmail.budget import Budget
from qmailverify.qmail.model import MAX_READ, Found, Verdict

DEEP = 15                       # the position of every deep-mode answer


class Deep:
    def __init__(self, store=None, build: Build = Build(), alias: bytes = b"alias",
                 brk: bytes = b"-", chain: tuple = ()):
        self.store = store
        self.build = build
        self.alias = alias
        self.brk = brk
        self.chain = chain      # the addresses forwarded through so far, lowercased
        self.max_waiting = 1000  # queries that may wait for a slow store (daemon.parking)

    def checkhome(self, system, uid: int, gid: int, home: bytes, user: bytes,
                  budget: Budget | None = None) -> Verdict | None:
        """qmail-local's chdir() and checkhome(), made before every delivery
        whatever the extension: TEMPORARY where it would defer, else None.
        The home's stat is a stat of the query's budget."""
        if budget is not None:
            budget.stat()
        try:
            why, detail = qmail_local_defer(system.home_mode(uid, gid, home), 0), ""
        except Trouble as t:
            why, detail = t.kind, "qmail-local: " + str(t)
        return (Verdict(TEMPORARY, DEEP, user, reason="qmail-local: " + why, detail=detail)
                if why else None)

    def checkfile(self, mode: int, user: bytes) -> Verdict | None:
        """qmeexists() on the file the search found (st_mode mode):
        TEMPORARY where it would defer, else None."""
        why = qmail_local_defer(0, mode)
        return Verdict(TEMPORARY, DEEP, user, reason="qmail-local: " + why) if why else None

    def verdict(self, system, controls, found: Found, budget: Budget | None = None) -> Verdict:
        """rules.decide()'s answer for a search that ended at found.path.
        budget: the query's (a fresh one if None); every forward target
        is judged once a query, at most FORWARDS_MAX of them, and each
        file read once."""
        if budget is None:
            budget = Budget()
        if budget.facts is None:
            budget.facts, budget.judged = {}, {}
        slot = (found.uid, found.gid, found.path)
        read = budget.facts.get(slot)
        if read is None:
            budget.read()
            try:
                facts = system.deep_facts(found.uid, found.gid, found.home, found.path)
                read = (facts, parse_of(facts) if len(facts.content) <= MAX_READ else None)
            except Trouble as t:
                read = (t, None)
            budget.facts[slot] = read
        facts, parsed = read
        if isinstance(facts, Trouble):
            return Verdict(TEMPORARY, DEEP, found.user, reason=facts.kind, detail=str(facts))
        chain = self.chain or (found.addr.lower(),)

        def lookup(target: bytes, path: tuple) -> Judgement:
            from qmailverify.qmail.rules import decide  # rules imports model, not us
            key = path[-1]
            out = budget.judged.get(key)
            if out is None:
                budget.forward()
                budget.decision()
                child = Deep(self.store, self.build, self.alias, self.brk, path)
                v = decide(target, controls, system, self.alias, self.brk, child, budget)
                out = budget.judged[key] = Judgement(v.code, v.reason or f"position {v.position}",
                                                     detail=v.detail)
            return out

        def forward(target: bytes) -> Judgement:
            return follow(target, chain, lookup)

        vdelivermail = None
        if self.store is not None:
            store = ChargedStore(self.store, budget)

            def vdelivermail(args: tuple) -> Judgement:
                try:
                    users = system.users()
                except Trouble as t:
                    return Judgement(TEMPORARY, f"vdelivermail: {t.kind}", detail=f"vdelivermail: {t}")
                return vdeliver(args, found.ext, found.host, store, users, self.build)

        out = judge(facts, forward, vdelivermail, parsed)
        return Verdict(out.code, DEEP, found.user, reason=out.reason, variant=out.variant,
                       detail=out.detail)


class ChargedStore:
    """A vpopmail store whose every lookup is a row of the query's budget."""

    def __init__(self, store, budget: Budget):
        self.store, self.budget = store, budget

    def user(self, name: bytes, domain: bytes, assign):
        self.budget.row()
        return self.store.user(name, domain, assign)

    def valias(self, alias: bytes, domain: bytes):
        self.budget.row()
        return self.store.valias(alias, domain)


def make_deep(settings, env, system):
    """The Deep for the daemon's settings (None: deep mode off).  Raises
    Trouble for a vpopmail setting that cannot be used."""
    if not settings.deep:
        return None
    store = None
    if settings.vpopmail == "files":
        from qmailverify.deep.vpopmail.cdbstore import FileStore
        store = FileStore(system.open_as)
    elif settings.vpopmail == "mysql":
        try:
            import pymysql  # noqa: F401
        except ImportError:
            raise Trouble("PyMySQL is not installed (the extra 'mysql')") from None
        from qmailverify.deep.vpopmail.mysql import store_from_env
        store = store_from_env(env, blocking=False)
        # read once, here, as root: the worker thread that connects runs
        # with whatever effective ids the loop has at that moment
        fixed = store._settings()
        store._settings = lambda: fixed
    deep = Deep(store, build_from_env(env), settings.alias, settings.brk)
    waiting = env.get("VERIFY_VPOPMAIL_WAITING", "1000")
    if not waiting.isdigit() or int(waiting) < 1:
        raise Trouble("VERIFY_VPOPMAIL_WAITING must be a number of queries")
    deep.max_waiting = int(waiting)
    return deep
