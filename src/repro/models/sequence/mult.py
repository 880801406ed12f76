"""MulT — Multimodal Transformer for unaligned sequences (Tsai et al., ACL 2019; the backbone of MICA, mica.txt §3.2
eq. 1 and §3.4 "Network backbone"; released code described in IMPLEMENTATION-NOTES §4.1).

Pipeline (per modality m, width d):
1. optional dropout on the text features (`text_dropout`; the released code uses p = embed_dropout there);
2. 1-D temporal convolution D_m -> d, kernel `kernel_size[m]`, no bias, `padding="same"` so T is kept (odd k pads
   (k-1)/2 on both sides; even k pads one step more on the right, PyTorch's rule). The input is zeroed at padding
   steps first, so pad features never leak into real steps (identical to the released code on the CMU releases,
   whose pads are zeros);
3. x·√d + sinusoidal positions 1..T (fairseq formula: sin half, cos half). `quirk_position_from_first_feature`
   reproduces the released code: steps whose first (projected) feature is exactly 0 get position 0 = a zero
   embedding, the others their index 1..T; `embed_dropout` after;
4. six cross-modal encoders t <- s (every ordered pair of modalities): `layers` pre-LayerNorm layers (the same
   LayerNorm normalises query, key and value), multi-head attention (Xavier in/out projections, zero biases),
   FFN d -> 4d -> d with ReLU, attention/ReLU/residual dropouts as the released code, final LayerNorm. Every layer
   attends to the same embedded source sequence (the released code's x_k, x_v). Attention dropout of unit t <- s:
   that of the SOURCE s (`attn_dropout` for text, `attn_dropout_audio`, `attn_dropout_vision`; any other modality
   name `attn_dropout`), as `get_network` in the released src/models.py ('la', text attending to audio, gets
   attn_dropout_a; 'al' and 'vl' get attn_dropout; 'lv' and 'av' attn_dropout_v; 'va' attn_dropout_a);
5. per target the two streams concatenated (2d) -> self-attention "memory" encoder (`memory_layers`, default
   max(layers, 3)), embedded again (√(2d) scale, positions, embed dropout); every memory encoder has the attention
   dropout `attn_dropout` (the released code's l_mem, a_mem and v_mem all get attn_dropout);
6. readout: "last" = the last REAL step (= the released code's h[-1] on left-padded data, and correct on
   right-padded data) or "mean" = masked mean over the real steps; the three readouts concatenated (6d) ->
   residual MLP proj2(dropout(relu(proj1(h)), out_dropout)) + h -> Linear -> num_classes.

Attention runs through `scaled_dot_product_attention` with the data's key-padding masks; `quirk_causal_mask` adds
the released code's default "future" mask triu(−inf, 1 + |T_k − T_q|) in every attention. A query row whose keys
are all masked attends to nothing: its attention mix is zero (no NaN). `quirk_hardcoded_d30` reproduces the
released code's hard-coded d = 30 and kernel 1 (no projection for a modality whose feature size is already 30).
`checkpoint_ffn` (default on) recomputes each layer's feed-forward block in backward: its 4d-wide activations are
never stored (−30 % activation memory at the MOSEI unaligned shape for a few % more time; same results).
`checkpoint_layers` recomputes every transformer layer in backward (activation checkpointing: less memory, ~1/3
more time; same results).

Memory: dropout keeps 1-byte bool masks, the FFN's fused relu+dropout keeps only its output (dropout.py), and
attention with dropout > 0 on CPU (`DropoutAttention`) is recomputed in backward, a few samples at a time, instead
of keeping SDPA's CPU math-kernel (B, H, T_q, T_k) buffers.
Cost: torch's fused CPU (flash) SDPA kernel has no dropout, so only blocks whose attention dropout is 0 (or that
are not training) run fused. With the released defaults (0.1 / 0 / 0) those are the units with an audio or vision
source; the units with the text source and all three memory encoders — on MOSEI the two 500 x 500 audio/vision
memories — run `DropoutAttention`, several times slower per call than the fused kernel (README, bench `mult`).
On other devices (CUDA), SDPA applies the dropout itself (CUDA: in its fused kernels), with the head size padded to
what those kernels need (`fused_attention`).

Alignment hook (for MICA): `EncoderLayer.forward(..., details=True)` also returns the layer's queries and keys per
head (B, H, T, d_k) (before the 1/√d_k scaling) and the attention probabilities (B, H, T_t, T_s): the softmax of
the masked scores, computed explicitly and DETACHED (PEA's selection is a threshold, no gradient flows through it),
while the output still comes from SDPA (or `DropoutAttention`). `MultiheadAttention.explicit = True` computes the
output itself from explicit probabilities (used to check both paths agree, and by anything that needs gradients
through them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from repro.models.blocks import per_modality
from repro.models.net import NetOutput
from repro.models.sequence import SequenceFusionNet
from repro.models.sequence.dropout import dropout, keep_mask, relu_dropout

READOUTS = ("last", "mean")
MULT_D = 30  # the released code's hard-coded width


# ------------------------------------------------------------------------------------------------ positions, masks
def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq's sinusoidal table at integer `positions` (any shape) -> (..., dim); position 0 -> zero vector."""
    half = dim // 2
    step = math.log(10000) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=positions.device) * -step)
    angles = positions.to(torch.float32).unsqueeze(-1) * freqs
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table * (positions != 0).unsqueeze(-1).to(table.dtype)


