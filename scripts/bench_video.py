"""Train-step benchmark of the RAVDESS video backbone (3D ResNeXt-50, `repro.models.backbones.resnext3d`) or of a
whole RAVDESS network built through the config path (`--net msaf`: `data=ravdess fusion=msaf` and its preset).

One step = forward + cross-entropy (the network's own loss) + backward + Adam on a random batch (SYNTHETIC input:
speed does not depend on the values) at MSAF's RAVDESS shape, batch × 30 × 3 × 224² frames (+ MFCC 13 × 212 for a
fused network), 8 classes. Variants: fp32 and bf16 autocast (CUDA only), each in the default and the
channels-last-3d memory layout; `_ckpt` variants (opt-in) recompute the ResNeXt's block activations in backward
(`checkpoint_activations`). Reports the median and quartiles of the timed steps after warm-up, the peak memory
(CUDA: `torch.cuda.max_memory_allocated`; CPU: the process's peak RSS, so `--isolate` runs each variant in a fresh
process) and the machine's load average before and after (the CPU may be shared).

    python scripts/bench_video.py --device cuda --out outputs/bench/video_backbone.json
    python scripts/bench_video.py --device cpu --batch 1 --steps 3 --variants fp32
    python scripts/bench_video.py --device cpu --net msaf --isolate --steps 3 --warmup 1 \
        --variants fp32,fp32_channels_last,fp32_ckpt,fp32_channels_last_ckpt --out results/bench/msaf_ravdess_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from repro.models.backbones.resnext3d import ResNeXt3D
from repro.results import atomic_write_text, hardware, versions

# name -> (autocast dtype, channels-last-3d, checkpointed activations)
VARIANTS = {"fp32": (None, False, False), "fp32_channels_last": (None, True, False),
            "bf16": (torch.bfloat16, False, False), "bf16_channels_last": (torch.bfloat16, True, False),
            "fp32_ckpt": (None, False, True), "fp32_channels_last_ckpt": (None, True, True),
            "bf16_ckpt": (torch.bfloat16, False, True)}


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
    p.add_argument("--net", default="backbone", help="backbone (the ResNeXt alone) or a fusion name: the RAVDESS "
                   "network `data=ravdess fusion=<net>` with its preset (e.g. msaf)")
    p.add_argument("--isolate", action="store_true", help="run each variant in a fresh process (CPU peak RSS per "
                   "variant)")
    p.add_argument("--eval-steps", type=int, default=0, help="after training, time this many forward passes in eval "
                   "mode without gradients; with --batch 4 --steps 300 --eval-steps 60 the totals are one RAVDESS "
                   "fold-epoch of model compute (1200 training clips, 240 test clips; data loading not included)")
    p.add_argument("--out", default="outputs/bench/video_backbone.json")
    return p.parse_args(argv)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build_fused(args, channels_last: bool, checkpoint: bool):
    """The RAVDESS network `data=ravdess fusion=<args.net>` as train.py builds it, and a step's loss function."""
    from repro.config import compose_train
    from repro.train import build_net

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(["data=ravdess", f"fusion={args.net}", "data.num_classes=8",
                             f"backbone.encoders.video.channels_last={str(channels_last).lower()}",
                             f"backbone.encoders.video.checkpoint_activations={str(checkpoint).lower()}"],
                            output_dir=tmp, cache_dir=Path(tmp) / "cache")
    net = build_net(cfg).to(args.device)
    batch = {"video": torch.randn(args.batch, args.frames, 3, args.size, args.size, device=args.device),
             "audio": torch.randn(args.batch, 13, 212, device=args.device)}
    return net, lambda labels: net.compute_loss(net(batch), labels, F.cross_entropy)[0]


def build_backbone(args, channels_last: bool, checkpoint: bool):
    net = ResNeXt3D(num_classes=8, channels_last=channels_last, checkpoint_activations=checkpoint).to(args.device)
    clip = torch.randn(args.batch, 3, args.frames, args.size, args.size, device=args.device)
    if channels_last:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    return net, lambda labels: F.cross_entropy(net(clip), labels)


