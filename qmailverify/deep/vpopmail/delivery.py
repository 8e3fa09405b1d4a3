"""vpopmail's own decision: would vdelivermail deliver this address?

When the dot-qmail search of a vpopmail domain ends at its .qmail-default
line `| ~vpopmail/bin/vdelivermail '' BOUNCE`, qmail's answer is
vdelivermail's.  vdeliver() makes it the way vdelivermail.c (sagredo-dev
vpopmail) does, pure over a user store:

1. Two arguments or vdelivermail defers ("invalid syntax in .qmail-default").
2. The user is qmail-local's EXT, the domain its HOST (the address's
   domain), both lowercased (ASCII) and cut at 156 bytes as lowerit()
   does.  A user with a byte outside is_username_valid()'s set, or a
   domain outside [-.0-9A-Za-z], is bounced.
3. The domain is found as vget_assign() finds it: the users/cdb entry
   "!DOMAIN-" holds "REALDOMAIN\\0UID\\0GID\\0DIR\\0..."; an alias domain
   becomes its real domain.  With no entry the cdb backend knows no user
   of it; the SQL backend still asks for the domain as given.
4. With the SQL valias table (--enable-valias): rows for the user, else for
   each "PREFIX-default" (longest prefix first), else (qmail-ext builds,
   when the user has a '-') for the part before the first '-': any row
   means delivered.
5. The user, then (qmail-ext builds, --enable-qmail-ext, when the user has
   a '-') the part before the first '-'.  A known user whose pw_gid has
   BOUNCE_MAIL (0x10, vmoduser -b) is bounced; any other known user is
   delivered (vdelivermail creates a missing home or Maildir; no other
   pw_gid flag, NO_POP and the like, and no vlimits flag stops delivery).
6. An unknown user: BOUNCE "bounce-no-mailbox" bounces, "delete" discards
   (not deliverable for us: nobody gets the mail), anything else (an
   address, a Maildir path) is the domain's catch-all: delivered.

Where vdelivermail would bounce or discard on its own trouble (a users/cdb
it cannot open, a vpasswd.cdb it cannot read, a SQL query that fails after
its one reconnect), we answer "temporary": our rule is that trouble is
never "no such mailbox".  Not judged: quotas (they depend on the message
and change by the minute), the user's own .qmail, the looping check.
"""

from typing import NamedTuple, Protocol

from qmailverify.deep.judge import Judgement
from qmailverify.errors import Trouble
from qmailverify.protocol.wire import (
    CATCH_ALL,
    DELIVERABLE,
    MAILBOX,
    QMAIL_EXT,
    TEMPORARY,
    UNDELIVERABLE,
    VALIAS,
)

BOUNCE_MAIL = 0x10           # vpopmail.h: pw_gid flag, "bounce mail"
BOUNCE_ALL = b"bounce-no-mailbox"
DELETE_ALL = b"delete"
LOWERIT_MAX = 156            # lowerit() cuts a string here

_USER_OK = frozenset(
    [33, 35, 36, 38, 39, 42, 43, 61, 63] + list(range(45, 58))
    + list(range(65, 91)) + list(range(94, 127)))
_DOMAIN_OK = frozenset(b"-." + bytes(range(48, 58)) + bytes(range(65, 91))
                       + bytes(range(97, 123)))


class Assign(NamedTuple):
    """A vpopmail domain as users/assign has it."""
    domain: bytes        # the real domain
    uid: int
    gid: int
    dir: bytes


class VUser(NamedTuple):
    """A vpopmail user (struct vqpasswd, the fields we use)."""
    name: bytes
    uid: int             # vpopmail keeps apop/pop here
    gid: int             # and the flags here (BOUNCE_MAIL, NO_POP, ...)
    dir: bytes
    shell: bytes         # the quota


class Build(NamedTuple):
    """How vpopmail was configured."""
    qmail_ext: bool = False      # --enable-qmail-ext
    valias: bool = False         # --enable-valias (SQL backends)


