"""Aggregating a table: the records it counts and the numbers per row.

Reads each row's records (refusing debug and stale ones, named for the notes), picks the best `select` candidate per
repeat, and aggregates every column (mean ± standard error or deviation, n) with the commits and the per-run lines
that `<table>.runs.csv` lists. A row's `at: <record path>` reads its columns under that entry of each record (MFAS
Table 5: a row per top architecture of one search).
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import DictConfig

from repro.tables.config import (
    RECORD_FILES,
    expand_refs,
    repeat_dirname,
    repeat_grid,
    run_extra,
    table_kind,
    table_spread,
)
from repro.tables.planning import candidate_of, expected_overrides, read_any_record, record_problem, row_units


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


def column_value(record: dict, col: DictConfig):
    """A column's value in a record: `lookup(record, col.source)`, or None when the column has `where:
    {record path: value}` (e.g. `{protocol.select_on: test}`) and the record does not match it — so one table can
    show the runs of two protocols (its repeats) as two columns."""
    for path, wanted in (col.get("where") or {}).items():
        if str(lookup(record, str(path))) != str(wanted):
            return None
    return lookup(record, str(col.source))


def row_view(record: dict, at: str | None) -> dict | None:
    """The record as a row with `at: <record path>` reads it: the entry at that path (e.g. `top.1`, a search's
    second-best architecture) over the record's own keys (provenance, `synthetic`); None when the entry is absent."""
    if not at:
        return record
    entry = lookup(record, str(at))
    return {**record, **entry} if isinstance(entry, dict) else None


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
    values = {col.key: column_value(record, col) for col in table.columns}
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
            for rep in repeat_grid(table, smoke):
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
        if row.get("at"):  # e.g. MFAS Table 5: one search record, a row per top architecture
            kept = [(rep, view) for rep, view in zip(repeats_of, (row_view(r, row.at) for r in records)) if view]
            repeats_of, records = [rep for rep, _ in kept], [view for _, view in kept]
        cells = {}
        for col in table.columns:
            values = [v for v in (column_value(r, col) for r in records) if v is not None]
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
