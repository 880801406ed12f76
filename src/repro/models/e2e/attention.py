"""Cross-modal spatial attention of a MESM sparse block (mesm.txt §4.3.1, Eq. 1–2; IMPLEMENTATION-NOTES §5.3).

For every active site x (a C-vector of a frame's feature map) and the text [CLS] query q of that frame's sample:
  Eq. 1   m_q = tanh(W_m x + b_m + W_q q)           (W_m: k×C, W_q: k×d without bias)
  Eq. 2   s   = w_i · m_q + b_i ;  M_i = softmax of s over the active sites of the frame
(k = 64 / 128 / 256 in the three blocks). The first block sees every location of the dense low-level map; later
blocks only the sites their previous block left active, so one site-list implementation serves both (a dense map is
the site list of all its locations). The softmax per frame is a segment softmax over the sites' frame ids.
"""

from __future__ import annotations

import torch
from torch import nn


class CrossModalAttention(nn.Module):
    def __init__(self, channels: int, query_dim: int, k: int):
        super().__init__()
        self.feature_proj = nn.Linear(channels, k)          # W_m, b_m
        self.query_proj = nn.Linear(query_dim, k, bias=False)  # W_q
        self.score = nn.Linear(k, 1)                        # w_i, b_i

    def forward(self, features: torch.Tensor, frame_queries: torch.Tensor, site_frames: torch.Tensor) -> torch.Tensor:
        """(N, C) site features, (F, d) text queries per frame and (N,) each site's frame -> (N,) scores (Eq. 1–2
        before the softmax). W_q q is computed once per frame, then gathered: projecting a gathered (N, d) query
        matrix would cost N·d·k multiply-adds (2 G for a batch of 72 faces at 24², as much as the block's convs)."""
        query = self.query_proj(frame_queries)[site_frames]
        return self.score(torch.tanh(self.feature_proj(features) + query)).squeeze(-1)


def segment_softmax(scores: torch.Tensor, segments: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of (N,) scores within each segment (the frame of each site); every segment sums to 1."""
    top = scores.new_full((num_segments,), float("-inf"))
    top = top.scatter_reduce(0, segments, scores.detach(), reduce="amax", include_self=True)
    weights = torch.exp(scores - top[segments])
    totals = scores.new_zeros(num_segments).index_add(0, segments, weights)
    return weights / totals[segments]
