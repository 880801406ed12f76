"""Paper tables: `python -m repro.tables list | run <table> | render <table>` (DESIGN.md, "Tables").

A table is `configs/table/<name>.yaml`: title, the paper it reproduces, the dataset, the repeats (seeds
and/or folds), common overrides, the columns (a metric of the results record), and rows (label,
overrides, the paper's numbers). `run` launches the missing runs of every row as one Hydra multirun per
row (`python train.py -m ...`, any launcher), skipping repeats whose completed `results.json` exists — so
an interrupted table resumes; a repeat stopped after an epoch continues from its `last.ckpt` (`train.py resume=`,
`repro.resume`) when it was started with the row's current overrides — then renders. `render` aggregates the
records (mean ± standard error, n) and writes Markdown, LaTeX and CSV beside the paper's numbers with the difference.

Rows marked `external: true` are numbers a paper copied from elsewhere; rows with `pending: <reason>`
are ours but not runnable yet (the reason is printed); both show the paper's number only.
`--smoke` runs on SYNTHETIC fixtures with tiny budgets: it checks the machinery, its numbers mean nothing.

Which records count (issue 12; `repro.provenance`): a completed record counts for a row and repeat only when its
`identity` is the row's CURRENT overrides and repeat (the table's and row's overrides, the runner's and smoke
extras, the repeat values; canonical, without paths) and it is not a debug run. `run` moves any other completed
record aside to `<table>/stale/` (kept, never deleted), says so in one line and re-runs it; `render` leaves it out
and names it under the table. Whenever a counted record read SYNTHETIC data the render carries the SYNTHETIC
banner and no Δ column, whatever the flags.

A row with `select: {override, candidates, by, mode}` trains one run per candidate value of `override` per repeat
(in `runs/<row>/<override>_<value>/<repeat>`) and reports, per repeat, the candidate best on `by` — MFAS §3.3's
"top five architectures trained to completion, the best on validation reported". `--selection first` keeps the
first candidate only (the rank-1-only protocol).

Tables with `kind: search` (MFAS Tables 1 and 6) run `search.py` instead: one search per row and repeat
(resumable, in `runs/<row>/<repeat>`), pre-trained encoders shared by the rows of a repeat
(`pretrain/<repeat>`), columns read from each `search.json`. In any override, `{table:<name>}` stands for
that table's output folder (so a row can train the architecture another table's search found).

Tables with `kind: alignment` (MICA Table 6) train nothing: each row names `analyze: <folder of another table's
row>` and, per repeat, `python -m repro.analysis.attention_alignment <that run> --out <row>/<repeat>/alignment.json`
measures the trained model (A-distance, Corr. Acc); the columns read those records.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from repro.config import CONFIG_DIR
from repro.provenance import canonical_overrides, identity_mismatch, overrides_identity
from repro.results import FILENAME, atomic_write_text, read_record, save_figure

REPO_ROOT = CONFIG_DIR.parent
TRAIN_SCRIPT = REPO_ROOT / "train.py"
SEARCH_SCRIPT = REPO_ROOT / "search.py"
RECORD_FILES = {"train": FILENAME, "search": "search.json", "alignment": "alignment.json"}  # kind -> its record
_TABLE_REF = re.compile(r"\{table:([A-Za-z0-9_-]+)\}")


class TableError(ValueError):
    """A table config is malformed or names something unknown; one line."""


# -- loading ------------------------------------------------------------------------------------------
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


def repeat_grid(table: DictConfig) -> list[dict[str, int]]:
    repeats = OmegaConf.to_container(table.get("repeats") or {"seed": [0]})
    keys = list(repeats)
    return [dict(zip(keys, values)) for values in itertools.product(*(repeats[k] for k in keys))]


def repeat_dirname(rep: dict) -> str:
    return "_".join(f"{k}_{v}" for k, v in rep.items())


def table_dir(table: DictConfig, smoke: bool, out_root: Path) -> Path:
    return out_root / "tables" / (table.name + ("-smoke" if smoke else ""))


# -- running ------------------------------------------------------------------------------------------
@dataclass
class RowPlan:
    label: str
    directory: Path  # the sweep folder: one sub-folder per repeat
    missing: list[dict]  # the repeats to (re-)run
    overrides: list[str]
    kind: str = "train"
    stale: list[tuple[Path, str]] = field(default_factory=list)  # completed runs that no longer count, and why
    resume: list[dict] = field(default_factory=list)  # of `missing`: stopped runs to continue from their last.ckpt


def _write_pom_fixture(root: Path) -> None:
    """The SYNTHETIC POM fixture under `root/pom` (the old name; tests/spine/test_cmu_pairs.py imports it)."""
    from repro.data.registry import write_fixture

    write_fixture("pom", root)


def smoke_fixture(table: DictConfig) -> str:
    from repro.data.registry import DEFAULT_SMOKE_DATASET

    return str((table.get("smoke") or {}).get("fixture", DEFAULT_SMOKE_DATASET))


def write_smoke_fixture(table: DictConfig, out_root: Path) -> None:
    """Write the SYNTHETIC fixture the smoke run reads (under `<out>/smoke_data`): the dataset registry's writer."""
    from repro.data.registry import DATASETS, write_fixture

    fixture = smoke_fixture(table)
    if fixture not in DATASETS:
        raise TableError(f"table {table.name}: unknown smoke fixture {fixture!r}; choose {sorted(DATASETS)}")
    write_fixture(fixture, out_root / "smoke_data")


