"""Pre-extracted per-step features as an "encoder" (CMU-MOSI, CMU-MOSEI, IEMOCAP, POM; DESIGN.md "Model contract").

On the CMU datasets the features are given (GloVe / FACET / COVAREP word- or frame-level vectors, or BERT), and
every paper's network owns its recurrent layers (LSTM, LSTHM, transformer), so the backbone of a modality is
only a declaration of its input: `in_features` (D of the (B, T, D) sequences) and an identity forward.
Sequence networks (`repro.models.sequence`) read the sizes from here, so one backbone config per dataset
serves every sequence fusion method.
"""

from __future__ import annotations

import torch
from torch import nn


class SequenceFeatures(nn.Module):
    """Identity over (B, T, D) feature sequences; `in_features` = D."""

    def __init__(self, in_features: int, num_classes: int | None = None):
        super().__init__()
        if int(in_features) < 1:
            raise ValueError(f"SequenceFeatures needs in_features >= 1, got {in_features} (backbone config)")
        self.in_features = int(in_features)
        self.num_classes = num_classes

    @property
    def embed_dim(self) -> int:
        return self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"expected (batch, steps, {self.in_features}) features, got {tuple(x.shape)} "
                             "(backbone in_features must match the data's feature size)")
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}"
