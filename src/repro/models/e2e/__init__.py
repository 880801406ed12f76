"""End-to-end emotion networks of MESM (Dai et al., NAACL 2021; mesm.txt §4): FE2E and MESM, their CNN blocks,
cross-modal attention, nucleus selection, spconv sparse stages (with the CPU compatibility patch), the masked dense
reference of those stages and the paper's FLOP counting."""

from repro.models.e2e.cnn import FrameSpec
from repro.models.e2e.nets import FE2E, MESM
from repro.models.e2e.text import AlbertText

__all__ = ["FE2E", "MESM", "AlbertText", "FrameSpec"]
