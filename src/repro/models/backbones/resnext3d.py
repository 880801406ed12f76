"""3D ResNeXt-50 video encoder for RAVDESS (MSAF §5.1 / Table 1; Hara, Kataoka, Satoh, CVPR 2018).

Architecture as Hara et al.'s ``models/resnext.py`` (kenshohara/3D-ResNets-PyTorch, branch CVPR2018), which the
MSAF authors copy as ``ravdess/networks/resnext.py`` (anita-hu/MSAF) and build with ``resnet50(num_classes=8,
shortcut_type='B', cardinality=32, sample_size=224, sample_duration=30)``:

- stem: Conv3d(3→64, 7×7×7, stride (1,2,2), pad 3, no bias) → BN → ReLU → MaxPool3d(3, stride 2, pad 1);
- layer1..layer4: [3, 4, 6, 3] bottlenecks with ``planes`` 128, 256, 512, 1024 and strides 1, 2, 2, 2 (in time
  and space); a bottleneck is 1×1×1 conv (→ cardinality·planes/32 channels) → BN → ReLU → grouped 3×3×3 conv
  (32 groups, the block's stride) → BN → ReLU → 1×1×1 conv (→ 2·planes, expansion 2) → BN, plus the shortcut,
  then ReLU. Shortcut type B: a strided 1×1×1 conv + BN where the shape changes (the first block of each
  layer), identity elsewhere;
- head: average pool → Linear(2048 → num_classes).

25,882,056 parameters with 8 classes (the authors' count, a test).

Stages and taps. Stage 0 is the stem (tap ``stem``: the max-pooled map), stages 1-4 are ``layer1..layer4``
(taps = each layer's output). MSAF fuses the ``layer3`` (1024 ch) and ``layer4`` (2048 ch) taps
(IMPLEMENTATION-NOTES §1.2); the stem has its own stage so that ``layer1..4`` name exactly Hara's layers.
Sizes for a T×H×W clip (every stride-2 step maps n → floor((n-1)/2)+1, i.e. ceil(n/2)): conv1 halves space only,
the max-pool halves time and space, so the stem and layer1 are T/2 × H/4 × W/4; layer2, layer3, layer4 halve again
(T/4 × H/8, T/8 × H/16, T/16 × H/32).
RAVDESS's 30×224²: stem (64, 15, 56, 56), layer1 (256, 15, 56, 56), layer2 (512, 8, 28, 28),
layer3 (1024, 4, 14, 14), layer4 (2048, 2, 7, 7).

Pooling. Hara's head is ``AvgPool3d((ceil(T/16), ceil(S/32), ceil(S/32)), stride 1)`` sized for the training
clip; at 30×224² that kernel is exactly layer4's (2, 7, 7) map, i.e. a global average. We use the global
average (the StagedEncoder's ``pool``) so other clip sizes (the CPU smoke path's 8×32²) need no rebuild; at
the authors' size the two are the same function.

QUIRK ``quirk_no_relu_after_bn1`` (default off): the MSAF fused network (``ravdess/networks/msaf_ravdess.py``,
``MSAFNet.__init__``) rebuilds the video path as ``Sequential(conv1, bn1, maxpool, layer1, …)`` — the ReLU
after bn1 is omitted, unlike the standalone ResNeXt it was pre-trained as (IMPLEMENTATION-NOTES §1.2). Turn it
on to reproduce the fused path exactly; off is the network as designed (and as pre-trained).

Weights. Initialisation as Hara's code: Kaiming-normal (fan-out) convs, BN weight 1 / bias 0, PyTorch's default
Linear. ``pretrained=<path>`` (or ``load_kinetics``) loads a checkpoint in Hara et al.'s format (ENVIRONMENT.md):
``{'epoch', 'arch', 'state_dict', 'optimizer'}`` whose state dict has ``module.``-prefixed keys ``conv1``,
``bn1``, ``layer{1-4}.{i}.{conv,bn}{1,2,3}``, ``layer{1-4}.0.downsample.{0,1}``, ``fc``. A plain state dict
(no wrapper, no prefix — e.g. the MSAF authors' per-fold ``fold_{i}_resnext50_best.pth``) is read the same way.
Every backbone tensor must be present with its shape (strict); ``fc`` is loaded only when its shape matches
``num_classes`` (a Kinetics 400-class ``fc`` is dropped, the head keeps its fresh initialisation); BN
``num_batches_tracked`` counters may be absent (checkpoints saved before PyTorch 0.4.1 have none). Any mismatch
is a one-line ``ConfigError`` naming the file, the first mismatching keys and the fix. The paper does not say its
ResNeXt was Kinetics-pretrained: from scratch (``pretrained=None``) is the default.

``channels_last=True`` stores weights and activations in NDHWC order (``torch.channels_last_3d``): the same
function up to float rounding. Measured on this project's 2-core CPU machine, one train step (forward + CE +
backward + Adam) at 30×224²: batch 2 9.7 s → 7.1 s, batch 1 4.7 s → 4.4 s (peak RSS ≈ 3.7 GB at batch 2 either
way). The class default is off (Hara's layout); the RAVDESS backbone config turns it on, measured faster on the CPU
and on an H200 in fp32 (docs/msaf.md).

``input_layout``: ``"BCTHW"`` (default; Hara's layout) or ``"BTCHW"`` — the RAVDESS batches' (B, T, C, H, W)
frames, permuted to (B, C, T, H, W) before the stem (the authors' ``images.permute(0, 2, 1, 3, 4)``).

``checkpoint_activations=True`` (training with gradients only) recomputes each stage's activations in backward
instead of storing them: the stem and every bottleneck block run under ``torch.utils.checkpoint`` (non-reentrant),
so only the block inputs are kept through the forward pass. The same function and gradients; BatchNorm running
statistics are NOT updated twice: the recomputation runs under a context that snapshots every BN buffer of the
block and restores it afterwards (a test checks the buffers equal the non-checkpointed network's). The cost is
one more forward of each block in backward (measured numbers: docs/msaf.md "Networks on RAVDESS").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from repro.config import ConfigError
from repro.models.backbones.base import StagedEncoder
from repro.models.checkpoints import read_state_dict as read_weights

LAYERS = (3, 4, 6, 3)                 # ResNeXt-50
PLANES = (128, 256, 512, 1024)        # Hara's `planes` per layer; the layer's output has 2× these channels
LAYER_STRIDES = (1, 2, 2, 2)
EXPANSION = 2
STAGE_NAMES = ("stem", "layer1", "layer2", "layer3", "layer4")
MSAF_TAPS = ("layer3", "layer4")      # where MSAF fuses on RAVDESS (IMPLEMENTATION-NOTES §1.2)
INPUT_LAYOUTS = ("BCTHW", "BTCHW")
WEIGHTS_HINT = ("fix: pass a 3D ResNeXt-50 checkpoint (cardinality 32, shortcut B) in Hara et al.'s format "
                "({'state_dict': {'module.conv1.weight', ..., 'module.layer4.2.bn3.bias', 'module.fc.*'}}), "
                "or pretrained=null to train from scratch")


class ResNeXtBottleneck(nn.Module):
    """Hara's ResNeXt bottleneck: 1×1×1 → grouped 3×3×3 (stride) → 1×1×1 (×2 channels), plus the shortcut."""

    def __init__(self, in_channels: int, planes: int, cardinality: int, stride: int = 1):
        super().__init__()
        mid = cardinality * (planes // 32)
        out = planes * EXPANSION
        self.conv1 = nn.Conv3d(in_channels, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU(inplace=True)
        # Shortcut type B: a projection only where the shape changes.
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        # In place on `out` only: `x` is the previous stage's tap, which fusion modules may still read.
        out += residual
        return self.relu(out)


def make_layer(in_channels: int, planes: int, blocks: int, cardinality: int, stride: int) -> nn.Sequential:
    first = ResNeXtBottleneck(in_channels, planes, cardinality, stride)
    rest = [ResNeXtBottleneck(planes * EXPANSION, planes, cardinality) for _ in range(blocks - 1)]
    return nn.Sequential(first, *rest)


class ResNeXt3D(StagedEncoder):
    """3D ResNeXt-50 (Hara et al.) cut into stages ``stem, layer1..layer4``; head = global average → fc."""

    def __init__(
        self,
        num_classes: int = 8,
        in_channels: int = 3,
        cardinality: int = 32,
        quirk_no_relu_after_bn1: bool = False,
        pretrained: str | None = None,
        channels_last: bool = False,
        input_layout: str = "BCTHW",
        checkpoint_activations: bool = False,
    ):
        super().__init__()
        if input_layout not in INPUT_LAYOUTS:
            raise ValueError(f"ResNeXt3D input_layout={input_layout!r}: use one of {list(INPUT_LAYOUTS)} "
                             "(BTCHW = frames first, as the RAVDESS batches)")
        self.input_layout = input_layout
        self.checkpoint_activations = bool(checkpoint_activations)
        self.quirk_no_relu_after_bn1 = bool(quirk_no_relu_after_bn1)
        self.stage_names = list(STAGE_NAMES)
        self.stage_channels = [64] + [p * EXPANSION for p in PLANES]
        self.stages.append(nn.Sequential(OrderedDict(
            conv1=nn.Conv3d(in_channels, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False),
            bn1=nn.BatchNorm3d(64),
            # Not in place: the stem's ReLU runs on bn1's fresh output anyway; Identity reproduces MSAF's fused path.
            relu=nn.Identity() if self.quirk_no_relu_after_bn1 else nn.ReLU(inplace=True),
            maxpool=nn.MaxPool3d(kernel_size=3, stride=2, padding=1),
        )))
        c_in = 64
        for planes, blocks, stride in zip(PLANES, LAYERS, LAYER_STRIDES):
            self.stages.append(make_layer(c_in, planes, blocks, cardinality, stride))
            c_in = planes * EXPANSION
        self.head = nn.Linear(c_in, num_classes)
        self.reset_parameters()
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:
            load_kinetics(self, pretrained)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.to(memory_format=torch.channels_last_3d)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            if self.input_layout == "BTCHW":
                x = x.permute(0, 2, 1, 3, 4)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last_3d)
        if not (self.checkpoint_activations and self.training and torch.is_grad_enabled()):
            return self.stages[i](x)
        # The stem is one checkpointed unit; a layer is checkpointed block by block (only block inputs are kept).
        units = [self.stages[i]] if i == 0 else list(self.stages[i])
        for unit in units:
            x = checkpoint(unit, x, use_reentrant=False, context_fn=partial(bn_safe_contexts, unit))
        return x

    def reset_parameters(self) -> None:
        # Hara's initialisation; the Linear head keeps PyTorch's default, as there.
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@contextmanager
def restored_bn_buffers(module: nn.Module) -> Iterator[None]:
    """Run the body, then put every BatchNorm buffer of `module` back as it was (running stats, batch counter)."""
    saved = [(buf, buf.clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for buf in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def bn_safe_contexts(module: nn.Module):
    """torch.utils.checkpoint `context_fn`: the forward as usual; the backward's recomputation must not update the
    BatchNorm running statistics a second time, so it runs under `restored_bn_buffers`."""
    return nullcontext(), restored_bn_buffers(module)


# -- Hara et al.'s checkpoint format ------------------------------------------------------------------------------
def hara_key(key: str) -> str:
    """Our state-dict key -> Hara's (without `module.`): stages.0.conv1 -> conv1, stages.k.* -> layerk.*, head -> fc."""
    if key.startswith("stages.0."):
        return key[len("stages.0."):]
    if key.startswith("stages."):
        index, rest = key[len("stages."):].split(".", 1)
        return f"layer{index}.{rest}"
    if key.startswith("head."):
        return "fc." + key[len("head."):]
    return key


def hara_state_dict(encoder: ResNeXt3D) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hara's `module.`-prefixed key names (what a Kinetics checkpoint holds)."""
    return {"module." + hara_key(k): v for k, v in encoder.state_dict().items()}


def read_checkpoint(path: Path) -> Mapping[str, torch.Tensor]:
    """The state dict of a Hara-format checkpoint (or of a plain state dict), `module.` prefixes removed."""
    return read_weights(path, "ResNeXt-3D pretrained weights", WEIGHTS_HINT)


def load_kinetics(encoder: ResNeXt3D, path: str | Path) -> None:
    """Load a Hara-format (Kinetics) checkpoint into `encoder`, strictly; `fc` only when its shape fits."""
    path = Path(path)
    state = read_checkpoint(path)
    own = {hara_key(k): v for k, v in encoder.state_dict().items()}
    missing = [k for k in own if k not in state and not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}" for k, v in own.items()
             if k in state and not k.startswith("fc.") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = [f"{label} {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        raise ConfigError(f"{path} does not fit this 3D ResNeXt-50: {'; '.join(parts)}; {WEIGHTS_HINT}")
    head_fits = all(k in state and tuple(state[k].shape) == tuple(own[k].shape) for k in ("fc.weight", "fc.bias"))
    with torch.no_grad():
        for key, ours in encoder.state_dict().items():
            theirs = state.get(hara_key(key))
            if theirs is None or (key.startswith("head.") and not head_fits):
                continue  # an absent BN counter, or a Kinetics 400-class fc: keep ours
            ours.copy_(theirs)
