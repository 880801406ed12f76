"""The class path that runs saved before the unimodal networks were folded into one name in their config
(`repro.models.sequence.unimodal.SequenceUnimodalNet`); eval.py and resume rebuild them through this alias."""

from repro.models.fusion.unimodal import UnimodalNet as SequenceUnimodalNet

__all__ = ["SequenceUnimodalNet"]