def step_positions(x: torch.Tensor, from_first_feature: bool) -> torch.Tensor:
    """(B, T) positions 1..T; with the released code's rule, 0 where the step's first feature is exactly 0."""
    positions = torch.arange(1, x.shape[1] + 1, device=x.device).expand(x.shape[0], -1)
    return positions * (x[..., 0] != 0) if from_first_feature else positions


class AttentionMask:
    """Which keys each query may see: bool (True = attend), (B, 1, 1, T_k) for key padding alone (broadcast over
    the queries: SDPA then converts only a small mask), (B, 1, T_q, T_k) with the causal quirk, or None (= all).

    Rows with no visible key are opened to every key (so softmax/SDPA stay finite) and listed in `empty_rows`
    (B, 1, T_q or 1, 1), where the attention mix is then set to zero ("attends to nothing").
    """

    def __init__(self, key_mask: torch.Tensor, query_steps: int, causal: bool):
        key_steps = key_mask.shape[1]
        self.allowed: torch.Tensor | None = None
        self.empty_rows: torch.Tensor | None = None
        if not causal and bool(key_mask.all()):
            return
        allowed = key_mask[:, None, None, :]
        if causal:
            offset = 1 + abs(key_steps - query_steps)
            future = torch.ones(query_steps, key_steps, dtype=torch.bool, device=key_mask.device).triu(offset)
            allowed = allowed & ~future
        empty = ~allowed.any(dim=-1, keepdim=True)
        if bool(empty.any()):
            self.empty_rows = empty
            allowed = allowed | empty
        self.allowed = allowed


# ------------------------------------------------------------------------------------------------ attention, layers
def masked_probabilities(q: torch.Tensor, k: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """softmax(q·kᵀ/√d_k) over the allowed keys: (B, H, T_q, d_k), (B, H, T_k, d_k) -> (B, H, T_q, T_k)."""
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-1, -2)  # scale the small operand
    if allowed is not None:
        scores.masked_fill_(~allowed, float("-inf"))  # in place: matmul's backward does not need it
    return scores.softmax(dim=-1)


def thin_first(big: torch.Tensor, thin: torch.Tensor, out: torch.Tensor) -> None:
    """out = big @ thin for a (…, T, T') `big` and a (…, T', d_k) `thin`, computed as (thinᵀ @ bigᵀ)ᵀ into `out`, a
    transposed view of a (…, d_k, T) buffer: MKL's batched GEMM is ~2.5x faster with the d_k-thin side as the rows
    (one MOSEI memory sample, 10 x 500 x 500 @ 500 x 8: 2 ms against 5 ms on 2 cores)."""
    torch.matmul(thin.transpose(-1, -2), big.transpose(-1, -2), out=out.transpose(-1, -2))


