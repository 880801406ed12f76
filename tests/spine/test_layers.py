"""Layers import downward only: every `import repro...` in src/repro (late imports inside functions included) goes to
a module of the same or a lower layer, so data and models never depend on training, the search, analyses or tables,
and no two packages import each other (the analysis <-> train cycle is gone)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Lowest first. A module's layer is that of its longest listed prefix; a module may import its own layer or lower.
LAYERS: list[tuple[str, ...]] = [
    ("repro", "repro.config", "repro.provenance", "repro.allocator", "repro.files"),  # settings, identity, atomic
    # file writes: no repro imports
    ("repro.results", "repro.metrics", "repro.optimization"),           # records, metrics, optimiser specs
    ("repro.runs", "repro.resume"),  # reads what earlier runs left (checkpoints, search records, resume plans)
    ("repro.data",),                # readers, fixtures, transforms, datamodule
    ("repro.models",),              # encoders, fusion networks, losses, complexity counting; receive loaded data only
    ("repro.task",),                # the LightningModule
    ("repro.train",),               # one training run
    ("repro.evaluate",),            # evaluate a trained run (rebuilds it with train's builders)
    ("repro.search",),              # MFAS search (pre-trains encoders with train)
    ("repro.analysis",),            # analyses of finished runs and searches
    ("repro.tables",),              # plan, launch, aggregate and render paper tables
    ("repro.analysis.mica_sensitivity", "repro.analysis.mesm_topp"),  # figures drawn from tables' aggregated rows
]
RANK = {prefix: rank for rank, prefixes in enumerate(LAYERS) for prefix in prefixes}


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in RANK:
            return RANK[".".join(parts[:n])]
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in {Path(__file__).name}")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every repro import anywhere in the source; `from pkg import sub` counts as pkg.sub."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known]
            found += [(node.lineno, m) for m in subs] or [(node.lineno, node.module)]
    return [(line, m) for line, m in found if m == "repro" or m.startswith("repro.")]


def upward_imports(module: str, source: str, known: set[str]) -> list[str]:
    own = layer_of(module)
    return [f"{module}:{line} imports {target} (layer {layer_of(target)} > {own})"
            for line, target in imported_modules(source, known) if layer_of(target) > own]


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / "repro").rglob("*.py"))}


def test_every_module_imports_downward_only():
    modules = all_modules()
    known = set(modules)
    problems = [p for name, path in modules.items() for p in upward_imports(name, path.read_text(), known)]
    assert not problems, "upward imports:\n" + "\n".join(problems)


@pytest.mark.parametrize("module, source", [
    ("repro.models.init", "def f():\n    from repro.train import build_net\n"),          # late import
    ("repro.models.fusion.mfas", "import repro.search.state\n"),
    ("repro.train", "from repro.analysis import runs\n"),                               # the old cycle
    ("repro.data.cmu", "from repro import train\n"),
])
def test_an_upward_import_is_caught(module, source):
    assert len(upward_imports(module, source, set(all_modules()))) == 1


def test_data_and_models_import_no_higher_layer():
    """The issue's wording, checked directly: nothing under models/ or data/ names results' loaders, the search,
    training or tables."""
    modules = all_modules()
    forbidden = ("repro.results", "repro.runs", "repro.search", "repro.train", "repro.tables", "repro.task")
    for name, path in modules.items():
        if name.startswith(("repro.models", "repro.data")):
            bad = [m for _, m in imported_modules(path.read_text(), set(modules)) if m.startswith(forbidden)]
            assert not bad, f"{name} imports {bad}"