def smoke_overrides(table: DictConfig, out_root: Path) -> list[str]:
    """The overrides that point a smoke run at its fixture (no side effects: `render` needs them too)."""
    from repro.data.registry import DATASETS

    entry = DATASETS.get(smoke_fixture(table))
    return [f"paths.data_dir={out_root / 'smoke_data'}", *(entry.fixture_overrides if entry else ()),
            *(table.get("smoke") or {}).get("overrides", [])]


def run_extra(table: DictConfig, smoke: bool, out_root: Path) -> list[str]:
    """Overrides the runner adds to every row: no checkpoint callbacks kept per table run; the smoke fixture."""
    return ["callbacks=none"] + (smoke_overrides(table, out_root) if smoke else [])


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


def candidate_of(unit_label: str) -> str:
    """`key=value` of a candidate unit's label `<row> [key=value]`."""
    return unit_label.rsplit("[", 1)[-1].rstrip("]")


def row_units(table: DictConfig, row: DictConfig, smoke: bool, out_root: Path,
              selection: str = "best") -> list[tuple[str, Path, list[str]]]:
    """(label, sweep folder, overrides) of each group of runs of a row: the row itself, or one per candidate."""
    directory = table_dir(table, smoke, out_root) / "runs" / slug(row.label)
    overrides = expand_refs(raw_overrides(row), smoke, out_root)
    if table_kind(table) == "alignment":  # the run to analyse, resolved like an override
        overrides = expand_refs([str(row.analyze)], smoke, out_root)
    chosen = row_selection(row, selection)
    if chosen is None:
        return [(row.label, directory, overrides)]
    key, candidates = chosen
    return [(f"{row.label} [{key}={value}]", directory / candidate_dirname(key, value), [*overrides, f"{key}={value}"])
            for value in candidates]


def expected_overrides(table: DictConfig, overrides: list[str], rep: dict, extra: list[str]) -> list[str]:
    """The canonical overrides (`repro.provenance`) that a run of these row overrides and this repeat records."""
    return canonical_overrides([*raw_overrides(table), *overrides, *extra, *(f"{k}={v}" for k, v in rep.items())])


def expected_identity(table: DictConfig, row_label: str, rep: dict, smoke: bool = False,
                      out_root: Path = Path("outputs"), selection: str = "best") -> dict:
    """The identity (`overrides`, `key`) a run of `row_label` (a row, or a candidate `<row> [key=value]`) and
    `rep` must carry to be counted (e.g. for records written by hand in tests)."""
    for row in table.rows:
        for label, _, overrides in row_units(table, row, smoke, out_root, selection):
            if label == row_label:
                return overrides_identity(expected_overrides(table, overrides, rep, run_extra(table, smoke,
                                                                                              out_root)))
    raise TableError(f"table {table.name} has no row {row_label!r}")


