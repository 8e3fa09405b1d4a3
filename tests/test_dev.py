"""The README's two commands (sh bin/dev demo, sh bin/dev test) as a
newcomer meets them on a stock Debian 12: no python3-venv, no
daemontools, as root or not.  bin/dev runs for real, in a copy of the
clone's layout, with stand-ins for python3 and apt-get that record what
they are asked to do and behave as Debian's do."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import world_tempdir

REPO = Path(__file__).resolve().parent.parent
NOBODY = 65534
ENSUREPIP = ("The virtual environment was not created successfully because ensurepip is not\n"
             "available.  On Debian/Ubuntu systems, you need to install the python3-venv\n"
             "package using the following command.\n\n    apt install python3.11-venv\n")


def test_ci_runs_exactly_the_readme_commands():
    lines = [line for line in (REPO / "README").read_text().splitlines() if line.strip()]
    assert lines[:2] == ["sh bin/dev demo", "sh bin/dev test"]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1] == lines[1]
    assert "bin/dev" not in (REPO / "setup.cfg").read_text()        # not installed
    assert "venv/" in (REPO / ".gitignore").read_text().splitlines()


def script(path: Path, text: str) -> None:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)


@pytest.fixture
def clone():
    """A folder with bin/dev, stand-ins, and a PATH with the few tools sh
    needs but none of the programs the tests drive."""
    if os.geteuid() != 0:
        pytest.skip("needs root (runs bin/dev as root and as another uid)")
    root = world_tempdir("qv-dev-")
    work, stubs, tools = root / "clone", root / "stubs", root / "tools"
    for d in (work / "bin", stubs, tools):
        d.mkdir(parents=True)
    shutil.copy(REPO / "bin" / "dev", work / "bin" / "dev")
    for name in ("sh", "dirname", "id", "rm", "mkdir", "touch", "chmod", "cat", "cmp", "cp"):
        (tools / name).symlink_to(shutil.which(name))
    record = root / "record"
    record.touch()
    # Debian's python3 without python3-venv until apt-get installed it
    script(stubs / "python3", f"""echo "python3 $*" >> {record}
case "$1" in -c) exit 0 ;; esac
mkdir -p venv/bin
if [ ! -e {root}/python3-venv ]; then printf '%s' '{ENSUREPIP}'; exit 1; fi
for p in pip qmail-verify-demo; do
  printf '#!/bin/sh\\necho "venv/bin/%s $* PATH=$PATH" >> {record}\\nexit 7\\n' $p > venv/bin/$p
  chmod 755 venv/bin/$p
done
printf '#!/bin/sh\\necho "venv/bin/python $* PATH=$PATH" >> {record}\\n[ "$1" = -m ] && [ "$2" = pytest ] && exit 7\\nexit 0\\n' > venv/bin/python
chmod 755 venv/bin/python
""")
    # apt-get whose first install fails (no package lists yet) until an update
    script(stubs / "apt-get", f"""echo "apt-get $*" >> {record}
