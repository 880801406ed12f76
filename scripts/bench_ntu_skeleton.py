"""NTU RGB+D skeleton parsing at release size (issue 15, "Speed and memory"): the skeleton reader's cache build
(`repro.data.ntu.load_cache`: parse every ``.skeleton`` file once into the memory-mapped cache) with 1 and with 2
parse workers, on SYNTHETIC files of the release's size and format.

    python scripts/bench_ntu_skeleton.py [--files 56880] [--out outputs/bench/ntu_skeleton_parse.json]
    make bench-ntu-skeleton

1. Generate ``--files`` SYNTHETIC ``.skeleton`` files (default the release's 56,880; ≈ 13.5 GB of text) in a temporary
   folder under ``--tmp`` (deleted after): ``--templates`` distinct files written by the release-format writer
   (`repro.data.ntu_skeleton.write_skeleton_file`, as the fixtures) with the release's statistics — frame counts
   drawn around a mean of ~86 (30–300), ~19 % with two bodies, ~2 % starting with frames of 0 bodies, ~0.5 % with no
   body at all (the release's 302 of 56,880) — then copied under release names (SsssCcccPpppRrrrAaaa), every copy a
   real file on disk.
2. Build the cache from the folder with ``parse_workers`` 1, then 2, each in a fresh process: wall seconds, files/s,
   the minutes for the whole release (56,880 files at that rate), the peak RSS of the building process and of its
   worker processes (each process's own ``getrusage``), the cache's size on disk. The two caches must be byte-identical
   (checked, recorded).

The files were just written, so they are read from the page cache where it holds them (stated in the record: the
text's size against the machine's memory). Machine load before and after each build is recorded.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RELEASE_FILES = 56_880
MEAN_FRAMES = 86


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=RELEASE_FILES, help="files to generate (the release: 56,880)")
    p.add_argument("--templates", type=int, default=400, help="distinct generated files the folder is copied from")
    p.add_argument("--workers", default="1,2", help="comma list of parse_workers to time")
    p.add_argument("--tmp", default=None, help="parent folder of the generated release (default: the system's)")
    p.add_argument("--out", default="outputs/bench/ntu_skeleton_parse.json")
    p.add_argument("--child", nargs=3, metavar=("FOLDER", "CACHE", "WORKERS"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def release_names(n: int) -> list[str]:
    """`n` distinct release-style stems, actions fastest, then replications, performers, cameras, setups."""
    names = []
    for setup in range(1, 18):
        for camera in range(1, 4):
            for performer in range(1, 41):
                for replication in range(1, 3):
                    for action in range(1, 61):
                        names.append(f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}")
                        if len(names) == n:
                            return names
    raise ValueError(f"--files {n}: at most {len(names)} distinct release names")


def template_shapes(rng: np.random.Generator, n: int) -> list[dict]:
    """Frame count, bodies and empty frames of `n` templates, with the release's statistics (module docstring)."""
    frames = np.clip(np.round(rng.gamma(4.0, MEAN_FRAMES / 4.0, n)), 30, 300).astype(int)
    shapes = []
    for k, t in enumerate(frames):
        kind = rng.random()
        empty = range(t) if k % 200 == 7 else range(int(rng.integers(1, 6))) if kind < 0.02 else ()
        shapes.append({"frames": int(t), "bodies": 2 if rng.random() < 0.19 else 1, "empty": empty})
    return shapes


