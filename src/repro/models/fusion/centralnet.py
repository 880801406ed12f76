"""CentralNet (Vielzeuf, Lechervy, Pateux, Jurie, ECCV-W 2018, §3, Eqs. 1–2), as used by MFAS (Tables 2–4).

A central branch runs alongside the unimodal encoders. At fusion point i it takes a learned scalar-weighted
sum of its own previous hidden representation and of the modality features at that depth (Eq. 1):

    z_i = alpha_{C,i} * h_{C,i} + sum_m alpha_{m,i} * h_{m,i}       (no central term at the first point)
    h_{C,i+1} = ReLU(central_layer_i(z_i)),

and a central classifier reads the last central representation. Training is multitask (Eq. 2):
    L = L_central + w * sum_m L_m
with L_m the loss of modality m's own head; the prediction is the central head's (``logits``).

Features of different widths (our choice, following the MFAS authors' AV-MNIST CentralNet,
jperezrua/mfas ``models/central/avmnist.py: SimpleAV_CentralNet``): every tap is globally average-pooled to
a (B, C_m) vector (the encoder's ``pool``), and at each point all terms are zero-padded on the right to the
widest of them before the weighted sum ("lateral padding"). The central layer is
  - ``central_layer='conv1d'``: a 1-D convolution over the channel axis, Conv1d(1, 1, k=3, pad=1, no bias),
    width-preserving — the authors' AV-MNIST choice for pooled taps; or
  - ``central_layer='linear'``: Linear(D_i -> D_i) — the paper's fully connected central layer for vector
    features (the authors' MM-IMDB CentralNet uses Linear layers too).
Every alpha is its own learned scalar (the paper); initialised to ``alpha_init`` (the authors draw U(0, 1);
QUIRK in their ``_fuse_features``: with equal widths it reuses the first modality's alpha for both — not
reproduced). The central hidden states are recorded in ``extras['central{i}_hidden']``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.net import StagedFusionNet, input_modality


def pad_to(x: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad (B, C) on the right to (B, width)."""
    return F.pad(x, (0, width - x.shape[1])) if x.shape[1] < width else x


class Conv1dCentral(nn.Module):
    """Conv1d(1, 1, k, pad=k//2, no bias) over the channel axis of a (B, D) vector: width-preserving."""

    def __init__(self, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(1)).squeeze(1)


class CentralNet(StagedFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        points,
        central_layer: str = "linear",
        kernel_size: int = 3,
        alpha_init: float = 1.0,
        unimodal_loss_weight: float = 1.0,
    ):
        super().__init__(encoders, num_classes, points)
        if not self.points:
            raise ValueError("CentralNet needs at least one fusion point")
        if central_layer not in ("conv1d", "linear"):
            raise ValueError(f"central_layer must be 'conv1d' or 'linear', got {central_layer!r}")
        self.central_layer = central_layer
        self.unimodal_loss_weight = float(unimodal_loss_weight)
        self.widths: list[int] = []
        width = 0
        layers = []
        for k in range(len(self.points)):
            width = max([width, *self.point_channels(k).values()])
            self.widths.append(width)
            layers.append(Conv1dCentral(kernel_size) if central_layer == "conv1d" else nn.Linear(width, width))
        self.central = nn.ModuleList(layers)
        # alpha_modal[k][m]: weight of modality m at point k; alpha_central[k-1]: weight of h_C at point k >= 1.
        self.alpha_modal = nn.ModuleList(
            nn.ParameterDict({m: nn.Parameter(torch.full((1,), float(alpha_init))) for m in self.point_channels(k)})
            for k in range(len(self.points))
        )
        self.alpha_central = nn.ParameterList(
            nn.Parameter(torch.full((1,), float(alpha_init))) for _ in range(len(self.points) - 1)
        )
        self.classifier = nn.Linear(width, num_classes)

    def fuse_at(self, k, taps, extras):
        width = self.widths[k]
        # `m` is an input name: a modality, or `modality/part` for one part of a tap (StagedFusionNet)
        z = sum(self.alpha_modal[k][m] * pad_to(self.encoders[input_modality(m)].pool(t), width)
                for m, t in taps.items())
        if k > 0:
            z = z + self.alpha_central[k - 1] * pad_to(extras[f"central{k - 1}_hidden"], width)
        extras[f"central{k}_hidden"] = F.relu(self.central[k](z))
        return {}  # CentralNet does not modify the encoders' features

    def finish(self, logits, pooled, extras):
        return self.classifier(extras[f"central{len(self.points) - 1}_hidden"])

    def compute_loss(self, out, target, criterion):
        parts = {"task": criterion(out.logits, target)}
        modality_logits = out.extras["modality_logits"]
        for i, m in enumerate(self.modalities):
            parts[f"unimodal/{m}"] = self.unimodal_loss_weight * criterion(modality_logits[:, i], target)
        parts.update(out.aux_losses)
        return torch.stack(list(parts.values())).sum(), parts
