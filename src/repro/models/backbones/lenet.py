"""LeNet-style staged encoders for AV-MNIST (MFAS §4.1; authors' `models/central/avmnist.py`).

`GP_LeNet` (image, 3 conv stages) and `GP_LeNet_Deeper` (spectrogram, 5 conv stages): stage k is
conv (5×5 for the first stage, 3×3 after, no bias) → BatchNorm → ReLU; its globally average-pooled
output is tap k; 2×2 max-pooling is applied before the next stage. Channels double at every stage
(c, 2c, 4c, ...). The classifier is one linear layer on the pooled last tap. Weights use Kaiming-uniform
initialisation, as the authors' code.

QUIRK (authors' GP_LeNet_Deeper): its first tap is pooled *after* max-pooling, unlike every other tap.
The mean over all positions barely changes under 2×2 max-pooling semantics, but it is a different
tensor; `quirk_first_tap_after_pool=True` reproduces it. Default follows the paper (all taps alike).

`channels_last=True` (default) stores the conv weights and activations in NHWC order: the same numbers up
to float rounding, ~1.5x faster training on CPU (oneDNN) for the 112×112 spectrogram net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.backbones.base import StagedEncoder


class LeNetStage(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class LeNet(StagedEncoder):
    """`num_stages` conv stages with `base_channels·2^k` channels; taps `conv1..convN`."""

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 8,
        num_stages: int = 3,
        num_classes: int = 10,
        quirk_first_tap_after_pool: bool = False,
        channels_last: bool = True,
    ):
        super().__init__()
        self.stage_channels = [base_channels * 2**k for k in range(num_stages)]
        self.stage_names = [f"conv{k + 1}" for k in range(num_stages)]
        self.quirk_first_tap_after_pool = quirk_first_tap_after_pool
        c_in = in_channels
        for k, c_out in enumerate(self.stage_channels):
            self.stages.append(LeNetStage(c_in, c_out, 5 if k == 0 else 3))
            c_in = c_out
        self.head = nn.Linear(self.stage_channels[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(m.weight)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0 and self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        tap = self.stages[i](x)
        if i == 0 and self.quirk_first_tap_after_pool:
            # The authors pool tap 1 after max-pooling; return the pooled map so `pool` sees it.
            return F.max_pool2d(tap, 2)
        return tap

    def to_next(self, i: int, tap: torch.Tensor) -> torch.Tensor:
        if i == 0 and self.quirk_first_tap_after_pool:
            return tap  # already max-pooled in run_stage
        return F.max_pool2d(tap, 2)