def record_problem(run_dir: Path, kind: str, expected: list[str] | None) -> tuple[str, str | None]:
    """("done" | "missing" | "stale" | "resume", why): a completed record counts only when it is not a debug run and
    its identity is the row's current overrides and repeat (`expected`; None = not checked, e.g. analyses); a stopped
    training run (failed, interrupted, or killed before its record said so) with a `last.ckpt` is resumed when it was
    started with those overrides, and kept aside as stale when not (its checkpoint belongs to other settings)."""
    from repro.resume import LAST_CHECKPOINT  # here: repro.resume imports torch, which rendering does not need

    path = run_dir / RECORD_FILES[kind]
    stopped_with_checkpoint = kind == "train" and expected is not None and (run_dir / LAST_CHECKPOINT).is_file()
    if not path.is_file():
        return resume_problem(run_dir, expected) if stopped_with_checkpoint else ("missing", None)
    try:
        record = read_any_record(path)
    except ValueError as err:
        return "stale", str(err)
    if record.get("status") != "completed":  # failed / interrupted: resumed, or re-run in place without a checkpoint
        return resume_problem(run_dir, expected) if stopped_with_checkpoint else ("missing", None)
    why = identity_mismatch(record, expected) if expected is not None else (
        "a debug record (fast_dev_run, limited batches or debug=…)" if record.get("debug") else None)
    return ("stale", why) if why else ("done", None)


def resume_problem(run_dir: Path, expected: list[str]) -> tuple[str, str | None]:
    """A stopped run with a checkpoint: "resume" when its saved overrides (Hydra's `.hydra/overrides.yaml`) are the
    row's current ones and repeat, else "stale" and why."""
    from repro.resume import SAVED_OVERRIDES

    saved = run_dir / SAVED_OVERRIDES
    if not saved.is_file():
        return "stale", f"a checkpoint without {SAVED_OVERRIDES}"
    made = canonical_overrides(str(o) for o in OmegaConf.load(saved))
    if made == expected:
        return "resume", None
    return "stale", (f"stopped run made with [{' '.join(sorted(set(made) - set(expected)))}] where the row now has "
                     f"[{' '.join(sorted(set(expected) - set(made)))}]")


def plan_rows(table: DictConfig, smoke: bool, out_root: Path, rows: list[str] | None = None,
              selection: str = "best") -> list[RowPlan]:
    plans = []
    kind = table_kind(table)
    extra = run_extra(table, smoke, out_root)
    for row in table.rows:
        if row.get("external") or row.get("pending") or row.get("records"):
            continue
        if rows and row.label not in rows and slug(row.label) not in rows:
            continue
        for label, directory, overrides in row_units(table, row, smoke, out_root, selection):
            plan = RowPlan(label, directory, [], overrides, kind)
            for rep in repeat_grid(table):
                run_dir = directory / repeat_dirname(rep)
                expected = None if kind == "alignment" else expected_overrides(table, overrides, rep, extra)
                state, why = record_problem(run_dir, kind, expected)
                if state == "stale":
                    plan.stale.append((run_dir, why))
                if state == "resume":
                    plan.resume.append(rep)
                if state != "done":
                    plan.missing.append(rep)
            plans.append(plan)
    return plans


