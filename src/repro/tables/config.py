"""Table configs: load and validate `configs/table/<name>.yaml`, and what follows from it alone.

A table's title, rows and columns, its `kind` (which record its runs write), `spread`, a row's `select` spec; the
repeat grid (seeds and/or folds) and folder names; the output folder, `{table:<name>}` references to another table's
folder; the overrides the runner adds to every row, and in SMOKE mode the fixture from the dataset registry
(`repro.data.registry`: the fixture writer and its overrides; no dataset knowledge here).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from repro.config import CONFIG_DIR
from repro.results import FILENAME

REPO_ROOT = CONFIG_DIR.parent

RECORD_FILES = {"train": FILENAME, "search": "search.json", "alignment": "alignment.json"}  # kind -> its record

_TABLE_REF = re.compile(r"\{table:([A-Za-z0-9_-]+)\}")


class TableError(ValueError):
    """A table config is malformed or names something unknown; one line."""


def table_names() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "table").glob("*.yaml"))


def load_table(name: str) -> DictConfig:
    name = name.replace("-", "_")
    path = CONFIG_DIR / "table" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(table_names())
        raise TableError(f"no table {name!r} (looked for {path.relative_to(REPO_ROOT)}); tables: {known}")
    cfg = OmegaConf.load(path)
    for key in ("title", "rows", "columns"):
        if key not in cfg:
            raise TableError(f"{path.relative_to(REPO_ROOT)} lacks the key {key!r}")
    cfg.name = name
    if cfg.get("kind", "train") not in RECORD_FILES:
        raise TableError(f"{path.relative_to(REPO_ROOT)}: kind must be one of {sorted(RECORD_FILES)}")
    return cfg


def table_kind(table: DictConfig) -> str:
    return str(table.get("kind", "train"))


def expand_refs(overrides: list[str], smoke: bool, out_root: Path) -> list[str]:
    """Replace `{table:<name>}` by that table's output folder (its smoke folder in smoke runs)."""
    return [_TABLE_REF.sub(lambda m: str(table_dir(load_table(m.group(1)), smoke, out_root)), o) for o in overrides]


def raw_overrides(node: DictConfig) -> list[str]:
    """A table's or row's `overrides`, unresolved: `${seed}` in them is for the run's config, not the table's."""
    value = node.get("overrides") if "overrides" in node else None
    return [] if value is None else list(OmegaConf.to_container(value, resolve=False))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def table_repeats(table: DictConfig, smoke: bool = False) -> dict[str, list]:
    """The repeats {override key: values}: `repeats` (default one seed), or in SMOKE mode `smoke.repeats` where the
    table gives it (e.g. one fold of six). A key may be any override, e.g. `protocol.select_on: [test, val]` to
    record every row under two selection protocols (MSAF Table 1)."""
    node = ((table.get("smoke") or {}).get("repeats") if smoke else None) or table.get("repeats") or {"seed": [0]}
    return OmegaConf.to_container(node)


def repeat_grid(table: DictConfig, smoke: bool = False) -> list[dict[str, int]]:
    repeats = table_repeats(table, smoke)
    keys = list(repeats)
    return [dict(zip(keys, values)) for values in itertools.product(*(repeats[k] for k in keys))]


def repeat_key_name(key: str) -> str:
    """A repeat key as folder names spell it: its last component (`protocol.select_on` -> `select_on`)."""
    return key.rsplit(".", 1)[-1]


def repeat_dirname(rep: dict) -> str:
    return "_".join(f"{repeat_key_name(k)}_{v}" for k, v in rep.items())


def table_dir(table: DictConfig, smoke: bool, out_root: Path) -> Path:
    return out_root / "tables" / (table.name + ("-smoke" if smoke else ""))

SPREADS = {"se": "standard error", "std": "standard deviation"}


def table_spread(table: DictConfig) -> str:
    spread = str(table.get("spread", "se"))
    if spread not in SPREADS:
        raise TableError(f"table {table.name}: spread must be one of {sorted(SPREADS)}, got {spread!r}")
    return spread

SELECTIONS = ("best", "first")  # a `select` row: the best candidate on its `by` metric, or the first one only


def row_selection(row: DictConfig, selection: str = "best") -> tuple[str, list] | None:
    """A row with `select: {override, candidates, by, mode}` trains every candidate value of one override per
    repeat and reports the candidate that is best on `by` (MFAS §3.3: the top five architectures trained, the best
    on validation reported). `selection="first"` keeps only the first candidate (the rank-1-only protocol)."""
    if not row.get("select"):
        return None
    if selection not in SELECTIONS:
        raise TableError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    spec = row.select
    for key in ("override", "candidates", "by"):
        if key not in spec:
            raise TableError(f"row {row.label!r}: select lacks {key!r} (override, candidates, by[, mode])")
    candidates = list(spec.candidates)
    return str(spec.override), candidates[:1] if selection == "first" else candidates


def candidate_dirname(override: str, value) -> str:
    return f"{slug(override)}_{value}"


def _write_pom_fixture(root: Path) -> None:
    """The SYNTHETIC POM fixture under `root/pom` (the old name; tests/spine/test_cmu_pairs.py imports it)."""
    from repro.data.registry import write_fixture

    write_fixture("pom", root)


def smoke_fixtures(table: DictConfig) -> list[str]:
    """The datasets whose SYNTHETIC fixtures a smoke run of `table` reads: `smoke.fixture`, one name or a list (a
    table whose rows read several datasets, e.g. MESM's raw-video rows and hand-crafted-feature baselines)."""
    from repro.data.registry import DEFAULT_SMOKE_DATASET

    fixture = (table.get("smoke") or {}).get("fixture", DEFAULT_SMOKE_DATASET)
    return [str(f) for f in fixture] if OmegaConf.is_list(fixture) or isinstance(fixture, list) else [str(fixture)]


def write_smoke_fixture(table: DictConfig, out_root: Path) -> None:
    """Write the SYNTHETIC fixtures the smoke run reads (under `<out>/smoke_data`): the dataset registry's writers."""
    from repro.data.registry import DATASETS, write_fixture

    for fixture in smoke_fixtures(table):
        if fixture not in DATASETS:
            raise TableError(f"table {table.name}: unknown smoke fixture {fixture!r}; choose {sorted(DATASETS)}")
        write_fixture(fixture, out_root / "smoke_data")


def smoke_overrides(table: DictConfig, out_root: Path) -> list[str]:
    """The overrides that point a smoke run at its fixtures (no side effects: `render` needs them too)."""
    from repro.data.registry import DATASETS

    entries = [DATASETS[f] for f in smoke_fixtures(table) if f in DATASETS]
    fixture_overrides = [o for entry in entries for o in entry.fixture_overrides]
    return [f"paths.data_dir={out_root / 'smoke_data'}", *fixture_overrides,
            *(table.get("smoke") or {}).get("overrides", [])]


def run_extra(table: DictConfig, smoke: bool, out_root: Path) -> list[str]:
    """Overrides the runner adds to every row: no checkpoint callbacks kept per table run; the smoke fixture."""
    return ["callbacks=none"] + (smoke_overrides(table, out_root) if smoke else [])
