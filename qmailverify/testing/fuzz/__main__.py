"""python3 -m qmailverify.testing.fuzz: the runner (runner.py)."""

import sys

from qmailverify.testing.fuzz.runner import main

sys.exit(main())
