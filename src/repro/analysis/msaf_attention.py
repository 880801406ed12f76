"""MSAF Fig. 6 and Fig. 7 (msaf.txt §5.5) from trained MSAF runs: `python -m repro.analysis.msaf_attention`.

Rebuilds each finished run from its results record (`repro.analysis.runs`: the resolved config and the tested
checkpoint, eval mode, so no BlockDropout), runs a split (default: test) through it, and collects the softmax
attention `A` that every MSAF module records (`extras['msaf{k}_attention']`: (B, n_blocks, C), blocks ordered modality
by modality in the point's modality order; softmax over the blocks for each channel, before lambda). With several
runs (e.g. the six folds of Table 1) the samples are pooled.

- Fig. 6: the attention of the 2nd module (`--module`, 1-based), summed over each modality's blocks (the share of
  the attention each modality receives, per channel; the shares sum to 1) and averaged over the samples of each
  class: per class the modality shares averaged over channels (bars; dashed: the first modality's share under
  uniform attention, its number of blocks over all blocks), and per class and channel the share of the first
  modality (heat map). Class names are RAVDESS's emotions on RAVDESS data, class indices otherwise.
- Fig. 7: the mean attention per block (over samples and channels), module 1 vs module 2 (one panel per module,
  blocks coloured by modality). Under uniform attention every block gets 1 / n_blocks.

Writes `<out>_fig6.png`, `<out>_fig7.png`, `<out>.npz` (every sample's attention per module, labels, ids and the
figures' arrays) and `<out>.json` (a summary), each atomically; everything is marked SYNTHETIC when a run's record
says it read SYNTHETIC data. With time segments (split_block q > 1) a sample's attention is averaged over them.

    python -m repro.analysis.msaf_attention <run dir> [<run dir> ...] [--split test] [--module 2]
        [--out outputs/figures/msaf_attention]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repro.config import ConfigError
from repro.data.base import DataError
from repro.results import FILENAME, atomic_write, atomic_write_text, read_record, save_figure

SPLITS = ("val", "test")
ATTENTION_KEY = "msaf{k}_attention"


@dataclass
class Attention:
    """Every sample's attention per MSAF module, with what is needed to read it."""

    modules: list[np.ndarray]  # per module: (N, n_blocks, C), softmax over blocks per channel
    block_modality: list[np.ndarray]  # per module: (n_blocks,) index into `modalities` of each block
    modalities: list[str]
    labels: np.ndarray  # (N,)
    ids: np.ndarray  # (N,)
    class_names: list[str]
    synthetic: bool


def class_names(cfg) -> list[str]:
    """RAVDESS's emotions on RAVDESS data, the data config's `class_names` where it has them, else indices."""
    k = int(cfg.data.num_classes)
    if str(cfg.data.get("name", "")).startswith("ravdess"):
        from repro.data.ravdess_names import EMOTIONS

        return list(EMOTIONS)[:k]
    names = cfg.data.get("class_names")
    return [str(n) for n in names] if names else [str(i) for i in range(k)]


def block_layout(net) -> tuple[list[str], list[np.ndarray]]:
    """(modalities in the first point's order, per module the modality index of each of its blocks)."""
    if not hasattr(net, "msaf") or not hasattr(net, "points"):
        raise ConfigError(f"{type(net).__name__} has no MSAF modules at fusion points; Fig. 6/7 need an MSAF run "
                          "(fusion=msaf)")
    modalities = list(net.points[0])
    layout = []
    for k, point in enumerate(net.points):
        counts = net.msaf[k].num_blocks
        layout.append(np.concatenate([np.full(n, modalities.index(m) if m in modalities else len(modalities))
                                      for m, n in zip(point, counts)]))
        modalities += [m for m in point if m not in modalities]
    return modalities, layout


def collect_run(run_dir: Path, split: str):
    """(cfg, per-module attention arrays, labels, ids, modalities, block layout, synthetic) of one finished run."""
    from repro.analysis import runs

    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose one of {SPLITS}")
    cfg, net, datamodule = runs.load_run(run_dir)
    if "msaf" not in str(cfg.fusion.net._target_).lower() or not hasattr(net, "points"):
        raise ConfigError(f"{run_dir} trained {cfg.fusion.net._target_}, not the staged MSAF network "
                          "(fusion=msaf); Fig. 6/7 need one")
    modalities, layout = block_layout(net)
    modules: list[list[np.ndarray]] = [[] for _ in layout]
    labels, ids = [], []
    with torch.no_grad():
        for batch in getattr(datamodule, f"{split}_dataloader")():
            out = net(batch)
            for k in range(len(layout)):
                att = out.extras[ATTENTION_KEY.format(k=k)].float()
                modules[k].append((att.mean(dim=1) if att.dim() == 4 else att).numpy())  # q segments: averaged
            labels.append(batch["label"].numpy())
            ids += [str(i) for i in batch["id"]]
    record = read_record(Path(run_dir) / FILENAME)
    return (cfg, [np.concatenate(m) for m in modules], np.concatenate(labels).astype(int), np.array(ids),
            modalities, layout, bool(record.get("synthetic")))


