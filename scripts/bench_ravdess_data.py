"""RAVDESS data speed (issue 14's targets): the prepared layout feeding the model, and the preparation itself.

    python scripts/bench_ravdess_data.py [--out outputs/bench/ravdess_data.json] [--clips 48] [--repeats 3]
    make bench-ravdess-data

1. Loader: a prepared layout at real size (SYNTHETIC random uint8 clips (30, 3, 224, 224) + MFCCs, written to a
   temporary folder, deleted after) read by `RavdessReader` through the datamodule with configs/data/ravdess.yaml's
   train transforms (random resized crop 0.8-1.4, flip, ImageNet normalisation), batch 4, 2 dataloader workers;
   clips/s over whole passes after a warm-up pass (median of `--repeats`). Target: >= 50 clips/s.
2. Preparation: a realistic SYNTHETIC 1280×720 H.264 clip (3.5 s, 30 fps, textured moving face, AAC stereo 48 kHz)
   with its OpenFace-layout landmark CSV, prepared by `prepare_clip` in this process with a single-threaded decoder:
   clips per CPU-second (= per core) and the one process's clips/s, medians of `--repeats`, for crop_from resized
   (the default) and full. Target: >= 2 clips/s per core.

The machine's load averages (`os.getloadavg`) before and after each part are recorded: a load above the core count
means other processes shared the cores and the numbers are pessimistic. OMP_WAIT_POLICY=PASSIVE is set before torch.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from repro.config import CONFIG_DIR  # noqa: E402
from repro.data.datamodule import MultimodalDataModule  # noqa: E402
from repro.data.fixtures_ravdess import landmarks_csv, tone, write_mp4  # noqa: E402
from repro.data.ravdess import RavdessReader  # noqa: E402
from repro.data.ravdess_prepare import MFCC_SHAPE, PREPARED_FORMAT, VIDEO_SHAPE, Clip, prepare_clip  # noqa: E402
from repro.results import atomic_write_text, hardware, versions  # noqa: E402

LOADER_TARGET, PREPARE_TARGET = 50.0, 2.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/bench/ravdess_data.json")
    p.add_argument("--clips", type=int, default=48, help="clips in the real-size prepared layout (2 per actor)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="dataloader workers")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--parts", default="loader,preparation",
                   help="comma list: loader (needs torch only), preparation (needs av, librosa, pillow)")
    return p.parse_args(argv)


def write_layout(folder: Path, clips: int) -> None:
    """A prepared layout of SYNTHETIC random clips at the release's sizes (what the reader reads)."""
    rng = np.random.default_rng(0)
    entries = []
    for k in range(clips):
        actor = k % 24 + 1
        name = f"Actor_{actor:02d}/01-01-{k % 8 + 1:02d}-01-01-{k // 24 % 2 + 1:02d}-{actor:02d}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{name}.video.npy", rng.integers(0, 256, VIDEO_SHAPE, dtype=np.uint8))
        np.save(folder / f"{name}.mfcc.npy", rng.standard_normal(MFCC_SHAPE).astype(np.float32))
        entries.append({"name": name, "actor": actor, "label": k % 8})
    manifest = {"format": PREPARED_FORMAT, "kind": "video_audio", "synthetic": True, "clips": entries}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "SYNTHETIC.txt").write_text("SYNTHETIC benchmark layout\n")


def bench_loader(args, folder: Path) -> dict:
    cfg = OmegaConf.create({"data": OmegaConf.load(CONFIG_DIR / "data" / "ravdess.yaml")})
    reader = RavdessReader(folder, select_on="test")
    dm = MultimodalDataModule(reader, fold=0, batch_size=args.batch, num_workers=args.workers,
                              transforms=cfg.data.transforms, transform_seed=0)
    loader = dm.train_dataloader()  # fold 0's 20 training actors
    rates, load = [], {"before": os.getloadavg()}
    for repeat in range(args.repeats + 1):  # the first pass starts the workers: not counted
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += len(batch["label"])
        if repeat:
            rates.append(count / (time.perf_counter() - start))
    load["after"] = os.getloadavg()
    shape = list(batch["video"].shape)
    # the CPU cost of one clip (read + transforms + collate) in this process, single-threaded: what 2 workers on 2
    # cores of their own could feed (the wall-clock rate above also pays for whatever else shares the cores)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    dataset, cpu, count = dm.dataset("train"), time.process_time(), 0
    for start in range(0, len(dataset), args.batch):
        torch.utils.data.default_collate([dataset[i] for i in range(start, min(start + args.batch, len(dataset)))])
        count += min(args.batch, len(dataset) - start)
    cpu_ms = 1000 * (time.process_time() - cpu) / count
    torch.set_num_threads(threads)
    return {"clips_per_s": {"median": statistics.median(rates), "all": rates}, "batch_shape": shape,
            "cpu_ms_per_clip": cpu_ms, "clips_per_s_on_2_own_cores": 2000 / cpu_ms,
            "workers": args.workers, "batch": args.batch, "clips": len(dm.splits["train"]), "loadavg": load,
            "target": LOADER_TARGET, "target_met": statistics.median(rates) >= LOADER_TARGET}


