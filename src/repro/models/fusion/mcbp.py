"""MCBP — Multimodal Compact Bilinear Pooling (Fukui et al. 2016, §3.1–3.2, Alg. 1; Gao et al. 2016,
"Compact Bilinear Pooling", Tensor Sketch).

Count sketch (Charikar et al.) of a vector x in R^n to R^d with a fixed random hash h: [n] -> [d] and signs
s: [n] -> {+1, -1}:   Psi(x)_j = sum_{i : h(i) = j} s(i) x_i.
The sketch of an outer product is the circular convolution of the sketches (Pham & Pagh 2013), computed in
the frequency domain:   Psi(x (x) y) = IFFT(FFT(Psi(x)) * FFT(Psi(y))),
and E[<Psi(x (x) y), Psi(x' (x) y')>] = <x, x'><y, y'> over the random hashes. With M modalities the FFTs of
all M sketches are multiplied. As in Fukui et al. (and Gao et al.), the result goes through a signed
square root and L2 normalisation, then a fully connected classifier (optional dropout before it). ``hidden``
adds hidden layers before the class layer (Linear -> ReLU -> Dropout each; Fukui et al.'s VQA network has none,
MSAF's RAVDESS MCBP baseline needs ~25 M parameters after the sketch, configs/preset/ravdess_mcbp.yaml); with no
hidden layer the classifier stays one ``nn.Linear`` (the checkpoint keys of earlier runs).
h and s are drawn once from ``seed`` and stored as (persistent) buffers so a checkpoint keeps them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.blocks import hidden_sizes, mlp
from repro.models.net import FeatureFusionNet


class CountSketch(nn.Module):
    """Psi: R^n -> R^d with hash h and signs s drawn from `generator`."""

    def __init__(self, in_dim: int, out_dim: int, generator: torch.Generator):
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.register_buffer("h", torch.randint(out_dim, (in_dim,), generator=generator))
        self.register_buffer("s", torch.randint(2, (in_dim,), generator=generator).float() * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.out_dim)
        return out.index_add(1, self.h, x * self.s.to(x.dtype))


def compact_bilinear(sketches: list[torch.Tensor]) -> torch.Tensor:
    """Circular convolution of the sketches (B, d) via the FFT: the count sketch of their outer product."""
    d = sketches[0].shape[-1]
    spectrum = torch.fft.rfft(sketches[0].float(), n=d)
    for s in sketches[1:]:
        spectrum = spectrum * torch.fft.rfft(s.float(), n=d)
    return torch.fft.irfft(spectrum, n=d)


def signed_sqrt(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    # eps keeps the gradient finite at 0 (sign(0) = 0 makes the value exact there).
    return torch.sign(x) * torch.sqrt(x.abs() + eps)


class MCBPNet(FeatureFusionNet):
    def __init__(self, encoders, num_classes: int, output_dim: int = 16000, seed: int = 0, dropout: float = 0.0,
                 hidden=None):
        super().__init__(encoders, num_classes)
        self.hidden = hidden_sizes(hidden)
        self.output_dim = int(output_dim)
        gen = torch.Generator().manual_seed(int(seed))
        self.sketch = nn.ModuleDict({m: CountSketch(d, self.output_dim, gen) for m, d in self.embed_dims.items()})
        self.dropout = nn.Dropout(dropout)
        self.classifier = (mlp(self.output_dim, self.hidden, num_classes, dropout) if self.hidden
                           else nn.Linear(self.output_dim, num_classes))

    def pooled(self, embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        """MCBP feature (B, d): signed sqrt + L2 normalisation of the compact bilinear product."""
        phi = compact_bilinear([self.sketch[m](embeddings[m]) for m in self.modalities])
        return F.normalize(signed_sqrt(phi), dim=1)

    def fuse(self, embeddings):
        return self.classifier(self.dropout(self.pooled(embeddings)))
