"""Fuzzing the decision core, the daemon's datagram path, the tcprules
reader and the shim's session core: the harness's options, its two
engines and its structure-aware mutator.

    python3 -m qmailverify.testing.fuzz [--runs N] [--target decide|datagram|tcprules|session|all]
                                        [--engine atheris|simple] [--seed S] [--seconds T]
                                        [--fixture P1.json]

Each target runs N inputs (default 10^6) through its check in
targets.py, which says what is checked.  With atheris installed
(pip install 'qmailverify[fuzz]') the engine is libFuzzer, guided by
coverage of the qmailverify package (the harness's own modules left
out), with the mutator below used for half of its mutations; each
target runs in a process of its own.
Without atheris, or with --engine simple, the same mutator alone draws
inputs from the seeds, deterministically for a given --seed (the test
suite runs a short run this way).  A failing input is written to the
current folder as crash-<sha1> (atheris, libFuzzer's way) or printed
(simple), and the exit code is not 0.  Each target's run ends with its
count of inputs, seconds and inputs per second (libFuzzer's "Done ..."
and stat:: lines under atheris).  --seconds caps each atheris target's
time.  --fixture names the reference fixture the system is made from
(default: tests/data/P1.json of the checkout this package is in).
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

TARGETS = ("decide", "datagram", "tcprules", "session")
# the harness's own modules, left uninstrumented: libFuzzer is to follow
# the coverage of what is fuzzed, not of the model judging it
HARNESS = ("qmailverify.testing.smtpd", "qmailverify.testing.fuzz.targets",
           "qmailverify.testing.fuzz.world", "qmailverify.testing.fuzz.session",
           "qmailverify.testing.fuzz.sessionpump")

ADDRESS_TOKENS = [
    b"%", b"@", b"-", b".", b"\0", b"/", b"..", b"/..", b"\n", b":", b"+", b"!",
    b"\0QV2", b"QV2", b"example.com", b"Example.COM", b"mail.example.com",
    b"example.net", b"virt.example.org", b"x.wild.example.org", b"open.example.org",
    b"mary@one.example.org", b"kim", b"alias", b"default", b"news-", b"lists-",
    b"quinn", b"max-a", b"vo-", b"known", b"bob@", b"root", b"postmaster",
    b"\xff", b"\x80", b"\xc3\xa9", b"\x1b[2J", b"\r", b"\t", b" ", b"\x7f",
]
RULES_TOKENS = [
    b":allow", b":deny", b",X=\"v\"", b",VERIFY='DEFER'", b",RELAYCLIENT=\"\"", b"\n",
    b"#", b"-", b"=", b"@", b".", b",", b"\"", b"'", b"\r", b" ", b"\t", b"\0",
    b"0", b"9", b"255", b"256", b"18446744073709551617", b"1.2.3.", b"=host.",
    b"\xff", b"\x1b",
]


def mutate(data: bytes, rng: random.Random, tokens: list, max_size: int) -> bytes:
    """data changed by one to four structure-aware edits: a token inserted
    or written over, a span deleted, repeated or case-flipped, a run of
    one byte (long strings), a random or high byte."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(b))
        op = rng.randrange(8)
        if op == 0:
            b[i:i] = rng.choice(tokens)
        elif op == 1:
            t = rng.choice(tokens)
            b[i:i + len(t)] = t
        elif op == 2:
            del b[i:i + rng.randint(1, 8)]
        elif op == 3:
            span = bytes(b[i:i + rng.randint(1, 16)])
            b[i:i] = span * rng.randint(1, 64)
        elif op == 4:
            run = rng.choice((2, 31, 32, 255, 256, 900, 4096))
            b[i:i] = bytes([rng.choice(b"%@-.a\0/\xff0")]) * run
        elif op == 5:
            b[i:i + 8] = bytes(b[i:i + 8]).swapcase()
        elif op == 6:
            b[i:i] = bytes([rng.randrange(256)])
        elif b:
            b[min(i, len(b) - 1)] = rng.randrange(128, 256)
    return bytes(b[:max_size])


def tokens_for(target: str) -> list:
    if target == "session":
        from qmailverify.testing.fuzz.session import SMTP_TOKENS
        return SMTP_TOKENS
    return RULES_TOKENS if target == "tcprules" else ADDRESS_TOKENS


