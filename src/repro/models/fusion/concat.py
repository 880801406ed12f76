"""Concat + FC (early / feature-level fusion; MSAF T1 "Concat + FC").

The pooled embeddings of all encoders (each encoder's `embed`: the globally averaged last tap the unimodal
head reads) are concatenated and classified by an MLP: ``hidden`` gives the sizes of optional hidden layers
(Linear -> ReLU -> Dropout each); an empty list is a single linear classifier on the concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repro.models.blocks import hidden_sizes, mlp
from repro.models.net import FeatureFusionNet


class ConcatNet(FeatureFusionNet):
    def __init__(self, encoders, num_classes: int, hidden: Sequence[int] | int | None = (), dropout: float = 0.0):
        super().__init__(encoders, num_classes)
        self.hidden = hidden_sizes(hidden)
        self.classifier = mlp(sum(self.embed_dims.values()), self.hidden, num_classes, dropout)

    def fuse(self, embeddings):
        return self.classifier(torch.cat([embeddings[m] for m in self.modalities], dim=1))
