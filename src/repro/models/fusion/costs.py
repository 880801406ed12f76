"""Parameter and FLOP counts of bare fusion modules — the setting of MSAF Fig. 5 (msaf.txt §5.5).

Fig. 5 compares one MSAF module with one MMTM module fusing two modalities of shape
(4, #Channels, 3, 128, 128), reduction 4 for both, MSAF block size C = #Channels / 2. The paper quotes
10.4K vs 131.6K FLOPs at 64 channels and 2.6M vs 33.6M at 1024, and at most 330K MSAF parameters.

FLOPs: the whole module's forward is run under ``torch.utils.flop_counter.FlopCounterMode`` on the *meta*
device (true shapes, no memory, no arithmetic). That counter only has formulas for matrix products,
convolutions and attention (2 x multiply-adds; bias additions, BatchNorm, softmax, pooling and element-wise
products are not counted), and these convolution-free modules contain only ``aten.addmm``/``aten.mm``, so
the total equals the FLOPs of their fully connected layers for the actual batch of 4. ``fc_flops`` checks
that no other operator was counted. Parameters: every ``nn.Parameter`` (FC weights and biases, BatchNorm
affine weights; BN running statistics are buffers and not counted).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from repro.models.fusion.mmtm import MMTM
from repro.models.fusion.msaf import MSAF

FC_OPS = {"addmm", "mm"}


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def fc_flops(module: nn.Module, shapes: Sequence[Sequence[int]]) -> int:
    """Forward FLOPs (2 x MACs) of `module` on zero inputs of `shapes`, counted on the meta device."""
    module = module.to("meta")
    inputs = [torch.empty(*s, device="meta") for s in shapes]
    with FlopCounterMode(display=False) as counter:
        module(inputs)
    counts = counter.get_flop_counts().get("Global", {})
    other = {str(op) for op in counts if str(op).split(".")[-1] not in FC_OPS}
    if other:
        raise RuntimeError(f"expected only fully connected (addmm/mm) FLOPs, the counter also saw {other}")
    return int(sum(counts.values()))


def fig5_modules(channels: int, reduction: int = 4) -> tuple[MSAF, MMTM]:
    """The two modules of Fig. 5 for two modalities with `channels` channels each."""
    msaf = MSAF([channels, channels], block_channel=channels // 2, reduction=reduction)
    mmtm = MMTM([channels, channels], ratio=reduction)
    return msaf, mmtm


def fig5_costs(channels: int, batch: int = 4, dims: Sequence[int] = (3, 128, 128)) -> dict[str, int]:
    """{'msaf_params', 'mmtm_params', 'msaf_flops', 'mmtm_flops'} for one x-axis value of Fig. 5."""
    msaf, mmtm = fig5_modules(channels)
    shapes = [(batch, channels, *dims)] * 2
    msaf.eval()  # BlockDropout is 0 here anyway; eval keeps BatchNorm from needing batch statistics
    return {
        "msaf_params": num_params(msaf),
        "mmtm_params": num_params(mmtm),
        "msaf_flops": fc_flops(msaf, shapes),
        "mmtm_flops": fc_flops(mmtm, shapes),
    }