def realistic_clip(folder: Path) -> Clip:
    """A 1280×720 H.264 clip like the release's (3.5 s, 30 fps, AAC stereo 48 kHz) and its landmark CSV."""
    width, height, fps, n = 1280, 720, 30, 105
    rng = np.random.default_rng(1)
    texture = rng.integers(40, 200, (height // 4, width // 4, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    yy, xx = np.mgrid[:height, :width]
    frames, boxes = np.empty((n, height, width, 3), np.uint8), []
    for k in range(n):
        cx, cy = 600 + 2 * k, 330 + np.sin(k / 10) * 15  # a face that moves and a background that shifts
        face = ((xx - cx) / 150) ** 2 + ((yy - cy) / 200) ** 2 < 1
        img = np.roll(texture, k, axis=1)
        img[face] = (img[face] // 4 + np.array([170, 120, 100], np.uint8))
        frames[k] = img
        boxes.append((cx - 150, cy - 200, cx + 150, cy + 200))
    path = write_mp4(folder / "Actor_01" / "01-01-03-01-01-01-01.mp4", frames, fps, tone(2, n / fps, 48000, 2, 0),
                     options={"preset": "medium", "crf": "20"})
    csv = folder / "landmarks" / "01-01-03-01-01-01-01.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    csv.write_text(landmarks_csv(np.array(boxes), fps))
    return Clip("Actor_01/01-01-03-01-01-01-01", path, csv)


def bench_prepare(args, folder: Path) -> dict:
    clip = realistic_clip(folder / "raw")
    out = {"clip": {"size": [1280, 720], "seconds": 3.5, "fps": 30, "codec": "h264 (libx264 medium, crf 20)",
                    "bytes": clip.source.stat().st_size}, "loadavg": {"before": os.getloadavg()}}
    prepare_clip(clip, folder / "warmup", "video_audio")  # imports, librosa's first call
    for crop_from in ("resized", "full"):
        times, cpu = [], []
        for repeat in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            prepare_clip(clip, folder / f"prep-{crop_from}-{repeat}", "video_audio", crop_from, threads=1)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        # wall clock of one process (its decoder has one thread, but BLAS / swresample may use a second core), and
        # the CPU time per clip: clips per CPU-second is the per-core rate the target is judged on
        out[crop_from] = {"s_per_clip": {"median": statistics.median(times), "all": times},
                          "cpu_s_per_clip": {"median": statistics.median(cpu), "all": cpu},
                          "clips_per_s_one_process": 1 / statistics.median(times),
                          "clips_per_cpu_s": 1 / statistics.median(cpu)}
    out["loadavg"]["after"] = os.getloadavg()
    out["target"] = PREPARE_TARGET
    out["target_met"] = out["resized"]["clips_per_cpu_s"] >= PREPARE_TARGET
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = set(args.parts.split(","))
    loader = preparation = None
    with tempfile.TemporaryDirectory(prefix="ravdess-bench-") as tmp:
        tmp = Path(tmp)
        if "loader" in parts:
            write_layout(tmp / "ravdess", args.clips)
            loader = bench_loader(args, tmp / "ravdess")
            print(f"loader: {loader['clips_per_s']['median']:.1f} clips/s with {args.workers} workers (target >= "
                  f"{LOADER_TARGET}); CPU {loader['cpu_ms_per_clip']:.0f} ms per clip (2 own cores: "
                  f"{loader['clips_per_s_on_2_own_cores']:.0f} clips/s); load {loader['loadavg']['before'][0]:.1f} → "
                  f"{loader['loadavg']['after'][0]:.1f}")
        if "preparation" in parts:
            preparation = bench_prepare(args, tmp)
            print(f"preparation: {preparation['resized']['clips_per_cpu_s']:.2f} clips per CPU-second (one process: "
                  f"{preparation['resized']['clips_per_s_one_process']:.2f} clips/s; crop from full: "
                  f"{preparation['full']['clips_per_cpu_s']:.2f}; target >= {PREPARE_TARGET} per core); load "
                  f"{preparation['loadavg']['before'][0]:.1f} → {preparation['loadavg']['after'][0]:.1f}")
    record = {"benchmark": "ravdess_data", "synthetic": True, "loader": loader, "preparation": preparation,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "cpu_affinity": sorted(os.sched_getaffinity(0)),
              "hardware": hardware(), "versions": versions()}
    atomic_write_text(args.out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