def generate(folder: Path, files: int, templates: int) -> dict:
    """The SYNTHETIC release folder (nturgbd_skeletons/ + SYNTHETIC.txt); its statistics."""
    from repro.data.ntu_skeleton import synthetic_frames, write_skeleton_file

    rng = np.random.default_rng(0)
    skeletons = folder / "nturgbd_skeletons"
    (folder / "templates").mkdir(parents=True)
    skeletons.mkdir()
    (folder / "SYNTHETIC.txt").write_text("SYNTHETIC NTU skeletons of release size (scripts/bench_ntu_skeleton.py)\n")
    shapes = template_shapes(rng, min(templates, files))
    paths = [write_skeleton_file(folder / "templates" / f"{k}.skeleton",
                                 synthetic_frames(rng, s["frames"], s["bodies"], s["empty"]))
             for k, s in enumerate(shapes)]
    sizes = [p.stat().st_size for p in paths]
    for k, stem in enumerate(release_names(files)):
        shutil.copyfile(paths[k % len(paths)], skeletons / f"{stem}.skeleton")
    shutil.rmtree(folder / "templates")
    used = [shapes[k % len(shapes)] for k in range(files)]
    return {"files": files, "templates": len(shapes), "bytes": sum(sizes[k % len(sizes)] for k in range(files)),
            "mean_frames": float(np.mean([s["frames"] for s in used])),
            "min_frames": min(s["frames"] for s in used), "max_frames": max(s["frames"] for s in used),
            "two_body_fraction": float(np.mean([s["bodies"] == 2 for s in used])),
            "files_with_empty_frames": sum(bool(s["empty"]) for s in used),
            "files_without_any_body": sum(len(s["empty"]) == s["frames"] for s in used)}


def child(folder: str, cache: str, workers: str) -> dict:
    """One cache build in this (fresh) process: the reader's file listing + `load_cache`."""
    from repro.data.ntu import NTUSkeletonReader, load_cache

    reader = NTUSkeletonReader(folder)
    start = time.perf_counter()
    files = reader.skeleton_files()
    listed = time.perf_counter()
    load_cache(files, Path(cache), parse_workers=int(workers))
    end = time.perf_counter()
    return {"seconds": end - start, "listing_s": listed - start, "files": len(files),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "worker_peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def time_build(folder: Path, cache: Path, workers: int) -> dict:
    load_before = os.getloadavg()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(folder), str(cache), str(workers)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"build process exited {done.returncode}: {tail[0]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    rate = result["files"] / result["seconds"]
    result.update({"parse_workers": workers, "files_per_s": rate, "release_minutes": RELEASE_FILES / rate / 60,
                   "cache_bytes": sum(p.stat().st_size for p in cache.iterdir()),
                   "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())})
    return result


def digest(cache: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(cache.iterdir()):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    from repro.results import atomic_write_text, hardware, versions

    workers = [int(w) for w in args.workers.split(",")]
    record = {"benchmark": "ntu_skeleton_parse", "synthetic": True, "release_files": RELEASE_FILES,
              "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
              "cpu_affinity": sorted(os.sched_getaffinity(0)), "hardware": hardware(), "versions": versions(),
              "builds": {}}
    with tempfile.TemporaryDirectory(prefix="ntu-skeleton-bench-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        record["generated"] = generate(tmp / "ntu", args.files, args.templates)
        record["generated"]["seconds"] = time.perf_counter() - start
        g = record["generated"]
        print(f"generated {g['files']} files, {g['bytes'] / 1e9:.2f} GB, mean {g['mean_frames']:.1f} frames "
              f"({g['seconds']:.0f} s)", flush=True)
        digests = {}
        for w in workers:
            cache = tmp / f"cache_{w}"
            r = record["builds"][str(w)] = time_build(tmp / "ntu", cache, w)
            if "error" in r:
                print(f"parse_workers={w}: {r['error']}", flush=True)
                continue
            digests[w] = digest(cache)
            print(f"parse_workers={w}: {r['seconds']:.1f} s, {r['files_per_s']:.0f} files/s → release "
                  f"{r['release_minutes']:.1f} min; cache {r['cache_bytes'] / 1e9:.2f} GB; peak RSS "
                  f"{r['peak_rss_bytes'] / 2**20:.0f} MiB (workers {r['worker_peak_rss_bytes'] / 2**20:.0f} MiB); "
                  f"load {r['loadavg_before'][0]:.1f}→{r['loadavg_after'][0]:.1f}", flush=True)
            shutil.rmtree(cache) if len(digests) > 1 else None
        record["caches_identical"] = len(set(digests.values())) == 1 and len(digests) == len(workers)
        record["cache_sha256"] = digests
    print(f"caches identical: {record['caches_identical']}")
    atomic_write_text(args.out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
