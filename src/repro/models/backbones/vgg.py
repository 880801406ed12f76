"""VGG-19 image encoder for MM-IMDB (MFAS §4.3 / Table 3; Simonyan & Zisserman 2015, Table 1 column E).

The network is the standard VGG-19 convolutional part: five blocks of 3×3 convolutions (padding 1, bias, no
BatchNorm) with 64, 128, 256, 512, 512 channels (2, 2, 4, 4, 4 convolutions), each conv followed by a ReLU
and each block by a 2×2 max-pool. The fully connected classifier of ImageNet VGG is not used: the head is
global average pooling → BatchNorm1d (optional) → Linear(num_classes), as in the MFAS authors' ``GP_VGG``
(jperezrua/mfas ``models/central/mm_imdb.py``).

Layers are named as in the style-transfer literature and indexed as in torchvision's ``vgg19().features``:

    idx  0 conv1_1   1 relu1_1   2 conv1_2   3 relu1_2   4 pool1
         5 conv2_1   6 relu2_1   7 conv2_2   8 relu2_2   9 pool2
        10 conv3_1 … 17 relu3_4  18 pool3
        19 conv4_1  20 relu4_1 … 25 conv4_4  26 relu4_4  27 pool4
        28 conv5_1 … 33 relu5_3  34 conv5_4  35 relu5_4  36 pool5

Taps. The MFAS authors' code takes global-average features after torchvision layers **20, 26, 33, 36**, i.e.
after ``relu4_1`` (inside block 4), ``relu4_4`` (end of block 4, before its pool), ``relu5_3`` (inside block 5)
and ``pool5`` (after block 5's pool); their classifier reads BN(GAP(pool5)). The paper's MM-IMDB search space
(mfas.txt §4.3) has "eight convolutional layers of a VGG-19" (M = 8), which we read as the eight convolutions of
blocks 4 and 5 (``relu4_1`` … ``relu5_4``). Both need taps inside blocks, so the stages here are *not* the five
blocks: the encoder is cut after each layer named in ``taps`` and stage k is the run of layers after tap k-1 up to
and including tap k. The default taps are

    relu1_2, relu2_2, relu3_4                    outputs of blocks 1-3 (un-pooled, like this repository's LeNet taps)
    relu4_1 … relu4_4, relu5_1 … relu5_4         every convolution of blocks 4-5 (the paper's eight search taps)
    pool5                                        the head's input, as the authors' GP_VGG

(torchvision indices 3, 8, 17, 20, 22, 24, 26, 29, 31, 33, 35, 36), so the authors' four are
``relu4_1, relu4_4, relu5_3, pool5``. Layers after the last tap are not built (e.g. ``taps`` ending at
``relu5_4`` gives a network without pool5).

ImageNet weights: ``pretrained=<path>`` loads a torchvision-format state dict (``vgg19-dcbb9e9d.pth``: keys
``features.<idx>.weight/bias``; the ``classifier.*`` entries are ignored). torchvision itself is never imported
(it breaks ``import lightning`` in this environment). ``width`` scales every block's channels (tests use a thin
VGG on CPU); pretrained weights need ``width=1``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from repro.config import ConfigError
from repro.models.backbones.base import StagedEncoder

# Convolutions per block (Simonyan & Zisserman Table 1: A = VGG-11, B = 13, D = 16, E = 19).
LAYOUTS = {"vgg11": (1, 1, 2, 2, 2), "vgg13": (2, 2, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
# Block 1-3 outputs, every conv of blocks 4-5 (the paper's M = 8 search taps), pool5 (the head's input). The MFAS
# authors' code taps (torchvision vgg19.features indices 20, 26, 33, 36) are relu4_1, relu4_4, relu5_3, pool5.
DEFAULT_TAPS = ("relu1_2", "relu2_2", "relu3_4", "relu4_1", "relu4_2", "relu4_3", "relu4_4",
                "relu5_1", "relu5_2", "relu5_3", "relu5_4", "pool5")
AUTHORS_TAPS = ("relu4_1", "relu4_4", "relu5_3", "pool5")
WEIGHTS_HINT = ("expected a torchvision VGG state dict such as vgg19-dcbb9e9d.pth (keys 'features.<idx>.weight'; "
                "see configs/backbone/mmimdb.yaml)")


def layer_plan(arch: str = "vgg19") -> list[tuple[str, str, int]]:
    """[(name, kind, block)] in torchvision `features` order; kind is conv | relu | pool."""
    if arch not in LAYOUTS:
        raise ConfigError(f"unknown VGG arch {arch!r}; choose one of {sorted(LAYOUTS)}")
    plan = []
    for b, n_convs in enumerate(LAYOUTS[arch], start=1):
        for k in range(1, n_convs + 1):
            plan += [(f"conv{b}_{k}", "conv", b), (f"relu{b}_{k}", "relu", b)]
        plan.append((f"pool{b}", "pool", b))
    return plan


class VGG(StagedEncoder):
    """VGG (default VGG-19) cut at the named `taps`; head = GAP → BN (optional) → Linear."""

    def __init__(
        self,
        num_classes: int = 23,
        arch: str = "vgg19",
        taps: Sequence[str] = DEFAULT_TAPS,
        in_channels: int = 3,
        width: float = 1.0,
        head_batchnorm: bool = True,
        pretrained: str | None = None,
    ):
        super().__init__()
        plan = layer_plan(arch)
        names = [name for name, _, _ in plan]
        taps = list(taps)
        unknown = [t for t in taps if t not in names]
        if unknown or not taps:
            raise ConfigError(f"VGG taps {unknown or taps} are not layers of {arch}; layers: {', '.join(names)}")
        ends = [names.index(t) for t in taps]
        if ends != sorted(ends) or len(set(ends)) != len(ends):
            raise ConfigError(f"VGG taps must be distinct and in network order, got {taps}")
        self.arch, self.width = arch, float(width)
        channels = [max(1, round(c * self.width)) for c in BLOCK_CHANNELS]
        self.stage_names = taps
        self.stage_channels = []
        # torchvision `features` index -> (stage, layer name): how pretrained weights find their layer.
        self.torchvision_index: dict[int, tuple[int, str]] = {}
        c_in, start = in_channels, 0
        for stage, end in enumerate(ends):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for idx in range(start, end + 1):
                name, kind, block = plan[idx]
                if kind == "conv":
                    layers[name] = nn.Conv2d(c_in, channels[block - 1], kernel_size=3, padding=1)
                    c_in = channels[block - 1]
                    self.torchvision_index[idx] = (stage, name)
                elif kind == "relu":
                    # In place saves memory, except as a stage's first layer: that would overwrite the previous
                    # stage's output, which is a tap that fusion modules may still read.
                    layers[name] = nn.ReLU(inplace=idx != start)
                else:
                    layers[name] = nn.MaxPool2d(kernel_size=2, stride=2)
            self.stages.append(nn.Sequential(layers))
            self.stage_channels.append(c_in)
            start = end + 1
        width_out = self.stage_channels[-1]
        self.head = nn.Sequential(OrderedDict(
            norm=nn.BatchNorm1d(width_out) if head_batchnorm else nn.Identity(),
            fc=nn.Linear(width_out, num_classes),
        ))
        self.reset_parameters()
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:
            self.load_torchvision(pretrained)

    def reset_parameters(self) -> None:
        # torchvision's VGG initialisation (Kaiming-normal fan-out convs, N(0, 0.01) linear, zero biases).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def convs(self) -> dict[int, nn.Conv2d]:
        """torchvision `features` index -> conv module."""
        return {idx: getattr(self.stages[s], name) for idx, (s, name) in self.torchvision_index.items()}

    def load_torchvision(self, path: str | Path) -> None:
        """Copy the conv weights of a torchvision-format VGG state dict; any mismatch is a one-line error."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"VGG pretrained weights {path} do not exist; {WEIGHTS_HINT}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a pickle of something else, a truncated download, a text file, ...
            raise ConfigError(f"cannot read {path} as a torch state dict ({type(err).__name__}); "
                              f"{WEIGHTS_HINT}") from None
        if not isinstance(state, Mapping):
            raise ConfigError(f"{path} holds a {type(state).__name__}, not a state dict; {WEIGHTS_HINT}")
        updates = {}
        for idx, conv in self.convs().items():
            for part in ("weight", "bias"):
                key, want = f"features.{idx}.{part}", getattr(conv, part)
                got = state.get(key)
                if not isinstance(got, torch.Tensor):
                    raise ConfigError(f"{path} has no '{key}' ({self.arch} conv {self.torchvision_index[idx][1]}); "
                                      f"{WEIGHTS_HINT}")
                if tuple(got.shape) != tuple(want.shape):
                    raise ConfigError(f"{path}: '{key}' has shape {tuple(got.shape)}, this {self.arch} "
                                      f"(width {self.width:g}) needs {tuple(want.shape)}; {WEIGHTS_HINT}")
                updates[(conv, part)] = got
        with torch.no_grad():
            for (conv, part), value in updates.items():
                getattr(conv, part).copy_(value)
