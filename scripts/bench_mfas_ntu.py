"""Cost of one sampled architecture of the MFAS search on NTU RGB+D-sized cached features (mfas.txt §4, Table 6).

    python scripts/bench_mfas_ntu.py [--train-rows 40320] [--val-rows 8064] [--per-depth 5] [--out results/bench]
    make bench-mfas-ntu

What it times: `repro.search.trainer.train_architecture` — the search's inner loop — with configs/search/mfas_ntu.yaml's
`train` settings (3 epochs, batch 20, inner size 16, dropout 0.5, Adam + per-batch cosine) on a feature cache in the
search's own format (memory-mapped `.npy` per stage, `repro.search.features.load_cache`, the space's taps selected
with the `layer4_pooled` alias), filled with generated SYNTHETIC features of NTU's widths: skeleton conv5 128, conv6
256, person_max 1024, fc7 512; RGB layer2 512, layer3 1024, layer4 2048 (and its alias). Labels: 60 classes, uniform.
Random architectures of each depth L = 1..4 (`--per-depth` of each) are trained; the median seconds per depth give
the projected cost of the paper's budget: step 1 trains all 32 one-layer architectures, the other 11 steps K = 15
each — in search iteration 1 of depth 2, 3, 4, in iterations 2 and 3 of depth 4: 32·t1 + 15·(t2 + t3 + t4) + 120·t4
(197 architectures), beside the paper's 12.57 GPU-hours per step (4 P100s; MFAS Table 6: 150.91 h for 12 steps).

Split sizes (the rows are the cost): NTU-60's cross-subject training set has 40,320 samples (20 subjects; Shahroudy et
al. 2016) — the default `--train-rows`, as the issue asks. The authors' search trains on 7 of those subjects
('trainexp': 1, 4, 8, 13, 15, 17, 19) and validates on 4 (2, 5, 9, 14); the per-subject counts are not published, so
`--val-rows` defaults to 4 × 2,016 (the mean per CS-training subject, 40,320 / 20) = 8,064, and the JSON also gives
the projection scaled to a 7-subject training split (7 × 2,016 = 14,112 rows; the cost is linear in the training
rows: batches of 20). The feature extraction (the frozen backbones over every clip, once) is not included: that is
the cache build, a GPU job (docs/ntu.md).

The search loop runs on one torch thread (search.threads: 1, the project default: the fusion MLPs are too small for
two). Writes `<out>/mfas_ntu.json` with the load average before and after, hardware and versions.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see scripts/bench.py)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

PAPER_HOURS_PER_STEP = 12.57  # MFAS Table 6, NTU RGB+D, 4 P100 GPUs
PAPER_STEPS = 12
SKELETON = [("conv5", 128), ("conv6", 256), ("person_max", 1024), ("fc7", 512)]
VIDEO = [("layer2", 512), ("layer3", 1024), ("layer4", 2048)]
CLASSES = 60
PER_SUBJECT = 40_320 // 20


def write_features(folder: Path, rows: dict[str, int], seed: int = 0) -> Path:
    """A complete feature cache (the search's format) of generated SYNTHETIC features, written in chunks."""
    import numpy as np

    from repro.search.features import MANIFEST

    rng = np.random.default_rng(seed)
    files = {}
    for split, n in rows.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        for modality, stages in (("skeleton", SKELETON), ("video", VIDEO)):
            for name, width in stages:
                rel = f"{split}/{modality}.{name}.npy"
                arr = np.lib.format.open_memmap(folder / rel, mode="w+", dtype=np.float32, shape=(n, width))
                for start in range(0, n, 8192):
                    stop = min(n, start + 8192)
                    arr[start:stop] = rng.standard_normal((stop - start, width), dtype=np.float32)
                arr.flush()
                files[rel] = [n, width]
        np.save(folder / f"{split}/labels.npy", rng.integers(0, CLASSES, n).astype(np.int64))
        files[f"{split}/labels.npy"] = [n]
    manifest = {"version": 1, "modalities": ["skeleton", "video"],
                "taps": {"skeleton": [n for n, _ in SKELETON], "video": [n for n, _ in VIDEO]},
                "splits": rows, "files": files, "synthetic": True}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


class Widths:
    def __init__(self, stages):
        self.stage_names = [n for n, _ in stages]
        self.stage_channels = [c for _, c in stages]


def ntu_space(max_layers: int = 4):
    from omegaconf import OmegaConf

    from repro.config import CONFIG_DIR
    from repro.models.fusion.mfas_space import SearchSpace

    sp = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "backbone" / "ntu_resnet.yaml").search_space)
    encoders = {"skeleton": Widths(SKELETON), "video": Widths(VIDEO)}
    return SearchSpace.from_encoders(encoders, sp["modalities"], taps=sp["taps"], nonlinearities=sp["nonlinearities"],
                                     max_layers=max_layers, aliases=sp["aliases"])


def search_train_settings(overrides: dict | None = None):
    from omegaconf import OmegaConf

    from repro.config import CONFIG_DIR
    from repro.search.trainer import TrainSettings

    train = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "search" / "mfas_ntu.yaml").train)
    return TrainSettings(task="classification", **{**train, **(overrides or {})})


