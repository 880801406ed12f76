"""Parameter counts, forward FLOPs per sample and peak memory of a network.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts 2 × multiply-adds of matrix
products and convolutions (ENVIRONMENT.md). Element-wise ops, pooling and normalisation are not counted,
like most papers' numbers (MSAF Fig. 5 counts the fully connected layers).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module, only_trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not only_trainable)


def parameter_summary(net: nn.Module) -> dict[str, int]:
    fusion = net.fusion_parameters() if hasattr(net, "fusion_parameters") else []
    return {
        "total": count_parameters(net),
        "trainable": count_parameters(net, only_trainable=True),
        "fusion": sum(p.numel() for p in fusion),
    }


def forward_flops(module: nn.Module, inputs, per_sample_of: int | None = None) -> dict:
    """FLOPs of one forward pass on `inputs`; divided by `per_sample_of` (the batch size) when given.

    Runs in eval mode and without gradients, then restores the module's mode.
    """
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(inputs)
    finally:
        module.train(was_training)
    total = counter.get_total_flops()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    scale = per_sample_of or 1
    return {"forward_per_sample": total / scale, "by_op_per_sample": {k: v / scale for k, v in by_op.items()}}


def batch_to(batch: Mapping, n: int) -> dict:
    """The first `n` samples of a collated batch (tensors sliced, lists cut)."""
    return {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}


def peak_memory() -> dict:
    """Peak GPU memory where CUDA is in use, else the process's peak resident host memory."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {"device": "cuda", "bytes": int(torch.cuda.max_memory_allocated())}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is kilobytes on Linux and bytes on macOS.
    return {"device": "host", "bytes": int(rss if sys.platform == "darwin" else rss * 1024)}
