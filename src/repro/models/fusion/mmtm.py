"""MMTM — Multimodal Transfer Module (Joze, Shaban, Iuzzolino, Koishida, CVPR 2020, §3 Eqs. 1–4).

At a fusion point, modality m's feature map ``A_m`` (B, C_m, *dims_m) is squeezed to its channel means
``S_m`` (global average over every non-channel dim, so maps of different rank/size can be fused);
``Z = W [S_1, ..., S_M] + b`` with ``dim(Z) = 2 * sum_m C_m / ratio`` (Eq. 2, as the authors' code
``int(2 * dim / ratio)``), ReLU, then one linear excitation per modality ``E_m = W_m Z + b_m`` (Eq. 3), and
the gated output ``A_m <- 2 * sigmoid(E_m) * A_m`` broadcast over the non-channel dims (Eq. 4: the factor 2
lets a gate both suppress (<1) and excite (>1) a channel).

QUIRK ``quirk_plain_sigmoid``: the released code (haamoon/mmtm ``mmtm.py``, also copied into MSAF-NTU)
multiplies by ``sigmoid(E_m)`` without the factor 2, so a gate can only suppress. Default follows the paper.
The factor changes neither the parameter count nor the FC FLOPs (MSAF Fig. 5 comparison). (The MMTM paper
text is not among papers/; the factor 2 is the paper's Eq. 4 as we read it — re-check against the PDF.)

``MMTMNet``: one MMTM per configured fusion point of a ``StagedFusionNet``; logits = mean of the unimodal
logits (the authors' late combination ``(skeleton_pred + vis_pred) / 2``). Gates are recorded in
``extras['mmtm{k}_gates']`` as (B, sum_m C_m), modality by modality in the point's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from repro.models.backbones.base import global_average
from repro.models.net import StagedFusionNet


class MMTM(nn.Module):
    """The bare module: `forward(xs)` -> (gated maps with the input shapes, gates (B, sum C_m))."""

    def __init__(self, channels: Sequence[int], ratio: float = 4, quirk_plain_sigmoid: bool = False):
        super().__init__()
        self.channels = [int(c) for c in channels]
        total = sum(self.channels)
        squeezed = int(2 * total / ratio)
        if squeezed < 1:
            raise ValueError(f"MMTM with channels {self.channels} and ratio {ratio} has an empty joint layer")
        self.squeeze = nn.Linear(total, squeezed)
        self.excite = nn.ModuleList(nn.Linear(squeezed, c) for c in self.channels)
        self.relu = nn.ReLU()
        self.quirk_plain_sigmoid = bool(quirk_plain_sigmoid)
        self.gate_scale = 1.0 if quirk_plain_sigmoid else 2.0

    def forward(self, xs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if len(xs) != len(self.channels):
            raise ValueError(f"MMTM built for {len(self.channels)} modalities got {len(xs)}")
        for m, x in enumerate(xs):
            if x.shape[1] != self.channels[m]:
                raise ValueError(f"MMTM input {m} has {x.shape[1]} channels, expected {self.channels[m]}")
        z = self.relu(self.squeeze(torch.cat([global_average(x) for x in xs], dim=1)))  # Eqs. 1-2
        gates = [self.gate_scale * torch.sigmoid(fc(z)) for fc in self.excite]  # Eqs. 3-4
        outs = [x * g.reshape(*g.shape, *([1] * (x.dim() - 2))) for x, g in zip(xs, gates)]
        return outs, torch.cat(gates, dim=1)


class MMTMNet(StagedFusionNet):
    """Staged encoders with one MMTM per fusion point; logits = mean of the unimodal logits."""

    def __init__(self, encoders, num_classes: int, points, ratio: float = 4, quirk_plain_sigmoid: bool = False):
        super().__init__(encoders, num_classes, points)
        if not self.points:
            raise ValueError("MMTMNet needs at least one fusion point")
        self.quirk_plain_sigmoid = quirk_plain_sigmoid
        self.mmtm = nn.ModuleList(
            MMTM(list(self.point_channels(k).values()), ratio, quirk_plain_sigmoid) for k in range(len(self.points))
        )

    def fuse_at(self, k, taps, extras):
        names = list(taps)
        outs, gates = self.mmtm[k]([taps[m] for m in names])
        extras[f"mmtm{k}_gates"] = gates
        return dict(zip(names, outs))

    def finish(self, logits, pooled, extras):
        return torch.stack(list(logits.values())).mean(dim=0)
