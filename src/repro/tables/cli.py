"""Paper tables: `python -m repro.tables list | run <table> | render <table>` (DESIGN.md, "Tables").

`run_table` runs the tables a table `needs`, plans its rows, puts stale runs aside, launches the missing repeats
(`jobs` rows at a time) and renders; `main` is the command line (`repro-tables` in pyproject.toml).
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from repro.tables.config import (
    SELECTIONS,
    TableError,
    load_table,
    repeat_dirname,
    repeat_grid,
    run_extra,
    table_names,
    write_smoke_fixture,
)
from repro.tables.launching import launch, preflight
from repro.tables.planning import RowPlan, plan_rows, put_aside
from repro.tables.rendering import render_table


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
    # the first repeat to run composes with its own values: a fold-wise dataset is read for a fold
    problem = preflight(table, [*extra, *(f"{k}={v}" for k, v in todo[0].missing[0].items())]) if todo else None
    if problem:
        print(f"[tables] {table.name}: not run — {problem}", file=sys.stderr)
        return 1
    for plan in todo:
        for run_dir, why in plan.stale:
            put_aside(table, run_dir, why, smoke, out_root)
    n_runs, n_resumed = sum(len(p.missing) for p in todo), sum(len(p.resume) for p in todo)
    resumed = f", {n_resumed} of them resumed from their checkpoints/last.ckpt" if n_resumed else ""
    print(f"[tables] {table.name}: {len(plans)} rows × {len(repeat_grid(table, smoke))} repeats; "
          f"{n_runs} runs to do{resumed} ({'SMOKE: synthetic fixtures' if smoke else 'real data'})", flush=True)

    def one_row(item: tuple[int, RowPlan]) -> str | None:
        i, plan = item
        print(f"[tables] row {i}/{len(todo)}: {plan.label} — repeats {[repeat_dirname(r) for r in plan.missing]}",
              flush=True)
        return None if launch(table, plan, extra, launcher, threads) else plan.label

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        failed = [label for label in pool.map(one_row, enumerate(todo, 1)) if label]
    print(render_table(name, smoke, out_root, selection))
    if report_blocked(table, plans):
        return 1
    if failed:
        print(f"[tables] runs failed in rows: {failed} (their results.json say why); re-run to retry them",
              file=sys.stderr)
        return 1
    return 0


def report_blocked(table, plans: list[RowPlan]) -> bool:
    """One line per row whose repeats were not launched because the pretrained encoders they start from are not
    there (`planning.missing_inputs`): which repeats, the first missing input, and what to run first."""
    for plan in plans:
        if not plan.blocked:
            continue
        needs = ", ".join(str(n) for n in table.get("needs") or []) or "the runs its backbone.init_from names"
        reps = [repeat_dirname(rep) for rep, _ in plan.blocked]
        print(f"[tables] {table.name}: row '{plan.label}' not run for {reps} — its pretrained encoders are missing: "
              f"{plan.blocked[0][1][0]}; run {needs} first (`python -m repro.tables run <table>`)", file=sys.stderr)
    return any(plan.blocked for plan in plans)


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
