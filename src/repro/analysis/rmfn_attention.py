"""RMFN Fig. 3 (rmfn.txt §5.3): HIGHLIGHT attention of every stage across time for single test examples.

Rebuilds a finished RMFN run from its results record (the resolved config and the tested checkpoint), runs chosen
test segments through it, and draws, per example, one panel per stage k: the attention a[k]_t over the
concatenated LSTHM outputs h_t, summed over each modality's columns (language / visual / acoustic × time), with
the padding steps cut off. The raw (T, K, d) attention is written beside the figure as .npz.

    python -m repro.analysis.rmfn_attention <run dir> [--examples 0 1 2] [--out outputs/figures/rmfn_attention.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from repro.analysis import runs
from repro.config import ConfigError
from repro.results import save_figure

ATTENTION_KEY = "rmfn_attention"


def load_run(run_dir: Path):
    """(cfg, net in eval mode, test dataset, whether the data is a SYNTHETIC fixture) of a finished RMFN run."""
    cfg, net, datamodule = runs.load_run(run_dir)
    if "rmfn" not in str(cfg.fusion.net._target_).lower():
        raise ConfigError(f"{run_dir} trained {cfg.fusion.net._target_}, not RMFN; Fig. 3 needs an RMFN run")
    return cfg, net, datamodule.splits["test"], bool(getattr(datamodule.reader, "synthetic", False))


def attention_of(net, dataset, examples: list[int]) -> list[dict]:
    """Per example: id, real-step mask (T,), attention (T, K, d) and the modality column slices."""
    from torch.utils.data import default_collate

    batch = default_collate([dataset[i] for i in examples])
    with torch.no_grad():
        out = net(batch)
    if ATTENTION_KEY not in out.extras:
        raise ConfigError("this RMFN run exports no attention (trained with fusion.net.mfp=false or "
                          "highlight=false?); Fig. 3 needs the full model")
    att = out.extras[ATTENTION_KEY].float().numpy()
    masks = [batch.get(f"{m}_mask") for m in net.modalities]
    real = np.ones(att.shape[:2], dtype=bool)
    for mask in masks:
        if mask is not None:
            real &= mask.numpy()
    slices = {m: slice(start, stop) for m, (start, stop) in net.attention_slices.items()}
    return [{"id": str(batch["id"][j]), "real": real[j], "attention": att[j], "slices": slices}
            for j in range(len(examples))]


def per_modality(attention: np.ndarray, slices: dict[str, slice]) -> tuple[list[str], np.ndarray]:
    """(T, K, d) -> names, (K, M, T): the attention mass each modality receives per stage and step, relative to
    its share under uniform attention (1 = as much as its width; > 1 = highlighted). Raw mass would mostly show
    the modalities' hidden sizes (text 88 of 152 columns by default)."""
    names, d = list(slices), attention.shape[-1]
    ratio = [attention[:, :, s].sum(axis=-1) / ((s.stop - s.start) / d) for s in slices.values()]
    return names, np.stack(ratio, axis=0).transpose(2, 0, 1)


def draw(examples: list[dict], out: Path, synthetic: bool = False) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = examples[0]["attention"].shape[1]
    from matplotlib.colors import TwoSlopeNorm

    fig, axes = plt.subplots(len(examples), stages, figsize=(3.2 * stages, 1.8 * len(examples) + 0.8),
                             squeeze=False, layout="constrained")
    ratios = [per_modality(ex["attention"][ex["real"]], ex["slices"]) for ex in examples]
    spread = max(float(np.abs(r - 1).max()) for _, r in ratios) or 1e-3
    norm = TwoSlopeNorm(vcenter=1.0, vmin=max(0.0, 1 - spread), vmax=1 + spread)
    for row, ex, (names, ratio) in zip(axes, examples, ratios):
        for k, ax in enumerate(row):
            im = ax.imshow(ratio[k], aspect="auto", cmap="coolwarm", norm=norm)
            ax.set_yticks(range(len(names)), names)
            ax.set_title(f"{ex['id']}: stage {k + 1}", fontsize=8)
            ax.set_xlabel("word (real steps)", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="attention / uniform share")
    title = "RMFN HIGHLIGHT attention per stage and time (rmfn.txt Fig. 3)"
    fig.suptitle(("SYNTHETIC fixture data, not a reproduction — " if synthetic else "") + title, fontsize=9)
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished RMFN run directory (has results.json)")
    parser.add_argument("--examples", type=int, nargs="+", default=[0, 1, 2], help="test-split indices")
    parser.add_argument("--out", type=Path, default=Path("outputs/figures/rmfn_attention.png"))
    args = parser.parse_args(argv)
    try:
        _, net, test, synthetic = load_run(args.run_dir)
        bad = [i for i in args.examples if not 0 <= i < len(test)]
        if bad:
            raise ConfigError(f"--examples {bad} outside the test split (0..{len(test) - 1})")
        examples = attention_of(net, test, args.examples)
    except ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    path = draw(examples, args.out, synthetic)
    np.savez(args.out.with_suffix(".npz"), **{f"{e['id']}_attention": e["attention"] for e in examples},
             **{f"{e['id']}_real": e["real"] for e in examples})
    print(f"wrote {path} and {args.out.with_suffix('.npz')}")
    return path


if __name__ == "__main__":
    main()
