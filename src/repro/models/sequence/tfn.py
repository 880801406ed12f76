"""TFN — Tensor Fusion Network (Zadeh, Chen, Poria, Cambria, Morency; EMNLP 2017, §3).

1. Modality embedding subnetworks (§3.1): the language modality (any modality listed in `lstm_modalities`) runs
   an LSTM, is read at its last real step, then Dropout -> Linear(`text_out`); every other modality is averaged
   over its REAL steps and passed through `subnet_layers` fully-connected ReLU layers of `subnet_hidden` units
   (the paper's three 32-unit layers for visual and acoustic).
2. Tensor fusion layer (§3.2): z = [z_1; 1] ⊗ [z_2; 1] (⊗ [z_3; 1]), flattened, size prod_m (d_m + 1); the
   appended 1 keeps the unimodal and bimodal terms inside the product. Works for 2 or 3 (or more) modalities;
   the outer product is an einsum over the batch, one modality at a time.
3. Sentiment inference subnetwork (§3.3): Dropout -> `post_fusion_hidden` ReLU layers (Dropout after each) ->
   Linear(num_classes).

`ModalityEmbeddings` (step 1) is shared with LMF (`repro.models.sequence.lmf`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from repro.models.blocks import mlp, per_modality
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM, masked_mean


def tensor_fusion_size(dims: Sequence[int]) -> int:
    """Length of the flattened fusion tensor for embeddings of sizes `dims`: prod (d_m + 1)."""
    return math.prod(int(d) + 1 for d in dims)


def append_one(z: torch.Tensor) -> torch.Tensor:
    """(B, d) -> (B, d + 1) with a constant 1 as the last entry ([z; 1] in TFN §3.2 / LMF Eq. 5)."""
    return torch.cat([z, z.new_ones(z.shape[0], 1)], dim=1)


def tensor_fusion(embeddings: Sequence[torch.Tensor]) -> torch.Tensor:
    """Flattened outer product of [z_m; 1] over the modalities: (B, prod (d_m + 1)), C order over (d_1+1, ...)."""
    fused = append_one(embeddings[0])
    for z in embeddings[1:]:
        fused = torch.einsum("bi,bj->bij", fused, append_one(z)).reshape(fused.shape[0], -1)
    return fused


class ModalityEmbeddings(nn.Module):
    """TFN §3.1 subnetworks: LSTM -> last real step -> Dropout -> Linear for `lstm_modalities`, masked mean ->
    Dropout -> `subnet_layers` x (Linear -> ReLU) for the others. `dims[m]` = embedding size of modality m."""

    def __init__(
        self,
        in_dims: dict[str, int],
        lstm_modalities: Sequence[str] = ("text",),
        text_hidden: int = 128,
        text_out: int = 128,
        text_dropout: float = 0.0,
        subnet_hidden=32,
        subnet_layers: int = 3,
        subnet_dropout: float = 0.0,
        use_mask: bool = True,
    ):
        super().__init__()
        unknown = [m for m in lstm_modalities if m not in in_dims]
        if unknown:
            raise ValueError(f"lstm_modalities {unknown} are not encoders {list(in_dims)}; fix lstm_modalities")
        self.lstm_modalities = [m for m in in_dims if m in lstm_modalities]
        pooled = [m for m in in_dims if m not in lstm_modalities]
        widths = per_modality(subnet_hidden, pooled, "subnet_hidden")
        if int(subnet_layers) < 1:
            raise ValueError(f"subnet_layers must be >= 1, got {subnet_layers}")
        self.lstms = nn.ModuleDict({m: MaskedLSTM(in_dims[m], int(text_hidden), use_mask=use_mask)
                                    for m in self.lstm_modalities})
        self.text_heads = nn.ModuleDict({m: nn.Sequential(nn.Dropout(float(text_dropout)),
                                                          nn.Linear(int(text_hidden), int(text_out)))
                                         for m in self.lstm_modalities})
        self.subnets = nn.ModuleDict({m: self._pooled_subnet(in_dims[m], widths[m], int(subnet_layers),
                                                             float(subnet_dropout)) for m in pooled})
        self.use_mask = bool(use_mask)
        self.dims = {m: int(text_out) if m in self.lstm_modalities else widths[m] for m in in_dims}

    @staticmethod
    def _pooled_subnet(in_dim: int, width: int, layers: int, dropout: float) -> nn.Sequential:
        modules: list[nn.Module] = [nn.Dropout(dropout)]
        for _ in range(layers):
            modules += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        return nn.Sequential(*modules)

    def forward(self, xs: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for m, x in xs.items():
            if m in self.lstms:
                out[m] = self.text_heads[m](self.lstms[m](x, masks[m])[1])
            else:
                # use_mask=False averages every step, padding included (what a plain x.mean(1) would do).
                mask = masks[m] if self.use_mask else torch.ones_like(masks[m])
                out[m] = self.subnets[m](masked_mean(x, mask))
        return out


class SubnetworkFusionNet(SequenceFusionNet):
    """Base of TFN and LMF: the TFN §3.1 modality subnetworks (`ModalityEmbeddings`; its keyword arguments are the
    config keys `lstm_modalities`, `text_hidden`, `text_out`, `text_dropout`, `subnet_hidden`, `subnet_layers`,
    `subnet_dropout`, `use_mask`) over two or more modalities; subclasses fuse `self.embeddings`' outputs."""

    method = "fusion"

    def __init__(self, encoders, num_classes: int, **subnetworks):
        super().__init__(encoders, num_classes)
        if len(self.modalities) < 2:
            raise ValueError(f"{self.method} fuses 2 or more modalities, got encoders {self.modalities}")
        self.embeddings = ModalityEmbeddings(self.dims, **subnetworks)

    def embedding_dims(self) -> list[int]:
        return [self.embeddings.dims[m] for m in self.modalities]


class TensorFusionNet(SubnetworkFusionNet):
    method = "TFN"

    def __init__(self, encoders, num_classes: int, post_fusion_hidden=(128, 128), post_fusion_dropout: float = 0.0,
                 **subnetworks):
        super().__init__(encoders, num_classes, **subnetworks)
        self.fused_size = tensor_fusion_size(self.embedding_dims())
        self.inference = nn.Sequential(
            nn.Dropout(float(post_fusion_dropout)),
            mlp(self.fused_size, post_fusion_hidden, num_classes, float(post_fusion_dropout)),
        )

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        z = self.embeddings(xs, masks)
        fused = tensor_fusion([z[m] for m in self.modalities])
        return NetOutput(logits=self.inference(fused))
