"""MESM's cross-modal sparse CNN blocks on spconv (mesm.txt §4.3, Eq. 1–4, §4.3.2; IMPLEMENTATION-NOTES §5.3).

Per modality (faces or spectrogram chunks): the dense low-level stage of FE2E (stem + two VggBlocks: 24×24 / 64×16
maps of 64 channels), then N = 3 cross-modal sparse blocks. Block b:
  1. cross-modal attention over the frame's active sites, queried by the text [CLS] of the frame's sample (Eq. 1–2);
  2. nucleus selection at top-p (Eq. 3) -> M_ns, the 0/1 mask of kept sites;
  3. Eq. 4, M_o = M_ns ⊗ M: the kept sites keep their features UNWEIGHTED (the paper multiplies by the binary M_ns,
     not by the scores M_i; the authors' code does the same), so the attention layers get no gradient — as in the
     authors' code (IMPLEMENTATION-NOTES §5.3 "QUIRK non-differentiable selection", which is therefore the paper's
     behaviour, not a deviation). `weight_by_attention: true` is this project's extension, not the paper: kept
     features are multiplied by M_i · (number of active sites of the frame) (1 for uniform attention), so the
     attention layers are trained through the features;
  4. a sparse VGG block on the kept sites: two submanifold 3×3 convs (no bias, as SparseConvNet's SparseVggNet) + BN
     over the active sites + ReLU, then a 2×2 sparse max-pool (an output site is active when any input under it is).
The sparse maps become dense at the end ((512, 3, 3) / (512, 8, 2)): the same flatten / transformer / heads as FE2E.

QUIRK `quirk_stage0_row_order` (default off): the authors build block 0's sparse input from locations listed in
(y, x, frame) order (nonzero of the (H, W, N)-permuted mask) but features gathered in (frame, y, x) order, and pair
them row by row — kept features land on other kept sites, even of other frames of the batch. Reproduced exactly.

Indices are built only by `spconv_compat.sparse_indices` (row-major int32); the CPU stream patch is applied there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.e2e.attention import CrossModalAttention, segment_softmax
from repro.models.e2e.cnn import POOL, FrameSpec, low_blocks, stem
from repro.models.e2e.flops import dense_macs, sparse_block_macs
from repro.models.e2e.nucleus import nucleus_keep
from repro.models.e2e.spconv_compat import sparse_indices, spconv_module


def spconv_weight(dense_weight: torch.Tensor) -> torch.Tensor:
    """A dense (out, in, kh, kw) conv weight in spconv 2.x's (out, kh, kw, in) layout."""
    return dense_weight.permute(0, 2, 3, 1).contiguous()


def dense_weight(spconv_weight_: torch.Tensor) -> torch.Tensor:
    """spconv's (out, kh, kw, in) weight as a dense (out, in, kh, kw) conv weight."""
    return spconv_weight_.permute(0, 3, 1, 2)


class SparseVggBlock(nn.Module):
    """Two (SubMConv 3×3 + BN over the active sites + ReLU) and a 2×2 sparse max-pool."""

    def __init__(self, in_channels: int, out_channels: int, key: str):
        super().__init__()
        sp = spconv_module()
        # the two convs share the key: the second reuses the first's neighbour pairs (same sites)
        self.conv1 = sp.SubMConv2d(in_channels, out_channels, 3, padding=1, bias=False, indice_key=key)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = sp.SubMConv2d(out_channels, out_channels, 3, padding=1, bias=False, indice_key=key)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU()
        self.pool = sp.SparseMaxPool2d(POOL, POOL)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x):
        x = self.conv1(x)
        x = x.replace_feature(self.relu(self.bn1(x.features)))
        x = self.conv2(x)
        x = x.replace_feature(self.relu(self.bn2(x.features)))
        return self.pool(x)

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense stage this block replaces — FE2E's VggBlock + 2×2 max-pool — on full (F, C, H, W) maps with this
        block's weights, BN at its running statistics (eval). The wall-time reference of Tables 3/4, never trained."""
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2)):
            x = F.conv2d(x, dense_weight(conv.weight), padding=1)
            x = self.relu(F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False,
                                       eps=bn.eps))
        return F.max_pool2d(x, POOL, POOL)

    @torch.no_grad()
    def load_dense(self, block: nn.Module) -> None:
        """Copy a dense `VggBlock`'s weights (conv biases are dropped: BN removes them in training)."""
        for conv, bn, dense_conv, dense_bn in ((self.conv1, self.bn1, block.conv1, block.bn1),
                                               (self.conv2, self.bn2, block.conv2, block.bn2)):
            conv.weight.copy_(spconv_weight(dense_conv.weight))
            bn.load_state_dict(dense_bn.state_dict())


