"""FE2E vs MESM speed (mesm.txt §4.3.2, Table 3's GFLOPs; issue 16 "Speed"): train steps side by side, and the
sparse stages against the dense stages they replace, wall time beside the paper's FLOP count.

    python scripts/bench_mesm.py [--device cpu|cuda] [--bf16] [--threads 2] [--steps 5] [--text base|tiny]
                                 [--out results/bench]
    make bench-mesm

1. Train steps (forward + BCE + backward + Adam) of FE2E and MESM (p = 0.7, Table 3) at batch 8 with IEMOCAP shapes:
   9 face crops (3×48×48) and 12 spectrogram chunks (1×128×32) per utterance, 50 text tokens. Why 9 / 12: the
   duration-weighted mean clip of mesm.txt Table 1 (all splits) is ≈ 4.6 s; frames every 500 ms -> ceil(4.6 / 0.5) =
   10, floor 9 (the authors' step of 15 frames at 30 fps from frame 0); audio at 16 kHz, hop 200 -> 80 frames/s -> 369
   frames -> ceil(369 / 32) = 12 chunks. The text encoder is ALBERT-base's size (random weights, no files; `--text
   tiny` for the SYNTHETIC tiny one). Both networks in one run, medians of `--steps` timed steps after `--warmup`.
2. The three high blocks alone, forward + backward: FE2E's dense VggBlocks + pools vs MESM's attention + nucleus +
   spconv blocks, on the same low-level maps (batch 8: 72 face maps 64×24×24, 96 chunk maps 64×64×16), at p = 0.1 …
   0.9: wall time, feature MACs (paper convention: dense z²·m·n per location, sparse a·m·n), `kept_of_map` (kept sites
   / all locations of each block's map; the breakdown's `kept_fraction` is kept / active sites).
   Random-initialised attention is close to uniform, so a block keeps ≈ p of its sites (a trained one is peakier).
3. Where the sparse time goes (forward, per block): attention + softmax + nucleus, spconv's neighbour-pair build,
   the submanifold convs, BN + ReLU, the sparse max-pool; and the conv throughput per multiply-add, sparse vs dense.
4. `eval`: what Tables 3/4's wall-time columns measure — MESM's eval forward with `time_dense_reference` (the frame
   CNNs as run, and the same weights as dense CNNs on the same frames, `feature_seconds` / `dense_feature_seconds`),
   at batch 2 (the MESM presets' batch) and `--batch`, p = 0.5 and 0.7: medians per sample and their ratio.
OMP_WAIT_POLICY=PASSIVE is set before torch is imported; load averages, torch / spconv versions are recorded.
`--device cuda` runs the same on a GPU (fp32, or bf16 autocast with --bf16; spconv-cuXXX needed); without CUDA it
writes a record saying it was skipped.
"""

# ruff: noqa: B023  (the step closures are timed at once, inside the loop iteration that defines them)
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (busy-waiting threads, ENVIRONMENT.md)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

# mesm.txt Table 1 (IEMOCAP): mean clip duration (s) and train / valid / test sizes per emotion
TABLE1 = {"ang": (4.51, 757, 112, 234), "exc": (4.78, 736, 92, 213), "fru": (4.71, 1298, 180, 371),
          "hap": (4.34, 398, 62, 135), "neu": (3.90, 1214, 173, 321), "sad": (5.50, 759, 118, 207)}
PAPER = {"fe2e_gflops": 8.65, "mesm_p0.7_gflops_iemocap": 5.18, "mesm_p0.5_gflops_mosei": 4.34}
ALBERT_BASE = {"vocab_size": 30000, "embedding_size": 128, "hidden_size": 768, "num_hidden_layers": 12,
               "num_attention_heads": 12, "intermediate_size": 3072}


def iemocap_shape() -> dict:
    total = sum(sum(v[1:]) for v in TABLE1.values())
    mean_s = sum(v[0] * sum(v[1:]) for v in TABLE1.values()) / total
    audio_frames = 1 + int(mean_s * 16000) // 200
    return {"mean_duration_s": round(mean_s, 3), "frames_per_utterance": 9,
            "frames_at_500ms_ceil": math.ceil(mean_s / 0.5), "chunks_per_utterance": math.ceil(audio_frames / 32),
            "mel_frames": audio_frames, "text_tokens": 50}


def sync(device) -> None:
    if device.type == "cuda":
        import torch
        torch.cuda.synchronize()


