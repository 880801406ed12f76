"""Train-step benchmark of the RAVDESS video backbone (3D ResNeXt-50, `repro.models.backbones.resnext3d`).

One step = forward + cross-entropy + backward + Adam on a random clip batch (SYNTHETIC input: speed does not depend
on the pixel values) at MSAF's RAVDESS shape, batch × 3 × 30 × 224 × 224, 8 classes. Variants: fp32 and bf16
autocast (CUDA only), each in the default and the channels-last-3d memory layout. Reports the median and quartiles
of the timed steps after warm-up and the peak memory (CUDA: `torch.cuda.max_memory_allocated`; CPU: the process's
peak RSS, so run one variant per process on CPU with `--variants`). The MSAF network around it (issue 14) is not
here yet.

    python scripts/bench_video.py --device cuda --out outputs/bench/video_backbone.json
    python scripts/bench_video.py --device cpu --batch 1 --steps 3 --variants fp32
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from repro.models.backbones.resnext3d import ResNeXt3D
from repro.results import atomic_write_text, hardware, versions

VARIANTS = {"fp32": (None, False), "fp32_channels_last": (None, True), "bf16": (torch.bfloat16, False),
            "bf16_channels_last": (torch.bfloat16, True)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=2, help="clips per step (MSAF's RAVDESS batch is 2 on CPU here)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--variants", default=None, help="comma list of " + ", ".join(VARIANTS) + " (default: all the "
                   "device supports; bf16 needs CUDA)")
    p.add_argument("--out", default="outputs/bench/video_backbone.json")
    return p.parse_args(argv)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_variant(args, dtype, channels_last: bool) -> dict:
    torch.manual_seed(0)
    net = ResNeXt3D(num_classes=8, channels_last=channels_last).to(args.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=args.device)
    if channels_last:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, 8, (args.batch,), device=args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(args.warmup + args.steps):
        sync(args.device)
        start = time.perf_counter()
        with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(net(clip), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    peak = (torch.cuda.max_memory_allocated() if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"step_s": {"median": statistics.median(times), "q1": q[0], "q3": q[2]}, "steps_timed": len(times),
            "peak_memory_bytes": int(peak), "peak_memory_kind": "cuda_allocated" if args.device == "cuda" else "rss"}


def default_variants(device: str) -> list[str]:
    """Every variant the device runs: bf16 autocast is timed on CUDA only (this CPU has no fast bf16 path)."""
    return [name for name, (dtype, _) in VARIANTS.items() if dtype is None or device == "cuda"]


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = args.variants.split(",") if args.variants else default_variants(args.device)
    record = {"schema": "repro.bench/1", "what": "ResNeXt3D train step (SYNTHETIC random clips)",
              "shape": [args.batch, 3, args.frames, args.size, args.size], "device": args.device,
              "hardware": hardware(), "versions": versions(), "results": {}}
    for name in names:
        dtype, channels_last = VARIANTS[name]
        try:
            record["results"][name] = time_variant(args, dtype, channels_last)
        except Exception as err:  # one variant's failure (e.g. out of memory) must not lose the others
            record["results"][name] = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
        r = record["results"][name]
        line = (f"{r['step_s']['median']:.3f} s [{r['step_s']['q1']:.3f}–{r['step_s']['q3']:.3f}], peak "
                f"{r['peak_memory_bytes'] / 2**30:.2f} GiB" if "step_s" in r else r["error"])
        print(f"{name:<20}{line}", flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
