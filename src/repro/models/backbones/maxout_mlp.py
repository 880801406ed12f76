"""Maxout MLP text encoder for MM-IMDB (MFAS §4.3 / Table 3 "Maxout MLP"; Arevalo et al. 2017, §4;
Goodfellow et al. 2013 for maxout units).

The input is a plot's mean word2vec vector (300-d). As in the MFAS authors' ``MaxOut_MLP``
(jperezrua/mfas ``models/central/mm_imdb.py``):

    Maxout(300 → 64, 5 pieces) → BN → Dropout(0.5) → Maxout(64 → 128, 5 pieces) → BN → Dropout(0.5) → Linear

A maxout unit is ``max_j (W x + b)_{i,j}`` over its ``pieces`` linear pieces (one Linear(d_in, d_out·pieces),
viewed as (d_out, pieces): consecutive outputs form one unit, as the authors' view does).

Staged view: stage k is [BN → Dropout →] Maxout_k and its tap ``maxout<k>`` is the raw maxout output — the
features the authors' fusion models read (``t_o1``, ``t_o2``); the BN → Dropout after the last maxout belongs
to the head. ``hidden`` sets the number and width of the maxout layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from repro.models.backbones.base import StagedEncoder


class Maxout(nn.Module):
    """``d_out`` maxout units with ``pieces`` linear pieces each, over the last dimension."""

    def __init__(self, d_in: int, d_out: int, pieces: int = 5):
        super().__init__()
        self.d_out, self.pieces = int(d_out), int(pieces)
        self.linear = nn.Linear(d_in, self.d_out * self.pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).unflatten(-1, (self.d_out, self.pieces)).amax(dim=-1)


class MaxoutMLP(StagedEncoder):
    """Maxout layers of widths `hidden` (taps ``maxout1..N``), each later one preceded by BN and dropout."""

    def __init__(
        self,
        num_classes: int = 23,
        in_features: int = 300,
        hidden: Sequence[int] = (64, 128),
        pieces: int = 5,
        dropout: float = 0.5,
    ):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden:
            raise ValueError("MaxoutMLP needs at least one maxout layer (hidden=[64, 128] in the paper)")
        self.stage_names = [f"maxout{k + 1}" for k in range(len(hidden))]
        self.stage_channels = hidden
        d_in = int(in_features)
        for k, d_out in enumerate(hidden):
            maxout = Maxout(d_in, d_out, pieces)
            self.stages.append(maxout if k == 0 else nn.Sequential(nn.BatchNorm1d(d_in), nn.Dropout(dropout), maxout))
            d_in = d_out
        self.head = nn.Sequential(nn.BatchNorm1d(d_in), nn.Dropout(dropout), nn.Linear(d_in, num_classes))
