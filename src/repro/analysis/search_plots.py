"""MFAS Fig. 5 from a search record: the validation error of every architecture trained at each search step
(dots) with the step's mean ± standard deviation, and the sampling temperature per step.

    python -m repro.analysis.search_plots <search dir> [<search dir> ...] [--out outputs/figures/mfas_search.png]
    make figure-mfas-search SEARCH=outputs/search/avdigits-mfas-seed0

Several search directories (e.g. MFAS and random search of the same seed) are drawn side by side on the
left panel with a small offset. Read from `search.json` only (`repro.search.state`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from repro.results import save_figure
from repro.search.state import SearchStateError, read_search_record


def step_errors(record: dict) -> dict[int, list[float]]:
    """Validation error (1 − score) of every architecture trained at each step (1-based)."""
    out: dict[int, list[float]] = {}
    for e in record["evaluations"]:
        out.setdefault(e["step"] + 1, []).append(1.0 - e["score"])
    return dict(sorted(out.items()))


def plot_searches(dirs: list[Path], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [read_search_record(d) for d in dirs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.6 / max(1, len(records))
    for k, record in enumerate(records):
        errors = step_errors(record)
        offset = (k - (len(records) - 1) / 2) * width
        label = f"{record['strategy']} (seed {record['seed']})"
        steps = np.array(list(errors))
        for s, errs in errors.items():
            left.scatter(np.full(len(errs), s + offset), errs, s=8, alpha=0.4, color=f"C{k}")
        means = np.array([np.mean(v) for v in errors.values()])
        stds = np.array([np.std(v) for v in errors.values()])
        left.errorbar(steps + offset, means, yerr=stds, color=f"C{k}", marker="o", capsize=3, label=label)
        temps = [(s["index"] + 1, s["temperature"]) for s in record["steps"]]
        if record["strategy"] == "mfas":
            right.plot(*zip(*temps), marker="o", color=f"C{k}", label=label)
    left.set_xlabel("search step")
    left.set_ylabel("validation error")
    left.set_title("validation error of the trained architectures (mean ± std per step)", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("search step")
    right.set_ylabel("sampling temperature T")
    right.set_title("temperature schedule", fontsize=9)
    right.grid(alpha=0.3)
    if right.lines:
        right.legend(fontsize=8)
    data = ", ".join(sorted({str(r["data"]) for r in records}))
    synthetic = any("smoke" in str(d) for d in dirs)
    fig.suptitle(("SMOKE (synthetic fixtures) — " if synthetic else "") + f"MFAS Fig. 5 on {data}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.analysis.search_plots", description=__doc__.splitlines()[0])
    parser.add_argument("search_dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("outputs/figures/mfas_search.png"))
    args = parser.parse_args(argv)
    try:
        path = plot_searches(args.search_dirs, args.out)
    except SearchStateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"[figure] {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
