"""The per-frame / per-chunk VGG-style CNN of FE2E (mesm.txt §4.2; IMPLEMENTATION-NOTES §5.2) and its parts.

A face crop (3, 48, 48) or a spectrogram chunk (1, 128, 32) goes through
  stem:  Conv 5×5 (in -> 64, padding 2) + BN + ReLU + MaxPool 2        (the "low-level" first layer)
  low:   VggBlock 64 -> 64, VggBlock 64 -> 64                            (kept dense by MESM, §4.3)
  high:  [VggBlock 64 -> 128 + MaxPool 2, VggBlock 128 -> 256 + MaxPool 2, VggBlock 256 -> 512 + MaxPool 2]
giving (512, 3, 3) per face and (512, 8, 2) per chunk. A VggBlock is two (Conv 3×3 + BN + ReLU). MESM replaces each
`high` block by a cross-modal sparse block on the same channels (repro.models.e2e.sparse), so `high[i]` and MESM's
`sparse[i]` hold the same weights one for one.

`FrameSpec` is the backbone's declaration of one such modality (input channels and size, the channel widths);
the networks build their CNNs from it.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

POOL = 2   # every MaxPool of the CNN: kernel 2, stride 2


class FrameSpec(nn.Module):
    """Declaration of a frame modality (configs/backbone/*_raw.yaml): no parameters, only sizes."""

    def __init__(self, in_channels: int, size: Sequence[int], stem_channels: int = 64, stem_kernel: int = 5,
                 low_blocks: Sequence[int] = (64, 64), high_blocks: Sequence[int] = (128, 256, 512)):
        super().__init__()
        self.in_channels, self.size = int(in_channels), (int(size[0]), int(size[1]))
        self.stem_channels, self.stem_kernel = int(stem_channels), int(stem_kernel)
        self.low_blocks, self.high_blocks = [int(c) for c in low_blocks], [int(c) for c in high_blocks]
        divisor = POOL ** (1 + len(self.high_blocks))
        if self.size[0] % divisor or self.size[1] % divisor:
            raise ValueError(f"frame size {self.size} must be divisible by {divisor} (one pooling per stage); "
                             "check backbone.encoders.<modality>.size")
        if not self.high_blocks:
            raise ValueError("backbone.encoders.<modality>.high_blocks is empty; MESM needs at least one block")

    @property
    def low_channels(self) -> int:
        return self.low_blocks[-1] if self.low_blocks else self.stem_channels

    def low_size(self) -> tuple[int, int]:
        """Map size after the stem (the low blocks keep it): 24×24 for faces, 64×16 for chunks."""
        return self.size[0] // POOL, self.size[1] // POOL

    def block_sizes(self) -> list[tuple[int, int]]:
        """Input map size of each high block (24², 12², 6² for faces)."""
        h, w = self.low_size()
        return [(h // POOL ** i, w // POOL ** i) for i in range(len(self.high_blocks))]

    def feature_shape(self) -> tuple[int, int, int]:
        """(C, H, W) at the CNN's output: (512, 3, 3) for faces, (512, 8, 2) for chunks."""
        h, w = self.block_sizes()[-1]
        return self.high_blocks[-1], h // POOL, w // POOL

    def forward(self, x):  # pragma: no cover - a declaration, the networks build the CNN
        raise TypeError("FrameSpec declares a modality; FE2E / MESM build its CNN (fusion=fe2e or fusion=mesm)")


class VggBlock(nn.Module):
    """Two (Conv 3×3, padding 1 + BN + ReLU): the authors' VggBasicBlock."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(x)))


def stem(spec: FrameSpec) -> nn.Sequential:
    k = spec.stem_kernel
    return nn.Sequential(nn.Conv2d(spec.in_channels, spec.stem_channels, k, padding=k // 2),
                         nn.BatchNorm2d(spec.stem_channels), nn.ReLU(), nn.MaxPool2d(POOL, POOL))


def low_blocks(spec: FrameSpec) -> nn.Sequential:
    widths = [spec.stem_channels, *spec.low_blocks]
    return nn.Sequential(*[VggBlock(a, b) for a, b in zip(widths[:-1], widths[1:])])


def high_blocks(spec: FrameSpec) -> nn.ModuleList:
    widths = [spec.low_channels, *spec.high_blocks]
    return nn.ModuleList(nn.Sequential(VggBlock(a, b), nn.MaxPool2d(POOL, POOL))
                         for a, b in zip(widths[:-1], widths[1:]))


class DenseFrameCNN(nn.Module):
    """FE2E's CNN: stem -> low -> high, (N, in, H, W) -> (N, 512, H/16, W/16)."""

    def __init__(self, spec: FrameSpec):
        super().__init__()
        self.stem, self.low, self.high = stem(spec), low_blocks(spec), high_blocks(spec)

    def low_level(self, x):
        return self.low(self.stem(x))

    def forward(self, x):
        x = self.low_level(x)
        for block in self.high:
            x = block(x)
        return x
