"""Benchmark (not a test): loading a CMU-MOSEI-sized MulT pickle (IMPLEMENTATION-NOTES §4.1) with `repro.data.cmu`.

    python scripts/bench_cmu_load.py [--unaligned] [--out DIR] [--protocol 4] [--record outputs/bench]

Writes a SYNTHETIC pickle in MulT's ``mosei_senti_data[_noalign].pkl`` layout with the real release's sizes
(train 16326, valid 1871, test 4659 segments; text 300, audio 74, vision 35 features; aligned: 50 steps for every
modality, ``--unaligned``: text 50, audio 500, vision 500 steps) into ``--out`` (default: a fixed folder in the
system temp dir, reused when the file is already there; the file is 1.9 GB aligned, 6.4 GB unaligned). It is
random float32 noise, left zero-padded, with a few audio ``-inf`` entries: a timing fixture, not a dataset.

The pickle is written by a separate process, so this process's peak resident memory (``resource.getrusage``
``ru_maxrss``) covers only the measured work: ``MulTPickleReader(...).load()`` (via
``MultimodalDataModule.setup``) and building the first train batch (batch 24). ``rss_growth_over_arrays`` =
(peak RSS after − peak RSS before) / total bytes of the arrays in the file; the issue's targets are a load
≤ 15 s and no more than one copy of the arrays (growth ≤ about 1.1: one copy plus masks and allocator slack).
The file was just written (or read by an earlier run), so it is in the OS page cache: this is the warm-disk case.
The record goes to ``<record>/cmu_load_<aligned|unaligned>.json`` (atomically) and is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPLITS = {"train": 16326, "valid": 1871, "test": 4659}  # MulT's MOSEI release (IMPLEMENTATION-NOTES §4.1)
DIMS = {"text": 300, "audio": 74, "vision": 35}
STEPS = {True: {"text": 50, "audio": 50, "vision": 50}, False: {"text": 50, "audio": 500, "vision": 500}}
NEGINF_PER_SPLIT = 100
CHUNK = 1024  # samples generated at a time (keeps the writer's temporaries small)
BATCH = 24
NOTE = "SYNTHETIC MOSEI-sized timing fixture written by scripts/bench_cmu_load.py - random noise, not a dataset"


def pickle_path(out: Path, aligned: bool) -> Path:
    return out / f"mosei_senti_data{'' if aligned else '_noalign'}.pkl"


def _left_padded(rng: np.random.Generator, n: int, steps: int, dim: int) -> np.ndarray:
    """(n, steps, dim) float32 noise, the first steps - length[i] steps of sample i zero (MulT's left padding)."""
    x = np.empty((n, steps, dim), dtype=np.float32)
    for start in range(0, n, CHUNK):
        part = x[start:start + CHUNK]
        rng.standard_normal(dtype=np.float32, out=part)
        lengths = rng.integers(max(1, steps // 5), steps + 1, size=len(part))
        part[np.arange(steps)[None, :] < (steps - lengths)[:, None]] = 0.0
    return x


def write_pickle(path: Path, aligned: bool, protocol: int, seed: int = 0) -> None:
    """Write the SYNTHETIC pickle to a temporary name, then rename (an interrupted write leaves no file)."""
    rng = np.random.default_rng(seed)
    data: dict = {"SYNTHETIC": NOTE}
    for skey, n in SPLITS.items():
        split = {m: _left_padded(rng, n, STEPS[aligned][m], DIMS[m]) for m in DIMS}
        audio = split["audio"]
        rows = rng.integers(0, n, size=NEGINF_PER_SPLIT)
        audio[rows, -1, rng.integers(0, DIMS["audio"], size=NEGINF_PER_SPLIT)] = -np.inf  # last step is real
        split["labels"] = rng.uniform(-3, 3, size=(n, 1, 1)).astype(np.float32)
        split["id"] = np.array([f"synthetic{skey}{i:05d}" for i in range(n)], dtype=object)
        data[skey] = split
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    os.replace(tmp, path)
    (path.parent / "SYNTHETIC.txt").write_text(NOTE + "\n")


def array_bytes(aligned: bool) -> int:
    per_sample = sum(STEPS[aligned][m] * d for m, d in DIMS.items()) * 4
    return per_sample * sum(SPLITS.values()) + 4 * sum(SPLITS.values())  # features + labels


def peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux (bytes on macOS)
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure(out: Path, aligned: bool) -> dict:
    import torch

    from repro.data import cmu
    from repro.data.cmu import MulTPickleReader
    from repro.data.datamodule import MultimodalDataModule

    torch.manual_seed(0)
    unpickle_s = []
    load_pickle = cmu._load_pickle

    def timed_load_pickle(*args, **kwargs):  # splits the load into unpickling (I/O-bound) and the reader's work
        t = time.perf_counter()
        try:
            return load_pickle(*args, **kwargs)
        finally:
            unpickle_s.append(time.perf_counter() - t)

    cmu._load_pickle = timed_load_pickle
    reader = MulTPickleReader(out, dataset="mosei", aligned=aligned, nonfinite="error")
    dm = MultimodalDataModule(reader, batch_size=BATCH)
    rss_before = peak_rss_bytes()
    t0 = time.perf_counter()
    dm.setup()
    t_load = time.perf_counter() - t0
    batch = next(iter(dm.train_dataloader()))
    t_total = time.perf_counter() - t0
    rss_after = peak_rss_bytes()
    cmu._load_pickle = load_pickle
    total = array_bytes(aligned)
    shapes = {m: list(batch[m].shape) for m in DIMS}
    return {
        "load_s": round(t_load, 3),
        "unpickle_s": round(sum(unpickle_s), 3),
        "masks_and_cleaning_s": round(t_load - sum(unpickle_s), 3),
        "first_batch_s": round(t_total - t_load, 3),
        "load_and_first_batch_s": round(t_total, 3),
        "peak_rss_before_bytes": rss_before,
        "peak_rss_after_bytes": rss_after,
        "array_bytes": total,
        "rss_growth_over_arrays": round((rss_after - rss_before) / total, 3),
        "split_sizes": dm.split_sizes(),
        "first_batch_shapes": shapes,
        "audio_neginf": reader.audio_neginf,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unaligned", action="store_true", help="MulT's _noalign layout (audio/vision 500 steps)")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "repro_bench_cmu_load",
                   help="folder of the SYNTHETIC pickle (reused when present)")
    p.add_argument("--protocol", type=int, default=4, help="pickle protocol of a newly written file")
    p.add_argument("--record", type=Path, default=Path("outputs/bench"), help="folder of the JSON record")
    p.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)  # the writer's child process
    args = p.parse_args(argv)
    aligned = not args.unaligned
    path = pickle_path(args.out, aligned)
    if args.write_only:
        write_pickle(path, aligned, args.protocol)
        return {}
    wrote_s = None
    if not path.is_file():
        print(f"writing {path} (SYNTHETIC, {array_bytes(aligned) / 1e9:.2f} GB of arrays) ...", flush=True)
        t0 = time.perf_counter()
        # a separate process, so its memory does not count in this process's peak RSS
        cmd = [sys.executable, str(Path(__file__).resolve()), "--write-only", "--out", str(args.out),
               "--protocol", str(args.protocol)] + (["--unaligned"] if args.unaligned else [])
        code = subprocess.run(cmd).returncode
        if code != 0:
            raise SystemExit(f"writing {path} failed (exit code {code}); check free disk space and memory")
        wrote_s = round(time.perf_counter() - t0, 1)

    from repro.results import atomic_write_text, hardware, versions

    result = measure(args.out, aligned)
    layout = "aligned" if aligned else "unaligned"
    record = {
        "benchmark": "cmu_load",
        "layout": layout,
        "synthetic": True,
        "note": NOTE,
        "pickle": str(path),
        "pickle_bytes": path.stat().st_size,
        "write_s": wrote_s,
        "batch_size": BATCH,
        **result,
        "targets": {"load_and_first_batch_s_max": 15.0, "rss_growth_over_arrays_max": 1.1},
        "target_met": result["load_and_first_batch_s"] <= 15.0 and result["rss_growth_over_arrays"] <= 1.1,
        "loadavg": list(os.getloadavg()),
        "hardware": hardware(),
        "versions": versions(),
    }
    out = args.record / f"cmu_load_{layout}.json"
    atomic_write_text(out, json.dumps(record, indent=2) + "\n")
    keys = ("layout", "load_s", "unpickle_s", "first_batch_s", "load_and_first_batch_s", "array_bytes",
            "rss_growth_over_arrays", "target_met")
    print(json.dumps({k: record[k] for k in keys}, indent=2))
    print(f"record: {out}")
    return record


if __name__ == "__main__":
    main()
