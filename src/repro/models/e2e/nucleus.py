"""Nucleus (top-p) selection of a frame's attention sites (mesm.txt §4.3.1, Eq. 3; Holtzman et al. 2019).

Per frame: sort the sites' attention probabilities in descending order and keep the smallest prefix whose
probability mass reaches p — the sites whose cumulative sum is < p plus the first one that crosses p (the authors'
`to_sparse_by_cdf`, IMPLEMENTATION-NOTES §5.3). Equivalently a site is kept when the mass of the sites ranked before
it (its exclusive cumulative sum) is < p; the highest-ranked site is always kept. p >= 1 keeps every site (a float
cumulative sum may never reach exactly 1). The selection is a hard 0/1 mask (Eq. 3: M_ns); no gradient flows
through it. Ties are broken by the site order (a stable sort), so the selection is deterministic.
"""

from __future__ import annotations

import torch


def nucleus_keep(probs: torch.Tensor, segments: torch.Tensor, num_segments: int, p: float) -> torch.Tensor:
    """(N,) bool: which sites each segment (frame) keeps at top-p `p` of its (N,) probabilities."""
    if not 0.0 < p:
        raise ValueError(f"top-p must be in (0, 1], got {p} (fusion.net.top_p)")
    if p >= 1.0 or probs.numel() == 0:
        return torch.ones_like(probs, dtype=torch.bool)
    probs = probs.detach()
    by_prob = torch.sort(probs, descending=True, stable=True).indices
    order = by_prob[torch.sort(segments[by_prob], stable=True).indices]   # by frame, then probability descending
    seg_sorted = segments[order]
    counts = torch.bincount(segments, minlength=num_segments)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(probs.numel(), device=probs.device) - starts[seg_sorted]
    # one row per frame, its probabilities in rank order: the cumulative sum runs along the row, as the authors'
    grid = probs.new_zeros(num_segments, int(counts.max()))
    grid[seg_sorted, rank] = probs[order]
    cum = grid.cumsum(dim=1)
    before = torch.cat([cum.new_zeros(num_segments, 1), cum[:, :-1]], dim=1)   # exclusive sum, no subtraction
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order] = before[seg_sorted, rank] < p
    return keep
