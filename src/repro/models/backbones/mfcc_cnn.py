"""MSAF's MFCC 1D CNN for RAVDESS audio (msaf.txt §5.1; IMPLEMENTATION-NOTES §1.2) as a staged encoder.

Architecture read from the authors' ``MFCCNet`` (anita-hu/MSAF ``ravdess/networks/mfcc_cnn.py``, commit 4146a85)
and cut where their fused network cuts it (``ravdess/networks/msaf_ravdess.py``: audio blocks end before layer
indices 5 and 11 of its ``nn.Sequential``). Input: 13 MFCC coefficients × 212 frames per clip.

    stage ``conv1``    Conv1d(13→32, k7, pad 2) → ReLU → BatchNorm          → (B, 32, 210)
    stage ``conv2``    Conv1d(32→32, k7, pad 2) → ReLU                      → (B, 32, 208)   MSAF module 1 fuses here
    stage ``conv3``    MaxPool1d(8) → BatchNorm → Dropout(0.2)
                       → Conv1d(32→64, k5, pad 2) → ReLU → BatchNorm        → (B, 64, 26)    MSAF module 2 fuses here
    stage ``flatten``  Flatten → Dropout(0.4)                               → (B, 1664)
    head               Linear(1664 → num_classes)

ReLU comes *before* BatchNorm, as in the authors' code. The last tap is the flattened map, not a global average:
the authors' classifier reads all 64 × 26 positions (their ``features_only=True`` output), so the 2-D last tap
makes ``pool`` (which leaves 2-D tensors alone) hand the head exactly that. 34,024 parameters with 8 classes.
Weights keep PyTorch's default initialisation, as the authors' code. ``input_length`` sets the flattened size
(the authors' 1664 fits lengths 212-219 only); any other length is refused with a one-line error.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from repro.models.backbones.base import StagedEncoder

N_MFCC = 13
INPUT_LENGTH = 212  # librosa MFCC frames of 2.45 s at 44.1 kHz, hop 512 (IMPLEMENTATION-NOTES §1.2)
POOL = 8


def conv_length(length: int, kernel: int, padding: int) -> int:
    """Output length of a stride-1 Conv1d."""
    return length + 2 * padding - kernel + 1


class MFCCNet(StagedEncoder):
    """The MSAF RAVDESS audio network; taps ``conv1, conv2, conv3, flatten`` (MSAF fuses at conv2 and conv3)."""

    def __init__(
        self,
        num_classes: int = 8,
        in_channels: int = N_MFCC,
        input_length: int = INPUT_LENGTH,
        dropout_pool: float = 0.2,
        dropout_head: float = 0.4,
    ):
        super().__init__()
        self.input_length = int(input_length)
        self.conv3_length = conv_length(conv_length(self.input_length, 7, 2), 7, 2) // POOL
        if self.conv3_length < 1:
            raise ValueError(f"MFCCNet input_length {input_length} is too short; the net needs >= 12 "
                             f"frames (their clips have {INPUT_LENGTH})")
        flat = 64 * self.conv3_length
        self.stage_names = ["conv1", "conv2", "conv3", "flatten"]
        self.stage_channels = [32, 32, 64, flat]
        # In-place ReLUs only follow a conv inside a stage, never a stage's input (a tap fusion may still read).
        self.stages.extend([
            nn.Sequential(OrderedDict(
                conv=nn.Conv1d(in_channels, 32, kernel_size=7, padding=2),
                relu=nn.ReLU(inplace=True),
                bn=nn.BatchNorm1d(32),
            )),
            nn.Sequential(OrderedDict(
                conv=nn.Conv1d(32, 32, kernel_size=7, padding=2),
                relu=nn.ReLU(inplace=True),
            )),
            nn.Sequential(OrderedDict(
                pool=nn.MaxPool1d(kernel_size=POOL),
                bn_pool=nn.BatchNorm1d(32),
                dropout=nn.Dropout(dropout_pool),
                conv=nn.Conv1d(32, 64, kernel_size=5, padding=2),
                relu=nn.ReLU(inplace=True),
                bn=nn.BatchNorm1d(64),
            )),
            nn.Sequential(OrderedDict(
                flatten=nn.Flatten(),
                dropout=nn.Dropout(dropout_head),
            )),
        ])
        self.head = nn.Linear(flat, num_classes)

    def run_stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0 and tuple(x.shape[1:]) != (self.stages[0].conv.in_channels, self.input_length):
            raise ValueError(
                f"MFCCNet expects MFCC input (B, {self.stages[0].conv.in_channels}, {self.input_length}), got "
                f"{tuple(x.shape)}; set the encoder's input_length/in_channels to the prepared MFCC shape"
            )
        return self.stages[i](x)