def run_simple(target: str, runs: int, seed: int = 0, out=sys.stdout, fixture=None) -> int:
    """runs inputs, the seeds first, then mutants of seeds and of earlier
    mutants; 0 if every check held, else 1 (and the input is printed)."""
    from qmailverify.testing.fuzz import targets as ft
    world = ft.load_world(fixture)
    check = ft.CHECKS[target]
    pool = ft.seeds(target, world)
    rng = random.Random(seed)
    tokens, max_size = tokens_for(target), 8192
    start = time.monotonic()
    for n in range(runs):
        data = pool[n] if n < len(pool) else mutate(rng.choice(pool), rng, tokens, max_size)
        try:
            check(data, world)
        except Exception as e:
            print(f"fuzz: {target}: input {n} fails: {type(e).__name__}: {e}\n"
                  f"fuzz: {target}: input: {data!r}", file=out)
            return 1
        if n >= len(pool) and rng.random() < 0.05 and len(pool) < 5000:
            pool.append(data)
    report(target, runs, time.monotonic() - start, out)
    return 0


def report(target: str, runs: int, seconds: float, out=sys.stdout) -> None:
    print(f"fuzz: {target}: {runs} inputs in {seconds:.1f} s, "
          f"{runs / max(seconds, 1e-9):.0f} inputs/s, no property broken", file=out, flush=True)


def run_atheris(target: str, runs: int, seed: int, seconds: int, corpus: str,
                fixture=None) -> int:
    """One target under libFuzzer, in this process (which libFuzzer ends),
    starting from the seeds in the folder corpus.  The modules checked are
    imported here, inside atheris' instrumentation, which is why nothing
    above imports them."""
    import atheris
    with atheris.instrument_imports(include=["qmailverify"], exclude=HARNESS):
        from qmailverify.testing.fuzz import targets as ft
    world = ft.load_world(fixture)
    check = ft.CHECKS[target]
    tokens = tokens_for(target)
    max_len = 4096 if target in ("tcprules", "session") else 1024   # a datagram: up to 900

    def one(data):
        check(data, world)

    def mutator(data, max_size, s):
        rng = random.Random(s)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(data, rng, tokens, max_size)

    args = [sys.argv[0], f"-runs={runs}", f"-seed={seed or 1}", f"-max_len={max_len}",
            "-print_final_stats=1", corpus]
    if seconds:
        args.insert(1, f"-max_total_time={seconds}")
    print(f"fuzz: {target}: libFuzzer {' '.join(args[1:])}", flush=True)
    atheris.Setup(args, one, custom_mutator=mutator)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m qmailverify.testing.fuzz",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10**6)
    p.add_argument("--target", choices=TARGETS + ("all",), default="all")
    p.add_argument("--engine", choices=("atheris", "simple"), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=int, default=0,
                   help="atheris: stop a target after this long even if --runs is not reached")
    p.add_argument("--fixture", help="the reference fixture (default: the checkout's P1.json)")
    p.add_argument("--corpus", help=argparse.SUPPRESS)    # the per-target child
    a = p.parse_args(argv)
    if a.corpus:                       # the per-target child; its parent found the fixture
        return run_atheris(a.target, a.runs, a.seed, a.seconds, a.corpus, a.fixture)
    from qmailverify.testing.fuzz.world import P1_PATH
    fixture = a.fixture or str(P1_PATH)
    if not os.path.isfile(fixture):
        from qmailverify.clean import cleanpath
        print(f"fuzz: fatal: no fixture {cleanpath(fixture)}: give --fixture",
              file=sys.stderr)
        return 111
    engine = a.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "simple"
    targets = TARGETS if a.target == "all" else (a.target,)
    if engine == "simple":
        return max(run_simple(t, a.runs, a.seed, fixture=fixture) for t in targets)
    from qmailverify.testing.fuzz import targets as ft
    world = ft.load_world(fixture)
    rc = 0
    for t in targets:                  # libFuzzer ends its process: one each
        corpus = tempfile.mkdtemp(prefix=f"qv-fuzz-{t}-")
        try:
            for i, s in enumerate(ft.seeds(t, world)):
                with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                    f.write(s)
            rc = max(rc, subprocess.call([sys.executable, "-m", "qmailverify.testing.fuzz",
                                          "--runs", str(a.runs), "--target", t,
                                          "--engine", "atheris", "--seed", str(a.seed),
                                          "--seconds", str(a.seconds), "--fixture", fixture,
                                          "--corpus", corpus]))
        finally:
            shutil.rmtree(corpus, ignore_errors=True)
    return rc
