"""Concat + FC (early / feature-level fusion; MSAF T1 "Concat + FC").

The pooled embeddings of all encoders (each encoder's `embed`: the globally averaged last tap the unimodal
head reads) are concatenated and classified by an MLP: ``hidden`` gives the sizes of optional hidden layers
(Linear -> ReLU -> Dropout each); an empty list is a single linear classifier on the concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from repro.models.net import FeatureFusionNet


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, int(h)), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = int(h)
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ConcatNet(FeatureFusionNet):
    def __init__(self, encoders, num_classes: int, hidden: Sequence[int] | int | None = (), dropout: float = 0.0):
        super().__init__(encoders, num_classes)
        if hidden is None:
            hidden = []
        elif isinstance(hidden, int):
            hidden = [hidden] if hidden > 0 else []
        self.hidden = [int(h) for h in hidden]
        self.classifier = mlp(sum(self.embed_dims.values()), self.hidden, num_classes, dropout)

    def fuse(self, embeddings):
        return self.classifier(torch.cat([embeddings[m] for m in self.modalities], dim=1))
