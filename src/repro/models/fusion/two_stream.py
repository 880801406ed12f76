"""Two-stream fusion baseline as used by MFAS (Pérez-Rúa et al. 2019, Tables 2–4, "Two-stream [39]").

MFAS cites Simonyan & Zisserman 2014 ([39], two-stream ConvNets) without defining the baseline further. The
authors' released baselines (jperezrua/mfas ``models/central/avmnist.py: SimpleAVNet_Deeper`` for AV-MNIST,
``models/central/mm_imdb.py: VGGVTNet`` for MM-IMDB) implement it as: each stream's globally average-pooled
*last* feature (AV-MNIST: image LeNet-3 gp3 and spectrogram LeNet-5 gp5), concatenated, followed by **one
linear classifier**, trained jointly with the streams. We implement exactly that. ``batchnorm=True`` adds a
BatchNorm1d on each stream's feature before the concatenation (VGGVTNet normalises the image feature that
way). Score-level two-stream fusion (averaging softmax scores, Simonyan & Zisserman §6) is `late_avg`.
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.net import FeatureFusionNet


class TwoStreamNet(FeatureFusionNet):
    def __init__(self, encoders, num_classes: int, batchnorm: bool = False):
        super().__init__(encoders, num_classes)
        self.norms = nn.ModuleDict(
            {m: (nn.BatchNorm1d(d) if batchnorm else nn.Identity()) for m, d in self.embed_dims.items()}
        )
        self.classifier = nn.Linear(sum(self.embed_dims.values()), num_classes)

    def fuse(self, embeddings):
        return self.classifier(torch.cat([self.norms[m](embeddings[m]) for m in self.modalities], dim=1))
