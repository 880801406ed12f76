"""Launching a planned row: the commands a table runs and the processes that run them.

`train.py -m` (one Hydra multirun over the repeats, any launcher), `train.py resume=<dir>` for a stopped repeat,
`search.py` for `kind: search` tables, the attention-alignment analysis for `kind: alignment`; and the preflight that
composes the first row and reads its dataset before anything starts (one line when it cannot run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from repro.tables.config import (
    RECORD_FILES,
    REPO_ROOT,
    TableError,
    raw_overrides,
    repeat_dirname,
    repeat_key_name,
    slug,
    table_kind,
)
from repro.tables.planning import RowPlan

TRAIN_SCRIPT = REPO_ROOT / "train.py"

SEARCH_SCRIPT = REPO_ROOT / "search.py"


def train_command(table: DictConfig, plan: RowPlan, reps: list[dict], extra: list[str],
                  launcher: str | None) -> list[str]:
    """One Hydra multirun over `reps` (a list of {repeat key: value}, all with the same keys).

    With one repeat key the values are swept (`seed=0,1,2`); with several, `reps` holds one combination.
    """
    keys = list(reps[0])
    if len(keys) > 1 and len(reps) > 1:
        raise TableError("internal: several repeat keys are launched one combination at a time")
    sweeps = [f"{k}={','.join(str(rep[k]) for rep in reps)}" for k in keys]
    subdir = "_".join(f"{repeat_key_name(k)}_${{{k}}}" for k in keys)  # = repeat_dirname(rep)
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