def collect(run_dirs: list[Path], split: str = "test") -> Attention:
    """The attention of every sample of `split` in each run, pooled over the runs (same network layout)."""
    pooled = None
    for run_dir in run_dirs:
        cfg, modules, labels, ids, modalities, layout, synthetic = collect_run(run_dir, split)
        if pooled is None:
            pooled = Attention(modules, layout, modalities, labels, ids, class_names(cfg), synthetic)
            continue
        if modalities != pooled.modalities or [m.shape[1:] for m in modules] != [m.shape[1:] for m in
                                                                                  pooled.modules]:
            raise ConfigError(f"{run_dir} has another MSAF layout than {run_dirs[0]}; pool runs of one table row")
        pooled.modules = [np.concatenate([a, b]) for a, b in zip(pooled.modules, modules)]
        pooled.labels = np.concatenate([pooled.labels, labels])
        pooled.ids = np.concatenate([pooled.ids, ids])
        pooled.synthetic |= synthetic
    return pooled


def modality_shares(attention: np.ndarray, block_modality: np.ndarray, n_modalities: int) -> np.ndarray:
    """(N, n_blocks, C) -> (N, M, C): the attention summed over each modality's blocks (per channel, sums to 1)."""
    return np.stack([attention[:, block_modality == m].sum(axis=1) for m in range(n_modalities)], axis=1)


