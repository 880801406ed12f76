"""MSAF — Multimodal Split Attention Fusion (Su, Hu, Li, Cao; msaf.txt §3, §3.1, §3.2, §4), the whole method in one
module: the block, implemented once (`MSAFBlock`, `MSAF`), and its two placements, which compose it:

- `MSAFNet` (``configs/fusion/msaf.yaml``): image/audio staged encoders, one MSAF module per fusion point;
- `SequenceMSAFNet` (``configs/preset/mosei_msaf_msaf.yaml``): the CMU-MOSEI network, one MSAF module after LSTM
  layer 1 (described below the block).

Both build their modules with `msaf_modules`, so a hyperparameter means the same in either placement.

One MSAF block takes M feature maps ``F_m`` of shape ``(B, C_m, *dims_m)`` (any rank, any per-modality
spatial/temporal size) and returns re-weighted maps of the same shapes:

1. **Split** (§3): each ``F_m`` is cut channel-wise into ``|B_m| = ceil(C_m / C)`` blocks of ``C`` channels;
   when ``C_m`` is not a multiple of ``C`` the *last* block is zero-padded in its missing channels (the
   paper's rule; IMPLEMENTATION-NOTES §1.1 "padding bug": the authors' code pads the last spatial dim
   instead and would crash — we follow the paper, the code path is never reached by published configs).
2. **Join**: ``S_m`` = element-wise sum of modality m's blocks, ``D_m`` = global average over every
   non-channel dim (Eq. 1); ``G = sum_m D_m`` (a *sum*, not a mean); ``Z = ReLU(BN(W_Z G + b_Z))``,
   ``Z in R^{floor(C/r)}`` (Eq. 2).
3. **Highlight**: one FC per block over all modalities, ``U^i_m = W^i_m Z + b^i_m`` (Eq. 3); softmax over
   *all* blocks of *all* modalities, separately for every channel index (Eq. 4);
   ``B^i_m <- [lambda + (1 - lambda) A^i_m] * B^i_m`` (Eq. 5); blocks re-concatenated (Eq. 6), padding removed.

**BlockDropout** (§3.1): in training, a Bernoulli(1-p) mask per sample and per block (B x sum_m |B_m|), scaled
by 1/(1-p), is applied to the blocks' attention (a dropped block is zeroed). QUIRK ``quirk_double_dropout``:
the authors' ``MSAF.py`` multiplies the same mask onto the blocks *before* the join step as well, so kept
blocks are scaled by 1/(1-p)^2 and the join descriptor sees the dropped blocks as zeros (§1.1 steps 2 and 7).

**RNN segments** (§3.2): with ``split_block = q > 1`` the time axis (dim 2) of every modality is split into q
segments of length ``floor(T_m / q)``, the remainder joined to the last segment (e.g. T=23, q=5 ->
4, 4, 4, 4, 7); segment i of all modalities is fused by its own MSAF block; the outputs are concatenated
back along time.

``MSAFNet`` places one MSAF module at each configured fusion point of a ``StagedFusionNet``; the output is
the sum of the unimodal logits (MSAF on RAVDESS, §4.1 / IMPLEMENTATION-NOTES §1.2). Attention maps are
recorded in ``extras['msaf{k}_attention']``: the softmax attention ``A`` (before lambda and BlockDropout),
shape ``(B, n_blocks, C)`` (blocks ordered modality by modality, in the point's modality order) or
``(B, q, n_blocks, C)`` with segments.

``SequenceMSAFNet`` is the CMU-MOSEI network of msaf.txt §3.2 and §4.2 (authors' ``cmu_mosei/networks/
msaf_mosei.py``, IMPLEMENTATION-NOTES §1.3). Per modality: LSTM layer 1 (in -> hidden[m]; visual 32, audio 64,
text 128), its per-step outputs permuted to (B, C, T) and fused by ONE MSAF module (split_block q = 5: the time
axis cut into 5 segments, one MSAF block each), permuted back, LSTM layer 2 (hidden -> hidden), the last step of
each modality, concatenated (32 + 64 + 128 = 224) -> Linear(num_classes). The MSAF attention is recorded in
``extras["msaf0_attention"]`` (B, q, n_blocks, C) (or (B, n_blocks, C) with q = 1). Its config mirrors
``configs/fusion/msaf.yaml``: `points` is a list with ONE mapping {modality: "lstm1"} (the only tap); the MSAF
hyperparameters may be given as a value or a one-element list.

``use_mask`` defaults to **false** there, unlike the other sequence networks: the authors run both LSTMs over all
50 padded steps and read the final position (visual/audio are left-padded, so that is their last real frame;
the BERT text is right-padded, so it is a pad token's output — a QUIRK of the reproduced system), and MSAF's
segments and join averages are taken over the padded 50 positions. Reproducing their table needs that function.
With ``use_mask=true`` both LSTMs skip the padding, layer 1's outputs are zero at pads, and each modality is
read at its last real step; MSAF still segments absolute positions and averages over all of them (pads
contribute zeros), so a modality's padding cannot change the output but does dilute the join descriptor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from repro.models.backbones.base import global_average
from repro.models.blocks import per_modality
from repro.models.net import NetOutput, StagedFusionNet
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.recurrent import MaskedLSTM


def segment_bounds(length: int, q: int) -> list[tuple[int, int]]:
    """[start, stop) of the q segments of a sequence of `length` steps (msaf.txt §3.2).

    Each segment has floor(length / q) steps; the remainder is joined to the last segment.
    """
    if q < 1:
        raise ValueError(f"split_block must be >= 1, got {q}")
    seg = length // q
    if seg < 1:
        raise ValueError(f"cannot split a sequence of length {length} into {q} segments (split_block too large)")
    bounds = [(i * seg, (i + 1) * seg) for i in range(q)]
    bounds[-1] = (bounds[-1][0], length)
    return bounds


class BlockDropout(nn.Module):
    """BlockDropout mask (msaf.txt §3.1): Bernoulli(1-p) per sample and per block, scaled by 1/(1-p).

    `mask(batch, n_blocks, ref)` returns None outside training or when p == 0 (a no-op), else a
    (batch, n_blocks) tensor of 0 and 1/(1-p).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"BlockDropout p must be in [0, 1), got {p}")
        self.p = float(p)

    def mask(self, batch: int, n_blocks: int, ref: torch.Tensor) -> torch.Tensor | None:
        if not self.training or self.p == 0.0:
            return None
        keep = torch.full((batch, n_blocks), 1.0 - self.p, device=ref.device, dtype=ref.dtype)
        return torch.bernoulli(keep) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MSAFBlock(nn.Module):
    """One split–join–highlight block (msaf.txt §3, Eqs. 1–6) over M modalities."""

    def __init__(
        self,
        in_channels: Sequence[int],
        block_channel: int,
        reduction: int = 4,
        lowest_atten: float = 0.0,
        block_dropout: float = 0.0,
        quirk_double_dropout: bool = False,
    ):
        super().__init__()
        if block_channel < 1 or reduction < 1:
            raise ValueError(f"block_channel and reduction must be >= 1, got {block_channel}, {reduction}")
        if not 0.0 <= lowest_atten <= 1.0:
            raise ValueError(f"lowest_atten (lambda) must be in [0, 1], got {lowest_atten}")
        self.in_channels = [int(c) for c in in_channels]
        self.block_channel = int(block_channel)
        self.num_blocks = [math.ceil(c / self.block_channel) for c in self.in_channels]
        self.total_blocks = sum(self.num_blocks)
        self.lowest_atten = float(lowest_atten)
        self.quirk_double_dropout = bool(quirk_double_dropout)
        joint = self.block_channel // reduction  # C' = floor(C / r) (Eq. 2)
        if joint < 1:
            raise ValueError(f"block_channel {block_channel} // reduction {reduction} is 0")
        self.joint = nn.Sequential(nn.Linear(self.block_channel, joint), nn.BatchNorm1d(joint), nn.ReLU())
        self.highlight = nn.ModuleList(nn.Linear(joint, self.block_channel) for _ in range(self.total_blocks))
        self.dropout = BlockDropout(block_dropout)

    def _split(self, x: torch.Tensor, m: int) -> torch.Tensor:
        """(B, C_m, *dims) -> (B, n_m, C, *dims), zero-padding the last block's missing channels."""
        if x.dim() < 2 or x.shape[1] != self.in_channels[m]:
            raise ValueError(f"MSAF input {m} has shape {tuple(x.shape)}; expected (B, {self.in_channels[m]}, ...)")
        pad = self.num_blocks[m] * self.block_channel - self.in_channels[m]
        if pad:
            # F.pad pads from the last dim backwards: zeros for every spatial dim, then `pad` channels.
            x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))
        return x.reshape(x.shape[0], self.num_blocks[m], self.block_channel, *x.shape[2:])

    def forward(self, xs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Returns the re-weighted maps (same shapes as `xs`) and the softmax attention (B, n_blocks, C)."""
        if len(xs) != len(self.in_channels):
            raise ValueError(f"MSAF block built for {len(self.in_channels)} modalities got {len(xs)}")
        blocks = [self._split(x, m) for m, x in enumerate(xs)]
        batch = blocks[0].shape[0]
        mask = self.dropout.mask(batch, self.total_blocks, blocks[0])
        masks = list(torch.split(mask, self.num_blocks, dim=1)) if mask is not None else None

        if masks is not None and self.quirk_double_dropout:
            # QUIRK (authors' MSAF.py): the mask is also applied to the blocks before the join step.
            blocks = [b * _expand(mk, b) for b, mk in zip(blocks, masks)]

        # Join: sum of blocks per modality, global average over non-channel dims (Eq. 1), sum over modalities.
        g = torch.stack([global_average(b.sum(dim=1)) for b in blocks]).sum(dim=0)  # (B, C)
        z = self.joint(g)  # (B, C'), Eq. 2 + BN + ReLU
        # Highlight: per-block logits (Eq. 3), softmax over every block of every modality, per channel (Eq. 4).
        logits = torch.stack([fc(z) for fc in self.highlight], dim=1)  # (B, n_blocks, C)
        attention = torch.softmax(logits, dim=1)
        weights = self.lowest_atten + (1.0 - self.lowest_atten) * attention  # Eq. 5
        if mask is not None:
            weights = weights * mask.unsqueeze(-1)  # BlockDropout on the attention (§3.1)

        outs = []
        for m, (b, w) in enumerate(zip(blocks, torch.split(weights, self.num_blocks, dim=1))):
            y = b * w.reshape(*w.shape, *([1] * (b.dim() - 3)))
            y = y.reshape(batch, self.num_blocks[m] * self.block_channel, *y.shape[3:])  # Eq. 6
            outs.append(y[:, : self.in_channels[m]])  # drop the padding channels
        return outs, attention


def _expand(mask: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """(B, n) mask -> broadcastable onto (B, n, C, *dims) blocks."""
    return mask.reshape(*mask.shape, *([1] * (blocks.dim() - 2)))


class MSAF(nn.Module):
    """The MSAF module: one `MSAFBlock`, or one per time segment when `split_block` > 1 (msaf.txt §3.2).

    `forward(xs)` returns `(outputs, attention)`; outputs keep the input shapes; attention is
    (B, n_blocks, C) or (B, q, n_blocks, C) with segments.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        block_channel: int,
        reduction: int = 4,
        lowest_atten: float = 0.0,
        block_dropout: float = 0.0,
        split_block: int = 1,
        quirk_double_dropout: bool = False,
    ):
        super().__init__()
        if split_block < 1:
            raise ValueError(f"split_block must be >= 1, got {split_block}")
        self.split_block = int(split_block)
        self.blocks = nn.ModuleList(
            MSAFBlock(in_channels, block_channel, reduction, lowest_atten, block_dropout, quirk_double_dropout)
            for _ in range(self.split_block)
        )

    @property
    def num_blocks(self) -> list[int]:
        return self.blocks[0].num_blocks

    def forward(self, xs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        if self.split_block == 1:
            return self.blocks[0](xs)
        for x in xs:
            if x.dim() < 3:
                raise ValueError(f"split_block={self.split_block} needs a time axis (dim 2); got {tuple(x.shape)}")
        bounds = [segment_bounds(x.shape[2], self.split_block) for x in xs]
        seg_outs, seg_atts = [], []
        for i, block in enumerate(self.blocks):
            outs, att = block([x[:, :, b[i][0] : b[i][1]] for x, b in zip(xs, bounds)])
            seg_outs.append(outs)
            seg_atts.append(att)
        outputs = [torch.cat([seg[m] for seg in seg_outs], dim=2) for m in range(len(xs))]
        return outputs, torch.stack(seg_atts, dim=1)


def per_point(value, n: int, name: str) -> list:
    """A hyperparameter given once for all fusion points, or as a list with one value per point."""
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
        values = list(value)
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values but there are {n} fusion points")
        return values
    return [value] * n


def msaf_modules(
    point_channels: Sequence[Sequence[int]],
    block_channels,
    reduction=4,
    lowest_atten=0.0,
    block_dropout=0.0,
    split_block=1,
    quirk_double_dropout: bool = False,
) -> nn.ModuleList:
    """One `MSAF` module per fusion point (its modalities' channel counts); each hyperparameter given once for all
    points or as a list with one value per point. Both placements build their modules here."""
    n = len(point_channels)
    cs = per_point(block_channels, n, "block_channels")
    rs = per_point(reduction, n, "reduction")
    lams = per_point(lowest_atten, n, "lowest_atten")
    ps = per_point(block_dropout, n, "block_dropout")
    qs = per_point(split_block, n, "split_block")
    return nn.ModuleList(
        MSAF(
            in_channels=list(point_channels[k]),
            block_channel=int(cs[k]),
            reduction=int(rs[k]),
            lowest_atten=float(lams[k]),
            block_dropout=float(ps[k]),
            split_block=int(qs[k]),
            quirk_double_dropout=bool(quirk_double_dropout),
        )
        for k in range(n)
    )


class MSAFNet(StagedFusionNet):
    """Staged encoders with one MSAF module per fusion point; logits = sum of the unimodal logits."""

    def __init__(
        self,
        encoders,
        num_classes: int,
        points,
        block_channels,
        reduction=4,
        lowest_atten=0.0,
        block_dropout=0.0,
        split_block=1,
        quirk_double_dropout: bool = False,
    ):
        super().__init__(encoders, num_classes, points)
        n = len(self.points)
        if n == 0:
            raise ValueError("MSAFNet needs at least one fusion point")
        self.quirk_double_dropout = quirk_double_dropout
        self.msaf = msaf_modules([list(self.point_channels(k).values()) for k in range(n)], block_channels,
                                 reduction, lowest_atten, block_dropout, split_block, quirk_double_dropout)

    def fuse_at(self, k, taps, extras):
        names = list(taps)
        outs, attention = self.msaf[k]([taps[m] for m in names])
        extras[f"msaf{k}_attention"] = attention
        return dict(zip(names, outs))


SEQUENCE_TAPS = ("lstm1",)
# msaf.txt §4.2: 32, 64 and 128 hidden units for both LSTM layers of the visual, audio and text modality.
SEQUENCE_HIDDEN = {"vision": 32, "visual": 32, "audio": 64, "text": 128}


def _single_point(points) -> dict[str, str]:
    """The one {modality: tap} mapping of `points`, checked."""
    points = list(points) if points is not None else []
    if len(points) != 1:
        raise ValueError(f"SequenceMSAFNet has one fusion point (after LSTM layer 1); points has {len(points)} "
                         f"entries, expected [{{modality: lstm1, ...}}]")
    point = {str(m): str(tap) for m, tap in dict(points[0]).items()}
    bad = {m: tap for m, tap in point.items() if tap not in SEQUENCE_TAPS}
    if bad:
        raise ValueError(f"fusion point taps {bad} are not valid for SequenceMSAFNet; the only tap is "
                         f"{SEQUENCE_TAPS[0]!r}")
    return point


class SequenceMSAFNet(SequenceFusionNet):
    """Per-modality 2-layer LSTMs with one MSAF module between the layers (CMU-MOSEI, msaf.txt §4.2)."""

    def __init__(
        self,
        encoders,
        num_classes: int,
        points,
        block_channels,
        reduction=4,
        lowest_atten=0.0,
        block_dropout=0.0,
        split_block=1,
        quirk_double_dropout: bool = False,
        hidden=None,
        use_mask: bool = False,
    ):
        super().__init__(encoders, num_classes)
        point = _single_point(points)
        unknown = [m for m in point if m not in self.encoders]
        if unknown:
            raise KeyError(f"fusion point names modalities {unknown}; encoders are {self.modalities}")
        self.point_modalities = list(point)
        self.hidden = per_modality(hidden, self.modalities, "hidden", SEQUENCE_HIDDEN)
        self.lstm1 = nn.ModuleDict({m: MaskedLSTM(self.dims[m], self.hidden[m], use_mask=use_mask)
                                    for m in self.modalities})
        self.lstm2 = nn.ModuleDict({m: MaskedLSTM(self.hidden[m], self.hidden[m], use_mask=use_mask)
                                    for m in self.modalities})
        # the one point's module itself (not a list of one): the state-dict keys stay `msaf.blocks.*`
        self.msaf = msaf_modules([[self.hidden[m] for m in self.point_modalities]], block_channels, reduction,
                                 lowest_atten, block_dropout, split_block, quirk_double_dropout)[0]
        self.use_mask = bool(use_mask)
        self.classifier = nn.Linear(sum(self.hidden.values()), num_classes)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        steps = {m: self.lstm1[m](xs[m], masks[m])[0] for m in self.modalities}  # (B, T, H)
        fused, attention = self.msaf([steps[m].transpose(1, 2) for m in self.point_modalities])  # (B, H, T)
        steps.update({m: y.transpose(1, 2) for m, y in zip(self.point_modalities, fused)})
        last = [self.lstm2[m](steps[m], masks[m])[1] for m in self.modalities]
        return NetOutput(logits=self.classifier(torch.cat(last, dim=-1)), extras={"msaf0_attention": attention})
