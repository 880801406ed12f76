"""Start encoders from earlier runs' weights (the pretrained-unimodal protocol of MSAF §5.1 and MFAS §3.3).

MSAF (RAVDESS, NTU) and MFAS fuse unimodal networks that were first trained alone. The weights arrive here already
loaded (`repro.runs.encoder_weights` reads `backbone.init_from.<modality>` and a search's checkpoints): models never
read records or checkpoints themselves. A missing or mismatching entry is an error, so a wrong checkpoint never loads
silently.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from repro.config import ConfigError

EncoderWeights = tuple[str, Mapping[str, torch.Tensor]]  # (where they came from, for messages; the state dict)


def init_encoders(encoders: Mapping[str, nn.Module], weights: Mapping[str, EncoderWeights]) -> dict[str, str]:
    """Load each named encoder's weights in place (strictly); returns {modality: source} for the record."""
    used = {}
    for modality, (source, state) in weights.items():
        if modality not in encoders:
            raise ConfigError(f"backbone.init_from names modality {modality!r}; encoders are {sorted(encoders)}")
        try:
            encoders[modality].load_state_dict(state, strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ConfigError(f"{source}: encoder {modality!r} does not match this backbone ({first})") from None
        used[modality] = source
    return used