def projected_seconds(median: dict[int, float], samples: int = 15, first: int = 32) -> float:
    """The paper's budget (E = 3, L = 4, K = 15): 32·t1 + K·(t2 + t3 + t4) + 2·4·K·t4."""
    return first * median[1] + samples * (median[2] + median[3] + median[4]) + 2 * 4 * samples * median[4]


def run(train_rows: int, val_rows: int, per_depth: int, threads: int, seed: int, settings_overrides: dict,
        workdir: Path) -> dict:
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _timed(train_rows, val_rows, per_depth, threads, seed, settings_overrides, workdir)
    finally:
        torch.set_num_threads(previous_threads)


def _timed(train_rows: int, val_rows: int, per_depth: int, threads: int, seed: int, settings_overrides: dict,
           workdir: Path) -> dict:
    import numpy as np

    from repro.search.algorithm import random_architectures
    from repro.search.features import load_cache, select_taps
    from repro.search.trainer import train_architecture

    start = time.perf_counter()
    folder = write_features(workdir / "features", {"train": train_rows, "val": val_rows}, seed)
    generate_s = time.perf_counter() - start
    space = ntu_space()
    cached = load_cache(folder, ["skeleton", "video"], ["train", "val"])
    source = select_taps(cached, *space.stage_indices(cached.x_names, cached.y_names))
    settings = search_train_settings(settings_overrides)
    rng = np.random.default_rng(seed)
    per_arch: dict[int, list[float]] = {}
    archs = []
    for depth in range(1, space.max_layers + 1):
        for k, arch in enumerate(random_architectures(space, depth, per_depth, rng)):
            result = train_architecture(space.codes(arch), source, space.nonlinearities, CLASSES, settings,
                                        seed=seed * 1000 + depth * 100 + k)
            per_arch.setdefault(depth, []).append(result.seconds)
            archs.append({"layers": depth, "arch": space.format(arch), "seconds": round(result.seconds, 3),
                          "steps": result.steps, "val_acc": result.score})
            print(f"[bench-mfas-ntu] L={depth} {k + 1}/{per_depth}: {result.seconds:.2f} s ({result.steps} steps) "
                  f"{space.format(arch)}", flush=True)
    median = {d: statistics.median(v) for d, v in per_arch.items()}
    projected = projected_seconds(median)
    scale_7 = 7 * PER_SUBJECT / train_rows
    return {
        "rows": {"train": train_rows, "val": val_rows},
        "feature_widths": {"skeleton": dict(SKELETON), "video": {**dict(VIDEO), "layer4_pooled (alias)": 2048}},
        "cache_bytes": (train_rows + val_rows) * sum(c for _, c in SKELETON + VIDEO) * 4,
        "generate_s": round(generate_s, 2),
        "settings": vars(settings), "threads": threads, "per_depth": per_depth,
        "median_s_per_architecture": {str(d): round(v, 3) for d, v in median.items()},
        "projection": {
            "formula": "32·t1 + 15·(t2 + t3 + t4) + 120·t4 (197 architectures, 12 steps)",
            "search_hours": round(projected / 3600, 3),
            "hours_per_step": round(projected / 3600 / PAPER_STEPS, 4),
            "search_hours_at_7_subjects": round(projected * scale_7 / 3600, 3),
            "hours_per_step_at_7_subjects": round(projected * scale_7 / 3600 / PAPER_STEPS, 4),
            "note": (f"'at_7_subjects' scales the measured time linearly to {7 * PER_SUBJECT:,} training rows "
                     "(7 × 2,016, the mean per CS-training subject); not measured"),
        },
        "paper": {"hours_per_step": PAPER_HOURS_PER_STEP, "search_hours": 150.91, "hardware": "4 × P100 GPUs",
                  "includes": "the frozen backbones' forward pass on every batch (no feature cache)"},
        "architectures": archs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=40_320, help="training rows (NTU-60 CS train: 40,320)")
    parser.add_argument("--val-rows", type=int, default=4 * PER_SUBJECT, help="validation rows (4 dev subjects)")
    parser.add_argument("--per-depth", type=int, default=5, help="architectures timed per depth L = 1..4")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (search.threads; default 1)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per architecture (default: mfas_ntu's 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/bench", help="output folder (writes mfas_ntu.json)")
    args = parser.parse_args(argv)

    from repro.results import atomic_write_text, hardware, versions

    overrides = {"epochs": args.epochs} if args.epochs else {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_mfas_ntu_") as tmp:
        result = run(args.train_rows, args.val_rows, args.per_depth, args.threads, args.seed, overrides, Path(tmp))
    result = {"benchmark": "mfas_ntu_per_architecture", "synthetic": True,
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "command": "python scripts/bench_mfas_ntu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              **result, "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "hardware": hardware(),
              "versions": versions()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mfas_ntu.json"
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")
    med = ", ".join(str(v) for v in result["median_s_per_architecture"].values())
    proj = result["projection"]
    print(f"[bench-mfas-ntu] median s/architecture L=1..4: {med}; paper budget projected "
          f"{proj['search_hours']:.2f} h ({proj['hours_per_step']:.3f} h/step; paper 12.57 GPU-h/step) → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