def build_from_env(env) -> Build:
    """VERIFY_VPOPMAIL_QMAIL_EXT=1 and VERIFY_VPOPMAIL_VALIAS=1 say how the
    site's vpopmail was configured."""
    return Build(env.get("VERIFY_VPOPMAIL_QMAIL_EXT") == "1",
                 env.get("VERIFY_VPOPMAIL_VALIAS") == "1")


class Store(Protocol):
    """A vpopmail user store.  Every method may raise Trouble (the store
    cannot say) or NeedLookup (the store is fetching)."""

    def user(self, name: bytes, domain: bytes, assign: Assign | None) -> VUser | None:
        ...

    def valias(self, alias: bytes, domain: bytes) -> list[bytes]:
        ...


def lowerit(s: bytes) -> bytes:
    return s[:LOWERIT_MAX].lower()


def username_valid(user: bytes) -> bool:
    return all(b in _USER_OK for b in user)


def domain_valid(domain: bytes) -> bool:
    return all(b in _DOMAIN_OK for b in domain)


def atoi(field: bytes) -> int:
    """C's atoi(): leading white space, a sign, digits; 32-bit wrap."""
    s = field.lstrip(b" \t\n\v\f\r")
    sign = 1
    if s[:1] in (b"-", b"+"):
        sign = -1 if s[:1] == b"-" else 1
        s = s[1:]
    digits = len(s) - len(s.lstrip(b"0123456789"))
    n = sign * int(s[:digits]) if digits else 0
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


def assign_of(users_cdb, host: bytes) -> Assign | None:
    """vget_assign(): the users/cdb entry of domain host (lowercased), or
    None.  users_cdb is an object with .get(), None for no users/cdb."""
    if users_cdb is None or not host:
        return None
    value = users_cdb.get(b"!" + host + b"-")
    if value is None:
        return None
    f = value.split(b"\0")
    f += [b""] * (4 - len(f))
    return Assign(f[0], atoi(f[1]), atoi(f[2]), f[3])


def vdeliver(args: tuple, ext: bytes, host: bytes, store: Store, users_cdb,
             build: Build = Build()) -> Judgement:
    """vdelivermail's answer for EXT ext at HOST host, run with args (the
    words after its name).  users_cdb as in assign_of(); reading it may
    raise Trouble."""
    if len(args) != 2:
        return Judgement(TEMPORARY, "vdelivermail: invalid syntax in .qmail-default file")
    bounce = args[1]
    user, host = lowerit(ext), lowerit(host)
    if not username_valid(user):
        return Judgement(UNDELIVERABLE, "vdelivermail: invalid username")
    if not domain_valid(host):
        return Judgement(UNDELIVERABLE, "vdelivermail: invalid domain name")
    base = user.split(b"-", 1)[0] if build.qmail_ext else user
    try:
        assign = assign_of(users_cdb, host)
        domain = assign.domain.lower() if assign is not None else host
        if build.valias and _has_valias(store, user, base, domain):
            return Judgement(DELIVERABLE, "vdelivermail: valias", VALIAS)
        pw, variant = store.user(user, domain, assign), MAILBOX
        if pw is None and base != user:
            pw, variant = store.user(base, domain, assign), QMAIL_EXT
    except Trouble as t:
        return Judgement(TEMPORARY, f"vdelivermail: {t.kind}", detail=f"vdelivermail: {t}")
    if pw is not None:
        if pw.gid & BOUNCE_MAIL:
            return Judgement(UNDELIVERABLE, "vdelivermail: account is locked")
        return Judgement(DELIVERABLE, "vdelivermail: user", variant)
    if bounce == DELETE_ALL:
        return Judgement(UNDELIVERABLE, "vdelivermail: no such user, mail deleted")
    if bounce == BOUNCE_ALL:
        return Judgement(UNDELIVERABLE, "vdelivermail: no such user")
    return Judgement(DELIVERABLE, "vdelivermail: catch-all", CATCH_ALL)


def _has_valias(store: Store, user: bytes, base: bytes, domain: bytes) -> bool:
    """process_valias(): does any valias row take this user?"""
    if store.valias(user, domain):
        return True
    for i in range(len(user), 0, -1):
        if user[i - 1:i] == b"-":
            if store.valias(user[:i] + b"default", domain):
                return True
    return base != user and bool(store.valias(base, domain))