def put_aside(table: DictConfig, run_dir: Path, why: str, smoke: bool, out_root: Path) -> Path:
    """Move a stale run folder out of the row (kept, never deleted) and say so in one line."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = table_dir(table, smoke, out_root) / "stale" / run_dir.relative_to(table_dir(table, smoke, out_root)
                                                                                 / "runs")
    target = target.with_name(f"{target.name}-{stamp}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, target)
    print(f"[tables] {table.name}: {run_dir.relative_to(table_dir(table, smoke, out_root) / 'runs')} is stale "
          f"({why}); kept as {target}, re-running", flush=True)
    return target


def read_any_record(path: Path) -> dict:
    if path.name == RECORD_FILES["alignment"]:
        from repro.analysis.attention_alignment_run import SCHEMA
        from repro.results import read_json_record

        return read_json_record(path, SCHEMA, "delete it and re-run the analysis")
    if path.name == RECORD_FILES["search"]:
        from repro.search.state import read_search_record

        return read_search_record(path.parent)
    return read_record(path)


def train_command(table: DictConfig, plan: RowPlan, reps: list[dict], extra: list[str],
                  launcher: str | None) -> list[str]:
    """One Hydra multirun over `reps` (a list of {repeat key: value}, all with the same keys).

    With one repeat key the values are swept (`seed=0,1,2`); with several, `reps` holds one combination.
    """
    keys = list(reps[0])
    if len(keys) > 1 and len(reps) > 1:
        raise TableError("internal: several repeat keys are launched one combination at a time")
    sweeps = [f"{k}={','.join(str(rep[k]) for rep in reps)}" for k in keys]
    subdir = "_".join(f"{k}_${{{k}}}" for k in keys)
    cmd = [sys.executable, str(TRAIN_SCRIPT), "-m", *raw_overrides(table), *plan.overrides, *extra, *sweeps,
           f"hydra.sweep.dir={plan.directory}", f"hydra.sweep.subdir={subdir}",
           f"+tags.table={table.name}", f"+tags.row={slug(plan.label)}"]  # slug: Hydra parses "(...)"
    if launcher:
        cmd.append(f"hydra/launcher={launcher}")
    return cmd


def search_command(table: DictConfig, plan: RowPlan, rep: dict, extra: list[str]) -> list[str]:
    """One `search.py` run (resumable) for one repeat; encoders pre-trained once per repeat for every row."""
    pretrain = plan.directory.parent.parent / "pretrain" / repeat_dirname(rep)
    return [sys.executable, str(SEARCH_SCRIPT), *raw_overrides(table), *plan.overrides, *extra,
            *(f"{k}={v}" for k, v in rep.items()), f"search.dir={plan.directory / repeat_dirname(rep)}",
            f"search.pretrain.dir={pretrain}"]


def alignment_command(plan: RowPlan, rep: dict) -> list[str]:
    """The alignment analysis of one trained run (the row's `analyze` folder, this repeat)."""
    run = Path(plan.overrides[0]) / repeat_dirname(rep)
    out = plan.directory / repeat_dirname(rep) / RECORD_FILES["alignment"]
    return [sys.executable, "-m", "repro.analysis.attention_alignment", str(run), "--out", str(out)]


def resume_command(plan: RowPlan, rep: dict) -> list[str]:
    """Continue a stopped repeat from its last checkpoint with its saved config (`python train.py resume=<dir>`)."""
    return [sys.executable, str(TRAIN_SCRIPT), f"resume={plan.directory / repeat_dirname(rep)}"]


def launch(table: DictConfig, plan: RowPlan, extra: list[str], launcher: str | None, threads: int | None) -> bool:
    if plan.kind == "alignment":
        return all(subprocess.run(alignment_command(plan, rep)).returncode == 0 for rep in plan.missing)
    if plan.kind == "search":
        return all(subprocess.run(search_command(table, plan, rep, extra)).returncode == 0 for rep in plan.missing)
    fresh = [rep for rep in plan.missing if rep not in plan.resume]
    batches = ([fresh] if len(fresh[0]) == 1 else [[rep] for rep in fresh]) if fresh else []
    env = dict(os.environ)
    if threads:
        # Several rows share the cores: one intra-op thread each (two 1-thread processes train ~1.5x
        # faster in total than one 2-thread process on the 2-core machines this was measured on).
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    results = [subprocess.run(resume_command(plan, rep), env=env).returncode for rep in plan.resume]
    results += [subprocess.run(train_command(table, plan, reps, extra, launcher), env=env).returncode
                for reps in batches]
    return all(code == 0 for code in results)


def preflight(table: DictConfig, extra: list[str]) -> str | None:
    """Compose the first runnable row and read its dataset; the one-line reason when it cannot run."""
    from hydra.utils import instantiate

    from repro.config import ConfigError, compose_train
    from repro.data.base import DataError

    row = next((r for r in table.rows if not (r.get("external") or r.get("pending"))), None)
    if row is None or table_kind(table) == "alignment":  # analyses read trained runs, checked by the analysis
        return None
    overrides = [o for o in [*raw_overrides(table), *raw_overrides(row), *extra] if not o.startswith("hydra")]
    try:
        if table_kind(table) == "search":
            from repro.search.run import compose_search

            cfg = compose_search(overrides)
        else:
            cfg = compose_train([o for o in overrides if "{table:" not in o])
        instantiate(cfg.data.reader).load(cfg.fold)
    except (ConfigError, DataError) as err:
        return str(err)
    return None


def run_table(name: str, smoke: bool = False, launcher: str | None = None, out_root: Path = Path("outputs"),
              rows: list[str] | None = None, jobs: int | None = None, selection: str = "best") -> int:
    """Launch the missing and stale runs (`jobs` rows at a time, each its own process) and render the table.
    Tables named in `needs` (e.g. the search whose architecture a row trains) are run first."""
    table = load_table(name)
    for needed in table.get("needs") or []:
        if run_table(str(needed), smoke, launcher, out_root, None, jobs) != 0:
            print(f"[tables] {table.name}: needed table {needed} did not complete; its rows may fail", file=sys.stderr)
    jobs = max(1, int(jobs or table.get("jobs", 1)))
    if smoke:
        write_smoke_fixture(table, out_root)
    extra = run_extra(table, smoke, out_root)
    plans = plan_rows(table, smoke, out_root, rows, selection)
    todo = [p for p in plans if p.missing]
    jobs = min(jobs, max(1, len(todo)))  # fewer rows than jobs: give each row more threads
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    problem = preflight(table, extra) if todo else None
    if problem:
        print(f"[tables] {table.name}: not run — {problem}", file=sys.stderr)
        return 1
    for plan in todo:
        for run_dir, why in plan.stale:
            put_aside(table, run_dir, why, smoke, out_root)
    n_runs, n_resumed = sum(len(p.missing) for p in todo), sum(len(p.resume) for p in todo)
    resumed = f", {n_resumed} of them resumed from their checkpoints/last.ckpt" if n_resumed else ""
    print(f"[tables] {table.name}: {len(plans)} rows × {len(repeat_grid(table))} repeats; "
          f"{n_runs} runs to do{resumed} ({'SMOKE: synthetic fixtures' if smoke else 'real data'})", flush=True)

    def one_row(item: tuple[int, RowPlan]) -> str | None:
        i, plan = item
        print(f"[tables] row {i}/{len(todo)}: {plan.label} — repeats {[repeat_dirname(r) for r in plan.missing]}",
              flush=True)
        return None if launch(table, plan, extra, launcher, threads) else plan.label

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failed = [label for label in pool.map(one_row, enumerate(todo, 1)) if label]
    print(render_table(name, smoke, out_root, selection))
    if failed:
        print(f"[tables] runs failed in rows: {failed} (their results.json say why); re-run to retry them",
              file=sys.stderr)
        return 1
    return 0


# -- aggregation and rendering ---------------------------------------------------------------------------
def lookup(record: dict, path: str):
    """`a.b.0.c`: dict keys and list indices."""
    value = record
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


SPREADS = {"se": "standard error", "std": "standard deviation"}


def mean_se(values: list[float], spread: str = "se") -> tuple[float, float, int]:
    """Mean, its spread (`se`: standard error; `std`: sample standard deviation, as MICA T5 prints) and n."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, 1
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n) if spread == "se" else math.sqrt(var), n


def table_spread(table: DictConfig) -> str:
    spread = str(table.get("spread", "se"))
    if spread not in SPREADS:
        raise TableError(f"table {table.name}: spread must be one of {sorted(SPREADS)}, got {spread!r}")
    return spread


def usable_record(table: DictConfig, path: Path, expected: list[str] | None, stale: list[str],
                  where: str) -> dict | None:
    """The record at `path` if a table may count it; else None, and a line in `stale` when it exists but is
    stale or a debug run (`expected`: the overrides its identity must carry; None = not checked)."""
    if not path.is_file():
        return None
    kind = table_kind(table)
    state, why = record_problem(path.parent, kind, expected)
    if state == "stale":
        stale.append(f"{where}: {why}")
    return read_any_record(path) if state == "done" else None


def select_best(records: dict, spec: DictConfig) -> tuple[object, dict] | None:
    """(candidate, record) with the best `spec.by` among the candidates' records, or None unless all are in."""
    if any(r is None for r in records.values()):
        return None
    sign = -1.0 if str(spec.get("mode", "max")) == "min" else 1.0
    scored = [(sign * float(lookup(r, str(spec.by)) or math.nan), c, r) for c, r in records.items()]
    scored = [t for t in scored if not math.isnan(t[0])]
    if not scored:
        return None
    best = max(scored, key=lambda t: t[0])  # ties: the first candidate (the higher-ranked architecture)
    return best[1], best[2]


def commit_label(record: dict) -> str:
    """The short commit a record was made at, marked `+dirty` when the tree had uncommitted changes."""
    versions = record.get("versions") or {}
    return str(versions.get("git_commit", "unknown"))[:7] + ("+dirty" if versions.get("git_dirty") else "")


def run_line(table: DictConfig, repeat: str, record: dict) -> dict:
    """One counted run as the `<table>.runs.csv` evidence lists it: repeat, commit, each column, best epoch."""
    values = {col.key: lookup(record, col.source) for col in table.columns}
    return {"repeat": repeat, "commit": commit_label(record), **values,
            "best_epoch": lookup(record, "metrics.best_epoch"), "synthetic": bool(record.get("synthetic"))}


def collect(table: DictConfig, smoke: bool, out_root: Path, selection: str = "best") -> list[dict]:
    kind = table_kind(table)
    extra = run_extra(table, smoke, out_root)
    rows = []
    for row in table.rows:
        records, stale, chosen, incomplete, repeats_of = [], [], {}, [], []
        if not (row.get("external") or row.get("pending")):
            units = row_units(table, row, smoke, out_root, selection)
            for rep in repeat_grid(table):
                rep_name = repeat_dirname(rep)
                if row.get("records"):
                    # `records: <folder>`: the runs of another table's row (e.g. MFAS T6 reads the searches of T1),
                    # checked there; here only debug records are refused
                    folder = Path(expand_refs([str(row.records)], smoke, out_root)[0])
                    found = {None: usable_record(table, folder / rep_name / RECORD_FILES[kind], None, stale,
                                                 rep_name)}
                else:
                    found = {}
                    for label, directory, overrides in units:
                        expected = None if kind == "alignment" else expected_overrides(table, overrides, rep, extra)
                        where = rep_name if len(units) == 1 else f"{candidate_of(label)} {rep_name}"
                        found[label] = usable_record(table, directory / rep_name / RECORD_FILES[kind], expected,
                                                     stale, where)
                if row.get("select"):
                    best = select_best(found, row.select)
                    if best is None:
                        if any(r is not None for r in found.values()):
                            incomplete.append(rep_name)
                        continue
                    chosen[rep_name] = candidate_of(best[0])
                    records.append(best[1])
                    repeats_of.append(rep_name)
                else:
                    kept = [r for r in found.values() if r is not None]
                    records += kept
                    repeats_of += [rep_name] * len(kept)
        cells = {}
        for col in table.columns:
            values = [v for v in (lookup(r, col.source) for r in records) if v is not None]
            mean, se, n = mean_se([float(v) for v in values], table_spread(table))
            paper = (row.get("paper") or {}).get(col.key)
            cells[col.key] = {"mean": mean, "se": se, "n": n, "paper": paper, "values": [float(v) for v in values]}
        rows.append({"label": row.label, "kind": "external" if row.get("external") else
                     ("pending" if row.get("pending") else "ours"), "pending": row.get("pending"), "cells": cells,
                     "protocols": sorted({str(r.get("protocol", {}).get("select_on")) for r in records}),
                     "synthetic": any(bool(r.get("synthetic")) for r in records),
                     "commits": sorted({commit_label(r) for r in records}),
                     "runs": [run_line(table, rep, r) for rep, r in zip(repeats_of, records)],
                     "stale": stale, "chosen": chosen, "incomplete": incomplete})
    return rows


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def has_paper(table: DictConfig, key: str) -> bool:
    return any((row.get("paper") or {}).get(key) is not None for row in table.rows)


def format_cells(table: DictConfig, row: dict, show_delta: bool = True) -> list[str]:
    """Ours (mean ± s.e.), and where the paper reports the column, the paper's number and (unless the table
    stands on SYNTHETIC data, where it is noise) the difference."""
    out = []
    for col in table.columns:
        cell = row["cells"][col.key]
        scale, digits = float(col.get("scale", 1.0)), int(col.get("digits", 2))
        ours = "–"
        if cell["n"]:
            ours = _fmt(cell["mean"] * scale, digits)
            if cell["n"] > 1 and cell["se"] > 0:
                ours += f" ± {_fmt(cell['se'] * scale, digits)}"
        out.append(ours)
        if not has_paper(table, col.key):
            continue
        out.append(_fmt(cell["paper"], digits) if cell["paper"] is not None else "–")
        if show_delta:
            delta = "–"
            if cell["n"] and cell["paper"] is not None:
                delta = f"{cell['mean'] * scale - float(cell['paper']):+.{digits}f}"
            out.append(delta)
    return out


SYNTHETIC_BANNER = ("> SYNTHETIC: records under this table read SYNTHETIC fixture data{budget}; the numbers check the "
                    "machinery only, are not a reproduction, and no Δ to the paper is shown.")


def row_notes(table: DictConfig, rows: list[dict]) -> list[str]:
    """One line per stale or debug record that was not counted, and per `select` row what it chose."""
    lines = []
    for row in rows:
        for why in row["stale"]:
            lines.append(f"- Not counted, row '{row['label']}' {why} — `python -m repro.tables run {table.name}` "
                         "re-runs it.")
        spec = next((r.select for r in table.rows if r.label == row["label"] and r.get("select")), None)
        if spec is not None:
            chosen = ", ".join(f"{rep} → {c}" for rep, c in row["chosen"].items()) or "–"
            lines.append(f"- Row '{row['label']}': per repeat the candidate of {spec.override} with the best "
                         f"{spec.by} ({spec.get('mode', 'max')}) is reported; chosen: {chosen}.")
            if row["incomplete"]:
                lines.append(f"- Row '{row['label']}': not counted yet for {', '.join(row['incomplete'])} "
                             "(not every candidate has a record).")
    return lines + ([""] if lines else [])


def render_table(name: str, smoke: bool = False, out_root: Path = Path("outputs"), selection: str = "best") -> str:
    table = load_table(name)
    rows = collect(table, smoke, out_root, selection)
    synthetic = smoke or any(r["synthetic"] for r in rows)  # whatever the flags: the records say what they read
    header = ["Row"]
    for col in table.columns:
        if has_paper(table, col.key):
            header += [f"{col.label} (ours)", f"{col.label} (paper)"] + ([] if synthetic else ["Δ"])
        else:
            header.append(col.label)
    header.append("n")
    body = []
    for row in rows:
        n = max((c["n"] for c in row["cells"].values()), default=0)
        label = row["label"] + (" *(ext)*" if row["kind"] == "external" else "")
        if row["kind"] == "pending":
            label += f" *(pending: {row['pending']})*"
        body.append([label, *format_cells(table, row, not synthetic), str(n) if row["kind"] == "ours" else "–"])
    notes = [f"**{table.title}**", ""]
    if synthetic:
        notes += [SYNTHETIC_BANNER.format(budget=" with a tiny SMOKE budget" if smoke else ""), ""]
    if table.get("note"):
        notes += [str(table.note).strip(), ""]
    notes += row_notes(table, rows)
    protocols = sorted({p for r in rows for p in r["protocols"]})
    with_delta = any(has_paper(table, col.key) for col in table.columns) and not synthetic
    selected = ("" if table_kind(table) in ("search", "alignment") else
                f"; checkpoint selected on {', '.join(protocols) or '–'}")
    repeats = OmegaConf.to_container(table.get("repeats"))
    notes += [f"Ours: mean ± {SPREADS[table_spread(table)]} over the repeats {repeats}"
              + selected + ("; Δ = ours − paper." if with_delta else "."), ""]
    commits = sorted({c for r in rows for c in r["commits"]})
    counted = sum(len(r["cells"][table.columns[0].key]["values"]) for r in rows)
    notes += [f"Rendered {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {counted} records made at "
              f"commit {', '.join(commits) or '–'}.", ""]
    md = "\n".join(notes) + "\n" + _markdown(header, body)
    out = table_dir(table, smoke, out_root)
    atomic_write_text(out.with_suffix(".md"), md + "\n")
    atomic_write_text(out.with_suffix(".csv"), _csv(header, body))
    atomic_write_text(out.with_suffix(".runs.csv"), runs_csv(table, rows))
    atomic_write_text(out.with_suffix(".tex"), _latex(table.title, header, body))
    plot_table(table, rows, out.with_suffix(".png"), synthetic)
    return md


def plot_table(table: DictConfig, rows: list[dict], path: Path, synthetic: bool) -> None:
    """Bar chart of the first column: ours (mean ± s.e.) per row, the paper's number as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    col = table.columns[0]
    scale = float(col.get("scale", 1.0))
    labels = [r["label"] for r in rows]
    cells = [r["cells"][col.key] for r in rows]
    means = [c["mean"] * scale if c["n"] else 0.0 for c in cells]
    errors = [c["se"] * scale if c["n"] > 1 and not math.isnan(c["se"]) else 0.0 for c in cells]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, means, xerr=errors, color="tab:blue", alpha=0.6, label="ours (mean ± s.e.)")
    runs = [(yi, v * scale) for yi, c in zip(y, cells) for v in c["values"]]
    if runs:
        ax.scatter([v for _, v in runs], [yi for yi, _ in runs], s=12, color="tab:blue", zorder=3, label="each run")
    paper = [(yi, float(c["paper"])) for yi, c in zip(y, cells) if c["paper"] is not None]
    if paper:
        ax.scatter([p for _, p in paper], [yi for yi, _ in paper], color="black", marker="x", zorder=3, label="paper")
    ax.set_yticks(y, labels)
    ax.set_xlabel(col.label)
    finite = [m for m in means if m] + [p for _, p in paper] + [v for _, v in runs]
    if finite:
        margin = 0.05 * max(abs(v) for v in finite)  # 5 % of the scale: percentages and fractions alike
        ax.set_xlim(max(0.0, min(finite) - margin), max(finite) + margin)
    title = ("SYNTHETIC fixture data — " if synthetic else "") + str(table.title)
    fig.suptitle(textwrap.fill(title, 80), fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def runs_csv(table: DictConfig, rows: list[dict]) -> str:
    """Every counted run, one line each (the per-seed evidence behind the means)."""
    keys = ["repeat", "commit", *(col.key for col in table.columns), "best_epoch", "synthetic"]
    return _csv(["row", *keys], [[row["label"], *(run.get(k) for k in keys)] for row in rows for run in row["runs"]])


def _csv(header, body) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


def _latex(title, header, body) -> str:
    def esc(s: str) -> str:
        return (s.replace("\\", "\\textbackslash{}").replace("&", "\\&").replace("%", "\\%").replace("_", "\\_")
                .replace("#", "\\#").replace("±", "$\\pm$").replace("Δ", "$\\Delta$").replace("*", ""))
    lines = ["\\begin{table}[t]", "\\centering", f"\\caption{{{esc(title)}}}",
             "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
             " & ".join(esc(h) for h in header) + " \\\\", "\\midrule"]
    lines += [" & ".join(esc(c) for c in row) + " \\\\" for row in body]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.tables", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the tables")
    for cmd in ("run", "render"):
        p = sub.add_parser(cmd, help=f"{cmd} a table ('all' for every table)")
        p.add_argument("table")
        p.add_argument("--smoke", action="store_true", help="SYNTHETIC fixtures, tiny budget (machinery check)")
        p.add_argument("--out", default="outputs", help="output root (default: outputs)")
        if cmd == "run":
            p.add_argument("--launcher", default=None, help="Hydra launcher, e.g. joblib or slurm")
            p.add_argument("--rows", nargs="*", default=None, help="only these rows (labels or slugs)")
            p.add_argument("--jobs", type=int, default=None, help="rows run in parallel (default: the table's `jobs`)")
        p.add_argument("--selection", choices=SELECTIONS, default="best",
                       help="rows with `select` (MFAS: the top-5 found architectures): report the best candidate "
                            "on validation (best, the paper's protocol) or the first only (first = rank-1 only)")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for name in table_names():
                print(f"{name:24s} {load_table(name).title}")
            return 0
        names = table_names() if args.table == "all" else [args.table]
        status = 0
        for name in names:
            if args.command == "run":
                status |= run_table(name, args.smoke, args.launcher, Path(args.out), args.rows, args.jobs,
                                    args.selection)
            else:
                print(render_table(name, args.smoke, Path(args.out), args.selection))
        return status
    except TableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
