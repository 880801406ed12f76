"""Lean inverted dropout for the transformer models (MulT / MICA, mult.py): the same operation as `F.dropout`
(Srivastava et al., 2014: zero each element with probability p, scale the rest by 1/(1−p)), cheaper on CPU.

Why not `F.dropout` on CPU: it draws one float per element through `bernoulli_` (≈ 10 ms for the 1.9 M elements of one
MulT FFN activation at the unaligned MOSEI shape) and keeps a FLOAT mask for backward. Here:
- the keep-mask comes from random 16-bit integers (64 random bits give four of them; ≈ 2.5 ms for the same tensor):
  an element is dropped when its integer falls below round(p · 2¹⁶), so the drop probability is p rounded to a
  multiple of 2⁻¹⁶ (0.1 → 0.099991); the draws come from torch's global generator (seeded runs repeat; activation
  checkpointing replays them);
- backward keeps a 1-byte bool mask (`dropout`), or nothing extra at all (`relu_dropout`: relu and dropout fused, the
  gradient mask is recovered from the output's sign, and the output is the tensor the next linear layer saves anyway).
On CUDA both fall back to PyTorch's fused kernels (F.dropout keeps a bool mask there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_LEVELS = 1 << 16  # 16-bit random integers: dropout probability resolution 2^-16


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """Bool tensor of `shape`, True with probability 1 − round(p·2¹⁶)/2¹⁶, from 16-bit slices of random int64s."""
    count = 1
    for size in shape:
        count *= int(size)
    words = torch.randint(-(1 << 63), (1 << 63) - 1, ((count + 3) // 4,), dtype=torch.int64, device=device)
    levels = words.view(torch.int16)[:count]  # uniform over [-2^15, 2^15)
    return (levels >= -(1 << 15) + round(p * _LEVELS)).view(shape)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout; backward keeps a bool mask (F.dropout on CPU keeps a float one: 4x the memory)."""
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, True)
    return x.mul(keep_mask(x.shape, p, x.device)).mul_(1.0 / (1.0 - p))


class _ReluDropout(torch.autograd.Function):
    """y = relu(x) ⊙ keep / (1 − p); backward: dx = dy ⊙ (y > 0) / (1 − p) — y > 0 exactly where x > 0 and kept,
    so only y is saved (relu's output, the mask and the dropped copy are not kept)."""

    @staticmethod
    def forward(ctx, x, keep, scale):
        out = x.clamp_min(0).mul_(keep).mul_(scale)
        ctx.save_for_backward(out)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (out,) = ctx.saved_tensors
        return grad_out.mul(out > 0).mul_(ctx.scale), None, None


def relu_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """dropout(relu(x), p) with one saved tensor (the output) on CPU."""
    if not training or p == 0.0 or x.is_cuda:
        return dropout(F.relu(x), p, training)
    return _ReluDropout.apply(x, keep_mask(x.shape, p, x.device), 1.0 / (1.0 - p))
