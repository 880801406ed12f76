"""Planning a table run: what each row has to do, from the records already on disk.

A row's units (the row itself, or one per `select` candidate, each its own sweep folder); the identity a counted
record must carry (`repro.provenance`: the row's current overrides and repeat); each repeat's state — done, missing,
stale (kept aside, never deleted) or resume (a stopped run with its `last.ckpt` and the row's current overrides).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from repro.provenance import canonical_overrides, identity_mismatch, overrides_identity
from repro.results import read_record
from repro.tables.config import (
    RECORD_FILES,
    TableError,
    candidate_dirname,
    expand_refs,
    raw_overrides,
    repeat_dirname,
    repeat_grid,
    row_selection,
    run_extra,
    slug,
    table_dir,
    table_kind,
)


@dataclass
class RowPlan:
    label: str
    directory: Path  # the sweep folder: one sub-folder per repeat
    missing: list[dict]  # the repeats to (re-)run
    overrides: list[str]
    kind: str = "train"
    stale: list[tuple[Path, str]] = field(default_factory=list)  # completed runs that no longer count, and why
    resume: list[dict] = field(default_factory=list)  # of `missing`: stopped runs to continue from their last.ckpt
    blocked: list[tuple[dict, list[str]]] = field(default_factory=list)  # repeats not launched: inputs not there


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


def candidate_of(unit_label: str) -> str:
    """`key=value` of a candidate unit's label `<row> [key=value]`."""
    return unit_label.rsplit("[", 1)[-1].rstrip("]")


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


def read_any_record(path: Path) -> dict:
    if path.name == RECORD_FILES["alignment"]:
        from repro.analysis.attention_alignment_run import SCHEMA
        from repro.results import read_json_record

        return read_json_record(path, SCHEMA, "delete it and re-run the analysis")
    if path.name == RECORD_FILES["search"]:
        from repro.search.state import read_search_record

        return read_search_record(path.parent)
    return read_record(path)


INIT_FROM = "backbone.init_from."  # the overrides naming a pretrained encoder (a run directory or a .ckpt)


def pretrained_inputs(table: DictConfig, overrides: list[str], rep: dict, extra: list[str]) -> dict[str, str]:
    """{`backbone.init_from.<modality>`: run dir or .ckpt} a run of these row overrides and this repeat starts its
    encoders from: the last value given wins (as in Hydra; SMOKE extras may null them), `${<repeat key>}` filled in."""
    given = {}
    for override in [*raw_overrides(table), *overrides, *extra]:
        key, _, value = override.partition("=")
        if key.lstrip("+~").startswith(INIT_FROM):
            given[key.lstrip("+~")] = value
    inputs = {}
    for key, value in given.items():
        if value.lower() in ("", "null", "none"):
            continue
        for rep_key, rep_value in rep.items():
            value = value.replace(f"${{{rep_key}}}", str(rep_value))
        inputs[key] = value
    return inputs


def missing_inputs(table: DictConfig, overrides: list[str], rep: dict, extra: list[str]) -> list[str]:
    """`key=path (why)` for each pretrained encoder this run would start from that is not there yet: a .ckpt that
    does not exist, or a run directory without a completed, non-debug record (e.g. the unimodal run of the same fold
    and protocol that a table's `needs` trains first). The runner does not launch such a run: fusing from missing
    weights must never happen silently (MSAF §5.1's protocol: fusion starts from the unimodal networks)."""
    problems = []
    for key, value in pretrained_inputs(table, overrides, rep, extra).items():
        if "${" in value:  # an interpolation of another config key: train.py resolves (and checks) it
            continue
        path = Path(value)
        if path.suffix == ".ckpt":
            if not path.is_file():
                problems.append(f"{key}={value} (no such checkpoint)")
        elif record_problem(path, "train", None)[0] != "done":
            problems.append(f"{key}={value} (no completed run there)")
    return problems


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
            for rep in repeat_grid(table, smoke):
                run_dir = directory / repeat_dirname(rep)
                expected = None if kind == "alignment" else expected_overrides(table, overrides, rep, extra)
                state, why = record_problem(run_dir, kind, expected)
                if state == "done":
                    continue
                absent = missing_inputs(table, overrides, rep, extra) if kind == "train" else []
                if absent:  # a stale run stays where it is until its inputs are there and it can be re-run
                    plan.blocked.append((rep, absent))
                    continue
                if state == "stale":
                    plan.stale.append((run_dir, why))
                plan.missing.append(rep)
                if state == "resume":
                    plan.resume.append(rep)
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
