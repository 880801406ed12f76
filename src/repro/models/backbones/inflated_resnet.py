"""MFAS's inflated ResNet-50, the NTU RGB+D RGB network of MFAS (mfas.txt §4; IMPLEMENTATION-NOTES §3.3, §1.4),
as a staged encoder.

Architecture read from jperezrua/mfas (commit 2512d19): ``models/central/ntu.py`` (``Visual``),
``models/auxiliary/inflated_resnet.py``, ``models/auxiliary/resnet/resnet.py`` (``ResNet``), ``models/aux/resnet/
bottleneck.py`` (``Bottleneck3D``) and ``models/auxiliary/imagenet_pretraining.py`` (the inflation):

    stem      per frame (frames folded into the batch): Conv2d 7×7 stride 2 (3→64, no bias) → BatchNorm2d → ReLU
              → MaxPool2d 3×3 stride 2 pad 1; frames unfolded back to (B, 64, T, H/4, W/4)
    layer1..4 ResNet-50's 3, 4, 6, 3 bottlenecks, made 3-D: conv1 1×1×1 → BN3d → ReLU → conv2 **3×3×3** (padding 1,
              stride (1, s, s): never in time) → BN3d → ReLU → conv3 1×1×1 → BN3d, + shortcut (1×1×1 conv
              stride (1, s, s) → BN3d on each layer's first block) → ReLU
    head      the authors' AvgPool3d((T, 7, 7)) (at their 8×224² clip: the global average of layer4's (8, 7, 7) map)
              → Linear(2048 → num_classes)

Parameters: 46,265,468 with 60 classes, as the authors' ``Visual``: torchvision's ResNet-50 without its fc
(25,557,032 − 2,049,000 = 23,508,032) + the two extra temporal slices of every 3×3 conv (2·9·Σ blocks·planes² =
2·9·(3·64² + 4·128² + 6·256² + 3·512²) = 22,634,496) + the 60-class head (2048·60 + 60 = 122,940). Only the
bottlenecks' 3×3 convs gain a temporal extent (3); their 1×1 convs and the shortcuts stay 1×1×1; the stem is 2-D.

Taps (stage names): ``layer1`` (the stem and layer1), ``layer2``, ``layer3``, ``layer4``; at 8×224²:
(256, 8, 56, 56), (512, 8, 28, 28), (1024, 8, 14, 14), (2048, 8, 7, 7). Where the authors' code reads them:

- MFAS search (``models/search/ntu_searchable.py``): RGB features 0..3 are ``Visual.forward``'s ``out_2, out_3,
  out_4, out_5`` = layer2, layer3, layer4 and the pooled layer4 vector, each global-average-pooled — so feature 3
  equals feature 2 after the pooling. ``SEARCH_TAPS`` names them ``layer2, layer3, layer4, layer4``.
- MSAF's ResNet variant (IMPLEMENTATION-NOTES §1.4): ``layer3`` and ``layer4`` (``MSAF_TAPS``).

Weights: ``pretrained=<path>`` (or ``load_torchvision``) reads a state dict in torchvision's ResNet-50 key names
(ENVIRONMENT.md: the authors start from ``resnet50-19c8e357.pth``): ``conv1.weight``, ``bn1.*``,
``layer3.2.conv2.weight``, ``layer1.0.downsample.{0,1}.*``, ``fc.*``. A 2-D kernel where ours is 3-D is inflated
as the authors' ``inflation='center'``: the 2-D kernel in the middle temporal slice, the other slices zero — so the
loaded network, before training, computes the 2-D ResNet-50 frame by frame (a test). (Their code also has a
``'mean'`` inflation, the kernel repeated and divided by 3; their ``inflated_resnet`` does not use it.) A tensor
that already has our shape is copied, so a checkpoint of the authors' trained ``Visual`` (keys ``cnn.*`` and
``classifier.*``, optionally ``module.``-prefixed or under ``'state_dict'``) loads too. Strict: every backbone
tensor must be present with a fitting shape; ``fc`` is loaded only when its shape matches ``num_classes`` (the
1000-class ImageNet fc is dropped for NTU's 60, as the authors drop it); BN ``num_batches_tracked`` counters may be
absent (the 2017 file has none). A mismatch is a one-line ``ConfigError`` naming the file and keys.

Initialisation otherwise: the authors' — conv weights normal(0, sqrt(2 / (k[0]·k[1]·out))) with ``k`` the kernel
size (for the 3-D convs k[0] is the temporal extent, as their loop reads it), BN weight 1 and bias 0, the head
PyTorch's default. BatchNorm eps 1e-5, momentum 0.1 (PyTorch's defaults, as theirs).

``channels_last=True`` stores the 3-D weights and activations in NDHWC order (``torch.channels_last_3d``; the 2-D
stem's weights in ``channels_last``): the same function up to float rounding (a test), measured faster on the 2-core
CPU — a train step at batch 2 × 8×224² 6.80 s vs 8.27 s (``make bench-ntu``, results/bench/ntu_models_cpu.json). The
class default is off (PyTorch's layout); configs/backbone/ntu_resnet.yaml turns it on.

Input: (B, C, T, H, W) (``input_layout="BCTHW"``) or (B, T, C, H, W) (``"BTCHW"``, frames first). The authors'
``Visual`` reads (B, T, H, W, C) and permutes; our datamodule decides the layout.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.base import StagedEncoder
from repro.models.checkpoints import read_state_dict as read_weights

EXPANSION = 4
BLOCKS = (3, 4, 6, 3)            # ResNet-50
PLANES = (64, 128, 256, 512)
STAGE_NAMES = ("layer1", "layer2", "layer3", "layer4")
SEARCH_TAPS = ("layer2", "layer3", "layer4", "layer4")  # MFAS's RGB features 0..3 (the 4th is layer4 pooled)
MSAF_TAPS = ("layer3", "layer4")                        # MSAF's ResNet variant
INPUT_LAYOUTS = ("BCTHW", "BTCHW")
WEIGHTS_HINT = ("fix: pass torchvision's resnet50-19c8e357.pth (a plain state dict with keys like 'conv1.weight', "
                "'layer1.0.conv2.weight', 'layer1.0.downsample.0.weight', 'fc.weight'), or pretrained=null to train "
                "from scratch")


class Bottleneck3D(nn.Module):
    """1×1×1 → 3×3×3 (stride (1, s, s)) → 1×1×1 with a residual; attribute names are torchvision's."""

    def __init__(self, c_in: int, planes: int, stride: int = 1):
        super().__init__()
        c_out = planes * EXPANSION
        self.conv1 = nn.Conv3d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=(1, stride, stride), padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=(1, stride, stride), bias=False),
                                            nn.BatchNorm3d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def make_layer(c_in: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck3D(c_in, planes, stride)]
    layers += [Bottleneck3D(planes * EXPANSION, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class FrameStemAndLayer1(nn.Module):
    """The 2-D stem applied to every frame (frames folded into the batch), then the 3-D layer1."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = make_layer(64, PLANES[0], BLOCKS[0], stride=1)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = clip.shape
        frames = clip.transpose(1, 2).reshape(b * t, c, h, w)
        frames = self.maxpool(F.relu(self.bn1(self.conv1(frames))))
        x = frames.view(b, t, *frames.shape[1:]).transpose(1, 2)
        return self.layer1(x)


class InflatedResNet50(StagedEncoder):
    """MFAS's inflated ResNet-50 cut at ``layer1 .. layer4``; head = Linear(2048 → num_classes)."""

    def __init__(self, num_classes: int = 60, in_channels: int = 3, pretrained: str | None = None,
                 input_layout: str = "BCTHW", channels_last: bool = False):
        super().__init__()
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"InflatedResNet50 input_layout={input_layout!r}: use one of {list(INPUT_LAYOUTS)} "
                             "(BTCHW = frames first)")
        self.input_layout = input_layout
        self.stage_names = list(STAGE_NAMES)
        self.stage_channels = [p * EXPANSION for p in PLANES]
        self.stages.append(FrameStemAndLayer1(in_channels))
        for k in range(1, 4):
            layer = make_layer(self.stage_channels[k - 1], PLANES[k], BLOCKS[k], stride=2)
            self.stages.append(nn.Sequential(OrderedDict({f"layer{k + 1}": layer})))
        self.head = nn.Linear(self.stage_channels[-1], num_classes)
        self.reset_parameters()
        self.channels_last = bool(channels_last)
        if self.channels_last:
            to_channels_last(self)
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:
            load_torchvision(self, pretrained)  # copy_ keeps the layout

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0 and self.input_layout == "BTCHW":
            x = x.permute(0, 2, 1, 3, 4)
        if i == 0 and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.stages[i](x)

    def reset_parameters(self) -> None:
        # The authors' loop: std sqrt(2 / n), n = kernel_size[0]·kernel_size[1]·out (for 3-D convs k[0] is time).
        for m in self.stages.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def to_channels_last(module: nn.Module) -> None:
    """Every 5-D weight in ``channels_last_3d``, every 4-D one (the 2-D stem) in ``channels_last``, in place
    (``Module.to(memory_format=...)`` takes one format for both ranks and fails on the other)."""
    with torch.no_grad():
        for p in module.parameters():
            if p.dim() in (4, 5):
                fmt = torch.channels_last_3d if p.dim() == 5 else torch.channels_last
                p.data = p.data.contiguous(memory_format=fmt)


# -- torchvision's ResNet-50 key names ------------------------------------------------------------------------------
def torchvision_key(key: str) -> str:
    """Our key -> torchvision's: ``stages.0.conv1.weight`` -> ``conv1.weight``, ``stages.2.layer3.0.conv2.weight`` ->
    ``layer3.0.conv2.weight``, ``head.bias`` -> ``fc.bias``."""
    if key.startswith("stages."):
        return key.split(".", 2)[2]
    return "fc." + key.removeprefix("head.")


def centre_inflate(weight: torch.Tensor, depth: int) -> torch.Tensor:
    """(O, I, kh, kw) -> (O, I, depth, kh, kw): the 2-D kernel in the middle slice (index depth // 2), zeros elsewhere
    (the authors' ``central_inflate_3D_conv``)."""
    out = weight.new_zeros(weight.shape[0], weight.shape[1], depth, *weight.shape[2:])
    out[:, :, depth // 2] = weight
    return out


def read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A torchvision-layout state dict; a saved MFAS ``Visual`` (``cnn.*``, ``classifier.*``) is renamed to it."""
    state = read_weights(path, "inflated ResNet-50 pretrained weights", WEIGHTS_HINT)
    return {"fc." + key.removeprefix("classifier.") if key.startswith("classifier.") else key.removeprefix("cnn."): v
            for key, v in state.items()}


def fitted(theirs: torch.Tensor, ours: torch.Tensor) -> torch.Tensor | None:
    """`theirs` in our shape: as it is, or a 2-D kernel centre-inflated to our 3-D one; None when it cannot fit."""
    if tuple(theirs.shape) == tuple(ours.shape):
        return theirs
    if theirs.dim() == 4 and ours.dim() == 5 and tuple(theirs.shape) == tuple(ours.shape[:2] + ours.shape[3:]):
        return centre_inflate(theirs, ours.shape[2])
    return None


def load_torchvision(encoder: InflatedResNet50, path: str | Path) -> None:
    """Load a torchvision-layout ResNet-50 state dict into `encoder`, strictly, inflating 2-D kernels at the centre;
    ``fc`` only when its shape fits."""
    path = Path(path)
    state = read_state_dict(path)
    own = {torchvision_key(k): v for k, v in encoder.state_dict().items()}
    backbone = [k for k in own if not k.startswith("fc.")]
    missing = [k for k in backbone if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in backbone
             if k in state and fitted(state[k], own[k]) is None]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"{path} does not fit this inflated ResNet-50: {'; '.join(parts)}; {WEIGHTS_HINT}")
    fc_fits = all(k in state and tuple(state[k].shape) == tuple(own[k].shape) for k in ("fc.weight", "fc.bias"))
    with torch.no_grad():
        for key, ours in own.items():
            if key not in state or (key.startswith("fc.") and not fc_fits):
                continue  # an absent BN counter, or the 1000-class ImageNet fc: keep ours
            ours.copy_(fitted(state[key], ours))
