"""MESM Fig. 5 (mesm.txt §6.3, "Effects of Nucleus Sampling"): accuracy and feature-extraction GFLOPs of MESM as the
top-p of its nucleus selection goes 0.1 … 0.9, with FE2E (every location kept) as the reference line.

Reads the records of table `mesm_fig5` (each MESM row tagged `sweep: {param: top_p, value}`, the FE2E row tagged
`reference: true`; `python -m repro.tables run mesm_fig5` trains them) and draws two panels as the paper: top the
average weighted accuracy, bottom the GFLOPs per sample.

    python -m repro.analysis.mesm_topp [--smoke] [--out outputs/figures/mesm_topp.png]
"""

from __future__ import annotations

import math
from pathlib import Path

from repro.analysis.table_figure_cli import no_finished_runs, parse_figure_args
from repro.results import save_figure
from repro.tables import collect, load_table

TABLE = "mesm_fig5"
PANELS = (("wacc_mean", "average WAcc (%)", 100.0), ("gflops", "GFLOPs per sample", 1.0))


def sweep_points(smoke: bool, out_root: Path) -> tuple[list[tuple[float, dict]], dict | None]:
    """([(top_p, cells by column key)] sorted by p, the reference row's cells or None) from the table's records."""
    table = load_table(TABLE)
    rows = {r["label"]: r for r in collect(table, smoke, out_root)}
    points, reference = [], None
    for row in table.rows:
        if row.get("reference"):
            reference = rows[row.label]["cells"]
        elif row.get("sweep") is not None:
            points.append((float(row.sweep.value), rows[row.label]["cells"]))
    return sorted(points, key=lambda p: p[0]), reference


def _mean(cell: dict, scale: float) -> float:
    return cell["mean"] * scale if cell["n"] else math.nan


def draw(points: list[tuple[float, dict]], reference: dict | None, out: Path, smoke: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(5, 5.5), sharex=True, layout="constrained")
    xs = [p for p, _ in points]
    for ax, (key, label, scale) in zip(axes, PANELS):
        ax.plot(xs, [_mean(c[key], scale) for _, c in points], marker="o", label="MESM")
        if reference is not None and reference[key]["n"]:
            ax.axhline(_mean(reference[key], scale), color="grey", linestyle="--", label="FE2E")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("top-p of the nucleus selection")
    title = "MESM top-p sweep (mesm.txt Fig. 5)"
    # two lines: the SYNTHETIC warning alone is wider than the 5-inch figure at 9 pt
    fig.suptitle(("SMOKE: SYNTHETIC fixture data, not a reproduction\n" if smoke else "") + title, fontsize=9)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> Path:
    args, out = parse_figure_args(argv, __doc__.splitlines()[0], "mesm_topp")
    points, reference = sweep_points(args.smoke, args.out_root)
    if not any(c[k]["n"] for _, c in points for k in c):
        raise no_finished_runs(TABLE)
    path = draw(points, reference, out, args.smoke)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
