"""NTU RGB+D network speed and memory (issue 15, "Speed and memory"): our encoders against the authors' network
structures, side by side in one run, and the I3D + HCN MSAF network's step for a GPU machine.

    python scripts/bench_ntu.py [--out outputs/bench/ntu_models_cpu.json]       # make bench-ntu
    python scripts/bench_ntu.py --quick --out /tmp/x.json                        # tiny sizes (a test)
    python scripts/bench_ntu.py --suite msaf --device cuda --out $OUT/msaf_ntu_gpu.json   # scripts/gpu_check.sh
    python scripts/bench_ntu.py --suite msaf --device cpu --quick --out /tmp/y.json

Suite ``models`` (default). One train step = forward + cross-entropy + backward + Adam (lr 1e-4) on a SYNTHETIC random
batch (speed does not depend on the values), 60 classes:

- ``hcn``: HCN at batch 64 × (3, 32, 25, 2) — ours (`repro.models.backbones.hcn.HCN`) vs MFAS's ``Skeleton``;
- ``i3d``: I3D at batch 2 × 32×224² — ours (``variant=msaf``, the fork's fixed padding, frames-first input as the
  datamodule feeds it) vs the MSAF fork's ``I3D`` (input (B, T, H, W, C) as theirs);
- ``i3d_same``: I3D with TF "same" padding — ours (``variant=piergiaj``) vs piergiaj's ``InceptionI3d`` (opt-in);
- ``resnet``: MFAS's inflated ResNet-50 at batch 2 × 8×224² — ours vs MFAS's ``Visual``.

The authors' structures are `repro.analysis.reference_ntu` (equal functions: tests/analysis/test_reference_ntu.py).
The 3-D nets run in two layouts: ``fp32`` (PyTorch's default, NCDHW) and ``channels_last`` (weights and input in
``torch.channels_last_3d``; the inflated ResNet's 2-D stem weights in ``channels_last``). Every (net, implementation,
layout) runs in its own process, ours and theirs alternating, so one model's allocations never inflate another's
peak: the child reads its own peak RSS (``getrusage(RUSAGE_SELF)``) after its steps — ``RUSAGE_CHILDREN`` in the
parent would be the maximum over all children so far. Reported per variant: median and quartiles of the timed steps
after warm-up, peak RSS, the RSS before the model was built, the load average before and after; per net and layout
the ratio ours / authors of the medians (below 1 = ours faster). Torch threads ``--threads`` (2); OMP_WAIT_POLICY is
set to PASSIVE before torch is imported (ENVIRONMENT.md: spinning OpenMP threads on a shared machine).

Suite ``msaf``: the I3D + HCN MSAF network (``data=ntu fusion=msaf backbone=ntu_i3d`` through the config path, its
preset) at batch 4 × 32×224² + (3, 32, 25, 2), one Adam over all parameters (the paper's alternating per-branch
optimisers step half of it each time; the step's compute is the same), fp32 and bf16 autocast (CUDA), peak memory
``torch.cuda.max_memory_allocated`` on CUDA, RSS on CPU.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from repro.results import atomic_write_text, hardware, versions  # noqa: E402

NUM_CLASSES = 60
IMPLEMENTATIONS = ("ours", "authors")
LAYOUTS = ("fp32", "channels_last")
# net -> full-size settings: batch, input (frames, size) or HCN window, timed steps, warm-up steps
FULL = {"hcn": {"batch": 64, "frames": 32, "size": 0, "steps": 20, "warmup": 3},
        "i3d": {"batch": 2, "frames": 32, "size": 224, "steps": 5, "warmup": 1},
        "i3d_same": {"batch": 2, "frames": 32, "size": 224, "steps": 5, "warmup": 1},
        "resnet": {"batch": 2, "frames": 8, "size": 224, "steps": 5, "warmup": 1}}
QUICK = {"hcn": {"batch": 4, "frames": 32, "size": 0, "steps": 2, "warmup": 1},
         "i3d": {"batch": 1, "frames": 16, "size": 64, "steps": 2, "warmup": 1},
         "i3d_same": {"batch": 1, "frames": 16, "size": 64, "steps": 2, "warmup": 1},
         "resnet": {"batch": 1, "frames": 2, "size": 64, "steps": 2, "warmup": 1}}
DEFAULT_NETS = "hcn,i3d,resnet"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=("models", "msaf"), default="models")
    p.add_argument("--nets", default=DEFAULT_NETS, help=f"comma list of {', '.join(FULL)} (suite models)")
    p.add_argument("--layouts", default=",".join(LAYOUTS), help="comma list of fp32, channels_last (3-D nets)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch threads in each timed process")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default per net: HCN 20, 3-D nets 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default HCN 3, 3-D nets 1)")
    p.add_argument("--hcn-rounds", type=int, default=3, help="HCN: ours/authors process pairs run in turn; the steps "
                   "of all rounds pooled (a cheap net on a shared machine: alternation evens out the load)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps (a plumbing test, not a measurement)")
    p.add_argument("--out", default=None, help="JSON record (default outputs/bench/ntu_models_cpu.json, or "
                   "outputs/bench/msaf_ntu_<device>.json for --suite msaf)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)   # net/implementation/layout: one variant
    return p.parse_args(argv)


def settings_of(args, net: str) -> dict:
    s = dict((QUICK if args.quick else FULL)[net])
    s.update({k: v for k, v in (("steps", args.steps), ("warmup", args.warmup)) if v is not None})
    return s


# -- building one variant --------------------------------------------------------------------------------------------

def to_channels_last(net: nn.Module) -> nn.Module:
    """5-D weights in channels_last_3d, 4-D ones (the inflated ResNet's 2-D stem) in channels_last."""
    with torch.no_grad():
        for p in net.parameters():
            if p.dim() == 5:
                p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
            elif p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
    return net


def build(net: str, impl: str, s: dict):
    """(module, input tensor, logits-of-output function) of one net and implementation, on the CPU."""
    from repro.analysis import reference_ntu as ref
    from repro.models.backbones.hcn import HCN
    from repro.models.backbones.i3d import I3D
    from repro.models.backbones.inflated_resnet import InflatedResNet50

    b, t, size = s["batch"], s["frames"], s["size"]
    if net == "hcn":
        x = torch.randn(b, 3, t, 25, 2)
        if impl == "ours":
            return HCN(num_classes=NUM_CLASSES, window=t), x, lambda out: out
        return ref.AuthorsSkeleton(num_classes=NUM_CLASSES, window=t), x, lambda out: out[1]
    head_pool = (min(2, t // 8), size // 32, size // 32)  # theirs (2, 7, 7) at 224²; smaller only in --quick
    if net == "i3d":
        if impl == "ours":  # frames first, as the datamodule's batches and configs/backbone/ntu_i3d.yaml
            return (I3D(NUM_CLASSES, variant="msaf", input_layout="BTCHW"), torch.randn(b, t, 3, size, size),
                    lambda out: out)
        return ref.ForkI3D(NUM_CLASSES, head_pool=head_pool), torch.randn(b, t, size, size, 3), lambda out: out
    if net == "i3d_same":
        x = torch.randn(b, 3, t, size, size)
        if impl == "ours":
            return I3D(NUM_CLASSES, variant="piergiaj"), x, lambda out: out
        return ref.PiergiajI3D(NUM_CLASSES, head_pool=head_pool), x, lambda out: out.mean(2)
    if net == "resnet":
        if impl == "ours":
            return InflatedResNet50(NUM_CLASSES, input_layout="BTCHW"), torch.randn(b, t, 3, size, size), lambda o: o
        visual = ref.AuthorsVisual(NUM_CLASSES, frames=t, pool_size=size // 32)
        return visual, torch.randn(b, t, size, size, 3), lambda out: out[-1]
    raise ValueError(f"unknown net {net!r}; choose from {list(FULL)}")


def channels_last_input(x: torch.Tensor, net: str, impl: str) -> torch.Tensor:
    """The input in the channels-last order the first conv reads (a permuted input already is, for theirs)."""
    if impl == "authors" and net in ("i3d", "resnet"):
        return x  # (B, T, H, W, C): their permute to (B, C, T, H, W) gives a channels_last_3d view
    if x.dim() == 5 and net != "hcn":
        if x.shape[2] == 3:  # ours, frames first (B, T, C, H, W): the same bytes as theirs, viewed our way
            return x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        return x.contiguous(memory_format=torch.channels_last_3d)
    return x


def time_variant(net: str, impl: str, layout: str, s: dict, threads: int) -> dict:
    """Run one variant in this process: build, warm up, time; this process's own peak RSS."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    model, x, logits_of = build(net, impl, s)
    if layout == "channels_last":
        model, x = to_channels_last(model), channels_last_input(x, net, impl)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    labels = torch.randint(0, NUM_CLASSES, (s["batch"],))
    build_s, times = time.perf_counter() - start, []
    load_before = os.getloadavg()
    for step in range(s["warmup"] + s["steps"]):
        begin = time.perf_counter()
        loss = F.cross_entropy(logits_of(model(x)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= s["warmup"]:
            times.append(time.perf_counter() - begin)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"step_s": {"median": statistics.median(times), "q1": q[0], "q3": q[2], "all": times},
            "steps_timed": len(times), "warmup_steps": s["warmup"],
            "peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            "rss_before_build_bytes": int(rss_before), "build_s": build_s,
            "params": sum(p.numel() for p in model.parameters()), "input_shape": list(x.shape),
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads()}


def run_child(args, net: str, impl: str, layout: str) -> dict:
    """One variant in a fresh process (its own peak RSS); an error is recorded, not raised."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "variant.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", f"{net}/{impl}/{layout}", "--threads",
               str(args.threads), "--out", str(out)]
        cmd += ["--quick"] if args.quick else []
        cmd += [f"--{k}={v}" for k, v in (("steps", args.steps), ("warmup", args.warmup)) if v is not None]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return {"error": f"variant process exited {done.returncode}: {tail[0]}"}
        return json.loads(out.read_text())


def pooled(runs: list[dict]) -> dict:
    """Several processes' results of one variant as one: their timed steps pooled, the largest peak RSS, the load
    before the first and after the last; each round's median kept."""
    if len(runs) == 1 or any("error" in r for r in runs):
        return runs[0] if len(runs) == 1 else next(r for r in runs if "error" in r)
    times = [t for r in runs for t in r["step_s"]["all"]]
    q = statistics.quantiles(times, n=4)
    out = dict(runs[0])
    out.update({"step_s": {"median": statistics.median(times), "q1": q[0], "q3": q[2], "all": times},
                "steps_timed": len(times), "rounds": len(runs),
                "round_medians": [r["step_s"]["median"] for r in runs],
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
                "loadavg_after": runs[-1]["loadavg_after"]})
    return out


def ratios_of(results: dict) -> dict:
    """ours / authors median step time per net and layout (below 1: ours faster), and the peak-RSS ratio."""
    out = {}
    for net, by_impl in results.items():
        for layout in by_impl.get("ours", {}):
            a, b = by_impl["ours"][layout], by_impl.get("authors", {}).get(layout, {})
            if "step_s" in a and "step_s" in b:
                out.setdefault(net, {})[layout] = {
                    "time": a["step_s"]["median"] / b["step_s"]["median"],
                    "peak_rss": a["peak_rss_bytes"] / b["peak_rss_bytes"]}
    return out


def channels_last_gain(results: dict) -> dict:
    """channels_last / fp32 median step time per net and implementation (below 1: channels-last faster)."""
    out = {}
    for net, by_impl in results.items():
        for impl, by_layout in by_impl.items():
            a, b = by_layout.get("channels_last", {}), by_layout.get("fp32", {})
            if "step_s" in a and "step_s" in b:
                out.setdefault(net, {})[impl] = a["step_s"]["median"] / b["step_s"]["median"]
    return out


def suite_models(args) -> dict:
    nets = [n for n in args.nets.split(",") if n]
    layouts = [ly for ly in args.layouts.split(",") if ly]
    unknown = [n for n in nets if n not in FULL] + [ly for ly in layouts if ly not in LAYOUTS]
    if unknown:
        raise SystemExit(f"bench_ntu.py: unknown nets/layouts {unknown}; nets {list(FULL)}, layouts {list(LAYOUTS)}")
    record = {"schema": "repro.bench/1", "benchmark": "ntu_models", "synthetic": True, "quick": args.quick,
              "what": "train step (forward + CE + backward + Adam) of our NTU encoders and the authors' structures "
                      "(repro.analysis.reference_ntu), each variant in its own process (SYNTHETIC random input)",
              "settings": {net: settings_of(args, net) for net in nets}, "threads": args.threads,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "loadavg_start": list(os.getloadavg()),
              "hardware": hardware(), "versions": versions(), "results": {}}
    for net in nets:
        rounds = args.hcn_rounds if net == "hcn" else 1
        for layout in (["fp32"] if net == "hcn" else layouts):  # HCN is 2-D and tiny: one layout
            runs = {impl: [] for impl in IMPLEMENTATIONS}
            for _ in range(rounds):
                for impl in IMPLEMENTATIONS:  # ours and theirs alternate: a drifting load hits both
                    runs[impl].append(run_child(args, net, impl, layout))
            for impl in IMPLEMENTATIONS:
                r = pooled(runs[impl])
                record["results"].setdefault(net, {}).setdefault(impl, {})[layout] = r
                line = (f"{r['step_s']['median']:.3f} s [{r['step_s']['q1']:.3f}–{r['step_s']['q3']:.3f}], peak RSS "
                        f"{r['peak_rss_bytes'] / 2**30:.2f} GiB, load {r['loadavg_before'][0]:.1f}→"
                        f"{r['loadavg_after'][0]:.1f}" if "step_s" in r else r["error"])
                print(f"{net:<9}{impl:<8}{layout:<14}{line}", flush=True)
    record["loadavg_end"] = list(os.getloadavg())
    record["ratio_ours_over_authors"] = ratios_of(record["results"])
    record["channels_last_over_fp32"] = channels_last_gain(record["results"])
    for net, by_layout in record["ratio_ours_over_authors"].items():
        print(f"ours/authors {net}: " + ", ".join(f"{ly} {r['time']:.2f}× time, {r['peak_rss']:.2f}× peak RSS"
                                                  for ly, r in by_layout.items()))
    return record


# -- suite msaf: the I3D + HCN MSAF network (GPU check; runs on CPU with --quick) ----------------------------------

def build_msaf(device: str, frames: int, size: int):
    """`data=ntu fusion=msaf backbone=ntu_i3d` as train.py builds it (its preset), on `device`."""
    from repro.config import compose_train
    from repro.train import build_net

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_train(["data=ntu", "fusion=msaf", "backbone=ntu_i3d", f"data.reader.frames={frames}",
                             f"data.reader.frame_size={size}"], output_dir=tmp, cache_dir=Path(tmp) / "cache")
    return build_net(cfg).to(device)


def suite_msaf(args) -> dict:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_ntu.py --suite msaf --device cuda: no CUDA device here; use --device cpu --quick")
    torch.set_num_threads(args.threads)
    batch, frames, size = (2, 8, 32) if args.quick else (4, 32, 224)
    steps, warmup = args.steps or (2 if args.quick else 10), args.warmup if args.warmup is not None else (
        1 if args.quick else 3)
    variants = {"fp32": None, "bf16": torch.bfloat16} if args.device == "cuda" else {"fp32": None}
    record = {"schema": "repro.bench/1", "benchmark": "msaf_ntu_step", "synthetic": True, "quick": args.quick,
              "what": "MSAF I3D + HCN network train step (data=ntu fusion=msaf backbone=ntu_i3d, its preset; one Adam "
                      "over all parameters; SYNTHETIC random input)", "device": args.device,
              "shape": {"video": [batch, frames, 3, size, size], "skeleton": [batch, 3, 32, 25, 2]},
              "hardware": hardware(), "versions": versions(), "results": {}}
    for name, dtype in variants.items():
        torch.manual_seed(0)
        net = build_msaf(args.device, frames, size).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
        batch_in = {"video": torch.randn(batch, frames, 3, size, size, device=args.device),
                    "skeleton": torch.randn(batch, 3, 32, 25, 2, device=args.device)}
        labels = torch.randint(0, NUM_CLASSES, (batch,), device=args.device)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times, load_before = [], os.getloadavg()
        for step in range(warmup + steps):
            sync(args.device)
            begin = time.perf_counter()
            with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
                loss = net.compute_loss(net(batch_in), labels, F.cross_entropy)[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync(args.device)
            if step >= warmup:
                times.append(time.perf_counter() - begin)
        peak = (torch.cuda.max_memory_allocated() if args.device == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        record["results"][name] = {
            "step_s": {"median": statistics.median(times), "all": times}, "steps_timed": len(times),
            "peak_memory_bytes": int(peak), "peak_memory_kind": "cuda_allocated" if args.device == "cuda" else "rss",
            "params": sum(p.numel() for p in net.parameters()), "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()), "clips_per_s": batch / statistics.median(times)}
        print(f"msaf {name}: {statistics.median(times):.3f} s per step, peak {peak / 2**30:.2f} GiB", flush=True)
        del net, optimizer
        if args.device == "cuda":
            torch.cuda.empty_cache()
    return record


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.child:  # one variant, in this (fresh) process
        net, impl, layout = args.child.split("/")
        result = time_variant(net, impl, layout, settings_of(args, net), args.threads)
        atomic_write_text(args.out, json.dumps(result) + "\n")
        return 0
    if args.suite == "msaf":
        record = suite_msaf(args)
        out = args.out or f"outputs/bench/msaf_ntu_{args.device}.json"
    else:
        record = suite_models(args)
        out = args.out or "outputs/bench/ntu_models_cpu.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
