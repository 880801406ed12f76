"""The sequence placement of MSAF now lives with the block in `repro.models.fusion.msaf` (one method, one module).

This name stays so that run configs saved before the move (``_target_: repro.models.sequence.msaf.SequenceMSAFNet``)
still instantiate when a run is evaluated or resumed.
"""

from repro.models.fusion.msaf import SequenceMSAFNet

__all__ = ["SequenceMSAFNet"]