@dataclass
class SparseTrace:
    """What a sparse path did, per block: kept-site maps (F, H_b, W_b) bool, attention maps (F, H_b, W_b) (0 at
    inactive sites), and the per-frame conv MACs (dense low-level stage + sparse blocks)."""

    kept: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] = field(default_factory=list)
    macs: torch.Tensor | None = None


def site_grid(values: torch.Tensor, indices: torch.Tensor, frames: int, size: Sequence[int]) -> torch.Tensor:
    """Scatter (N,) site values at (N, 3) (frame, y, x) indices into a (F, H, W) map (zeros elsewhere)."""
    grid = values.new_zeros(frames, size[0], size[1])
    rows = indices.long()
    grid[rows[:, 0], rows[:, 1], rows[:, 2]] = values
    return grid


class SparseFrameCNN(nn.Module):
    """MESM's CNN for one frame modality: dense low level, then cross-modal sparse blocks -> dense maps."""

    def __init__(self, spec: FrameSpec, query_dim: int, top_p: float, attention_k: Sequence[int] = (64, 128, 256),
                 weight_by_attention: bool = False, quirk_stage0_row_order: bool = False):
        super().__init__()
        if len(attention_k) != len(spec.high_blocks):
            raise ValueError(f"fusion.net.attention_k {list(attention_k)} needs one k per sparse block "
                             f"({len(spec.high_blocks)}: backbone high_blocks {spec.high_blocks})")
        self.spec, self.top_p = spec, float(top_p)
        self.weight_by_attention, self.quirk_stage0_row_order = bool(weight_by_attention), bool(quirk_stage0_row_order)
        self.stem, self.low = stem(spec), low_blocks(spec)
        widths = [spec.low_channels, *spec.high_blocks]
        self.attention = nn.ModuleList(CrossModalAttention(c, query_dim, int(k))
                                       for c, k in zip(widths[:-1], attention_k))
        self.sparse = nn.ModuleList(SparseVggBlock(a, b, f"subm{i}")
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])))

    def low_level(self, frames: torch.Tensor) -> torch.Tensor:
        return self.low(self.stem(frames))

    def dense_reference(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, in, H, W) frames -> (F, 512, h, w): the same weights with every sparse block as the dense stage it
        replaces (no attention, every site kept; BN at running statistics). At p = 1 in eval mode it computes what
        `forward` does, densely; its wall time is the dense side of Tables 3/4 (`EndToEndNet.time_dense_reference`)."""
        x = self.low_level(frames)
        for block in self.sparse:
            x = block.dense_forward(x)
        return x

    def forward(self, frames: torch.Tensor, frame_queries: torch.Tensor) -> tuple[torch.Tensor, SparseTrace]:
        """(F, in, H, W) frames and (F, d) text queries -> (F, 512, h, w) dense maps and the trace."""
        return self.sparse_path(self.low_level(frames), frame_queries)

    def sparse_path(self, low: torch.Tensor, frame_queries: torch.Tensor) -> tuple[torch.Tensor, SparseTrace]:
        """The N sparse blocks on (F, C, H, W) low-level maps."""
        sp = spconv_module()
        frames, channels, h, w = low.shape
        indices = sparse_indices(torch.ones(frames, h, w, dtype=torch.bool, device=low.device))
        features = low.permute(0, 2, 3, 1).reshape(-1, channels)     # (frame, y, x) row-major = the indices' order
        trace = SparseTrace(macs=torch.full((frames,), float(dense_macs(self.spec, "low")), device=low.device))
        x = None
        for b, (attention, block) in enumerate(zip(self.attention, self.sparse)):
            size = (h // POOL ** b, w // POOL ** b)
            site_frames = indices[:, 0].long()
            probs = segment_softmax(attention(features, frame_queries, site_frames), site_frames, frames)
            keep = nucleus_keep(probs, site_frames, frames, self.top_p)
            kept_features = features[keep]
            if self.weight_by_attention:
                active = torch.bincount(site_frames, minlength=frames).to(probs.dtype)
                kept_features = kept_features * (probs * active[site_frames])[keep].unsqueeze(1)
            kept_indices = indices[keep].contiguous()
            kept_map = site_grid(keep, indices, frames, size)
            if b == 0 and self.quirk_stage0_row_order:
                kept_indices = sparse_indices(kept_map.permute(1, 2, 0))[:, [2, 0, 1]].contiguous()
            trace.kept.append(kept_map)
            trace.attention.append(site_grid(probs.detach(), indices, frames, size))
            trace.macs = trace.macs + sparse_block_macs(kept_map, block.in_channels, block.out_channels)
            x = block(sp.SparseConvTensor(kept_features, kept_indices, list(size), frames))
            features, indices = x.features, x.indices
        return x.dense(), trace
