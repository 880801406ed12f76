"""Memory benchmark (not a test): peak RSS of training runs and the MFAS search on an AV-MNIST-sized folder.

    python scripts/bench_memory.py [--n-train 60000] [--n-test 10000] [--out outputs/bench] [--keep DIR]
    make bench-memory

Writes a SYNTHETIC AV-MNIST fixture in the MultiBench layout at the release's sizes (60,000 train + 10,000 test;
image (N, 784) and audio (N, 112, 112) float32 in 0..255, as the release stores them: ~3.5 GB on disk) into a
temporary folder, chunk by chunk (this process never holds a full array), then runs each command in a fresh child
process and reads its peak resident set size from `os.wait4` (Linux `ru_maxrss`, KiB). RSS counts the pages of
memory-mapped files a process has touched, so a run that reads every spectrogram once shows the spectrogram file
in its peak even when nothing is copied; the training runs are therefore limited to a few batches (as a
measurement of what the code holds, not of how much of the file one epoch pages in), while the search's feature
cache necessarily reads every train/val sample once.

Runs (each 1 epoch, limited batches): `unimodal_image` (target ≤ 1.5 GB), `late_avg` (fusion, ≤ 3.5 GB) and
`search.py` with a tiny budget (pre-training both encoders, building the feature cache over all 55k train/val
samples, 2 architectures; ≤ 4 GB). Writes `memory.json` atomically (per run: the command, peak_rss_mb,
wall_s, exit code, target, target_met) and deletes the fixture unless `--keep` names a folder to reuse.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.results import atomic_write_text, hardware  # noqa: E402

TARGETS_MB = {"image_only": 1536, "fusion": 3584, "search": 4096}  # the 1.5 / 3.5 / 4 GB
CHUNK = 2000
LIMITS = ["trainer.max_epochs=1", "++trainer.limit_train_batches=20", "++trainer.limit_val_batches=5",
          "++trainer.limit_test_batches=5", "logger=csv"]


def write_fixture(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """A SYNTHETIC AV-MNIST (MultiBench layout) at release sizes: class pattern + noise, float32 0..255."""
    rng = np.random.default_rng(seed)
    patterns = {"image": rng.uniform(0, 255, (10, 784)).astype(np.float32),
                "audio": rng.uniform(0, 255, (10, 112, 112)).astype(np.float32)}
    for folder in ("image", "audio"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
        np.save(root / f"{split}_labels.npy", labels)
        for m, pattern in patterns.items():
            out = np.lib.format.open_memmap(root / m / f"{split}_data.npy", mode="w+", dtype=np.float32,
                                            shape=(n, *pattern.shape[1:]))
            for b in range(0, n, CHUNK):
                lab = labels[b:b + CHUNK]
                noise = rng.normal(0, 60, (len(lab), *pattern.shape[1:])).astype(np.float32)
                out[b:b + CHUNK] = np.clip(pattern[lab] + noise, 0, 255)
            out.flush()
            del out
    (root / "SYNTHETIC.txt").write_text("SYNTHETIC AV-MNIST-sized fixture written by scripts/bench_memory.py\n")
    return root


def measure(command: list[str], env: dict) -> dict:
    """Run `command` in a child process; its own peak RSS (not its parent's) from os.wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(command), "exit_code": proc.returncode, "wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
            "output_tail": output.strip().splitlines()[-3:] if proc.returncode else []}


def runs(data_dir: Path, work: Path, full_epoch: bool = False) -> dict[str, list[str]]:
    py = sys.executable
    common = [f"paths.data_dir={data_dir}", f"paths.log_dir={work / 'logs'}"]
    limits = ["trainer.max_epochs=1", "logger=csv"] if full_epoch else LIMITS
    return {
        "image_only": [py, "train.py", "data=avmnist", "fusion=unimodal_image", *common, *limits,
                       f"hydra.run.dir={work / 'image_only'}"],
        "fusion": [py, "train.py", "data=avmnist", "fusion=late_avg", *common, *limits,
                   f"hydra.run.dir={work / 'fusion'}"],
        "search": [py, "search.py", "data=avmnist", *common, *limits[1:], "search.pretrain.max_epochs=1",
                   "search.iterations=1", "search.max_layers=1", "search.samples=2", "search.top=1",
                   "search.train.epochs=1", "search.surrogate.epochs=2", f"search.dir={work / 'search'}",
                   f"paths.cache_dir={work / 'cache'}"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--keep", default=None, help="fixture folder to write once and reuse (not deleted)")
    parser.add_argument("--only", default=None, help="comma-separated subset of image_only,fusion,search")
    parser.add_argument("--label", default="", help="free text stored in the JSON (e.g. the commit measured)")
    parser.add_argument("--full-epoch", action="store_true",
                        help="no batch limits: every run reads every sample once (fusion: ~6 min on 2 cores; "
                             "the search's pre-training is then a full epoch too: use with --only)")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_WAIT_POLICY": "PASSIVE"}
    tmp = Path(tempfile.mkdtemp(prefix="repro-bench-memory-"))
    data_dir = Path(args.keep) if args.keep else tmp / "data"
    try:
        if not (data_dir / "avmnist" / "SYNTHETIC.txt").is_file():
            start = time.perf_counter()
            write_fixture(data_dir / "avmnist", args.n_train, args.n_test)
            print(f"SYNTHETIC fixture written in {time.perf_counter() - start:.0f} s: {data_dir / 'avmnist'}")
        sizes = {p.name: p.stat().st_size for p in (data_dir / "avmnist").rglob("*.npy")}
        results = {}
        for name, command in runs(data_dir, tmp, args.full_epoch).items():
            if args.only and name not in args.only.split(","):
                continue
            r = measure(command, env)
            met = r["exit_code"] == 0 and r["peak_rss_mb"] <= TARGETS_MB[name]
            r.update(target_mb=TARGETS_MB[name], target_met=met)
            results[name] = r
            print(f"{name:10s} peak RSS {r['peak_rss_mb']:8.1f} MB (target {TARGETS_MB[name]} MB) "
                  f"{r['wall_s']:6.1f} s exit {r['exit_code']}", flush=True)
        record = {"label": args.label, "synthetic": True,
                  "fixture": {"n_train": args.n_train, "n_test": args.n_test, "layout": "multibench",
                              "dtype": "float32", "bytes": sum(sizes.values())},
                  "limits": [] if args.full_epoch else LIMITS, "full_epoch": args.full_epoch, "runs": results,
                  "hardware": hardware()}
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "memory.json", json.dumps(record, indent=2) + "\n")
        print(f"wrote {out / 'memory.json'}")
        return 0 if all(r["exit_code"] == 0 for r in results.values()) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