class DropoutAttention(torch.autograd.Function):
    """(softmax(masked q·kᵀ/√d_k) ⊙ keep / (1 − p)) @ v, computed `step` samples at a time, the probabilities and
    keep-masks recomputed in backward (as a flash kernel does): autograd keeps q, k, v and the output only.

    Why: the fused CPU SDPA kernel has no dropout, and the explicit path through autograd (or activation
    checkpointing) materialises several (B, H, T_q, T_k) float tensors at once; one sample's (H, T_q, T_k) block at a
    time stays in cache. One 24 x 10 x 500 x 500 memory-encoder attention with d_k = 8, forward + backward on 2 busy
    cores (load 4.3): 1.1-1.5 s here, 3.4-8.5 s through the checkpointed explicit path, 0.7-0.9 s for the fused
    kernel without dropout.
    Keep-masks: dropout.py's `keep_mask`, drawn from the global generator chunk by chunk; backward replays the same
    draws from the saved generator state. Backward: dV = P̃ᵀ dO, dP = (dO vᵀ) ⊙ keep / (1 − p), and with
    Σ_j P_ij dP_ij = dO_i · O_i (O = P̃ v): dS = P ⊙ (dP − rowsum(dO ⊙ O)), dq = dS k / √d_k, dk = dSᵀ q / √d_k.
    """

    @staticmethod
    def forward(ctx, q, k, v, allowed, p: float, step: int):
        rng_state = torch.get_rng_state()
        out = q.new_empty((*q.shape[:2], v.shape[-1], q.shape[2])).transpose(-1, -2)  # see `thin_first`
        for start in range(0, q.shape[0], step):
            rows = slice(start, start + step)
            probabilities = masked_probabilities(q[rows], k[rows], None if allowed is None else allowed[rows])
            probabilities.mul_(keep_mask(probabilities.shape, p, probabilities.device))
            thin_first(probabilities, v[rows], out[rows])
        out.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, allowed, out)
        ctx.rng_state, ctx.p, ctx.step = rng_state, p, step
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, allowed, out = ctx.saved_tensors
        scale, root = 1.0 / (1.0 - ctx.p), math.sqrt(q.shape[-1])
        dq, dk, dv = (x.new_empty((*x.shape[:2], x.shape[3], x.shape[2])).transpose(-1, -2) for x in (q, k, v))
        row_dot = (grad_out * out).sum(-1, keepdim=True)  # Σ_j P_ij dP_ij per query row
        with torch.random.fork_rng(devices=[]):  # replay the forward's keep-masks, leave the generator as it was
            torch.set_rng_state(ctx.rng_state)
            for start in range(0, q.shape[0], ctx.step):
                rows = slice(start, start + ctx.step)
                probabilities = masked_probabilities(q[rows], k[rows], None if allowed is None else allowed[rows])
                keep = keep_mask(probabilities.shape, ctx.p, probabilities.device)
                thin_first((probabilities * keep).transpose(-1, -2), grad_out[rows], dv[rows])
                d_scores = grad_out[rows] @ v[rows].transpose(-1, -2)
                d_scores.mul_(keep).mul_(scale).sub_(row_dot[rows]).mul_(probabilities)
                thin_first(d_scores, k[rows], dq[rows])
                thin_first(d_scores.transpose(-1, -2), q[rows], dk[rows])
        return dq.div_(root), dk.div_(root), dv.mul_(scale), None, None, None


# CUDA's memory-efficient SDPA kernel, the only fused one that takes a mask, needs each head's row (d_k values) to fill
# whole 16-byte units; otherwise SDPA silently runs its math kernel, which keeps (B, H, T_q, T_k) tensors for backward.
# MICA Table 1's d_k = 4 fails that in bf16, the released code's d_k = 6 in fp32 too: on an H200 at the MOSEI
# unaligned shape that cost 4.8x (MulT) and 8.3x (MICA) the fp32 peak memory (README, `make gpu-check`).
FUSED_ROW_BYTES = 16


def fused_attention(q, k, v, allowed, p: float) -> torch.Tensor:
    """SDPA, with the head size zero-padded on CUDA to what the fused kernels need (see `padded_head_attention`)."""
    multiple = FUSED_ROW_BYTES // q.element_size()
    if q.device.type != "cuda" or q.shape[-1] % multiple == 0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
    return padded_head_attention(q, k, v, allowed, p, multiple)


def padded_head_attention(q, k, v, allowed, p: float, multiple: int) -> torch.Tensor:
    """SDPA over q, k, v zero-padded to a head size divisible by `multiple`: the same result (the zeros add nothing to
    q·k, the padded output columns are dropped, the scale stays 1/√d_k)."""
    d_k = q.shape[-1]
    pad = (0, (-d_k) % multiple)
    out = F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), attn_mask=allowed,
                                         dropout_p=p, scale=1.0 / math.sqrt(d_k))
    return out[..., :d_k]