def timed(fn, device, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> dict:
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "all_s": [round(t, 4) for t in times]}


def encoders(text: str):
    import torch
    from transformers import AlbertConfig, AlbertModel

    from repro.models.e2e import AlbertText, FrameSpec

    enc = AlbertText(tiny=True)
    if text == "base":  # ALBERT-base's size with random weights: the cost, not the accuracy, is measured
        enc.albert = AlbertModel(AlbertConfig(**ALBERT_BASE), add_pooling_layer=False)
        enc.hidden_size = 768
    torch.manual_seed(0)
    return {"text": enc, "audio": FrameSpec(1, [128, 32]), "video": FrameSpec(3, [48, 48])}


def make_batch(shape: dict, batch: int, vocab: int, device) -> dict:
    import torch

    g = torch.Generator().manual_seed(0)
    frames, chunks = shape["frames_per_utterance"], shape["chunks_per_utterance"]
    out = {"video": torch.randn(batch * frames, 3, 48, 48, generator=g), "video_counts": torch.full((batch,), frames),
           "audio": torch.randn(batch * chunks, 1, 128, 32, generator=g), "audio_counts": torch.full((batch,), chunks),
           "text": torch.randint(4, vocab, (batch, shape["text_tokens"]), generator=g),
           "text_mask": torch.ones(batch, shape["text_tokens"], dtype=torch.bool),
           "label": (torch.rand(batch, 6, generator=g) < 0.3).float()}
    return {k: v.to(device) for k, v in out.items()}


