"""The command line shared by the figures drawn from a table's aggregated rows (`mica_sensitivity`, `mesm_topp`):
`--smoke`, `--out-root`, `--out`, and the error when the table has no finished run."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_figure_args(argv: list[str] | None, description: str, stem: str) -> tuple[argparse.Namespace, Path]:
    """(args, image path): `<out-root>/figures/<stem>[-smoke].png` unless --out names one."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="read the SMOKE table's records")
    parser.add_argument("--out-root", type=Path, default=Path("outputs"), help="the tables' output root")
    parser.add_argument("--out", type=Path, default=None, help="image path")
    args = parser.parse_args(argv)
    return args, args.out or args.out_root / "figures" / f"{stem}{'-smoke' if args.smoke else ''}.png"


def no_finished_runs(table: str) -> SystemExit:
    return SystemExit(f"error: no finished runs of table {table}; run `python -m repro.tables run {table}` first")