class MultiheadAttention(nn.Module):
    """MulT's (fairseq) multi-head attention: one (3w, w) Xavier in-projection, zero biases, dropout on weights."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"MulT width {width} must be divisible by heads {heads} (fusion.net.d / heads)")
        self.width, self.heads, self.dropout = width, heads, float(dropout)
        self.explicit = False  # True: output from explicit softmax probabilities instead of SDPA
        # DropoutAttention's chunk: whole samples, about this many attention entries (8 MiB of fp32) at a time
        self.dropout_chunk_elements = 1 << 21
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def split_heads(self, x: torch.Tensor, part: int) -> torch.Tensor:
        """Project with rows [part·w, (part+1)·w) of the in-projection and split: (B, T, w) -> (B, H, T, d_k)."""
        rows = slice(part * self.width, (part + 1) * self.width)
        y = F.linear(x, self.in_proj_weight[rows], self.in_proj_bias[rows])
        return y.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def probabilities(self, q: torch.Tensor, k: torch.Tensor, mask: AttentionMask) -> torch.Tensor:
        return masked_probabilities(q, k, mask.allowed)

    def explicit_mix(self, q, k, v, mask: AttentionMask, p: float) -> torch.Tensor:
        return dropout(self.probabilities(q, k, mask), p, self.training) @ v

    def forward(self, query, key, value, mask: AttentionMask, details: bool = False, probabilities: bool = True):
        q, k, v = self.split_heads(query, 0), self.split_heads(key, 1), self.split_heads(value, 2)
        p = self.dropout if self.training else 0.0
        if self.explicit:
            mix = self.explicit_mix(q, k, v, mask, p)
        elif p > 0.0 and q.device.type == "cpu":  # its keep-masks are replayed from the CPU generator
            # SDPA with dropout falls back to a math kernel on CPU that keeps (B, H, T_q, T_k) probabilities, a float
            # dropout mask and the dropped probabilities for backward (see DropoutAttention)
            step = max(1, self.dropout_chunk_elements // (q.shape[1] * q.shape[2] * k.shape[2]))
            mix = DropoutAttention.apply(q, k, v, mask.allowed, p, step)
        else:
            mix = fused_attention(q, k, v, mask.allowed, p)
        info = None
        if details:
            info = {"queries": q, "keys": k}
            if probabilities:
                with torch.no_grad():
                    info["attention"] = self.probabilities(q, k, mask)
        if mask.empty_rows is not None:
            mix = mix.masked_fill(mask.empty_rows, 0.0)
        return self.out_proj(mix.transpose(1, 2).flatten(2)), info


def xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class EncoderLayer(nn.Module):
    """One pre-LayerNorm transformer layer (cross-modal when key/value are given, self-attention otherwise)."""

    def __init__(self, width: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.attention = MultiheadAttention(width, heads, attn_dropout)
        self.norm_attention = nn.LayerNorm(width)
        self.norm_ffn = nn.LayerNorm(width)
        self.fc1, self.fc2 = xavier_linear(width, 4 * width), xavier_linear(4 * width, width)
        self.relu_dropout, self.res_dropout = float(relu_dropout), float(res_dropout)
        self.checkpoint_ffn = False  # set by the network (MulT's `checkpoint_ffn`)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + dropout(fc2(dropout(relu(fc1(LN(x))))))."""
        hidden = relu_dropout(self.fc1(self.norm_ffn(x)), self.relu_dropout, self.training)
        return x + dropout(self.fc2(hidden), self.res_dropout, self.training)

    def forward(self, x, key, value, mask: AttentionMask, details: bool = False, probabilities: bool = True):
        """details: also return {"queries", "keys"} (B, H, T, d_k) and (probabilities) "attention" (detached)."""
        query = self.norm_attention(x)
        if key is None:  # self-attention: the normalised x is query, key and value
            key = value = query
        else:  # the released code normalises the source with the layer's (target's) first LayerNorm
            key, value = (self.norm_attention(key),) * 2 if value is key else (self.norm_attention(key),
                                                                                self.norm_attention(value))
        mixed, info = self.attention(query, key, value, mask, details, probabilities)
        x = x + dropout(mixed, self.res_dropout, self.training)
        if self.checkpoint_ffn and self.training and torch.is_grad_enabled():
            # the FFN's 4d-wide activations are half of what a layer keeps for backward; recomputing them costs two
            # small matmuls (the dropout draws are replayed: checkpoint restores the RNG state)
            return checkpoint(self.feed_forward, x, use_reentrant=False), info
        return self.feed_forward(x), info