case "$1" in
update) touch {root}/lists ;;
install) [ -e {root}/lists ] || exit 100; touch {root}/python3-venv ;;
esac
""")
    os.chown(work, NOBODY, NOBODY)
    os.chown(record, NOBODY, NOBODY)
    yield {"root": root, "work": work, "record": record,
           "path": f"{stubs}:{tools}"}
    shutil.rmtree(root)


def dev(clone, *args, uid=0):
    wrapper = [] if uid == 0 else [shutil.which("setpriv"), f"--reuid={uid}", f"--regid={uid}",
                                   "--clear-groups"]
    return subprocess.run(wrapper + [shutil.which("sh"), "bin/dev", *args], cwd=clone["work"],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": clone["path"]})


def record(clone) -> list[str]:
    return clone["record"].read_text().splitlines()


@pytest.mark.system
def test_demo_as_root_installs_python3_venv_and_runs_the_demo(clone):
    r = dev(clone, "demo")
    assert r.returncode == 7, r.stderr                   # the demo's own exit code
    assert r.stderr == "bin/dev: apt-get install python3-venv\n"
    assert [line.split(" PATH=")[0] for line in record(clone)[1:]] == [
        "python3 -m venv venv",
        "apt-get install -y -qq python3-venv",            # fails: no package lists
        "apt-get update -qq",
        "apt-get install -y -qq python3-venv",
        "python3 -m venv venv",
        "venv/bin/python -m pip install -q .",
        "venv/bin/qmail-verify-demo "]
    # the second time, ./venv is reused (once its python runs)
    clone["record"].write_text("")
    r = dev(clone, "demo")
    assert [line.split(" PATH=")[0] for line in record(clone)] == [
        "venv/bin/python -c ", "venv/bin/python -m pip install -q .", "venv/bin/qmail-verify-demo "]


@pytest.mark.system
def test_without_root_it_says_in_one_line_what_to_install(clone):
    r = dev(clone, "demo", uid=NOBODY)
    assert r.returncode == 111
    assert r.stderr == ("bin/dev: fatal: python3 -m venv needs ensurepip: install python3-venv "
                        "(apt-get install python3-venv) and try again\n")
    assert not any(line.startswith("apt-get") for line in record(clone))
    assert not (clone["work"] / "venv").exists()       # no half-made venv left


@pytest.mark.system
def test_test_as_root_installs_what_the_tests_drive_and_passes_arguments(clone):
    r = dev(clone, "test", "-k", "some thing")
    assert r.returncode == 7                              # pytest's exit code
    lines = record(clone)
    assert ("apt-get install -y -qq daemontools ucspi-tcp groff-base man-db procps util-linux "
            "mariadb-server") in lines
    assert "venv/bin/python -m pip install -q .[test]" in [l.split(" PATH=")[0] for l in lines]
    pytest_run = lines[-1]
    assert pytest_run.startswith("venv/bin/python -m pytest -k some thing PATH=")
    assert pytest_run.split("PATH=")[1].startswith(f"{clone['work']}/venv/bin:")


@pytest.mark.system
def test_test_without_root_names_what_is_missing(clone):
    (clone["root"] / "python3-venv").touch()             # python3-venv is there
    r = dev(clone, "test", uid=NOBODY)
    assert r.returncode == 7
    assert r.stderr.splitlines() == [
        "bin/dev: warning: the tests that need them will skip: install daemontools ucspi-tcp "
        "groff-base man-db procps util-linux mariadb-server (apt-get install daemontools "
        "ucspi-tcp groff-base man-db procps util-linux mariadb-server)",
        "bin/dev: warning: no node on PATH: the Haraka tests will skip (install Node.js 20 or "
        "newer)",
        "bin/dev: warning: not root: the tests that need root (most) will skip"]


@pytest.mark.system
def test_test_installs_haraka_with_node_20_once_and_names_an_older_node(clone):
    (clone["root"] / "python3-venv").touch()
    stubs, record_file = clone["root"] / "stubs", clone["record"]
    script(stubs / "node", "echo v18.19.0\n")
    r = dev(clone, "test")
    assert "bin/dev: warning: node v18.19.0 is older than 20: the Haraka tests will skip " \
           "(install Node.js 20 or newer)\n" in r.stderr
    assert not any(line.startswith("npm") for line in record(clone))
    script(stubs / "node", "echo v20.20.2\n")
    script(stubs / "npm", f"""echo "npm $* in $(pwd)" >> {record_file}
mkdir -p node_modules
""")
    http = clone["work"] / "tests" / "http"
    http.mkdir(parents=True)
    (http / "package-lock.json").write_text("{}\n")
    dev(clone, "test")
    dev(clone, "test")                                   # the same lock: not again
    assert [line for line in record(clone) if line.startswith("npm")] == [
        f"npm ci --omit=optional --no-audit --no-fund --loglevel=error in {http}"]
    (http / "package-lock.json").write_text('{"changed": 1}\n')
    r = dev(clone, "test")
    assert len([line for line in record(clone) if line.startswith("npm")]) == 2
    assert "Haraka" not in r.stderr


@pytest.mark.system
def test_usage(clone):
    for args in ((), ("build",), ("demo", "extra")):
        r = dev(clone, *args)
        assert r.returncode == 100
        assert r.stderr == "bin/dev: usage: sh bin/dev demo | sh bin/dev test [pytest-args]\n"
