"""Fusion methods, one module each (equations referenced in each module's docstring).

Registry name -> class (the Hydra configs `configs/fusion/<name>.yaml` instantiate the same classes):

- ``unimodal``        `UnimodalNet`                   one encoder alone (the others dropped)
- ``late_avg``        `LateAverageNet`                mean of softmax probabilities (MSAF T1 "Averaging")
- ``late_product``    `LateProductNet`                normalised product of probabilities ("Multiplication")
- ``multiplicative``  `MultiplicativeCombinationNet`  Liu et al. 2018, down-weighted loss with beta
- ``concat``          `ConcatNet`                     concat of pooled embeddings + FC/MLP ("Concat + FC")
- ``two_stream``      `TwoStreamNet`                  MFAS's two-stream baseline: last features, one linear layer
- ``gmu``             `GMUNet`                        Gated Multimodal Unit (Arevalo et al. 2017)
- ``centralnet``      `CentralNet`                    CentralNet (Vielzeuf et al. 2018), staged
- ``mcbp``            `MCBPNet`                       Multimodal Compact Bilinear Pooling (Fukui et al. 2016)
- ``mmtm``            `MMTMNet`                       Multimodal Transfer Module (Joze et al. 2020), staged
- ``msaf``            `MSAFNet`                       Multimodal Split Attention Fusion (Su et al. 2020), staged

Bare modules for analysis: `repro.models.fusion.msaf.MSAF`, `repro.models.fusion.mmtm.MMTM`.
MSAF's sequence placement, `repro.models.fusion.msaf.SequenceMSAFNet` (CMU-MOSEI), composes the same block.
"""

from __future__ import annotations

from repro.models.fusion.centralnet import CentralNet
from repro.models.fusion.concat import ConcatNet
from repro.models.fusion.gmu import GMUNet
from repro.models.fusion.late import LateAverageNet, LateProductNet, MultiplicativeCombinationNet
from repro.models.fusion.mcbp import MCBPNet
from repro.models.fusion.mmtm import MMTM, MMTMNet
from repro.models.fusion.msaf import MSAF, MSAFNet
from repro.models.fusion.two_stream import TwoStreamNet
from repro.models.fusion.unimodal import UnimodalNet

REGISTRY = {
    "unimodal": UnimodalNet,
    "late_avg": LateAverageNet,
    "late_product": LateProductNet,
    "multiplicative": MultiplicativeCombinationNet,
    "concat": ConcatNet,
    "two_stream": TwoStreamNet,
    "gmu": GMUNet,
    "centralnet": CentralNet,
    "mcbp": MCBPNet,
    "mmtm": MMTMNet,
    "msaf": MSAFNet,
}

__all__ = [
    "REGISTRY",
    "MMTM",
    "MSAF",
    "CentralNet",
    "ConcatNet",
    "GMUNet",
    "LateAverageNet",
    "LateProductNet",
    "MCBPNet",
    "MMTMNet",
    "MSAFNet",
    "MultiplicativeCombinationNet",
    "TwoStreamNet",
    "UnimodalNet",
]
