"""Robustness curves of a trained run: its test metrics under additive Gaussian noise of growing level, per modality.

    python -m repro.analysis.robustness <run dir or .ckpt> [--modalities audio,image] [--levels 0,0.1,...,1.0]
        [--split test] [--seed 0] [--out <folder>] [key=value overrides of the run's config]

For each modality, for each level, the run's selected checkpoint is tested with that modality noised at
`level × its train std` (`repro.evaluate.Perturbation`, MultiBench's robustness protocol: zero-mean Gaussian noise,
levels 0 … 1 in steps of 0.1; see `repro.evaluate` for the definition and the reference). The other modalities stay
clean. The same seed is used at every level, so the curve scales one set of draws. Writes `robustness.csv` (one row
per modality and level, every metric of the task) and `robustness.png` (the data's selection metric, e.g. accuracy,
against the level; one line per modality) into the run directory, or `--out`. Level 0 equals the unperturbed eval.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.config import ConfigError
from repro.results import atomic_write_text, save_figure

DEFAULT_LEVELS = tuple(round(0.1 * i, 1) for i in range(11))
CSV_NAME, PNG_NAME = "robustness.csv", "robustness.png"


def sweep(loaded, modalities: Sequence[str], levels: Sequence[float], split: str = "test", seed: int = 0) -> list[dict]:
    """One row per (modality, level): {modality, level, seed, <metric>: value, ...}."""
    from repro.evaluate import Perturbation, checkpoint_metrics

    rows = []
    for modality in modalities:
        for level in levels:
            metrics = checkpoint_metrics(loaded, split, Perturbation(noise={modality: float(level)}, seed=seed))
            rows.append({"modality": modality, "level": float(level), "seed": seed, **metrics})
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())
    return path


def plot(rows: list[dict], metric: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for k, modality in enumerate(dict.fromkeys(r["modality"] for r in rows)):
        points = [(r["level"], r[metric]) for r in rows if r["modality"] == modality]
        ax.plot(*zip(*points), marker="o", color=f"C{k}", label=f"noise on {modality}")
    ax.set_xlabel("noise level (× the modality's train std)")
    ax.set_ylabel(f"test {metric}")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def parse_levels(text: str) -> list[float]:
    try:
        levels = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--levels {text!r}: expected comma-separated numbers >= 0, e.g. 0,0.1,0.5,1") from None
    if not levels or min(levels) < 0:
        raise ConfigError(f"--levels {text!r}: expected comma-separated numbers >= 0, e.g. 0,0.1,0.5,1")
    return levels


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro.analysis.robustness", description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a training run directory (with results.json) or a .ckpt inside one")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the run's saved config (e.g. data.reader.root)")
    p.add_argument("--modalities", help="comma-separated modalities to noise (default: every modality of the data)")
    p.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="noise levels (default 0,0.1,...,1.0)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"))
    p.add_argument("--seed", type=int, default=0, help="seeds the noise (the same draws at every level)")
    p.add_argument("--out", help="folder for robustness.csv / .png (default: the run directory)")
    return p


def run(args: argparse.Namespace) -> tuple[Path, Path]:
    from repro.evaluate import load_run

    levels = parse_levels(args.levels)
    loaded = load_run(args.run, args.overrides)
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()] if args.modalities else loaded.modalities
    rows = sweep(loaded, modalities, levels, args.split, args.seed)
    out = Path(args.out) if args.out else loaded.run_dir
    metric = str(loaded.cfg.data.selection.metric)
    mark = "SYNTHETIC " if loaded.datamodule.reader.synthetic else ""
    title = f"{mark}{loaded.record.get('data')} × {loaded.record.get('fusion')}: {args.split} {metric} under noise"
    return write_csv(rows, out / CSV_NAME), plot(rows, metric, title, out / PNG_NAME)


def main(argv: Sequence[str] | None = None) -> None:
    from repro.train import USER_ERRORS

    args = parser().parse_intermixed_args(argv)
    try:
        csv_path, png_path = run(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"[repro robustness] {csv_path} {png_path}")


if __name__ == "__main__":
    main()
