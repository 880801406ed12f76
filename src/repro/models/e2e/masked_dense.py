"""Masked dense reference of MESM's sparse blocks (ENVIRONMENT.md "spconv": the test reference recipe).

The same computation as `repro.models.e2e.sparse` on full (F, C, H, W) maps with a (F, H, W) active mask, written
with dense torch ops only, independently of spconv and of the site-list code:
  submanifold conv  = conv2d(x · mask) · mask      (outputs only at active sites, inputs only from active sites)
  BN over sites     = batch statistics over the active sites only (biased variance, as BatchNorm in training)
  sparse max-pool   = max-pool of x with −inf outside the mask; output mask = max-pool of the mask
  attention         = Eq. 1–2 at every location, softmax over the frame's active locations (−inf elsewhere)
  nucleus selection = the authors' per-frame loop: sort, cumsum, keep cumsum < p plus the first crossing.
It is used by the tests (spconv ≡ masked dense, forward and gradients) and nowhere in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from repro.models.e2e.sparse import SparseFrameCNN, SparseVggBlock, dense_weight


def masked_batch_norm(x: torch.Tensor, mask: torch.Tensor, bn: torch.nn.BatchNorm1d) -> torch.Tensor:
    """BatchNorm of (F, C, H, W) over the active sites of a (F, 1, H, W) float mask (training statistics)."""
    count = mask.sum()
    mean = (x * mask).sum(dim=(0, 2, 3)) / count
    centred = (x - mean.view(1, -1, 1, 1)) * mask
    var = (centred ** 2).sum(dim=(0, 2, 3)) / count
    scale = (bn.weight / torch.sqrt(var + bn.eps)).view(1, -1, 1, 1)
    return (centred * scale + bn.bias.view(1, -1, 1, 1)) * mask


def masked_vgg_block(block: SparseVggBlock, x: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, C, H, W) maps, (F, H, W) bool active sites -> pooled maps and pooled active sites, with `block`'s weights."""
    mask = active.unsqueeze(1).to(x.dtype)
    for conv, bn in ((block.conv1, block.bn1), (block.conv2, block.bn2)):
        x = F.conv2d(x * mask, dense_weight(conv.weight), padding=1) * mask
        x = torch.relu(masked_batch_norm(x, mask, bn)) * mask
    pooled = F.max_pool2d(x.masked_fill(mask == 0, float("-inf")), 2)
    pooled_active = F.max_pool2d(mask, 2) > 0
    return pooled.masked_fill(~pooled_active, 0.0), pooled_active.squeeze(1)


def nucleus_reference(probs: torch.Tensor, active: torch.Tensor, p: float) -> torch.Tensor:
    """(F, H, W) kept sites, frame by frame as the authors' `to_sparse_by_cdf` (plus p >= 1: keep all)."""
    keep = torch.zeros_like(active)
    for f in range(probs.shape[0]):
        sites = active[f].flatten().nonzero().squeeze(1)
        values = probs[f].flatten()[sites]
        if p >= 1.0:
            chosen = sites
        else:
            ranked, order = torch.sort(values, descending=True, stable=True)
            below = torch.cumsum(ranked, dim=0) < p
            count = min(int(below.sum()) + 1, len(ranked))
            chosen = sites[order[:count]]
        keep[f].view(-1)[chosen] = True
    return keep


def masked_attention(cnn: SparseFrameCNN, b: int, x: torch.Tensor, active: torch.Tensor,
                     frame_queries: torch.Tensor) -> torch.Tensor:
    """Eq. 1–2 of block b at every location of (F, C, H, W), softmax over each frame's active sites -> (F, H, W)."""
    frames, channels, h, w = x.shape
    sites = x.permute(0, 2, 3, 1).reshape(frames * h * w, channels)
    site_frames = torch.arange(frames, device=x.device).repeat_interleave(h * w)
    scores = cnn.attention[b](sites, frame_queries, site_frames).view(frames, h * w)
    scores = scores.masked_fill(~active.view(frames, -1), float("-inf"))
    return torch.softmax(scores, dim=1).view(frames, h, w)


def masked_dense_path(cnn: SparseFrameCNN, low: torch.Tensor, frame_queries: torch.Tensor
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """`SparseFrameCNN.sparse_path` in masked dense form (no row-order quirk): dense maps and kept masks."""
    x = low
    active = torch.ones(low.shape[0], low.shape[2], low.shape[3], dtype=torch.bool, device=low.device)
    kept_maps = []
    for b, block in enumerate(cnn.sparse):
        probs = masked_attention(cnn, b, x, active, frame_queries)
        keep = nucleus_reference(probs.detach(), active, cnn.top_p)
        scale = keep.to(x.dtype)
        if cnn.weight_by_attention:
            scale = scale * probs * active.flatten(1).sum(1).view(-1, 1, 1)
        kept_maps.append(keep)
        x, active = masked_vgg_block(block, x * scale.unsqueeze(1), keep)
    return x, kept_maps