def autocast(device, bf16: bool):
    import torch
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def train_steps(args, device, shape) -> dict:
    import torch
    import torch.nn.functional as F

    from repro.models.e2e import FE2E, MESM

    result = {}
    for name, cls, extra in (("fe2e", FE2E, {}), ("mesm_p0.7", MESM, {"top_p": 0.7})):
        net = cls(encoders(args.text), 6, **extra).to(device)
        vocab = 30000 if args.text == "base" else 260
        batch = make_batch(shape, args.batch, vocab, device)
        opt = torch.optim.Adam(net.parameters(), lr=5e-5)
        flops = []

        def step():
            with autocast(device, args.bf16):
                out = net(batch)
                loss = F.binary_cross_entropy_with_logits(out.logits.float(), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            flops.append(float(out.extras["feature_flops"].mean()))

        result[name] = {**summary(timed(step, device, args.steps, args.warmup)),
                        "feature_gmacs_per_sample": round(flops[-1] / 1e9, 3)}
    result["time_ratio_mesm_over_fe2e"] = round(result["mesm_p0.7"]["median_s"] / result["fe2e"]["median_s"], 3)
    result["flops_ratio_mesm_over_fe2e"] = round(result["mesm_p0.7"]["feature_gmacs_per_sample"]
                                                 / result["fe2e"]["feature_gmacs_per_sample"], 3)
    return result


def stage_modules(spec, p: float, device):
    import torch

    from repro.models.e2e.cnn import DenseFrameCNN
    from repro.models.e2e.sparse import SparseFrameCNN

    torch.manual_seed(0)
    dense = DenseFrameCNN(spec).to(device)
    sparse = SparseFrameCNN(spec, 768, top_p=p).to(device)
    for s, d in zip(sparse.sparse, dense.high):
        s.load_dense(d[0])
    return dense, sparse


def stages(args, device, shape) -> dict:
    import torch

    from repro.models.e2e import FrameSpec
    from repro.models.e2e.flops import dense_macs

    result = {}
    for m, spec, frames in (("video", FrameSpec(3, [48, 48]), args.batch * shape["frames_per_utterance"]),
                            ("audio", FrameSpec(1, [128, 32]), args.batch * shape["chunks_per_utterance"])):
        g = torch.Generator().manual_seed(1)
        low = torch.relu(torch.randn(frames, 64, *spec.low_size(), generator=g)).to(device).requires_grad_()
        queries = torch.randn(frames, 768, generator=g).to(device)
        dense, _ = stage_modules(spec, 1.0, device)

        def dense_step():
            with autocast(device, args.bf16):
                x = low
                for block in dense.high:
                    x = block(x)
            x.float().sum().backward()

        rows = {"dense": {**summary(timed(dense_step, device, args.steps, args.warmup)),
                          "gmacs": round(frames * dense_macs(spec, "high") / 1e9, 3)}}
        for p in args.ps:
            _, sparse = stage_modules(spec, p, device)
            trace_box = {}

            def sparse_step():
                with autocast(device, args.bf16):
                    out, trace = sparse.sparse_path(low, queries)
                out.float().sum().backward()
                trace_box["trace"] = trace

            times = timed(sparse_step, device, args.steps, args.warmup)
            trace = trace_box["trace"]
            low_macs = frames * dense_macs(spec, "low")
            rows[f"p{p}"] = {**summary(times), "gmacs": round((float(trace.macs.sum()) - low_macs) / 1e9, 3),
                             "kept_of_map": [round(float(k.float().mean()), 3) for k in trace.kept],
                             "speedup_vs_dense": round(rows["dense"]["median_s"] / statistics.median(times), 3)}
            rows[f"p{p}"]["flops_fraction_of_dense"] = round(rows[f"p{p}"]["gmacs"] / rows["dense"]["gmacs"], 3)
        result[m] = {"frames": frames, "low_map": [64, *spec.low_size()], **rows}
    return result


def breakdown(args, device, shape) -> dict:
    """Forward time of each part of the sparse blocks (video, batch 8) at p = 0.3 and 0.7, and the dense parts."""
    import torch

    from repro.models.e2e import FrameSpec
    from repro.models.e2e.attention import segment_softmax
    from repro.models.e2e.nucleus import nucleus_keep
    from repro.models.e2e.spconv_compat import sparse_indices, spconv_module

    sp = spconv_module()
    spec = FrameSpec(3, [48, 48])
    frames = args.batch * shape["frames_per_utterance"]
    g = torch.Generator().manual_seed(2)
    low = torch.relu(torch.randn(frames, 64, 24, 24, generator=g)).to(device)
    queries = torch.randn(frames, 768, generator=g).to(device)
    out = {}

    def clock(fn, repeat=3):
        ts = []
        for _ in range(repeat):
            sync(device)
            t = time.perf_counter()
            r = fn()
            sync(device)
            ts.append(time.perf_counter() - t)
        return r, statistics.median(ts)

    with torch.no_grad():
        dense, _ = stage_modules(spec, 1.0, device)
        x, parts = low, []
        for block in dense.high:
            vgg, pool = block[0], block[1]
            c1, t_c1 = clock(lambda: vgg.conv1(x))
            _, t_c2 = clock(lambda: vgg.conv2(torch.relu(vgg.bn1(c1))))
            y = vgg(x)
            _, t_bn = clock(lambda: torch.relu(vgg.bn2(vgg.bn1(c1))))
            x, t_pool = clock(lambda: pool(y))
            macs = frames * (x.shape[-1] * 2) ** 2 * 9 * (vgg.conv1.in_channels * vgg.conv1.out_channels
                                                         + vgg.conv2.in_channels * vgg.conv2.out_channels)
            parts.append({"conv_s": round(t_c1 + t_c2, 4), "bn_relu_s": round(t_bn, 4), "pool_s": round(t_pool, 4),
                          "conv_gmacs": round(macs / 1e9, 3), "conv_gmacs_per_s": round(macs / 1e9 / (t_c1 + t_c2), 2)})
        out["dense"] = parts
        for p in (0.3, 0.7):
            _, cnn = stage_modules(spec, p, device)
            idx = sparse_indices(torch.ones(frames, 24, 24, dtype=torch.bool, device=device))
            feats = low.permute(0, 2, 3, 1).reshape(-1, 64)
            parts = []
            for b, (attention, block) in enumerate(zip(cnn.attention, cnn.sparse)):
                size = [24 // 2 ** b, 24 // 2 ** b]

                def select(feats=feats, idx=idx, attention=attention):
                    fr = idx[:, 0].long()
                    probs = segment_softmax(attention(feats, queries, fr), fr, frames)
                    return nucleus_keep(probs, fr, frames, p)

                keep, t_sel = clock(select)
                kf, ki = feats[keep], idx[keep].contiguous()
                fresh = lambda kf=kf, ki=ki, size=size: sp.SparseConvTensor(kf, ki, size, frames)  # noqa: E731
                y1, t_build_conv = clock(lambda block=block, fresh=fresh: block.conv1(fresh()))
                warm = fresh()
                warm.indice_dict = y1.indice_dict       # the pairs already built: conv only
                _, t_conv1 = clock(lambda block=block, warm=warm: block.conv1(warm))
                h = y1.replace_feature(torch.relu(block.bn1(y1.features)))
                y2, t_conv2 = clock(lambda block=block, h=h: block.conv2(h))
                _, t_bn = clock(lambda block=block, y1=y1, y2=y2: (torch.relu(block.bn1(y1.features)),
                                                                   torch.relu(block.bn2(y2.features))))
                h2 = y2.replace_feature(torch.relu(block.bn2(y2.features)))
                pooled, t_pool = clock(lambda block=block, h2=h2: block.pool(h2))
                from repro.models.e2e.flops import sparse_block_macs
                from repro.models.e2e.sparse import site_grid
                macs = float(sparse_block_macs(site_grid(keep, idx, frames, size), block.in_channels,
                                               block.out_channels).sum())
                parts.append({"sites": int(keep.sum()), "kept_fraction": round(float(keep.float().mean()), 3),
                              "select_s": round(t_sel, 4), "pair_build_s": round(t_build_conv - t_conv1, 4),
                              "conv_s": round(t_conv1 + t_conv2, 4), "bn_relu_s": round(t_bn, 4),
                              "pool_s": round(t_pool, 4), "conv_gmacs": round(macs / 1e9, 3),
                              "conv_gmacs_per_s": round(macs / 1e9 / (t_conv1 + t_conv2), 2)})
                feats, idx = pooled.features, pooled.indices
            out[f"p{p}"] = parts
    return out


def eval_timing(args, device, shape) -> dict:
    """Eval forward as the tables time it: MESM's own frame CNNs vs the same weights run densely, same batches."""
    import torch

    from repro.models.e2e import MESM

    out = {}
    vocab = 30000 if args.text == "base" else 260
    for batch_size in sorted({2, args.batch}):
        batch = make_batch(shape, batch_size, vocab, device)
        for p in (0.5, 0.7):
            net = MESM(encoders(args.text), 6, top_p=p, time_dense_reference=True).to(device).eval()
            own, dense = [], []
            with torch.no_grad(), autocast(device, args.bf16):
                for i in range(args.warmup + args.steps):
                    extras = net(batch).extras
                    if i >= args.warmup:
                        own.append(float(extras["feature_seconds"]) * 1000 / batch_size)
                        dense.append(float(extras["dense_feature_seconds"]) * 1000 / batch_size)
            out[f"batch{batch_size}_p{p}"] = {
                "feature_ms_per_sample": round(statistics.median(own), 2),
                "dense_feature_ms_per_sample": round(statistics.median(dense), 2),
                "feature_over_dense": round(statistics.median(own) / statistics.median(dense), 3),
                "all_feature_ms": [round(t, 2) for t in own], "all_dense_ms": [round(t, 2) for t in dense]}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--text", default="base", choices=["base", "tiny"])
    parser.add_argument("--ps", default="0.1,0.3,0.5,0.7,0.9")
    parser.add_argument("--parts", default="steps,stages,breakdown,eval")
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--tag", default="", help="suffix of the JSON name (mesm_<device>[_bf16][_<tag>].json)")
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - {"steps", "stages", "breakdown", "eval"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}; choose from steps,stages,breakdown,eval")
    args.ps = [float(p) for p in args.ps.split(",")]

    import spconv
    import torch

    from repro.results import atomic_write_text, hardware, versions

    name = f"mesm_{args.device}{'_bf16' if args.bf16 else ''}{'_' + args.tag if args.tag else ''}.json"
    target = Path(args.out) / name
    record = {"args": {k: v for k, v in vars(args).items()}, "loadavg_before": list(os.getloadavg()),
              "torch": torch.__version__, "spconv": spconv.__version__, "hardware": hardware(),
              "versions": versions(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "paper": PAPER}
    if args.device == "cuda" and not torch.cuda.is_available():
        record["skipped"] = "no CUDA device: run on a GPU machine with spconv-cuXXX installed"
        print(record["skipped"])
    else:
        torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        shape = iemocap_shape()
        record["shape"] = shape
        # part of --parts -> (the record's key, the measurement), run in this order
        measurements = {"steps": ("train_steps", train_steps), "stages": ("stages", stages),
                        "breakdown": ("breakdown", breakdown), "eval": ("eval", eval_timing)}
        for part in (p for p in measurements if p in args.parts.split(",")):
            key, measure = measurements[part]
            record[key] = measure(args, device, shape)
            print(json.dumps(record[key]), flush=True)
    record["loadavg_after"] = list(os.getloadavg())
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(record, indent=1))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