def per_class(values: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-class mean of `values` over its samples (NaN for a class without samples), samples per class)."""
    counts = np.bincount(labels, minlength=n_classes)
    means = np.full((n_classes, *values.shape[1:]), np.nan)
    for c in np.flatnonzero(counts):
        means[c] = values[labels == c].mean(axis=0)
    return means, counts


def figure_arrays(att: Attention, module: int) -> dict[str, np.ndarray]:
    """Fig. 6 (module `module`, 0-based) and Fig. 7 (every module) as arrays."""
    # float64: means over thousands of float32 samples × channels drift by ~1e-5 otherwise
    shares = modality_shares(att.modules[module].astype(np.float64), att.block_modality[module], len(att.modalities))
    share_channels, counts = per_class(shares, att.labels, len(att.class_names))
    owner = att.block_modality[module]
    arrays = {"fig6_share_channels": share_channels, "fig6_share": share_channels.mean(axis=-1),
              "fig6_class_counts": counts,
              # the share each modality gets under uniform attention: its blocks / all blocks (RAVDESS 64 video : 2)
              "fig6_uniform_share": np.bincount(owner, minlength=len(att.modalities)) / len(owner)}
    for k, a in enumerate(att.modules):
        arrays[f"fig7_module{k + 1}_block_mean"] = a.mean(axis=(0, 2), dtype=np.float64)
    return arrays


def draw_fig6(att: Attention, arrays: dict, module: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    share, channels = arrays["fig6_share"], arrays["fig6_share_channels"]
    fig, (bars, heat) = plt.subplots(1, 2, figsize=(11, 0.4 * len(att.class_names) + 2.2), layout="constrained")
    y = np.arange(len(att.class_names))
    left = np.zeros(len(y))
    for m, name in enumerate(att.modalities):
        values = np.nan_to_num(share[:, m])
        bars.barh(y, values, left=left, label=name)
        left += values
    bars.axvline(arrays["fig6_uniform_share"][0], color="black", lw=0.8, ls="--",
                 label=f"uniform ({att.modalities[0]} blocks / all)")
    bars.set_yticks(y, att.class_names)
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel("share of the attention (mean over channels)")
    bars.legend(fontsize=8, loc="lower right")
    im = heat.imshow(channels[:, 0], aspect="auto", cmap="coolwarm", vmin=0, vmax=1)
    heat.set_yticks(y, att.class_names)
    heat.set_xlabel("channel of the block")
    fig.colorbar(im, ax=heat, label=f"{att.modalities[0]} share")
    title = f"MSAF module {module + 1}: attention per class, summed per modality (msaf.txt Fig. 6)"
    fig.suptitle(("SYNTHETIC fixture data, not a reproduction — " if att.synthetic else "") + title, fontsize=9)
    return save_figure(fig, path)


def draw_fig7(att: Attention, arrays: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(att.modules)
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.2), squeeze=False, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ax in enumerate(axes[0]):
        means, owner = arrays[f"fig7_module{k + 1}_block_mean"], att.block_modality[k]
        ax.bar(np.arange(len(means)), means, color=[colours[m % len(colours)] for m in owner])
        ax.axhline(1 / len(means), color="black", lw=0.8, ls="--", label="uniform")
        ax.set_title(f"module {k + 1}: " + ", ".join(f"{att.modalities[m]} {int((owner == m).sum())} blocks"
                                                      for m in np.unique(owner)), fontsize=8)
        ax.set_xlabel("block (modality by modality)")
        ax.set_ylabel("mean attention")
        ax.legend(fontsize=7)
    title = "MSAF attention per block, module 1 vs module 2 (msaf.txt Fig. 7)"
    fig.suptitle(("SYNTHETIC fixture data, not a reproduction — " if att.synthetic else "") + title, fontsize=9)
    return save_figure(fig, path)


def summary(att: Attention, arrays: dict, module: int, run_dirs: list[Path], split: str) -> dict:
    return {"synthetic": att.synthetic, "runs": [str(r) for r in run_dirs], "split": split,
            "samples": int(len(att.labels)), "modalities": att.modalities, "classes": att.class_names,
            "fig6_module": module + 1,
            "fig6_share": {c: (None if np.isnan(row).any() else dict(zip(att.modalities, map(float, row))))
                           for c, row in zip(att.class_names, arrays["fig6_share"])},
            "fig6_uniform_share": dict(zip(att.modalities, map(float, arrays["fig6_uniform_share"]))),
            "fig6_class_counts": dict(zip(att.class_names, map(int, arrays["fig6_class_counts"]))),
            "fig7_block_mean": {f"module{k + 1}": [float(v) for v in arrays[f"fig7_module{k + 1}_block_mean"]]
                                for k in range(len(att.modules))},
            "blocks": {f"module{k + 1}": {att.modalities[m]: int((b == m).sum()) for m in np.unique(b)}
                       for k, b in enumerate(att.block_modality)}}


def write_outputs(att: Attention, module: int, run_dirs: list[Path], split: str, out: Path) -> dict[str, Path]:
    """The two figures, the raw arrays and the summary, each written atomically."""
    arrays = figure_arrays(att, module)
    raw = {**{f"module{k + 1}_attention": a for k, a in enumerate(att.modules)},
           **{f"module{k + 1}_block_modality": b for k, b in enumerate(att.block_modality)},
           "labels": att.labels, "ids": att.ids, "modalities": np.array(att.modalities),
           "classes": np.array(att.class_names), "synthetic": np.array(att.synthetic), **arrays}
    paths = {"npz": out.with_name(out.name + ".npz"), "json": out.with_name(out.name + ".json")}
    atomic_write(paths["npz"], lambda f: np.savez(f, **raw), binary=True)
    atomic_write_text(paths["json"], json.dumps(summary(att, arrays, module, run_dirs, split), indent=2) + "\n")
    paths["fig6"] = draw_fig6(att, arrays, module, out.with_name(out.name + "_fig6.png"))
    paths["fig7"] = draw_fig7(att, arrays, out.with_name(out.name + "_fig7.png"))
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m repro.analysis.msaf_attention",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+", help="finished MSAF run directories (have results.json)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="the split run through the network")
    parser.add_argument("--module", type=int, default=2, help="the MSAF module of Fig. 6 (1-based; default 2)")
    parser.add_argument("--out", type=Path, default=Path("outputs/figures/msaf_attention"),
                        help="output prefix: <out>_fig6.png, <out>_fig7.png, <out>.npz, <out>.json")
    args = parser.parse_args(argv)
    try:
        att = collect(args.run_dirs, args.split)
        if not 1 <= args.module <= len(att.modules):
            raise ConfigError(f"--module {args.module}: the run has {len(att.modules)} MSAF module(s) "
                              f"(fusion.net.points); choose 1..{len(att.modules)}")
        paths = write_outputs(att, args.module - 1, args.run_dirs, args.split, args.out)
    except (ConfigError, DataError) as err:
        raise SystemExit(f"error: {err}") from None
    print(("SYNTHETIC fixture data — " if att.synthetic else "") + "wrote " + ", ".join(map(str, paths.values())))
    return paths


if __name__ == "__main__":
    main()