def run_layer(layer: EncoderLayer, x, key, value, mask: AttentionMask, checkpointed: bool) -> torch.Tensor:
    """The layer's output; `checkpointed` (training only) recomputes its activations in backward to save memory
    (dropout masks are replayed: the RNG state is restored, so results are unchanged)."""
    if checkpointed and layer.training and torch.is_grad_enabled():
        return checkpoint(layer, x, key, value, mask, use_reentrant=False)[0]
    return layer(x, key, value, mask)[0]


class TransformerStack(nn.Module):
    """`layers` EncoderLayers and (optionally) the final LayerNorm; embedding is done by the network."""

    def __init__(self, width: int, heads: int, layers: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float, final_norm: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(width, heads, attn_dropout, relu_dropout, res_dropout)
                                    for _ in range(layers))
        self.norm = nn.LayerNorm(width) if final_norm else None

    def forward(self, x, mask: AttentionMask, checkpointed: bool = False):
        for layer in self.layers:
            x = run_layer(layer, x, None, None, mask, checkpointed)
        return self.norm(x) if self.norm is not None else x


# ------------------------------------------------------------------------------------------------ network
class MulT(SequenceFusionNet):
    def __init__(
        self,
        encoders,
        num_classes: int,
        d: int = 40,
        heads: int = 10,
        layers: int = 6,
        kernel_size=None,
        memory_layers: int | None = None,
        attn_dropout: float = 0.1,
        attn_dropout_audio: float = 0.0,
        attn_dropout_vision: float = 0.0,
        relu_dropout: float = 0.1,
        res_dropout: float = 0.1,
        embed_dropout: float = 0.25,
        text_dropout: float = 0.0,
        out_dropout: float = 0.0,
        readout: str = "last",
        quirk_causal_mask: bool = False,
        quirk_position_from_first_feature: bool = False,
        quirk_hardcoded_d30: bool = False,
        checkpoint_layers: bool = False,
        checkpoint_ffn: bool = True,
    ):
        super().__init__(encoders, num_classes)
        if len(self.modalities) < 2:
            raise ValueError(f"MulT needs at least two modalities, got {self.modalities} (backbone config)")
        if readout not in READOUTS:
            raise ValueError(f"MulT readout must be one of {READOUTS}, got {readout!r} (fusion.net.readout)")
        if int(layers) < 1:
            raise ValueError(f"MulT layers must be >= 1, got {layers} (fusion.net.layers)")
        kernels = per_modality(3 if kernel_size is None else kernel_size, self.modalities, "kernel_size")
        if quirk_hardcoded_d30:
            d, kernels = MULT_D, {m: 1 for m in self.modalities}
        self.d, self.heads, self.num_layers = int(d), int(heads), int(layers)
        self.memory_layers = max(self.num_layers, 3) if memory_layers is None else int(memory_layers)
        self.readout, self.causal = readout, bool(quirk_causal_mask)
        self.positions_from_first_feature = bool(quirk_position_from_first_feature)
        self.embed_dropout, self.text_dropout, self.out_dropout = float(embed_dropout), float(text_dropout), \
            float(out_dropout)
        self.kernel_size = kernels
        self.checkpoint_layers = bool(checkpoint_layers)
        self.projections = nn.ModuleDict({
            m: (nn.Identity() if quirk_hardcoded_d30 and self.dims[m] == self.d
                else nn.Conv1d(self.dims[m], self.d, kernels[m], padding="same", bias=False))
            for m in self.modalities})
        # per modality, the attention dropout of the units it is the SOURCE of (released get_network: 'la' ->
        # attn_dropout_a); the memory encoders all use attn_dropout (l_mem, a_mem, v_mem)
        source_dropout = {"audio": attn_dropout_audio, "vision": attn_dropout_vision}
        self.attn_dropouts = {m: float(source_dropout.get(m, attn_dropout)) for m in self.modalities}
        self.memory_attn_dropout = float(attn_dropout)
        self.stack = dict(heads=self.heads, relu_dropout=float(relu_dropout), res_dropout=float(res_dropout))
        self.crossmodal = nn.ModuleDict({
            self.unit_name(s, t): TransformerStack(self.d, layers=self.num_layers, attn_dropout=self.attn_dropouts[s],
                                                   **self.stack)
            for t, s in self.units()})
        self.build_memory_and_head(width=(len(self.modalities) - 1) * self.d)
        self.checkpoint_ffn = bool(checkpoint_ffn)

    @property
    def checkpoint_ffn(self) -> bool:
        return self._checkpoint_ffn

    @checkpoint_ffn.setter
    def checkpoint_ffn(self, value: bool) -> None:
        """Recompute every layer's FFN in backward (also layers built later, e.g. MICA's d-wide memory)."""
        self._checkpoint_ffn = bool(value)
        for module in self.modules():
            if isinstance(module, EncoderLayer):
                module.checkpoint_ffn = self._checkpoint_ffn

    # ---------------------------------------------------------------- structure
    def units(self) -> list[tuple[str, str]]:
        """(target, source) pairs in the released code's order: per target, the sources in modality order."""
        return [(t, s) for t in self.modalities for s in self.modalities if s != t]

    @staticmethod
    def unit_name(source: str, target: str) -> str:
        return f"{target}_with_{source}"

    def build_memory_and_head(self, width: int) -> None:
        """Per-target self-attention memory encoders of `width`, and the residual MLP head on the readouts."""
        self.memory = nn.ModuleDict({
            t: TransformerStack(width, layers=self.memory_layers, attn_dropout=self.memory_attn_dropout, **self.stack)
            for t in self.modalities})
        joint = width * len(self.modalities)
        self.proj1, self.proj2 = nn.Linear(joint, joint), nn.Linear(joint, joint)
        self.out_layer = nn.Linear(joint, self.num_classes)
        if hasattr(self, "_checkpoint_ffn"):  # rebuilt after construction (MICA): the new layers follow the flag
            self.checkpoint_ffn = self._checkpoint_ffn

    # ---------------------------------------------------------------- pieces of the forward pass
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x·√width + sinusoidal positions (before embed dropout)."""
        positions = step_positions(x, self.positions_from_first_feature)
        return x * math.sqrt(x.shape[-1]) + sinusoidal_embedding(positions, x.shape[-1]).to(x.dtype)

    def embed_dropped(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.embed_dropout, self.training)

    def project(self, xs: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Z^[0] per modality: zero the pads, (text dropout), temporal conv, embed: (B, T_m, d)."""
        embedded = {}
        for m in self.modalities:
            x = xs[m] * masks[m].unsqueeze(-1).to(xs[m].dtype)
            if m == "text":
                x = dropout(x, self.text_dropout, self.training)
            projected = self.projections[m](x.transpose(1, 2)).transpose(1, 2)
            embedded[m] = self.embed(projected)
        return embedded

    def attention_mask(self, key_mask: torch.Tensor, query_steps: int) -> AttentionMask:
        return AttentionMask(key_mask, query_steps, self.causal)

    def crossmodal_streams(self, embedded, masks) -> dict[str, torch.Tensor]:
        """MulT: every unit t <- s runs its own stack on (Z_t, Z_s); per target the streams are concatenated."""
        out = {}
        for t in self.modalities:
            streams = []
            for s in (s for tt, s in self.units() if tt == t):
                stack = self.crossmodal[self.unit_name(s, t)]
                mask = self.attention_mask(masks[s], embedded[t].shape[1])
                x = self.embed_dropped(embedded[t])
                key, value = self.embed_dropped(embedded[s]), self.embed_dropped(embedded[s])
                for layer in stack.layers:
                    x = run_layer(layer, x, key, value, mask, self.checkpoint_layers)
                streams.append(stack.norm(x))
            out[t] = torch.cat(streams, dim=-1)
        return out

    def read(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, w) -> (B, w): last real step (all-pad row: last step) or masked mean (all-pad row: zeros)."""
        if self.readout == "mean":
            weights = mask.unsqueeze(-1).to(h.dtype)
            return (h * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        steps = h.shape[1]
        last = steps - 1 - mask.flip(1).to(torch.int8).argmax(dim=1)  # no real step: argmax 0 -> T-1
        return h[torch.arange(h.shape[0], device=h.device), last]

    def summarise(self, fused: Mapping[str, torch.Tensor], masks) -> torch.Tensor:
        """Memory encoders, readouts and the residual MLP head -> logits."""
        summaries = []
        for t in self.modalities:
            h = self.embed_dropped(self.embed(fused[t]))
            h = self.memory[t](h, self.attention_mask(masks[t], h.shape[1]), self.checkpoint_layers)
            summaries.append(self.read(h, masks[t]))
        joint = torch.cat(summaries, dim=-1)
        hidden = self.proj2(relu_dropout(self.proj1(joint), self.out_dropout, self.training)) + joint
        return self.out_layer(hidden)

    def forward(self, batch):
        xs, masks = self.sequences(batch)
        embedded = self.project(xs, masks)
        return NetOutput(logits=self.summarise(self.crossmodal_streams(embedded, masks), masks))
