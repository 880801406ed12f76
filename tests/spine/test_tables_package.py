"""The tables package (issue 13, point 8): modules by responsibility whose imports go one way, and every name of the
former single module `repro/tables.py` still importable from `repro.tables` (tests, scripts and analyses use it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import repro.tables
from tests.conftest import REPO_ROOT

PACKAGE = Path(repro.tables.__file__).parent

# What each module may import from the package: cli → launching → planning → config; rendering → aggregation →
# planning → config. A module not listed here (a new one) fails the test until its place is decided.
ALLOWED = {
    "config": set(),
    "planning": {"config"},
    "launching": {"planning", "config"},
    "aggregation": {"planning", "config"},
    "rendering": {"aggregation", "config"},
    "cli": {"launching", "planning", "rendering", "config"},
    "__main__": {"cli"},
}

# Every public name the single module had (and the private one a test imports), as its importers spell them.
FORMER_NAMES = [
    "REPO_ROOT", "TRAIN_SCRIPT", "SEARCH_SCRIPT", "RECORD_FILES", "TableError", "table_names", "load_table",
    "table_kind", "expand_refs", "raw_overrides", "slug", "repeat_grid", "repeat_dirname", "table_dir", "RowPlan",
    "_write_pom_fixture", "smoke_fixtures", "write_smoke_fixture", "smoke_overrides", "run_extra", "SELECTIONS",
    "row_selection", "candidate_dirname", "candidate_of", "row_units", "expected_overrides", "expected_identity",
    "record_problem", "resume_problem", "plan_rows", "put_aside", "read_any_record", "train_command",
    "search_command", "alignment_command", "resume_command", "launch", "preflight", "run_table", "lookup", "SPREADS",
    "mean_se", "table_spread", "usable_record", "select_best", "commit_label", "run_line", "collect", "has_paper",
    "format_cells", "SYNTHETIC_BANNER", "row_notes", "render_table", "plot_table", "runs_csv", "main",
]


def package_imports(path: Path) -> set[str]:
    """The sibling modules a module of the package imports (late imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro.tables."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("repro.tables.")}
    return found


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"),
                         ids=lambda p: p.stem)
def test_package_imports_go_one_way(path):
    assert path.stem in ALLOWED, f"{path.name} is not placed in ALLOWED (add it with the modules it may import)"
    assert package_imports(path) <= ALLOWED[path.stem], f"{path.name} imports {package_imports(path)}"


def test_every_module_says_what_it_owns():
    undocumented = [p.name for p in PACKAGE.glob("*.py") if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not undocumented


def test_former_names_are_importable_from_the_package():
    assert [name for name in FORMER_NAMES if not hasattr(repro.tables, name)] == []
    assert repro.tables.collect is repro.tables.aggregation.collect  # the function, not a module of that name
    assert repro.tables.launch is repro.tables.launching.launch


def test_python_m_repro_tables_runs_the_package():
    """`python -m repro.tables` (the package's __main__) lists the tables, as `make tables-list` does."""
    done = subprocess.run([sys.executable, "-m", "repro.tables", "list"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert listed == repro.tables.table_names() and "avdigits" in listed


def test_console_script_target_resolves():
    """pyproject's `repro-tables = "repro.tables:main"` names the command line's main."""
    text = (REPO_ROOT / "pyproject.toml").read_text()
    assert 'repro-tables = "repro.tables:main"' in text
    assert repro.tables.main is repro.tables.cli.main
