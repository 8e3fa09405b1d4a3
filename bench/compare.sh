#!/bin/sh
# bench/compare.sh OLD NEW [ROUNDS [SECONDS]]: bench.py at N=16 for two
# qmail-verify programs (each tree's venv/bin/qmail-verify), alternating
# round by round, one process and VERIFY_WORKERS=2, so that drift on a
# shared machine hits both alike; which of the two goes first changes
# every round, so that neither always runs on the heels of the other.
# Prints each round's share of echo, the medians, and the median of
# each round's difference (new minus old).  As root (bench.py builds
# the fixture's homes).
old=$1 new=$2 rounds=${3-20} seconds=${4-3}
here=`dirname "$0"`
[ -x "$old" ] && [ -x "$new" ] || { echo "usage: compare.sh OLD NEW [ROUNDS [SECONDS]]" >&2; exit 100; }
out=`mktemp`
i=0
while [ $i -lt "$rounds" ]; do
  i=`expr $i + 1`
  case `expr $i % 2` in 1) order="old new" ;; *) order="new old" ;; esac
  for w in 1 2; do
    for tree in $order; do
      eval prog=\$$tree
      share=`python3 "$here/bench.py" --program "$prog" --workers $w --n 16 --rounds 1 \
             --seconds "$seconds" | sed -n 's/^ *16 qmail-verify at \([0-9.]*\)% of echo.*/\1/p'`
      echo "round $i workers $w $tree $share" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import sys
from statistics import median
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
for w in ("1", "2"):
    for tree in ("old", "new"):
        xs = sorted(float(r[5]) for r in rows if r[3] == w and r[4] == tree and len(r) > 5)
        print(f"workers {w} {tree}: median {median(xs):.1f}% of echo over {len(xs)} rounds"
              f" (range {xs[0]:.1f}-{xs[-1]:.1f})")
    pairs = {}
    for r in rows:
        if r[3] == w and len(r) > 5:
            pairs.setdefault(r[1], {})[r[4]] = float(r[5])
    diffs = [p["new"] - p["old"] for p in pairs.values() if len(p) == 2]
    print(f"workers {w}: new minus old, round by round: median {median(diffs):+.2f} points")
PY
rm -f "$out"