def time_variant(args, dtype, channels_last: bool, checkpoint: bool = False) -> dict:
    torch.manual_seed(0)
    build = build_backbone if args.net == "backbone" else build_fused
    net, step_loss = build(args, channels_last, checkpoint)
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    labels = torch.randint(0, 8, (args.batch,), device=args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    load_before = os.getloadavg()
    for step in range(args.warmup + args.steps):
        sync(args.device)
        start = time.perf_counter()
        with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
            loss = step_loss(labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(args.device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    eval_times = time_eval(args, net, step_loss, labels, dtype)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    peak = (torch.cuda.max_memory_allocated() if args.device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"step_s": {"median": statistics.median(times), "q1": q[0], "q3": q[2]}, "steps_timed": len(times),
            "peak_memory_bytes": int(peak), "peak_memory_kind": "cuda_allocated" if args.device == "cuda" else "rss",
            "params": sum(p.numel() for p in net.parameters()), "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()), "torch_threads": torch.get_num_threads(),
            "train_total_s": sum(times), "eval_steps_timed": len(eval_times), "eval_total_s": sum(eval_times)}


def time_eval(args, net, step_loss, labels, dtype) -> list[float]:
    """Seconds of each of `args.eval_steps` no-grad forward passes in eval mode (the test fold's pass)."""
    net.eval()
    times = []
    with torch.no_grad():
        for _ in range(args.eval_steps):
            sync(args.device)
            start = time.perf_counter()
            with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                step_loss(labels)
            sync(args.device)
            times.append(time.perf_counter() - start)
    net.train()
    return times


def default_variants(device: str) -> list[str]:
    """Every variant the device runs: bf16 autocast is timed on CUDA only (this CPU has no fast bf16 path);
    checkpointed variants only when asked for."""
    return [name for name, (dtype, _, ckpt) in VARIANTS.items() if (dtype is None or device == "cuda") and not ckpt]


def run_isolated(argv: list[str], name: str) -> dict:
    """One variant in a fresh process, so that the CPU's peak RSS is that variant's alone."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "variant.json"
        args = strip_option(strip_option([a for a in argv if a != "--isolate"], "--variants"), "--out")
        cmd = [sys.executable, str(Path(__file__).resolve()), *args, "--variants", name, "--out", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"error": f"variant process exited {done.returncode}: {tail[0]}"}
        return json.loads(out.read_text())["results"][name]


def strip_option(argv: list[str], option: str) -> list[str]:
    """argv without `option VALUE` / `option=VALUE`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    names = args.variants.split(",") if args.variants else default_variants(args.device)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"bench_video.py: unknown variants {unknown}; choose from {list(VARIANTS)}", file=sys.stderr)
        return 2
    what = ("ResNeXt3D train step" if args.net == "backbone" else
            f"RAVDESS {args.net} network train step (data=ravdess fusion={args.net}, its preset)")
    record = {"schema": "repro.bench/1", "what": f"{what} (SYNTHETIC random clips)", "net": args.net,
              "shape": [args.batch, 3, args.frames, args.size, args.size], "device": args.device,
              "hardware": hardware(), "versions": versions(), "results": {}}
    for name in names:
        dtype, channels_last, checkpoint = VARIANTS[name]
        try:
            record["results"][name] = (run_isolated(argv, name) if args.isolate else
                                       time_variant(args, dtype, channels_last, checkpoint))
        except Exception as err:  # one variant's failure (e.g. out of memory) must not lose the others
            record["results"][name] = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
        r = record["results"][name]
        line = (f"{r['step_s']['median']:.3f} s [{r['step_s']['q1']:.3f}–{r['step_s']['q3']:.3f}], peak "
                f"{r['peak_memory_bytes'] / 2**30:.2f} GiB" if "step_s" in r else r["error"])
        print(f"{name:<24}{line}", flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
