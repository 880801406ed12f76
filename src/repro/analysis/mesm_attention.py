"""MESM Fig. 3/4/6 (mesm.txt §6.2 and the appendix): which feature-map sites each cross-modal sparse block keeps,
over face frames and spectrogram chunks, per emotion: `python -m repro.analysis.mesm_attention <run dir>`.

Rebuilds a finished MESM run (`repro.analysis.runs`: resolved config, tested checkpoint, eval mode), runs a split
(default: test) through it and reads the binary nucleus masks every sparse block records (`extras['kept/<m>/<b>']`:
(ΣF, H_b, W_b) over all frames / chunks of the batch; `batch['<m>_counts']` says which sample each row belongs to).

- Per modality and block, per emotion: the fraction of frames in which each site is kept, averaged over the frames
  of the samples labelled with that emotion (a heat map per emotion: the paper's red "active points", pooled).
- The first sample's first frame / chunk with each block's kept sites overlaid (the paper's Fig. 3/4 examples; the
  face crop / spectrogram as the network saw it, after normalisation).

Writes `<out>.png`, `<out>_example.png`, `<out>.npz` (the maps) and `<out>.json` (kept fraction per modality, block
and emotion), atomically; all marked SYNTHETIC when the run's record says it read SYNTHETIC data.

    python -m repro.analysis.mesm_attention <run dir> [--split test] [--out outputs/figures/mesm_attention]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch

from repro.config import ConfigError
from repro.data.base import DataError
from repro.results import FILENAME, atomic_write, atomic_write_text, read_record, save_figure

SPLITS = ("train", "val", "test")
KEPT = re.compile(r"^kept/(?P<modality>[^/]+)/(?P<block>\d+)$")


def collect(run_dir: Path, split: str = "test") -> dict:
    """{'maps': {(m, b): (n_emotions, H, W) kept fraction}, 'kept': {(m, b): mean kept fraction per emotion},
    'example': {(m, b): (H, W) mask of the first row}, 'inputs': {m: first frame}, 'emotions', 'synthetic'}."""
    from repro.analysis import runs

    if split not in SPLITS:
        raise ConfigError(f"--split {split!r}: choose one of {SPLITS}")
    cfg, net, datamodule = runs.load_run(run_dir)
    if "MESM" not in str(cfg.fusion.net._target_):
        raise ConfigError(f"{run_dir} trained {cfg.fusion.net._target_}, not MESM (fusion=mesm); its sparse blocks "
                          "are what Fig. 3/4/6 show")
    emotions = list(cfg.data.emotions)
    sums, frames, example, inputs = {}, {}, {}, {}
    with torch.no_grad():
        for batch in getattr(datamodule, f"{split}_dataloader")():
            extras = net(batch).extras
            labels = batch["label"].float()  # (B, n_emotions) 0/1
            for key, kept in extras.items():
                match = KEPT.match(key)
                if not match:
                    continue
                m, b = match["modality"], int(match["block"])
                per_row = torch.repeat_interleave(labels, batch[f"{m}_counts"].long(), dim=0)  # (ΣF, n_emotions)
                kept = kept.float()
                sums[m, b] = sums.get((m, b), 0) + torch.einsum("fe,fhw->ehw", per_row, kept).numpy()
                frames[m, b] = frames.get((m, b), 0) + per_row.sum(0).numpy()
                example.setdefault((m, b), kept[0].numpy())
                inputs.setdefault(m, batch[m][0].float().mean(0).numpy())
    if not sums:
        raise ConfigError(f"{run_dir}: the network recorded no kept sites (extras 'kept/<m>/<b>')")
    maps = {k: sums[k] / np.maximum(frames[k], 1)[:, None, None] for k in sums}
    kept = {k: v.mean(axis=(1, 2)) for k, v in maps.items()}
    synthetic = bool(read_record(Path(run_dir) / FILENAME).get("synthetic"))
    return {"maps": maps, "kept": kept, "example": example, "inputs": inputs, "emotions": emotions,
            "synthetic": synthetic}


def _title(result: dict, text: str) -> str:
    return ("SYNTHETIC fixture data, not a reproduction — " if result["synthetic"] else "") + text


def draw_maps(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys, emotions = sorted(result["maps"]), result["emotions"]
    fig, axes = plt.subplots(len(keys), len(emotions), figsize=(1.6 * len(emotions), 1.6 * len(keys)), squeeze=False)
    for row, key in enumerate(keys):
        for col, emotion in enumerate(emotions):
            ax = axes[row][col]
            ax.imshow(result["maps"][key][col], cmap="Reds", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(emotion, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"{key[0]} block {key[1]}", fontsize=7)
    fig.suptitle(_title(result, "MESM: fraction of frames in which each site is kept, per emotion"), fontsize=8)
    return save_figure(fig, path)


def draw_example(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(result["example"])
    fig, axes = plt.subplots(1, len(keys), figsize=(2.2 * len(keys), 2.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        image, mask = result["inputs"][key[0]], result["example"][key]
        ax.imshow(image, cmap="gray", extent=(0, 1, 1, 0))
        ax.imshow(np.ma.masked_equal(mask, 0), cmap="autumn", alpha=0.55, extent=(0, 1, 1, 0), vmin=0, vmax=1)
        ax.set_title(f"{key[0]} block {key[1]}: {mask.mean():.0%} kept", fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle(_title(result, "MESM: kept sites (red) of the first test frame / chunk"), fontsize=8)
    return save_figure(fig, path)


def write_outputs(result: dict, run_dir: Path, split: str, out: Path) -> dict[str, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = {"maps": draw_maps(result, out.with_name(out.name + ".png")),
             "example": draw_example(result, out.with_name(out.name + "_example.png")),
             "npz": out.with_name(out.name + ".npz"), "json": out.with_name(out.name + ".json")}
    arrays = {f"{m}_block{b}": v for (m, b), v in result["maps"].items()}
    atomic_write(paths["npz"], lambda f: np.savez(f, emotions=np.array(result["emotions"]), **arrays), binary=True)
    summary = {"synthetic": result["synthetic"], "run": str(run_dir), "split": split, "emotions": result["emotions"],
               "kept_fraction": {f"{m}/{b}": [round(float(x), 4) for x in v] for (m, b), v in result["kept"].items()}}
    atomic_write_text(paths["json"], json.dumps(summary, indent=2) + "\n")
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m repro.analysis.mesm_attention",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished MESM run directory (has results.json)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="the split run through the network")
    parser.add_argument("--out", type=Path, default=Path("outputs/figures/mesm_attention"),
                        help="output prefix: <out>.png, <out>_example.png, <out>.npz, <out>.json")
    args = parser.parse_args(argv)
    try:
        result = collect(args.run_dir, args.split)
        paths = write_outputs(result, args.run_dir, args.split, args.out)
    except (ConfigError, DataError) as err:
        raise SystemExit(f"error: {err}") from None
    print(("SYNTHETIC fixture data — " if result["synthetic"] else "") + "wrote " + ", ".join(map(str, paths.values())))
    return paths


if __name__ == "__main__":
    main()
