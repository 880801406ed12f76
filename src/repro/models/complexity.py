"""Parameter counts, forward FLOPs per sample and peak memory of a network.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts 2 × multiply-adds of matrix
products and convolutions (ENVIRONMENT.md). Element-wise ops, pooling and normalisation are not counted,
like most papers' numbers (MSAF Fig. 5 counts the fully connected layers). A dense `nn.LSTM` runs as a fused
kernel (oneDNN on CPU, cuDNN on GPU) that the counter does not know; `LSTM_FLOPS` teaches it that kernel's matrix
products (2 × the input-to-hidden and hidden-to-hidden multiply-adds of every layer and direction, per time step).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _rnn_layer_flops(input, weight_ih, weight_hh, *args, **kwargs) -> int:
    """CPU (oneDNN) ``aten.mkldnn_rnn_layer``: one layer and direction over a dense (T, B, I) input."""
    return 2 * input.shape[0] * input.shape[1] * (weight_ih.numel() + weight_hh.numel())


def _cudnn_rnn_flops(input, weights, *args, **kwargs) -> int:
    """CUDA ``aten._cudnn_rnn``: every layer and direction; dense (T, B, I) or packed (tokens, I) input."""
    tokens = input.shape[0] * input.shape[1] if input.dim() == 3 else input.shape[0]
    return 2 * tokens * sum(w.numel() for w in weights if w.dim() == 2)


_rnn_layer_flops._get_raw = True  # FlopCounterMode then passes the raw arguments (the weights) to the formula
_cudnn_rnn_flops._get_raw = True
# Packed sequences on CPU already run as counted addmm ops, step by step.
# Keys are operator packets (FlopCounterMode looks ops up by packet).
LSTM_FLOPS = {torch.ops.aten.mkldnn_rnn_layer: _rnn_layer_flops, torch.ops.aten._cudnn_rnn: _cudnn_rnn_flops}


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
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=LSTM_FLOPS) as counter:
            module(inputs)
    finally:
        module.train(was_training)
    total = counter.get_total_flops()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    scale = per_sample_of or 1
    return {"forward_per_sample": total / scale, "by_op_per_sample": {k: v / scale for k, v in by_op.items()}}


def batch_to(batch: Mapping, n: int) -> dict:
    """The first `n` samples of a collated batch (tensors sliced, lists cut). A modality whose frames are concatenated
    over the samples with per-sample `<modality>_counts` (the MESM raw readers) is cut after its first n samples'
    frames."""
    out = {k: (v[:n] if isinstance(v, (torch.Tensor, list)) else v) for k, v in batch.items()}
    for key, counts in batch.items():
        modality = key[: -len("_counts")]
        if key.endswith("_counts") and modality in batch:
            out[modality] = batch[modality][: int(torch.as_tensor(counts)[:n].sum())]
    return out


def peak_memory() -> dict:
    """Peak GPU memory where CUDA is in use, else the process's peak resident host memory."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {"device": "cuda", "bytes": int(torch.cuda.max_memory_allocated())}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is kilobytes on Linux and bytes on macOS.
    return {"device": "host", "bytes": int(rss if sys.platform == "darwin" else rss * 1024)}
