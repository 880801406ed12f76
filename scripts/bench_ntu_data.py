"""NTU RGB+D data speed (issue 15): the prepared layout feeding the model, the storage choice, and the preparation.

    python scripts/bench_ntu_data.py [--out outputs/bench/ntu_data.json] [--clips 32] [--frames 90] [--repeats 3]
    make bench-ntu-data

1. Loader (``avi``): a prepared layout of SYNTHETIC clips at the prepared size (256×256 MPEG-4 avi, `--frames`
   frames at 30 fps, written as scripts/prepare_ntu.py writes them, with textured moving content so the codec has
   real work) + SYNTHETIC .skeleton files of the same stems, read by `NTUReader` (configs/data/ntu.yaml: 32 frames
   of 224², the training split's temporal crop, ImageNet normalisation from its train transforms) through the
   datamodule, batch `--batch`, `--workers` dataloader workers; clips/s over whole passes after a warm-up pass
   (median of `--repeats`), and the CPU cost of one sample in this process (single-threaded).
2. The alternative storage (``frame_store``): the same 24 loaded frames per sample, centre-cropped, kept as one
   uint8 memory-mapped array (N, 24, 3, 224, 224) — what a frame store would hold — read with the same temporal crop,
   NormalizeLen and transforms. The file sits in the page cache here (the real one, 56,880 × 3.6 MB ≈ 205 GB,
   would be read from disk). Both storages' bytes per sample and the release extrapolation are recorded.
3. Preparation: `--prepare-files` SYNTHETIC videos at `--source-size` (1920x1080 as the release), resized by
   `repro.data.ntu_prepare.resize_video` in this process (single-threaded decoder): files per CPU-second (= per
   core), one process's files/s, and the extrapolation to the release's 56,880 files.

The machine's load averages before and after each part are recorded (a load above the core count means other
processes shared the cores and the numbers are pessimistic). OMP_WAIT_POLICY=PASSIVE is set before torch.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from repro.config import CONFIG_DIR  # noqa: E402
from repro.data.base import ArrayDataset  # noqa: E402
from repro.data.datamodule import MultimodalDataModule  # noqa: E402
from repro.data.fixtures_ntu import write_avi  # noqa: E402
from repro.data.ntu_prepare import resize_video  # noqa: E402
from repro.data.ntu_rgb import LOADED_FRAMES, RGB_DIR, RGB_SUFFIX, NTUClips, NTUReader, crop_slots, normalize_len  # noqa: E402
from repro.data.ntu_skeleton import synthetic_frames, write_skeleton_file  # noqa: E402
from repro.results import atomic_write_text, hardware, versions  # noqa: E402

RELEASE_SAMPLES = 56_880
# one training sample per CS-training subject in turn; one dev (2) and one test (3) sample so every split exists
TRAIN_SUBJECTS = (1, 4, 8, 13, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/bench/ntu_data.json")
    p.add_argument("--clips", type=int, default=32, help="training clips in the prepared layout")
    p.add_argument("--frames", type=int, default=90, help="frames per prepared clip (3 s at 30 fps; assumed)")
    p.add_argument("--video-frames", type=int, default=32, help="frames per sample the model reads (I3D 32)")
    p.add_argument("--frame-size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="dataloader workers")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prepare-files", type=int, default=3)
    p.add_argument("--source-size", default="1920x1080", help="WIDTHxHEIGHT of the generated release videos")
    p.add_argument("--source-frames", type=int, default=90)
    p.add_argument("--parts", default="loader,frame_store,preparation",
                   help="comma list: loader, frame_store (needs loader's layout), preparation")
    return p.parse_args(argv)


def textured_frames(n: int, width: int, height: int, seed: int) -> np.ndarray:
    """(n, H, W, 3) uint8: a blocky texture that scrolls and a bright ellipse that moves (a codec's real work)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(40, 200, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    texture = texture[:height, :width]
    yy, xx = np.mgrid[:height, :width]
    frames = np.empty((n, height, width, 3), np.uint8)
    for k in range(n):
        cx, cy = width * (0.3 + 0.4 * k / max(n - 1, 1)), height * (0.5 + 0.1 * np.sin(k / 8))
        person = ((xx - cx) / (0.12 * width)) ** 2 + ((yy - cy) / (0.3 * height)) ** 2 < 1
        img = np.roll(texture, 2 * k, axis=1)
        img[person] = img[person] // 4 + np.array([170, 120, 100], np.uint8)
        frames[k] = img
    return frames


def stems(clips: int) -> list[str]:
    train = [f"S001C{1 + k // len(TRAIN_SUBJECTS) % 3:03d}P{TRAIN_SUBJECTS[k % len(TRAIN_SUBJECTS)]:03d}"
             f"R{1 + k // 48 % 2:03d}A{1 + k // 96:03d}" for k in range(clips)]
    return train + ["S001C001P002R001A001", "S001C001P003R001A001"]


def write_layout(root: Path, clips: int, frames: int) -> list[str]:
    """A prepared NTU folder: 256² MPEG-4 avi (as prepare_ntu writes) + .skeleton files of the same stems."""
    names = stems(clips)
    rng = np.random.default_rng(0)
    (root / "nturgbd_skeletons").mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(names):
        write_avi(root / RGB_DIR / f"{stem}{RGB_SUFFIX}", textured_frames(frames, 256, 256, k), codec="mpeg4")
        write_skeleton_file(root / "nturgbd_skeletons" / f"{stem}.skeleton", synthetic_frames(rng, frames))
    (root / "SYNTHETIC.txt").write_text("SYNTHETIC NTU benchmark layout\n")
    return names


def transforms():
    return OmegaConf.load(CONFIG_DIR / "data" / "ntu.yaml").transforms


def rates_of(loader, repeats: int) -> tuple[list[float], int, list[int]]:
    """clips/s of `repeats` whole passes after a warm-up pass; the clips read in the last pass; the batch shape."""
    rates, count, shape = [], 0, []
    for repeat in range(repeats + 1):  # the first pass starts the workers: not counted
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += len(batch["label"])
            shape = list(batch["video"].shape)
        if repeat:
            rates.append(count / (time.perf_counter() - start))
    return rates, count, shape


def cpu_ms_per_sample(dataset, limit: int = 16) -> float:
    """One process, one thread: CPU time of reading + transforming one sample (what a worker on its own core costs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    n = min(limit, len(dataset))
    start = time.process_time()
    for i in range(n):
        dataset[i]
    torch.set_num_threads(threads)
    return 1000 * (time.process_time() - start) / n


def bench_loader(args, root: Path) -> tuple[dict, MultimodalDataModule]:
    reader = NTUReader(root, frames=args.video_frames, frame_size=args.frame_size)
    dm = MultimodalDataModule(reader, batch_size=args.batch, num_workers=args.workers, transforms=transforms(),
                              transform_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a partial release (a few subjects)
        dm.setup()
    load = {"before": os.getloadavg()}
    rates, count, shape = rates_of(dm.train_dataloader(), args.repeats)
    load["after"] = os.getloadavg()
    avi = [p.stat().st_size for p in (root / RGB_DIR).glob(f"*{RGB_SUFFIX}")]
    cpu = cpu_ms_per_sample(dm.dataset("train"))
    return {"clips_per_s": {"median": statistics.median(rates), "all": rates}, "clips_requested": args.clips,
            "clips_read_per_pass": count, "batch_shape": shape, "cpu_ms_per_clip": cpu,
            "clips_per_s_on_2_own_cores": 2000 / cpu, "workers": args.workers, "batch": args.batch,
            "frames_per_prepared_clip": args.frames, "bytes_per_sample": statistics.mean(avi),
            "release_bytes": statistics.mean(avi) * RELEASE_SAMPLES, "loadavg": load}, dm


class FrameStoreClips:
    """The alternative storage: a uint8 memmap (N, 24, 3, S, S) of the loaded, centre-cropped frames, read with the
    same temporal crop and NormalizeLen as `NTUClips`."""

    dtype = np.dtype(np.uint8)

    def __init__(self, store: np.ndarray, rows: np.ndarray, frames: int, crop: float | None):
        self.store, self.rows, self.frames, self.crop = store, rows, frames, crop

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        slots = np.arange(LOADED_FRAMES)
        if self.crop is not None:
            slots = crop_slots(slots, self.crop, float(torch.rand(())))
        return np.asarray(self.store[self.rows[int(i)], normalize_len(slots, self.frames)])


def bench_frame_store(args, dm: MultimodalDataModule, folder: Path) -> dict:
    train = dm.splits["train"]
    clips: NTUClips = train.arrays["video"]
    eval_clips = NTUClips(clips.paths, LOADED_FRAMES, clips.frame_size)  # the 24 loaded frames, no crop
    shape = (len(clips), LOADED_FRAMES, 3, clips.frame_size, clips.frame_size)
    store = np.lib.format.open_memmap(folder / "frames.npy", mode="w+", dtype=np.uint8, shape=shape)
    start = time.perf_counter()
    for i in range(len(clips)):
        store[i] = eval_clips[i]
    store.flush()
    build_s = time.perf_counter() - start
    store = np.load(folder / "frames.npy", mmap_mode="r")
    video = FrameStoreClips(store, np.arange(len(clips)), clips.frames, clips.crop)
    dataset = ArrayDataset({"video": video, "skeleton": train.arrays["skeleton"]}, train.labels, train.ids)
    fdm = MultimodalDataModule(_Fixed({"train": dataset, "val": dataset, "test": dataset}), batch_size=args.batch,
                               num_workers=args.workers, transforms=transforms(), transform_seed=0)
    load = {"before": os.getloadavg()}
    rates, count, batch_shape = rates_of(fdm.train_dataloader(), args.repeats)
    load["after"] = os.getloadavg()
    per_sample = int(np.prod(shape[1:]))
    return {"clips_per_s": {"median": statistics.median(rates), "all": rates}, "clips_read_per_pass": count,
            "batch_shape": batch_shape, "cpu_ms_per_clip": cpu_ms_per_sample(fdm.dataset("train")),
            "bytes_per_sample": per_sample, "release_bytes": per_sample * RELEASE_SAMPLES,
            "build_s_per_sample": build_s / len(clips), "in_page_cache": True, "loadavg": load}


class _Fixed:
    """A reader that hands back given splits (the frame-store datasets)."""

    name, num_folds, modalities, folder_key = "frame_store", 0, None, None

    def __init__(self, splits):
        self.splits = splits

    def load(self, fold=None):
        return self.splits


def bench_prepare(args, folder: Path) -> dict:
    width, height = (int(v) for v in args.source_size.lower().split("x"))
    sources = []
    for k in range(args.prepare_files):
        path = folder / "release" / f"S001C001P001R001A{k + 1:03d}_rgb.avi"
        sources.append(write_avi(path, textured_frames(args.source_frames, width, height, 100 + k), codec="mpeg4"))
    out = {"source": {"size": [width, height], "frames": args.source_frames, "fps": 30,
                      "codec": "mpeg4 (SYNTHETIC; the release's own codec not checked here)",
                      "bytes": statistics.mean(p.stat().st_size for p in sources)},
           "files": args.prepare_files, "loadavg": {"before": os.getloadavg()}}
    times, cpu = [], []
    for k, source in enumerate(sources):
        start, start_cpu = time.perf_counter(), time.process_time()
        resize_video(source, folder / "prepared" / f"{k}{RGB_SUFFIX}")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    per_core = 1 / statistics.median(cpu)
    out.update({"s_per_file": {"median": statistics.median(times), "all": times},
                "cpu_s_per_file": {"median": statistics.median(cpu), "all": cpu},
                "files_per_s_one_process": 1 / statistics.median(times), "files_per_cpu_s": per_core,
                "release_hours_per_core": RELEASE_SAMPLES / per_core / 3600})
    out["loadavg"]["after"] = os.getloadavg()
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = set(args.parts.split(","))
    loader = frame_store = preparation = None
    with tempfile.TemporaryDirectory(prefix="ntu-bench-") as tmp:
        tmp = Path(tmp)
        if "loader" in parts:
            write_layout(tmp / "ntu", args.clips, args.frames)
            loader, dm = bench_loader(args, tmp / "ntu")
            print(f"avi loader: {loader['clips_per_s']['median']:.1f} clips/s ({args.workers} workers, batch "
                  f"{args.batch}, {loader['batch_shape']}); CPU {loader['cpu_ms_per_clip']:.0f} ms per clip; "
                  f"load {loader['loadavg']['before'][0]:.1f} → {loader['loadavg']['after'][0]:.1f}")
            if "frame_store" in parts:
                frame_store = bench_frame_store(args, dm, tmp)
                print(f"frame store: {frame_store['clips_per_s']['median']:.1f} clips/s; CPU "
                      f"{frame_store['cpu_ms_per_clip']:.0f} ms per clip; release "
                      f"{frame_store['release_bytes'] / 1e9:.0f} GB vs avi {loader['release_bytes'] / 1e9:.1f} GB")
        if "preparation" in parts:
            preparation = bench_prepare(args, tmp)
            print(f"preparation: {preparation['files_per_cpu_s']:.2f} files per CPU-second (one process: "
                  f"{preparation['files_per_s_one_process']:.2f} files/s); release: "
                  f"{preparation['release_hours_per_core']:.1f} core-hours")
    record = {"benchmark": "ntu_data", "synthetic": True, "loader": loader, "frame_store": frame_store,
              "preparation": preparation, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
              "cpu_affinity": sorted(os.sched_getaffinity(0)), "hardware": hardware(), "versions": versions()}
    atomic_write_text(args.out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
