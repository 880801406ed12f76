"""Whole-sequence networks for the CMU datasets: they own their recurrent layers (DESIGN.md "Model contract").

`SequenceFusionNet` is the base: its encoders are `SequenceFeatures` declarations (one per modality, giving the
feature size), its inputs are (B, T_m, D_m) float sequences with optional ``<modality>_mask`` (B, T_m) bool
(True = real step; the CMU releases LEFT-pad with zeros, MMSA right-pads, so a mask says where the real steps
are wherever they lie).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from repro.models.net import FusionNet


def feature_size(modality: str, encoder) -> int:
    """The feature size a `SequenceFeatures` declaration gives; any other encoder is a one-line TypeError."""
    if not hasattr(encoder, "in_features"):
        raise TypeError(f"sequence networks read pre-extracted features; encoder {modality!r} is "
                        f"{type(encoder).__name__} (use a backbone of SequenceFeatures, e.g. backbone=mosi)")
    return int(encoder.in_features)


def step_masks(xs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(B, T) bool masks of real steps per modality: the batch's ``<modality>_mask``, or all True if absent."""
    masks = {}
    for m, x in xs.items():
        mask = batch.get(f"{m}_mask")
        masks[m] = (torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None
                    else mask.to(device=x.device, dtype=torch.bool))
    return masks


class SequenceFusionNet(FusionNet):
    """Base class of the sequence networks: `dims[m]` = feature size, `sequences(batch)` = inputs and masks."""

    def __init__(self, encoders, num_classes: int):
        super().__init__(encoders, num_classes)
        self.dims = {m: feature_size(m, enc) for m, enc in self.encoders.items()}

    def sequences(self, batch: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Per-modality (B, T, D) inputs (checked by the encoders) and (B, T) bool masks (all True if absent)."""
        xs = {m: self.encoders[m](x) for m, x in self.inputs(batch).items()}
        return xs, step_masks(xs, batch)
