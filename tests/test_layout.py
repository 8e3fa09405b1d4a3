"""The maps of the package match the tree: every module is named once in
the package docstring (qmailverify/__init__.py) and in README's Layout,
and every module they name exists."""

import re
from pathlib import Path

import qmailverify

PACKAGE = Path(qmailverify.__file__).resolve().parent
README = PACKAGE.parent / "README"


def modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def named(text: str, prefix: str = "") -> list[str]:
    """Module paths named at the start of a map line ('  name.py  what it is')."""
    return sorted(re.findall(rf"^  {re.escape(prefix)}((?:testing/)?[a-z_]+\.py)\b", text,
                             re.MULTILINE))


def test_the_package_docstring_names_every_module_once():
    assert named(qmailverify.__doc__) == modules()


def test_readme_layout_names_every_module_once():
    layout = README.read_text().split("\nLayout\n", 1)[1]
    assert named(layout, "qmailverify/") == modules()


# Each program's entry points, by aiosmtpd's convention: parseargs(argv)
# returning its own <Program>Options, run(argv) and main(argv=None), USAGE.
PER_PROGRAM = {"USAGE", "main", "parseargs", "run"}


def test_no_two_modules_define_one_name():
    import ast
    where: dict[str, list[str]] = {}
    for module in modules():
        tree = ast.parse((PACKAGE / module).read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                where.setdefault(name, []).append(module)
    shared = {name: found for name, found in where.items()
              if len(found) > 1 and name not in PER_PROGRAM}
    assert shared == {}
