"""GMU — Gated Multimodal Unit (Arevalo, Solorio, Montes-y-Gómez, González, ICLR-W 2017, §3, Eqs. 1–4 and
the M-modality generalisation of Fig. 2).

Bimodal form (M = 2, ``bimodal_gate=True``):
    h_1 = tanh(W_1 x_1),  h_2 = tanh(W_2 x_2),  z = sigmoid(W_z [x_1, x_2]),  h = z * h_1 + (1 - z) * h_2.
M-modality form (M > 2, or ``bimodal_gate=False``): one gate per modality computed from all inputs,
    h_m = tanh(W_m x_m),  z_m = sigmoid(W_{z_m} [x_1, ..., x_M]),  h = sum_m z_m * h_m.
The equations have no bias terms, so the layers have none. x_m is modality m's pooled embedding; h is fed to
a linear classifier (optional dropout before it). Gates are recorded in ``extras['gmu_gates']`` (B, M, H)
(for the bimodal form: z and 1 - z).
"""

from __future__ import annotations

import torch
from torch import nn

from repro.models.net import FeatureFusionNet, NetOutput


class GMUNet(FeatureFusionNet):
    def __init__(self, encoders, num_classes: int, hidden: int = 512, dropout: float = 0.0, bimodal_gate: bool = True):
        super().__init__(encoders, num_classes)
        self.hidden = int(hidden)
        self.bimodal = bool(bimodal_gate) and len(self.modalities) == 2
        total = sum(self.embed_dims.values())
        self.project = nn.ModuleDict({m: nn.Linear(d, self.hidden, bias=False) for m, d in self.embed_dims.items()})
        n_gates = 1 if self.bimodal else len(self.modalities)
        self.gate = nn.Linear(total, n_gates * self.hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.hidden, num_classes)

    def gates_and_features(self, embeddings: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Gates z (B, M, H) and projected features h_m (B, M, H)."""
        xs = [embeddings[m] for m in self.modalities]
        h = torch.stack([torch.tanh(self.project[m](x)) for m, x in zip(self.modalities, xs)], dim=1)
        z = torch.sigmoid(self.gate(torch.cat(xs, dim=1)))
        if self.bimodal:
            z = torch.stack([z, 1.0 - z], dim=1)
        else:
            z = z.view(z.shape[0], len(self.modalities), self.hidden)
        return z, h

    def forward(self, batch):
        embeddings = {m: self.encoders[m].embed(x) for m, x in self.inputs(batch).items()}
        z, h = self.gates_and_features(embeddings)
        fused = (z * h).sum(dim=1)
        return NetOutput(logits=self.classifier(self.dropout(fused)), extras={"gmu_gates": z})

    def fuse(self, embeddings):
        z, h = self.gates_and_features(embeddings)
        return self.classifier(self.dropout((z * h).sum(dim=1)))
