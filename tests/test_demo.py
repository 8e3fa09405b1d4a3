"""The README's first command: the demo answers as a newcomer expects."""

import subprocess

from helpers import executable


def test_demo_shows_the_daemon_answering():
    r = subprocess.run([executable("qmail-verify-demo")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("  ")}
    assert "deliverable (alice) [rule 9]" in lines["alice@demo.example"]
    assert "not deliverable (alias) [rule 14]" in lines["nobody-here@demo.example"]
    assert "deliverable (carol) [rule 12]" in lines["help-billing@demo.example"]
    assert "qmail-verify: nobody-here@demo.example denied." in r.stdout
    assert "exiting on SIGTERM." in r.stdout


def test_demo_says_what_the_parentheses_hold():
    r = subprocess.run([executable("qmail-verify-demo")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert ("(in parentheses: the name qmail looked up, the controlling user;"
            " not necessarily an account)") in r.stdout
    assert "deliverable (alice-work) [rule 10]" in r.stdout
