"""LMF — Low-rank Multimodal Fusion with modality-specific factors (Liu, Shen, Lakshminarasimhan, Liang, Zadeh,
Morency; ACL 2018, §3.2-3.3, Eqs. 5-6).

TFN's fusion h = W · Z + b with Z = ⊗_m [z_m; 1] needs a weight tensor of prod_m (d_m + 1) x out entries. LMF
writes W as a rank-r sum of modality-specific factors, W = sum_i ⊗_m W_m^(i), and never builds Z:

    h = sum_{i=1..r} lambda_i * prod_m ([z_m; 1] W_m^(i)) + b          (Eq. 6; lambda = `fusion_weights`)

with W_m of shape (rank, d_m + 1, out). `LowRankFusion.full_weight()` multiplies the factors out into the
(prod (d_m + 1), out) matrix acting on TFN's flattened tensor (`repro.models.sequence.tfn.tensor_fusion`), so the
equivalence with the tensor contraction can be checked.

The modality subnetworks are TFN's (`ModalityEmbeddings`). Head: with `fusion_dim` unset (default) the fusion
outputs num_classes directly and there is no further layer (the LMF authors' code: the fusion output is the
prediction); with `fusion_dim` = k it outputs a k-dim representation followed by one Linear(k, num_classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from repro.models.net import NetOutput
from repro.models.sequence.tfn import SubnetworkFusionNet, append_one


class LowRankFusion(nn.Module):
    """Eq. 6 over len(dims) modalities: factors W_m (rank, d_m + 1, out), weights lambda (rank,), bias (out,)."""

    def __init__(self, dims: Sequence[int], out_features: int, rank: int):
        super().__init__()
        if int(rank) < 1 or int(out_features) < 1:
            raise ValueError(f"LMF needs rank >= 1 and out_features >= 1, got rank={rank}, out={out_features}")
        self.rank = int(rank)
        self.out_features = int(out_features)
        self.factors = nn.ParameterList(nn.Parameter(torch.empty(self.rank, int(d) + 1, self.out_features))
                                        for d in dims)
        self.fusion_weights = nn.Parameter(torch.empty(1, self.rank))
        self.fusion_bias = nn.Parameter(torch.zeros(self.out_features))
        for factor in self.factors:
            nn.init.xavier_normal_(factor)
        nn.init.xavier_normal_(self.fusion_weights)

    def forward(self, embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, d_m) per modality -> (B, out)."""
        product = None
        for z, factor in zip(embeddings, self.factors, strict=True):
            projected = torch.einsum("bd,rdo->rbo", append_one(z), factor)  # [z_m; 1] W_m^(i) for every i
            product = projected if product is None else product * projected
        return torch.einsum("r,rbo->bo", self.fusion_weights[0], product) + self.fusion_bias

    def full_weight(self) -> torch.Tensor:
        """sum_i lambda_i ⊗_m W_m^(i) as a (prod (d_m + 1), out) matrix, C order over (d_1+1, d_2+1, ...)."""
        full = self.factors[0]
        for factor in self.factors[1:]:
            full = torch.einsum("rio,rjo->rijo", full, factor).reshape(self.rank, -1, self.out_features)
        return torch.einsum("r,rio->io", self.fusion_weights[0], full)


class LowRankFusionNet(SubnetworkFusionNet):
    """LMF on the TFN subnetworks (keyword arguments as `SubnetworkFusionNet`)."""

    method = "LMF"

    def __init__(self, encoders, num_classes: int, rank: int = 4, fusion_dim: int | None = None, **subnetworks):
        super().__init__(encoders, num_classes, **subnetworks)
        out = num_classes if fusion_dim is None else int(fusion_dim)
        self.fusion = LowRankFusion(self.embedding_dims(), out, rank)
        self.head = nn.Identity() if fusion_dim is None else nn.Linear(out, num_classes)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        z = self.embeddings(xs, masks)
        return NetOutput(logits=self.head(self.fusion([z[m] for m in self.modalities])))
