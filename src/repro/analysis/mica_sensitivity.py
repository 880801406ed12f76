"""MICA Fig. 3 (mica.txt §4.4): test Acc-7 / Acc-2 / F1 of MICA on CMU-MOSEI as alpha, beta and tau vary.

Reads the records of table `mica_fig3` (each row = one value of one hyperparameter, tagged `sweep: {param, value}`;
`python -m repro.tables run mica_fig3` trains them) and draws one panel per hyperparameter, a line per metric
(mean over the row's seeds, ± the table's spread when there are several).

    python -m repro.analysis.mica_sensitivity [--smoke] [--out outputs/figures/mica_sensitivity.png]
"""

from __future__ import annotations

import math
from pathlib import Path

from repro.analysis.table_figure_cli import no_finished_runs, parse_figure_args
from repro.results import save_figure
from repro.tables import collect, load_table

TABLE = "mica_fig3"


def sweep_points(smoke: bool, out_root: Path) -> dict[str, list[tuple[float, dict]]]:
    """{param: [(value, cells by column key)]} sorted by value, from the table's records."""
    table = load_table(TABLE)
    rows = {r["label"]: r for r in collect(table, smoke, out_root)}
    points: dict[str, list[tuple[float, dict]]] = {}
    for row in table.rows:
        sweep = row.get("sweep")
        if sweep is None:
            continue
        points.setdefault(str(sweep.param), []).append((float(sweep.value), rows[row.label]["cells"]))
    return {param: sorted(values, key=lambda p: p[0]) for param, values in points.items()}


def draw(points: dict[str, list[tuple[float, dict]]], out: Path, smoke: bool) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = load_table(TABLE)
    fig, axes = plt.subplots(1, len(points), figsize=(4 * len(points), 3.4), squeeze=False, layout="constrained")
    for ax, (param, values) in zip(axes[0], points.items()):
        xs = [v for v, _ in values]
        for col in table.columns:
            means = [c[col.key]["mean"] * float(col.scale) for _, c in values]
            spreads = [(c[col.key]["se"] if not math.isnan(c[col.key]["se"]) else 0.0) * float(col.scale)
                       for _, c in values]
            ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=str(col.label))
        ax.set_xlabel(param)
        ax.set_ylabel("%")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    title = "MICA sensitivity on CMU-MOSEI (mica.txt Fig. 3)"
    fig.suptitle(("SMOKE: SYNTHETIC fixture data, not a reproduction — " if smoke else "") + title, fontsize=9)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> Path:
    args, out = parse_figure_args(argv, __doc__.splitlines()[0], "mica_sensitivity")
    points = sweep_points(args.smoke, args.out_root)
    if not any(c[k]["n"] for values in points.values() for _, c in values for k in c):
        raise no_finished_runs(TABLE)
    path = draw(points, out, args.smoke)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
