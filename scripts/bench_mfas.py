"""Benchmark of the MFAS search with the frozen-feature cache (issue target: ≤ 30 min on 2 CPU cores).

    python scripts/bench_mfas.py [--data avdigits_full] [--pretrain-epochs 3] [--threads N] [--out outputs/bench]
    make bench-mfas ARGS="--pretrain-epochs 2"

Runs the paper's AV-MNIST search budget (configs/search/mfas.yaml: E_search = 3, L = 4, K = 15, E_train = 2,
i.e. 12 steps and 30 + 11·15 = 195 trained architectures) on the AV-MNIST-sized AV-Digits variant
(55,000 / 5,000 / 10,000; build it once with `make avdigits-full`). Each invocation searches in a fresh
directory with a fresh feature cache, so the cache build is measured; the unimodal encoders are pre-trained
once into `outputs/bench/mfas/pretrain` and reused by later invocations (their time is reported when spent).

Writes `outputs/bench/mfas_search.json` (atomically): search wall time, time per sampled architecture,
feature-cache build time, number of architectures and steps, the top architectures, threads, load averages,
hardware and versions, the exact overrides, and whether the 30-minute target was met. The paper's search
took 3.42 GPU-hours on a P100 (MFAS Table 6) — on AV-MNIST, a different data set of the same size.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see scripts/bench.py)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

TARGET_S = 30 * 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="avdigits_full", help="data config (default: avdigits_full)")
    parser.add_argument("--pretrain-epochs", type=int, default=3, help="unimodal encoder epochs (first run only)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="outputs/bench", help="output folder")
    parser.add_argument("overrides", nargs="*", help="extra search.py overrides, e.g. search.samples=5")
    args = parser.parse_args(argv)

    import torch

    from repro.data.base import DataError
    from repro.results import atomic_write_text, hardware, versions
    from repro.search.run import compose_search, run_search

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = out / "mfas" / f"run-{stamp}"
    overrides = [f"data={args.data}", f"search.dir={run_dir}", f"search.pretrain.dir={out / 'mfas' / 'pretrain'}",
                 f"search.cache_dir={run_dir / 'features'}", f"search.pretrain.max_epochs={args.pretrain_epochs}",
                 "callbacks=none", *args.overrides]
    load_before = os.getloadavg()
    start = time.perf_counter()
    try:
        record = run_search(compose_search(overrides), overrides)
    except DataError as err:
        print(f"error: {err} (the benchmark set: `make avdigits-full`)", file=sys.stderr)
        return 1
    wall = time.perf_counter() - start
    timing = record["timing"]
    result = {
        "benchmark": "mfas_search", "date": stamp, "overrides": overrides, "search_dir": str(run_dir),
        "search_s": timing["search_s"], "per_architecture_s": timing["per_architecture_s"],
        "architectures": timing["architectures"], "steps": record["summary"]["steps"],
        "cache_build_s": timing["cache"]["build_s"], "cache_load_s": timing["cache"]["load_s"],
        "pretrain_s": timing["pretrain_s"], "wall_s": round(wall, 1), "target_s": TARGET_S,
        "target_met": timing["search_s"] + timing["cache"]["build_s"] <= TARGET_S,
        "top": record["top"], "torch_threads": torch.get_num_threads(),
        "search_threads": record["config"]["search"]["threads"],
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "hardware": hardware(),
        "versions": versions(),
    }
    path = out / "mfas_search.json"
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    print(f"[bench-mfas] {result['architectures']} architectures in {result['steps']} steps: search "
          f"{result['search_s']:.0f} s ({result['per_architecture_s']:.2f} s each), cache build "
          f"{result['cache_build_s']:.0f} s, pretrain {result['pretrain_s']:.0f} s; target ≤ {TARGET_S} s "
          f"{'met' if result['target_met'] else 'NOT met'} → {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
