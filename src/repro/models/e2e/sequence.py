"""From per-frame features to per-utterance logits (mesm.txt §4.2; IMPLEMENTATION-NOTES §5.2).

Frames (faces, spectrogram chunks) of all samples arrive concatenated with per-sample counts (the raw readers'
collate). Each frame's CNN map is flattened -> Linear(C·H·W -> 1024) -> ReLU -> Linear(1024 -> trans_dim); the frames
of one sample form a sequence, right-padded, a learned CLS embedding is prepended, and a transformer encoder
(nn.TransformerEncoderLayer defaults: FFN 2048, dropout 0.1, post-LN, ReLU) runs with a key-padding mask and NO
positional encoding (the authors' code comments it out, although §4.2 mentions positional embeddings). The CLS output
-> Linear(trans_dim -> classes) is the modality's logit vector.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def check_counts(frames: torch.Tensor, counts: torch.Tensor, name: str) -> torch.Tensor:
    """The (B,) int64 counts of a concatenated modality, checked against the frames they describe."""
    counts = torch.as_tensor(counts, dtype=torch.long, device=frames.device).reshape(-1)
    if counts.numel() == 0 or bool((counts < 1).any()) or int(counts.sum()) != frames.shape[0]:
        raise ValueError(f"batch['{name}_counts'] = {counts.tolist()} must be >= 1 per sample and sum to the "
                         f"{frames.shape[0]} concatenated {name} frames (the raw readers' collate gives both)")
    return counts


def frame_owner(counts: torch.Tensor) -> torch.Tensor:
    """(ΣF,) index of the sample each concatenated frame belongs to."""
    return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)


def pad_by_counts(x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ΣF, D) -> (B, T_max, D) right-padded with zeros, and the (B, T_max) padding mask (True = pad)."""
    steps = torch.arange(int(counts.max()), device=x.device)
    real = steps.unsqueeze(0) < counts.unsqueeze(1)
    padded = x.new_zeros(counts.numel(), steps.numel(), x.shape[-1])
    padded[real] = x   # frames are concatenated sample by sample, in order: row-major fill matches
    return padded, ~real


class ClsTransformer(nn.Module):
    """Transformer encoder over a padded sequence with a learned CLS token prepended; returns the CLS output."""

    def __init__(self, dim: int, layers: int, heads: int, ffn: int = 2048, dropout: float = 0.1):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ffn, dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))   # the authors' nn.Embedding(1, dim): N(0, 1) init

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        cls = self.cls.expand(x.shape[0], 1, -1)
        pad = torch.cat([pad.new_zeros(x.shape[0], 1), pad], dim=1)
        return self.encoder(torch.cat([cls, x], dim=1), src_key_padding_mask=pad)[:, 0]


class FrameSequenceHead(nn.Module):
    """Flattened frame maps -> projection -> CLS transformer per sample -> logits (B, classes)."""

    def __init__(self, feature_shape: Sequence[int], num_classes: int, trans_dim: int = 64, layers: int = 4,
                 heads: int = 4, ffn: int = 2048, dropout: float = 0.1, hidden: int = 1024):
        super().__init__()
        flat = int(torch.tensor(feature_shape).prod())
        self.project = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, trans_dim))
        self.transformer = ClsTransformer(trans_dim, layers, heads, ffn, dropout)
        self.out = nn.Linear(trans_dim, num_classes)

    def forward(self, maps: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        x, pad = pad_by_counts(self.project(maps.flatten(1)), counts)
        return self.out(self.transformer(x, pad))
