"""The packages import one way: each may import only the packages below it
in LAYERS, so that the tree shows the architecture and no change slips a
cycle in (the shim importing the daemon, hub code importing the loop).

Top-level modules (errors, clean, cli) are the shared base.  The fuzz
harness, testing/fuzz/, is a layer of its own above everything but
tools: it drives the daemon's and the shim's cores, and tools (the demo
builds its tree with testing) must not reach them through testing.  A
package's docstring says what it holds and what it may import; every
__init__.py imports nothing, so that importing one module of a package
costs only that module (each shim session is a new process)."""

import ast
from pathlib import Path

import qmailverify

PACKAGE = Path(qmailverify.__file__).resolve().parent

# package -> the packages it may import ("base": the top-level modules)
MAY_IMPORT = {
    "base": set(),
    "protocol": {"base"},
    "qmail": {"base", "protocol"},
    "hub": {"base", "protocol", "qmail"},
    "system": {"base", "protocol", "qmail", "hub"},
    "deep": {"base", "protocol", "qmail", "system"},
    "daemon": {"base", "protocol", "qmail", "system", "deep", "hub"},
    "shim": {"base", "protocol", "qmail"},
    "testing": {"base", "protocol", "qmail"},
    "tools": {"base", "protocol", "qmail", "testing"},
    "fuzz": {"base", "protocol", "qmail", "hub", "system", "deep", "daemon", "shim", "testing"},
    "http": {"base", "protocol"},
}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def package_of(dotted: str) -> str:
    """'qmailverify.daemon.workers.master' -> 'daemon'; a top-level module -> 'base';
    'qmailverify.testing.fuzz.targets' -> 'fuzz'."""
    parts = dotted.split(".")
    if len(parts) == 1 or not (PACKAGE / parts[1]).is_dir():
        return "base"
    if parts[1:3] == ["testing", "fuzz"]:
        return "fuzz"
    return parts[1]


def imported(path: Path) -> set[str]:
    """The qmailverify modules a file imports, anywhere in it (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            if node.module and node.module.split(".")[0] == "qmailverify":
                found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "qmailverify"}
    return found


def test_every_module_belongs_to_a_known_layer():
    dotted = [".".join(("qmailverify",) + p.relative_to(PACKAGE).with_suffix("").parts)
              for p in modules()]
    assert {package_of(d) for d in dotted} == set(MAY_IMPORT)


def test_packages_import_only_what_is_below_them():
    wrong = []
    for path in modules():
        here = package_of(".".join(("qmailverify",) + path.relative_to(PACKAGE).with_suffix("").parts))
        for name in imported(path):
            there = package_of(name)
            if there != here and there not in MAY_IMPORT[here]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []


def test_the_layers_have_no_cycle():
    order = []
    pending = dict(MAY_IMPORT)
    while pending:
        ready = [p for p, below in pending.items() if below <= set(order)]
        assert ready, f"a cycle among {sorted(pending)}"
        order += ready
        for p in ready:
            del pending[p]


def test_every_package_says_what_it_holds_and_imports_nothing():
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        doc = ast.get_docstring(tree)
        assert doc, f"{init} has no docstring"
        if init.parent != PACKAGE and init.parent.name != "testing":
            assert "May import" in doc, f"{init} does not say what it may import"
        assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], init


def test_a_broken_rule_is_found(tmp_path):
    """The check above can fail: a shim module importing the daemon is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from qmailverify.daemon.loop import Daemon\n")
    assert "daemon" not in MAY_IMPORT["shim"]
    assert package_of(next(iter(imported(bad)))) == "daemon"


def test_tools_cannot_reach_the_daemon_through_the_fuzz_harness(tmp_path):
    """testing's fixture builders are tools' to import; the fuzz harness
    beside them, which imports the daemon and the shim, is not."""
    builders = tmp_path / "builders.py"
    builders.write_text("from qmailverify.testing.tree import build\n")
    harness = tmp_path / "harness.py"
    harness.write_text("from qmailverify.testing.fuzz import targets\n")
    assert package_of(next(iter(imported(builders)))) in MAY_IMPORT["tools"]
    assert package_of(next(iter(imported(harness)))) not in MAY_IMPORT["tools"]
    assert {"daemon", "shim"} <= MAY_IMPORT["fuzz"]
    assert not {"daemon", "shim"} & MAY_IMPORT["testing"]
