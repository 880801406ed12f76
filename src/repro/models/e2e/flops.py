"""Feature-extraction cost per frame / per sample, counted as MESM counts it (mesm.txt §4.3.2).

The paper: "a standard convolution costs z²·m·n FLOPs at a single location, and a sparse convolution costs a·m·n",
z the kernel size, m / n the input / output channels, a the number of active input sites under the kernel. Summed
over the output locations (all H×W of a dense map; the active sites of a submanifold sparse map), these are
MULTIPLY-ADDS (MACs): what this module returns. torch's FlopCounterMode counts 2 × MACs (ENVIRONMENT.md).
Counted: the convolutions of the visual and audio CNNs (stem, VGG blocks; MESM: the dense low-level stage plus the
sparse blocks at the sites they actually keep). Not counted: BatchNorm, ReLU, pooling, the attention layers' small
linear maps, the flatten projection, the transformers and ALBERT (the paper's column is the feature-extraction part).

Per frame (FE2E): 478,199,808 MACs per 48² face, 837,025,792 per 128×32 chunk (tests/models/test_fe2e.py). An
IEMOCAP-mean utterance (4.59 s: 9 faces, 12 chunks) is 14.35 G MACs. The paper's FE2E 8.65 G is the same in Table 3
(IEMOCAP) and Table 4 (MOSEI), so it does not follow either dataset's clip lengths; the only simple basis found
within 1 % is the visual CNN on 9 faces counted as 2 × MACs (8.61 G, −0.5 %) — a hypothesis, not confirmed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from repro.models.e2e.cnn import POOL, FrameSpec

SUBM_KERNEL = 3


def conv_layers(spec: FrameSpec) -> list[dict]:
    """Every convolution of the dense CNN: output size, kernel, channels, MACs per frame."""
    h, w = spec.size
    layers = [{"name": "stem", "out_hw": (h, w), "k": spec.stem_kernel, "m": spec.in_channels,
               "n": spec.stem_channels}]
    h, w = spec.low_size()
    widths = [spec.stem_channels, *spec.low_blocks]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [{"name": f"low{i}.conv1", "out_hw": (h, w), "k": 3, "m": a, "n": b},
                   {"name": f"low{i}.conv2", "out_hw": (h, w), "k": 3, "m": b, "n": b}]
    widths = [spec.low_channels, *spec.high_blocks]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [{"name": f"high{i}.conv1", "out_hw": (h, w), "k": 3, "m": a, "n": b},
                   {"name": f"high{i}.conv2", "out_hw": (h, w), "k": 3, "m": b, "n": b}]
        h, w = h // POOL, w // POOL
    for layer in layers:
        layer["macs"] = layer["out_hw"][0] * layer["out_hw"][1] * layer["k"] ** 2 * layer["m"] * layer["n"]
    return layers


def dense_macs(spec: FrameSpec, part: str = "all") -> int:
    """MACs per frame of the dense CNN: `all`, or `low` (stem + low blocks: MESM's dense part), or `high`."""
    layers = conv_layers(spec)
    if part == "low":
        layers = [x for x in layers if not x["name"].startswith("high")]
    elif part == "high":
        layers = [x for x in layers if x["name"].startswith("high")]
    return sum(x["macs"] for x in layers)


def subm_pairs(active: torch.Tensor) -> torch.Tensor:
    """(F,) sum over a frame's active sites of the active sites under a 3×3 kernel centred there: the `a` of
    §4.3.2 summed over locations, for a (F, H, W) bool map (a submanifold conv's output sites = its input sites)."""
    grid = active.unsqueeze(1).float()
    ones = grid.new_ones(1, 1, SUBM_KERNEL, SUBM_KERNEL)
    neighbours = F.conv2d(grid, ones, padding=SUBM_KERNEL // 2)
    return (neighbours * grid).sum(dim=(1, 2, 3)).round().long()


def sparse_block_macs(active: torch.Tensor, in_channels: int, out_channels: int) -> torch.Tensor:
    """(F,) MACs of one sparse VGG block (two submanifold 3×3 convs on the same sites) per frame."""
    pairs = subm_pairs(active)
    return pairs * (in_channels * out_channels + out_channels * out_channels)


def per_sample(per_frame: torch.Tensor, owner: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(B,) sums of (ΣF,) per-frame values over each sample's frames."""
    return per_frame.new_zeros(batch_size).index_add(0, owner, per_frame)
