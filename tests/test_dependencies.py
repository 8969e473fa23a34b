"""Every module the package (and the test suite) imports is declared in pyproject.toml, so a fresh install
cannot miss one that a hand-installed package hid on the developer's machine."""

from __future__ import annotations

from pathlib import Path

from tests.dependency_scan import declared, imported_modules, undeclared_imports

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
OWN = {"specdec", "tests"}


def test_package_imports_are_declared():
    problems = undeclared_imports(ROOT / "specdec", declared(PYPROJECT), OWN)
    assert not problems, "\n".join(map(str, problems))


def test_core_package_needs_no_test_extra():
    """The package itself never imports what only the test extra installs."""
    core = declared(PYPROJECT, extras=())
    test_only = declared(PYPROJECT, extras=("test",)) - core
    problems = undeclared_imports(ROOT / "specdec", declared(PYPROJECT) - test_only, OWN)
    assert not problems, "\n".join(map(str, problems))


def test_test_suite_imports_are_declared():
    problems = undeclared_imports(ROOT / "tests", declared(PYPROJECT, extras=("test",)), OWN)
    assert not problems, "\n".join(map(str, problems))


def test_scripts_imports_are_declared():
    problems = undeclared_imports(ROOT / "scripts", declared(PYPROJECT), OWN)
    assert not problems, "\n".join(map(str, problems))


def test_scan_catches_an_undeclared_import_inside_a_function(tmp_path):
    """A planted module importing an installed but undeclared distribution (inside a function) and a module
    nobody provides: both are reported, with their file and line; declared ones are not."""
    pkg = tmp_path / "planted"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import torch\nfrom planted import helper\n")
    (pkg / "helper.py").write_text(
        "import os\n\n\ndef plot():\n    import pytest  # installed, but not a core dependency\n"
        "    from no_such_distribution_xyz.sub import thing\n    return thing\n")
    problems = {p.module: p for p in undeclared_imports(pkg, declared(PYPROJECT, extras=()), {"planted"})}
    assert set(problems) == {"pytest", "no_such_distribution_xyz"}
    assert problems["pytest"].where.endswith("helper.py:5") and problems["pytest"].distribution == "pytest"
    assert problems["no_such_distribution_xyz"].distribution is None
    assert "not declared" in str(problems["pytest"])


def test_scan_sees_nested_and_from_imports(tmp_path):
    (tmp_path / "m.py").write_text("from a.b import c\n\nclass K:\n    def f(self):\n        import d.e\n"
                                   "from . import rel\n")
    assert set(imported_modules(tmp_path)) == {"a", "d"}
